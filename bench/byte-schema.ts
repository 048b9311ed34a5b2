// The emnify byte-level schema check (src/validate/byte-schema.ts) alone, against what it replaces
// (toString + JSON.parse + ajv per record), on the bench bodies: CPU per body, medians, interleaved.
//   npx tsx bench/byte-schema.ts [--rounds N]
import { splitTopLevel, type Span } from '../src/records/json-scan.js'
import { Validators } from '../src/validate/validators.js'
import { findScenario } from './scenarios.js'

const rounds = Number(process.argv[process.argv.indexOf('--rounds') + 1]) || 40
const validators = new Validators()

function cpuMs(fn: () => void): number {
  const before = process.cpuUsage()
  fn()
  const used = process.cpuUsage(before)
  return (used.user + used.system) / 1000
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

for (const [scenario, schema] of [
  ['emnify-usage-3000', 'emnify-usage'],
  ['emnify-single', 'emnify-event'],
] as const) {
  const body = findScenario(scenario)!.generate()
  const spans: Span[] =
    body[0] === 0x5b
      ? splitTopLevel(body, 1, body.length - 1, Buffer.from(','), 256)
      : [{ start: 0, end: body.length }]
  const check = validators.builtinByteCheck(schema, 256)!
  const ajv = validators.builtin(schema)
  const repeat = Math.max(1, Math.round(3000 / spans.length))
  let proven = 0
  for (const s of spans) if (check(body, s.start, s.end) === 0) proven++
  const byte: number[] = []
  const parse: number[] = []
  for (let r = 0; r < rounds; r++) {
    byte.push(
      cpuMs(() => {
        for (let k = 0; k < repeat; k++) for (const s of spans) check(body, s.start, s.end)
      }),
    )
    parse.push(
      cpuMs(() => {
        for (let k = 0; k < repeat; k++)
          for (const s of spans) ajv(JSON.parse(body.toString('utf8', s.start, s.end)))
      }),
    )
  }
  const per = (xs: number[]): string =>
    `${((median(xs) / (repeat * spans.length)) * 1000).toFixed(2)} µs/record`
  console.log(
    `${scenario}: ${spans.length} record(s), ${proven} proven; byte check ${per(byte)}, toString+JSON.parse+ajv ${per(parse)} (median of ${rounds}, CPU)`,
  )
}
