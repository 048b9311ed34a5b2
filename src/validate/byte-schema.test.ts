import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { StreamConfig, ValidationPolicy } from '../config/types.js'
import { ProblemError } from '../errors.js'
import { StreamRuntime } from '../pipeline/stream.js'
import { splitTopLevel } from '../records/json-scan.js'
import { byteSchemaCheck } from './byte-schema.js'
import { BUILTIN_SCHEMAS, Validators } from './validators.js'

// The byte-level schema check may only ever say "valid" for a record that JSON.parse accepts, that is an
// object no deeper than the limit, and that ajv accepts under the same schema; anything else must go the
// usual way. The records generated here sit around that boundary: every type in every field, numbers
// JSON.parse rounds (exponents, 400 digits, 2^53 + 1), timestamps that do and do not match the pattern,
// escapes (also in keys and pattern-checked strings), duplicate, inherited and `__proto__` keys, nesting,
// raw control bytes, and records damaged byte by byte. Clean records must be proven (the fast path is really
// taken), and StreamRuntime.process must answer exactly as without the check.

const validators = new Validators()
type Name = keyof typeof BUILTIN_SCHEMAS

const TIMESTAMPS_OK = [
  '2021-10-27T11:59:29.000Z',
  '2017-10-26T07:28:00.000+0000',
  '2022-04-26T11:53:43Z',
  '2015-07-16 12:07:09',
  '2021-10-27T08:38:02',
  '2024-02-15T14:56:15.260+01:00',
  '2024-02-15T14:56',
]
const TIMESTAMPS_BAD = [
  '',
  '2021-10-27',
  '2021-10-27X11:59:29Z',
  '2021-10-27T11:59:29.Z',
  '２０２１-10-27T11:59:29Z', // full-width digits: \d is ASCII only
  '2021-10-27T11:59:29Z ',
  'yesterday',
]

const PATTERN_CANDIDATES = [...TIMESTAMPS_OK, '555', '-12', '0']

const ws = fc.constantFrom('', '', '', ' ', '\n', '\t', '\r\n  ')
const wsOrNot = fc.oneof(
  { weight: 9, arbitrary: ws },
  { weight: 1, arbitrary: fc.constantFrom('\u00a0', '\f', '\v') },
)

const VALID_ESCAPES = [
  '\\"',
  '\\\\',
  '\\/',
  '\\b',
  '\\f',
  '\\n',
  '\\r',
  '\\t',
  '\\u00e9',
  '\\uD83D',
  '\\u0032',
]
const stringPiece = fc.oneof(
  { weight: 5, arbitrary: fc.string({ unit: 'grapheme', maxLength: 8 }).map((s) => s.replace(/["\\]/g, '')) },
  {
    weight: 2,
    arbitrary: fc.constantFrom(...VALID_ESCAPES, '\\u12G4', '\\x', '\\', '\u0000', '\u001f', '\n', '\u007f'),
  },
)
const rawString = fc.array(stringPiece, { maxLength: 4 }).map((p) => `"${p.join('')}"`)
const cleanString = fc
  .string({ unit: 'grapheme', maxLength: 12 })
  .map((s) => JSON.stringify([...s].filter((c) => c >= ' ' && c !== '"' && c !== '\\').join('')))

const timestamp = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...TIMESTAMPS_OK).map((t) => JSON.stringify(t)) },
  { weight: 1, arbitrary: fc.constantFrom(...TIMESTAMPS_BAD).map((t) => JSON.stringify(t)) },
  // Valid once decoded, but written with an escape: the check cannot see that and must not prove it.
  { weight: 1, arbitrary: fc.constantFrom(...TIMESTAMPS_OK).map((t) => `"\\u0032${t.slice(1)}"`) },
)

const NUMBERS = [
  '0',
  '-0',
  '1',
  '-17',
  '1.0',
  '1.5',
  '-0.25',
  '1e2',
  '1E+2',
  '-1e-7',
  '1e400',
  '9007199254740993',
  '18446744073709551615',
  '1'.repeat(400),
  '1'.repeat(300),
  `${'9'.repeat(308)}.5`,
  '01',
  '1.',
  '.5',
  '-',
  '+1',
  '1e',
  'NaN',
]
const number = fc.oneof(
  { weight: 3, arbitrary: fc.integer().map(String) },
  { weight: 1, arbitrary: fc.double({ noNaN: true, noDefaultInfinity: true }).map((d) => JSON.stringify(d)) },
  { weight: 2, arbitrary: fc.constantFrom(...NUMBERS) },
)
const literal = fc.constantFrom('null', 'true', 'false', 'nul', 'True', 'null ')
const anyJson = fc.oneof(
  { weight: 3, arbitrary: fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)) },
  {
    weight: 1,
    arbitrary: fc.constantFrom('[[[[[[1]]]]]]', '{"a":{"b":{"c":{"d":{}}}}}', '[', '{"a"}', '[1,]'),
  },
)

/** Any value, of any type (the wrong one most of the time). */
const anyValue = fc.oneof(rawString, cleanString, timestamp, number, literal, anyJson)

type Schema = Record<string, unknown>

function typesOf(schema: Schema): string[] {
  const t = schema.type
  return t === undefined ? [] : Array.isArray(t) ? (t as string[]) : [t as string]
}

/**
 * JSON text for `schema`: with `clean`, only what the check should prove (right types, plain integers,
 * unescaped timestamps that match, unique keys); otherwise anything around the boundary.
 */
function valueArb(schema: Schema, clean: boolean, depth: number): fc.Arbitrary<string> {
  const types = typesOf(schema)
  const options: fc.Arbitrary<string>[] = []
  for (const t of types) {
    if (t === 'object') options.push(objectArb(schema, clean, depth))
    else if (t === 'array') {
      const items = (schema.items as Schema | undefined) ?? {}
      options.push(
        fc.array(valueArb(items, clean, depth + 1), { maxLength: 3 }).map((xs) => `[${xs.join(',')}]`),
      )
    } else if (t === 'string') {
      if (schema.pattern === undefined) options.push(clean ? cleanString : rawString)
      else {
        // Strings a pattern matches (timestamps, numeric strings): in clean records only those it matches.
        const re = new RegExp(schema.pattern as string, 'u')
        const matching = PATTERN_CANDIDATES.filter((x) => re.test(x)).map((x) => JSON.stringify(x))
        options.push(clean ? fc.constantFrom(...matching) : fc.oneof(timestamp, fc.constantFrom(...matching)))
      }
    } else if (t === 'integer')
      options.push(clean ? fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }).map(String) : number)
    else if (t === 'number')
      options.push(clean ? fc.constantFrom('0', '1.5', '-3', '0.000001', '123456.789') : number)
    else if (t === 'null') options.push(fc.constant('null'))
    else if (t === 'boolean') options.push(fc.constantFrom('true', 'false'))
  }
  if (Array.isArray(schema.anyOf))
    for (const b of schema.anyOf as Schema[])
      if (typesOf(b).length > 0) options.push(valueArb(b, clean, depth))
  if (options.length === 0)
    options.push(clean ? fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v)) : anyValue)
  if (clean) return fc.oneof(...options)
  return fc.oneof({ weight: 6, arbitrary: fc.oneof(...options) }, { weight: 1, arbitrary: anyValue })
}

const EXTRA_KEYS = ['extra', 'toString', 'constructor', 'é', 'a b', '', 'id2']

function objectArb(schema: Schema, clean: boolean, depth: number): fc.Arbitrary<string> {
  if (depth > 4) return fc.constant('{}')
  const props = { ...((schema.properties as Record<string, Schema> | undefined) ?? {}) }
  const required = new Set((schema.required as string[] | undefined) ?? [])
  // A clean record satisfies the first anyOf branch (usage: a start_timestamp that is a string).
  const branch = clean ? (schema.anyOf as Schema[] | undefined)?.[0] : undefined
  if (branch) {
    for (const key of (branch.required as string[] | undefined) ?? []) required.add(key)
    for (const [key, sub] of Object.entries((branch.properties as Record<string, Schema> | undefined) ?? {}))
      props[key] = { ...props[key], ...sub }
  }
  const members: fc.Arbitrary<[string, string] | null>[] = Object.entries(props).map(([key, sub]) => {
    const member = valueArb(sub, clean, depth + 1).map((v): [string, string] => [JSON.stringify(key), v])
    // Required keys are there nearly always; the others half the time.
    return required.has(key)
      ? fc.oneof(
          { weight: clean ? 1 : 12, arbitrary: member },
          { weight: clean ? 0 : 1, arbitrary: fc.constant(null) },
        )
      : fc.option(member, { nil: null })
  })
  const extra = fc.array(
    fc.tuple(
      fc.oneof(
        fc.constantFrom(...EXTRA_KEYS).map((k) => JSON.stringify(k)),
        ...(clean
          ? []
          : [
              fc.constantFrom(
                '"__proto__"',
                '"\\u0069d"',
                '"i\\d"',
                '"id"',
                '"traffic_type"',
                '"start_timestamp"',
              ),
            ]),
      ),
      clean ? fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v)) : anyValue,
    ),
    { maxLength: clean ? 2 : 3 },
  )
  return fc.tuple(fc.tuple(...members), extra, fc.boolean(), ws, ws).map(([ms, more, extraFirst, w1, w2]) => {
    const own = ms.filter((m): m is [string, string] => m !== null)
    const all = extraFirst ? [...more, ...own] : [...own, ...more]
    const seen = new Set<string>()
    const unique = clean ? all.filter(([k]) => !seen.has(k) && seen.add(k)) : all
    return `{${w1}${unique.map(([k, v]) => `${k}${w1}:${w2}${v}`).join(`,${w2}`)}${w2}}`
  })
}

/** Damage of the raw text, byte by byte. */
const damage = fc.oneof(
  { weight: 3, arbitrary: fc.constant((s: string) => s) },
  { weight: 1, arbitrary: fc.nat().map((n) => (s: string) => s.slice(0, n % (s.length + 1))) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(
        fc.nat(),
        fc.constantFrom('"', ',', '{', '}', '[', ']', ':', '\\', '\u0000', 'x', '1', ' ', '-', '.'),
      )
      .map(([n, c]) => (s: string) => {
        const at = n % (s.length + 1)
        return s.slice(0, at) + c + s.slice(at)
      }),
  },
  {
    weight: 1,
    arbitrary: fc.nat().map((n) => (s: string) => {
      const at = n % Math.max(1, s.length)
      return s.slice(0, at) + s.slice(at + 1)
    }),
  },
  {
    weight: 1,
    arbitrary: fc.tuple(wsOrNot, wsOrNot).map(
      ([a, b]) =>
        (s: string) =>
          `${a}${s}${b}`,
    ),
  },
)

function depthOf(value: unknown): number {
  if (value === null || typeof value !== 'object') return 0
  let max = 0
  for (const v of Object.values(value)) max = Math.max(max, depthOf(v))
  return max + 1
}

/** What the check claims when it proves a record. */
function holds(name: Name, text: string, maxDepth: number): boolean {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return false
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false
  if (depthOf(value) > maxDepth) return false
  return validators.builtin(name)(value) === null
}

const NAMES: Name[] = ['emnify-usage', 'emnify-event']

describe('byteSchemaCheck: the built-in emnify schemas', () => {
  it('compiles for both built-in schemas', () => {
    for (const name of NAMES) expect(validators.builtinByteCheck(name, 256)).toBeTypeOf('function')
  })

  it('proves only records that JSON.parse and ajv accept, within the depth limit', () => {
    for (const name of NAMES) {
      const schema = validators.builtinSchema(name)
      let proven = 0
      fc.assert(
        fc.property(
          fc.oneof(objectArb(schema, false, 0), objectArb(schema, true, 0)),
          damage,
          fc.constantFrom(256, 3, 2),
          (text, hurt, maxDepth) => {
            const damaged = hurt(text)
            const check = validators.builtinByteCheck(name, maxDepth)!
            const buf = Buffer.from(`  ${damaged}  `)
            if (check(buf, 2, buf.length - 2) === 0) {
              proven++
              expect(holds(name, damaged, maxDepth), damaged).toBe(true)
            }
          },
        ),
        { numRuns: 3000 },
      )
      expect(proven).toBeGreaterThan(100) // the boundary is reached from both sides
    }
  })

  it('proves every clean record (right types, plain integers, unescaped matching timestamps)', () => {
    for (const name of NAMES) {
      const schema = validators.builtinSchema(name)
      const check = validators.builtinByteCheck(name, 256)!
      fc.assert(
        fc.property(objectArb(schema, true, 0), (text) => {
          expect(holds(name, text, 256), text).toBe(true)
          const buf = Buffer.from(text)
          expect(check(buf, 0, buf.length), text).toBe(0)
        }),
        { numRuns: 500 },
      )
    }
  })

  it('splits an array where the plain split does, proving records on the way (one pass)', () => {
    const schema = validators.builtinSchema('emnify-usage')
    const check = validators.builtinByteCheck('emnify-usage', 3)!
    const comma = Buffer.from(',')
    const record = fc.oneof(
      objectArb(schema, true, 0),
      objectArb(schema, false, 0),
      fc.tuple(objectArb(schema, false, 0), damage).map(([t, hurt]) => hurt(t)),
    )
    const split = (buf: Buffer, prove: boolean): unknown => {
      try {
        return splitTopLevel(buf, 0, buf.length, comma, 3, prove ? check.valueEnd : undefined).map((s) => ({
          start: s.start,
          end: s.end,
          deep: s.deep,
        }))
      } catch (err) {
        return String(err)
      }
    }
    let proven = 0
    fc.assert(
      fc.property(fc.array(record, { maxLength: 6 }), ws, (records, w) => {
        const buf = Buffer.from(records.join(`${w},${w}`))
        expect(split(buf, true)).toEqual(split(buf, false))
        const result = split(buf, true)
        if (typeof result === 'string') return // both refused the body alike
        for (const s of splitTopLevel(buf, 0, buf.length, comma, 3, check.valueEnd))
          if (s.proven) {
            proven++
            expect(check(buf, s.start, s.end)).toBe(0)
          }
      }),
      { numRuns: 1000 },
    )
    expect(proven).toBeGreaterThan(200)
  })

  it('leaves schemas with keywords it does not implement to ajv', () => {
    expect(byteSchemaCheck({ type: 'object', additionalProperties: false }, 10)).toBeUndefined()
    expect(byteSchemaCheck({ type: 'string', format: 'date-time' }, 10)).toBeUndefined()
    expect(byteSchemaCheck({ type: 'integer', minimum: 0 }, 10)).toBeUndefined()
    expect(byteSchemaCheck({ properties: { toString: { type: 'string' } } }, 10)).toBeUndefined()
    expect(byteSchemaCheck({ $ref: '#/definitions/x' }, 10)).toBeUndefined()
    expect(byteSchemaCheck({ type: 'object', properties: { a: { type: 'string' } } }, 10)).toBeTypeOf(
      'function',
    )
  })
})

// ---- end to end: the same answers with and without the check -----------------------------------------------

/** Never proves anything: every record is parsed and validated, as before the check existed. */
class NoByteChecks extends Validators {
  override builtinByteCheck(): undefined {
    return undefined
  }
}
const slowValidators = new NoByteChecks()

function streamConfig(over: Partial<StreamConfig>): StreamConfig {
  return {
    source: 'emnify',
    recordType: 'usage',
    method: 'POST',
    auth: {},
    payloadFormat: '$dataset',
    logLineSeparator: '\\n',
    unknownFields: 'drift',
    validation: 'dead-letter',
    filters: [],
    durability: 'spool',
    status: 1,
    sinks: ['out'],
    ...over,
  }
}

function outcomeOf(runtime: StreamRuntime, body: Buffer): unknown {
  try {
    const outcome = runtime.process(body, 1_000)
    return { outcome, drift: runtime.drift.report() }
  } catch (err) {
    if (err instanceof ProblemError) return err.toBody()
    throw err
  }
}

describe('StreamRuntime with the byte-level schema check', () => {
  it('answers exactly as when every record is parsed and validated (records, errors, drift)', () => {
    const policies: ValidationPolicy[] = ['dead-letter', 'reject', 'drop', 'off']
    const cases = fc.tuple(
      fc.constantFrom<'usage' | 'event'>('usage', 'event'),
      fc.constantFrom(...policies),
      fc.boolean(),
      fc.boolean(),
      fc.constantFrom(256, 2),
    )
    fc.assert(
      fc.property(
        cases.chain(([recordType, validation, dedupe, single, maxJsonDepth]) => {
          const schema = validators.builtinSchema(recordType === 'usage' ? 'emnify-usage' : 'emnify-event')
          const record = fc.oneof(
            { weight: 5, arbitrary: objectArb(schema, true, 0) },
            { weight: 2, arbitrary: objectArb(schema, false, 0) },
            {
              weight: 1,
              arbitrary: fc.tuple(objectArb(schema, false, 0), damage).map(([t, hurt]) => hurt(t)),
            },
          )
          return fc.tuple(
            fc.constant({ recordType, validation, dedupe, maxJsonDepth }),
            single ? record.map((r) => [r]) : fc.array(record, { maxLength: 10 }),
            fc.constant(single),
          )
        }),
        ([c, records, single]) => {
          const over: Partial<StreamConfig> = {
            recordType: c.recordType,
            validation: c.validation,
            maxJsonDepth: c.maxJsonDepth,
            ...(c.dedupe ? {} : { dedupe: false }),
          }
          const fast = new StreamRuntime('s', streamConfig(over), validators, { now: 0 })
          const slow = new StreamRuntime('s', streamConfig(over), slowValidators, { now: 0 })
          const body = Buffer.from(single ? records[0]! : `[${records.join(',')}]`)
          expect(outcomeOf(fast, body)).toEqual(outcomeOf(slow, body))
        },
      ),
      { numRuns: 200 },
    )
  }, 120_000)
})
