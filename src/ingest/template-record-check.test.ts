import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { StreamConfig, ValidationPolicy } from '../config/types.js'
import { ProblemError } from '../errors.js'
import { StreamRuntime } from '../pipeline/stream.js'
import { splitTopLevel, stringObjectCheck, type Span, type ValueProof } from '../records/json-scan.js'
import { Validators, type RecordValidator } from '../validate/validators.js'
import { compileTemplate, templateKeys, templateRecordCheck, templateSchema } from './azion-template.js'
import { findAzionTemplate, presetModels } from './azion-templates.js'

// The byte-level check may only ever say "valid" for a record that JSON.parse accepts and the template's
// ajv validator accepts; everything it does not prove goes the usual way. These properties generate records
// around that boundary (escapes, control characters, duplicate and escaped keys, non-string values,
// whitespace that JSON does not allow, truncated and garbage bytes, `__proto__`) and check that, plus that
// well-formed records are proven (so the fast path is really taken), plus end to end that
// StreamRuntime.process answers exactly as without the fast path.

const TEMPLATE_86 = findAzionTemplate(86)!.templateModel

/** Keys that are awkward for ajv or JS objects, or need escaping, or are not ASCII. */
const AWKWARD_KEYS = [
  'time',
  'toString',
  'constructor',
  'hasOwnProperty',
  '__proto__',
  '',
  '0',
  '10',
  'a b',
  'é',
  'ключ',
  '🙂',
  'a"b',
  'a\\b',
  'tab\there',
  'x/y',
  '~1',
]

const keyArb = fc
  .oneof(fc.constantFrom(...AWKWARD_KEYS), fc.string({ unit: 'binary', maxLength: 5 }))
  .filter((k) => !k.includes('$'))

const jsonWsArb = fc.constantFrom('', ' ', '\t', '\n', '\r\n', '  ')
const wsArb = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('', ' ', '\t', '\n', '\r\n', '  ') },
  { weight: 1, arbitrary: fc.constantFrom('\u00a0', '\f', '\v', '\u2028', '\ufeff') }, // not JSON whitespace
)

/** Escapes JSON allows, as they appear in the raw text. */
const VALID_ESCAPES = ['\\"', '\\\\', '\\/', '\\b', '\\f', '\\n', '\\r', '\\t', '\\u00e9', '\\uD83D']

/** Pieces of a raw string token: valid and invalid escapes, raw control characters, unicode. */
const stringPieceArb = fc.oneof(
  { weight: 4, arbitrary: fc.string({ unit: 'grapheme', maxLength: 8 }).map((s) => s.replace(/["\\]/g, '')) },
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      ...VALID_ESCAPES,
      '\\uDE00',
      '\\u0000',
      '\\uABCD',
      '\\u00',
      '\\u12G4',
      '\\x41',
      '\\a',
      '\\ ',
      '\\',
      '\\\\\\',
      '"',
      '\u0000',
      '\u001f',
      '\t',
      '\n',
      '\u007f',
      '\u0080',
      'é',
      '𝄞',
    ),
  },
)
const rawStringArb = fc.array(stringPieceArb, { maxLength: 5 }).map((p) => `"${p.join('')}"`)
/** Valid JSON strings written with every kind of escape. */
const escapedStringArb = fc
  .array(
    fc.oneof(
      fc
        .string({ unit: 'grapheme', maxLength: 8 })
        .map((s) => [...s].filter((ch) => ch >= ' ' && ch !== '"' && ch !== '\\').join('')),
      fc.constantFrom(...VALID_ESCAPES, '\\uFFFF'),
    ),
    { maxLength: 5 },
  )
  .map((p) => `"${p.join('')}"`)

const stringTokenArb = fc.oneof(
  { weight: 4, arbitrary: fc.string({ unit: 'binary', maxLength: 12 }).map((s) => JSON.stringify(s)) },
  { weight: 3, arbitrary: rawStringArb },
)

const valueTokenArb = fc.oneof(
  { weight: 8, arbitrary: stringTokenArb },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      '1',
      '-0.5e3',
      'null',
      'true',
      'false',
      '{}',
      '[]',
      '{"a":"b"}',
      '["x"]',
      'abc',
      '',
      '"unterminated',
      "'single'",
    ),
  },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v)) },
)

/** A key token for `key`: mostly as JSON.stringify writes it, sometimes with its first unit \u-escaped. */
function keyTokenArb(key: string): fc.Arbitrary<string> {
  const escaped =
    key.length === 0
      ? '"\\u0041"'
      : `"\\u${key.charCodeAt(0).toString(16).padStart(4, '0')}${JSON.stringify(key.slice(1)).slice(1)}`
  return fc.oneof(
    { weight: 8, arbitrary: fc.constant(JSON.stringify(key)) },
    { weight: 1, arbitrary: fc.constant(escaped) },
  )
}

interface Member {
  key: string
  value: string
  ws: string[]
  rank: number
}

const memberWs = fc.array(wsArb, { minLength: 4, maxLength: 4 })

/**
 * A record over `keys`: each required key (mostly present), extra members (maybe repeating a key), shuffled.
 * `clean` records use only JSON whitespace, plain keys and (mostly) valid strings, so many are provable.
 */
function recordArb(
  keys: readonly string[],
  clean = false,
): fc.Arbitrary<{ text: string; members: Member[] }> {
  const ws = clean ? fc.array(jsonWsArb, { minLength: 4, maxLength: 4 }) : memberWs
  const stringValue = clean
    ? fc.oneof(
        fc.string({ unit: 'binary', maxLength: 12 }).map((v) => JSON.stringify(v)),
        escapedStringArb,
      )
    : stringTokenArb
  const required = fc.tuple(
    ...keys.map((k) =>
      fc.record({
        key: clean ? fc.constant(JSON.stringify(k)) : keyTokenArb(k),
        value: fc.oneof(
          { weight: clean ? 40 : 6, arbitrary: stringValue },
          { weight: 1, arbitrary: valueTokenArb },
        ),
        ws,
        rank: fc.nat(),
        keep: fc.nat(clean ? 39 : 19).map((n) => n > 0),
      }),
    ),
  )
  const extraKey = clean
    ? keyArb.map((k) => JSON.stringify(k))
    : fc.oneof(
        ...(keys.length > 0 ? [fc.constantFrom(...keys).chain(keyTokenArb)] : []),
        keyArb.map((k) => JSON.stringify(k)),
        rawStringArb,
        fc.constantFrom('1', 'key', "'k'", ''),
      )
  const extras = fc.array(
    fc.record({ key: extraKey, value: clean ? stringValue : valueTokenArb, ws, rank: fc.nat() }),
    { maxLength: 4 },
  )
  return fc
    .record({ required, extras, outer: fc.array(clean ? jsonWsArb : wsArb, { minLength: 4, maxLength: 4 }) })
    .map(({ required, extras, outer }) => {
      const members: Member[] = [...required.filter((m) => m.keep), ...extras].sort((a, b) => a.rank - b.rank)
      const body = members.map((m) => `${m.ws[0]}${m.key}${m.ws[1]}:${m.ws[2]}${m.value}${m.ws[3]}`).join(',')
      return { text: `${outer[0]}{${outer[1]}${body}${outer[2]}}${outer[3]}`, members }
    })
}

/** Any record over `keys`, clean or not. */
const someRecordArb = (keys: readonly string[]): fc.Arbitrary<{ text: string; members: Member[] }> =>
  fc.oneof(recordArb(keys, true), recordArb(keys))

/** Damages a record: truncation, a stray byte inserted or removed, a BOM, a trailing comma, two records glued. */
const mutationArb = fc.oneof(
  { weight: 3, arbitrary: fc.constant((t: string) => t) },
  { weight: 1, arbitrary: fc.nat().map((n) => (t: string) => t.slice(0, n % (t.length + 1))) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.nat(), fc.constantFrom('"', ',', '}', '{', ':', '\\', '\u0000', 'x', ' ', ',}', '\ufeff'))
      .map(
        ([n, c]) =>
          (t: string) =>
            t.slice(0, n % (t.length + 1)) + c + t.slice(n % (t.length + 1)),
      ),
  },
  {
    weight: 1,
    arbitrary: fc
      .nat()
      .map((n) => (t: string) => t.slice(0, n % (t.length + 1)) + t.slice((n % (t.length + 1)) + 1)),
  },
  { weight: 1, arbitrary: fc.constant((t: string) => `\ufeff${t}`) },
  { weight: 1, arbitrary: fc.constant((t: string) => t.replace(/}(\s*)$/, ',}$1')) },
  { weight: 1, arbitrary: fc.constant((t: string) => t + t) },
)

let schemaCount = 0
const validators = new Validators()

function compiled(model: string): {
  keys: string[]
  validate: RecordValidator
  check: ReturnType<typeof templateRecordCheck>
} {
  const t = compileTemplate(model)
  if (t.kind !== 'json') throw new Error('expected a JSON template')
  const schema = templateSchema(t, `https://streamgate.test/check/${schemaCount++}.json`)
  return {
    keys: t.fields.map((f) => f.key),
    validate: validators.fromSchema(schema as Record<string, unknown>),
    check: templateRecordCheck([t]),
  }
}

function modelOf(keys: readonly string[]): string {
  return `{${keys.map((k, i) => `${JSON.stringify(k)}:"$v${i}"`).join(',')}}`
}

function parses(text: string): { ok: true; value: unknown } | { ok: false } {
  try {
    return { ok: true, value: JSON.parse(text) as unknown }
  } catch {
    return { ok: false }
  }
}

const isStringToken = (token: string): boolean => {
  const p = parses(token)
  return p.ok && typeof p.value === 'string'
}

/** Soundness: proven ⇒ JSON.parse succeeds and ajv accepts. Also on a span inside a larger buffer. */
function assertSound(
  check: NonNullable<ReturnType<typeof templateRecordCheck>>,
  validate: RecordValidator,
  text: string,
): boolean {
  const buf = Buffer.from(text, 'utf8')
  const scanned = check(buf, 0, buf.length)
  const proven = scanned >= 0
  // The same bytes framed inside a body, with bytes after the span that would complete a truncated record.
  const framed = Buffer.concat([Buffer.from('}"x'), buf, Buffer.from('}"}')])
  expect(check(framed, 3, 3 + buf.length)).toBe(scanned)
  if (proven) {
    const parsed = parses(text)
    expect(parsed.ok, `proven but not JSON: ${JSON.stringify(text)}`).toBe(true)
    if (parsed.ok) expect(validate(parsed.value), `proven but invalid: ${JSON.stringify(text)}`).toBeNull()
  }
  return proven
}

describe('stringObjectCheck', () => {
  const check = stringObjectCheck(['a', 'b'])
  const proves = (text: string): boolean => check(Buffer.from(text), 0, Buffer.byteLength(text))

  it('proves flat string objects that hold every required key', () => {
    expect(proves('{"a":"1","b":"2"}')).toBe(true)
    expect(proves(' \r\n{ "b" : "x\\u00e9\\n" ,\t"z":"", "a":"é" } \n')).toBe(true)
    expect(proves('{"a":"1","b":"2","a":"3"}')).toBe(true) // JSON.parse keeps the last, a string too
  })

  it('does not prove anything else', () => {
    for (const text of [
      '{"a":"1"}',
      '{"a":"1","b":2}',
      '{"a":"1","b":"2","c":null}',
      '{"a":"1","b":"2","c":{}}',
      '{"a":"1","\\u0062":"2"}', // an escaped key is not decoded
      '{"a":"1","b":"2",}',
      '{"a":"1","b":"2"',
      '{"a":"1","b":"2"}x',
      '{"a":"1","b":"2"}{}',
      '\ufeff{"a":"1","b":"2"}',
      '{"a":"1","b":"2\u0001"}',
      '{"a":"1","b":"\\x"}',
      '{"a":"1","b":"\\u12"}',
      '{"a":"1","b":"\\"}',
      '{"a":"1"\u00a0,"b":"2"}',
      '["a","b"]',
      '',
      '{',
    ])
      expect(proves(text), text).toBe(false)
  })
})

describe('templateRecordCheck', () => {
  it('is off for text templates and templates with a __proto__ key', () => {
    expect(templateRecordCheck([compileTemplate('v1\t$time\t$host')])).toBeUndefined()
    expect(templateRecordCheck([compileTemplate('{"a":"$a","__proto__":"$p"}')])).toBeUndefined()
    expect(templateRecordCheck([compileTemplate(TEMPLATE_86)])).toBeDefined()
  })

  const fixed = [
    TEMPLATE_86,
    modelOf(['toString', 'constructor', 'hasOwnProperty']),
    modelOf(['', '0', '10', 'a b']),
    modelOf(['é', 'ключ', '🙂', 'x/y', '~1']),
    modelOf(['a"b', 'a\\b', 'tab\there', 'plain']),
    '{"v":"1","url":"$scheme://$host$request_uri","cost":"$ 5"}',
  ].map(compiled)

  it('proves only records that JSON.parse and the template validator accept (fixed templates)', () => {
    for (const { keys, validate, check } of fixed) {
      fc.assert(
        fc.property(someRecordArb(keys), mutationArb, ({ text }, mutate) => {
          assertSound(check!, validate, mutate(text))
        }),
        { numRuns: 1500 },
      )
    }
  })

  it('proves only records that JSON.parse and the template validator accept (random templates)', () => {
    fc.assert(
      fc.property(
        fc
          .uniqueArray(keyArb, { minLength: 1, maxLength: 5 })
          .chain((keys) =>
            fc.tuple(
              fc.constant(keys),
              fc.array(fc.tuple(someRecordArb(keys), mutationArb), { maxLength: 25 }),
            ),
          ),
        ([keys, records]) => {
          const { validate, check } = compiled(modelOf(keys))
          if (keys.includes('__proto__')) {
            expect(check).toBeUndefined()
            return
          }
          for (const [{ text }, mutate] of records) assertSound(check!, validate, mutate(text))
        },
      ),
      { numRuns: 150 },
    )
  })

  it('proves every undamaged record made of string members, unescaped keys and JSON whitespace', () => {
    let proven = 0
    for (const { keys, validate, check } of fixed) {
      fc.assert(
        fc.property(someRecordArb(keys), ({ text, members }) => {
          const parsed = parses(text)
          const expected =
            parsed.ok &&
            members.every((m) => isStringToken(m.value) && !m.key.includes('\\')) &&
            keys.every((k) => Object.hasOwn(parsed.value as object, k))
          expect(assertSound(check!, validate, text), JSON.stringify(text)).toBe(expected)
          if (expected) proven++
        }),
        { numRuns: 1000 },
      )
    }
    expect(proven).toBeGreaterThan(1500) // the generator does reach the fast path
  })
})

// ---- end to end: the same answers with and without the fast path ------------------------------------------

function streamConfig(over: Partial<StreamConfig>): StreamConfig {
  return {
    source: 'azion',
    recordType: 'event',
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

/** Passes every record that has no `zz_never` key (none here): it only makes the runtime parse every record. */
const PASS_ALL = [{ field: 'zz_never', op: 'exists', value: false }] as StreamConfig['filters']

function outcomeOf(runtime: StreamRuntime, body: Buffer): unknown {
  try {
    return runtime.process(body, 1_000)
  } catch (err) {
    if (err instanceof ProblemError) return err.toBody()
    throw err
  }
}

describe('StreamRuntime with the fast path', () => {
  it('answers exactly as when every record is parsed and validated', () => {
    const policies: ValidationPolicy[] = ['dead-letter', 'reject', 'drop', 'off']
    const templates = [TEMPLATE_86, modelOf(['toString', 'a b', 'é', '0'])]
    const framings = [
      { payloadFormat: '$dataset', logLineSeparator: '\\n' },
      { payloadFormat: '[$dataset]', logLineSeparator: ',' },
    ]
    const cases = fc.tuple(
      fc.constantFrom(...templates),
      fc.constantFrom(...policies),
      fc.constantFrom(...framings),
      fc.boolean(),
    )
    fc.assert(
      fc.property(
        cases.chain(([model, validation, framing, dedupe]) => {
          const keys = compiled(model).keys
          const anyRecord = fc.tuple(recordArb(keys), mutationArb).map(([r, mutate]) => mutate(r.text))
          const record = fc.oneof(
            { weight: 6, arbitrary: recordArb(keys, true).map((r) => r.text) },
            { weight: 1, arbitrary: anyRecord },
          )
          return fc.tuple(
            fc.constant({ model, validation, framing, dedupe: dedupe ? keys[0] : undefined }),
            fc.array(record, { maxLength: 12 }),
          )
        }),
        ([c, records]) => {
          const over: Partial<StreamConfig> = {
            templateModel: c.model,
            validation: c.validation,
            ...c.framing,
            ...(c.dedupe !== undefined
              ? { dedupe: { key: c.dedupe, windowRecords: 100, windowMs: 60_000 } }
              : {}),
          }
          const fast = new StreamRuntime('s', streamConfig(over), validators)
          const slow = new StreamRuntime('s', streamConfig({ ...over, filters: PASS_ALL }), validators)
          const dataset = records.join(c.framing.logLineSeparator === ',' ? ',' : '\n')
          const body = Buffer.from(c.framing.payloadFormat.replace('$dataset', dataset))
          expect(outcomeOf(fast, body)).toEqual(outcomeOf(slow, body))
        },
      ),
      { numRuns: 600 },
    )
  })
})

// ---- a JSON array's records proven while it is split ---------------------------------------------------------

describe('templateRecordCheck.valueEnd (an Azion JSON array proven while split)', () => {
  // The preset's variants under `describe` (drift bits), and a strict model with unknown keys allowed.
  const presetVariants = presetModels(findAzionTemplate(86)!).map(compileTemplate)
  const checks = [
    {
      keys: [...new Set(presetVariants.flatMap(templateKeys))],
      check: templateRecordCheck(presetVariants, { contract: 'describe' })!,
    },
    { keys: compiled(TEMPLATE_86).keys, check: templateRecordCheck([compileTemplate(TEMPLATE_86)])! },
  ]

  it('splits where the plain split does and proves with the drift bits the whole-span check gives', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(0, 1).chain((which) => {
          const keys = checks[which]!.keys
          // Records with some of the keys, others, or damaged: bits of every kind, and records not proven.
          const someKeys = fc.subarray(keys).chain((ks) => recordArb([...ks, 'extra_key'], true))
          const record = fc.oneof(
            { weight: 4, arbitrary: recordArb(keys, true).map((r) => r.text) },
            { weight: 3, arbitrary: someKeys.map((r) => r.text) },
            { weight: 1, arbitrary: fc.tuple(recordArb(keys), mutationArb).map(([r, m]) => m(r.text)) },
          )
          return fc.tuple(
            fc.constant(which),
            fc.array(record, { maxLength: 10 }),
            fc.constantFrom(',', ', ', ' , '),
          )
        }),
        ([which, records, sep]) => {
          const { check } = checks[which]!
          const body = Buffer.from(`[${records.join(sep)}]`)
          const split = (prove?: ValueProof): Span[] | string => {
            try {
              return splitTopLevel(body, 1, body.length - 1, Buffer.from(','), 256, prove)
            } catch (err) {
              return (err as Error).message
            }
          }
          const plain = split()
          const proven = split(check.valueEnd)
          if (typeof plain === 'string' || typeof proven === 'string') {
            expect(proven).toEqual(plain)
            return
          }
          expect(proven.map((s) => [s.start, s.end])).toEqual(plain.map((s) => [s.start, s.end]))
          for (const s of proven) {
            const whole = check(body, s.start, s.end)
            if (s.proven) expect(s.driftBits ?? 0).toBe(whole)
            else expect(whole).toBe(-1)
          }
        },
      ),
      { numRuns: 600 },
    )
  })
})
