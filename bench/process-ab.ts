// StreamRuntime.process measured alone, in one process: two builds' dist/ (before and after a change)
// interleaved call by call on the bench scenarios' bodies, so that a busy shared machine slows both alike.
// This isolates the per-record pipeline cost (framing, validation, drift) from HTTP, the spool and the load
// generator, which the full harness (bench/run.ts) includes.
//
//   npx tsx bench/process-ab.ts --before /path/to/old/checkout --after . [--calls 60] [--scenario NAME]…
//
// Each build directory must hold a built dist/ (npm run build). Prints the median ms per call per build and
// the ratio after ÷ before. With --drift it also compares, in the after build only, a batch in which every
// record drifts (Azion template 2 receiving the ~45-key records of test/fixtures/azion/http-template2.ndjson)
// with the same batch validated against a templateModel of exactly those keys (nothing drifts).

import { readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { findScenario } from './scenarios.js'

interface Runtime {
  process(body: Buffer, now: number): { records: unknown[]; deadLetters: unknown[] }
}
interface Build {
  label: string
  runtime(stream: Record<string, unknown>): Runtime
}

async function loadBuild(label: string, dir: string): Promise<Build> {
  const dist = resolve(dir, 'dist')
  const { StreamRuntime } = (await import(join(dist, 'pipeline', 'stream.js'))) as {
    StreamRuntime: new (id: string, config: unknown, validators: unknown) => Runtime
  }
  const { Validators } = (await import(join(dist, 'validate', 'validators.js'))) as {
    Validators: new () => unknown
  }
  const { validateConfig } = (await import(join(dist, 'config', 'load.js'))) as {
    validateConfig: (
      raw: unknown,
      options: { env: Record<string, string> },
    ) => { config?: { streams: Record<string, unknown> }; issues: unknown[] }
  }
  const validators = new Validators()
  return {
    label,
    runtime(stream) {
      const { config, issues } = validateConfig(
        { sinks: { out: { type: 'stdout' } }, streams: { s: { ...stream, sinks: ['out'] } } },
        { env: {} },
      )
      if (!config) throw new Error(`${label}: invalid stream config: ${JSON.stringify(issues)}`)
      return new StreamRuntime('s', config.streams.s, validators)
    },
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

/** Interleaves the runtimes call by call (after a warm-up) and returns the median ms per call of each. */
function measure(runtimes: Runtime[], body: Buffer, calls: number): number[] {
  const times = runtimes.map(() => [] as number[])
  for (let i = 0; i < Math.max(5, calls >> 3); i++) for (const r of runtimes) r.process(body, Date.now())
  for (let i = 0; i < calls; i++) {
    const order = i % 2 === 0 ? runtimes.map((_, k) => k) : runtimes.map((_, k) => runtimes.length - 1 - k)
    for (const k of order) {
      const start = process.hrtime.bigint()
      runtimes[k]!.process(body, Date.now())
      times[k]!.push(Number(process.hrtime.bigint() - start) / 1e6)
    }
  }
  return times.map(median)
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      before: { type: 'string' },
      after: { type: 'string', default: '.' },
      calls: { type: 'string', default: '60' },
      scenario: { type: 'string', multiple: true },
      drift: { type: 'boolean', default: false },
    },
  })
  const calls = Number(values.calls)
  const after = await loadBuild('after', values.after)
  const before = values.before !== undefined ? await loadBuild('before', values.before) : undefined
  const names = values.scenario ?? ['azion-ndjson-2000', 'azion-array-2000', 'emnify-usage-3000']
  if (before) {
    console.log(`| scenario | before ms/call | after ms/call | after ÷ before |`)
    console.log(`| --- | ---: | ---: | ---: |`)
    for (const name of names) {
      const scenario = findScenario(name)
      if (!scenario) throw new Error(`unknown scenario ${name}`)
      const body = scenario.generate()
      const [b, a] = measure([before.runtime(scenario.stream), after.runtime(scenario.stream)], body, calls)
      console.log(`| ${name} | ${b!.toFixed(2)} | ${a!.toFixed(2)} | ${(a! / b!).toFixed(3)} |`)
    }
  }
  if (values.drift) {
    const repo = resolve(new URL('..', import.meta.url).pathname)
    const sample = readFileSync(join(repo, 'test/fixtures/azion/http-template2.ndjson'), 'utf8').split('\n')
    const lines = Array.from({ length: 2000 }, (_, i) => sample[i % sample.length]!)
    const body = Buffer.from(lines.join('\n'))
    const keys = Object.keys(JSON.parse(sample[0]!) as object)
    const model = `{${keys.map((k) => `"${k}":"$${k}"`).join(',')}}`
    const base = { source: 'azion', payloadFormat: '$dataset', logLineSeparator: '\n' }
    const exact = after.runtime({ ...base, templateModel: model })
    const drifting = after.runtime({ ...base, template: 2 })
    for (const r of [exact, drifting]) {
      const outcome = r.process(body, Date.now())
      if (outcome.records.length !== 2000) throw new Error('the drift body was not accepted whole')
    }
    const [e, d] = measure([exact, drifting], body, calls)
    console.log(`\n| 2,000 records of ${keys.length} keys | ms/call |`)
    console.log(`| --- | ---: |`)
    console.log(`| templateModel of exactly these keys (nothing drifts) | ${e!.toFixed(2)} |`)
    console.log(
      `| template 2 (every record drifts: ${keys.length - 4} unknown keys, 1 missing) | ${d!.toFixed(2)} |`,
    )
    console.log(`| ratio | ${(d! / e!).toFixed(3)} |`)
  }
}

await main()
