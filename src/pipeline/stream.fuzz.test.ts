import { isUtf8 } from 'node:buffer'
import { resolve } from 'node:path'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { FilterConfig, StreamConfig, ValidationPolicy } from '../config/types.js'
import { ProblemError } from '../errors.js'
import { checkText } from '../http/body.js'
import { compileTemplate, renderTemplate } from '../ingest/azion-template.js'
import { findAzionTemplate } from '../ingest/azion-templates.js'
import { parseDeadLetter } from '../records/dead-letter.js'
import type { SinkRecord } from '../records/record.js'
import { Validators } from '../validate/validators.js'
import { StreamRuntime, type ProcessOutcome } from './stream.js'

// Fuzzing framing, validation, filters and dedupe for every source (issue 10, item 11). Bodies are random
// bytes, valid bodies as each vendor renders them, and near-valid mutations of those (truncated, a byte
// inserted or flipped, BOM, CRLF, invalid UTF-8, deep nesting, huge numbers, duplicate and `__proto__` keys,
// empty records, trailing separators). Whatever the body, `StreamRuntime.process`:
//   - returns an outcome, or throws a ProblemError 400 (or 422 under `validation: reject`): nothing else escapes;
//   - accounts for every record it framed: received = accepted + rejected + filtered + duplicates, and under
//     `dead-letter` every rejected record is a dead letter;
//   - forwards exact bytes: accepted records and dead letters' raw text are, in order, non-overlapping pieces of
//     the body (JSON records with their line breaks turned into spaces, as the README documents);
//   - accepts only JSON that parses, for the JSON sources (an object, for emnify).
// Valid bodies also answer exactly what a model of the body predicts (records, dead letters, 422s, dedupe).
//
// Runs are bounded (a few seconds in all). FUZZ_SEED=<n> replays a failure (fast-check prints the seed and
// path when a property fails); FUZZ_RUNS=<factor> multiplies every numRuns for a longer local hunt.

const SEED = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) : undefined
const RUNS = Number(process.env.FUZZ_RUNS ?? 1)
const params = (numRuns: number): fc.Parameters<unknown> => ({
  numRuns: Math.max(1, Math.round(numRuns * RUNS)),
  ...(SEED !== undefined ? { seed: SEED } : {}),
})

const validators = new Validators()
const NOW = 1_700_000_000_000

// ---- JSON text ------------------------------------------------------------------------------------------

/** Whitespace between JSON tokens; `breaks` allows line breaks (a pretty-printed record). */
const wsArb = (breaks: boolean): fc.Arbitrary<string> =>
  breaks
    ? fc.constantFrom('', '', '', ' ', '\t', '\n', '\r\n', '\n  ')
    : fc.constantFrom('', '', '', ' ', '\t')

const NUMBERS = [
  '0',
  '-0',
  '1',
  '-17',
  '3.25',
  '1e3',
  '-2.5E-7',
  '9007199254740993', // 2^53 + 1: exact text must survive
  '18446744073709551615',
  '123456789012345678901234567890123456789',
  '1e400', // parses to Infinity
  '4.9e-325', // underflows to 0
]

const STRINGS = [
  '""',
  '"plain"',
  '"é ключ 🙂"',
  '"\\u0000\\u001f"',
  '"\\ud83d\\ude00"',
  '"\\uDE00"', // a lone surrogate escape is valid JSON
  '"tab\\there"',
  '"quote \\" and \\\\ backslash"',
  '"\\/slash"',
  '"\u2028\u2029"',
  '"[{,:}]"',
  '" | ; , "',
]

/** Keys that are awkward for JS objects and for byte-level key lookup. */
const AWKWARD_KEYS = [
  '__proto__',
  'constructor',
  'toString',
  'hasOwnProperty',
  '',
  '0',
  'a b',
  'é',
  'x\\u0041',
]

function jsonTextArb(breaks: boolean, maxDepth = 3): fc.Arbitrary<string> {
  const ws = wsArb(breaks)
  const scalar = fc.oneof(
    fc.constantFrom(...NUMBERS),
    fc.constantFrom(...STRINGS),
    fc.constantFrom('true', 'false', 'null'),
    fc.string({ unit: 'binary', maxLength: 10 }).map((s) => JSON.stringify(s)),
    fc.double({ noNaN: true, noDefaultInfinity: true }).map((d) => JSON.stringify(d)),
  )
  const key = fc.oneof(
    fc.constantFrom(...AWKWARD_KEYS).map((k) => `"${k}"`),
    fc.string({ unit: 'grapheme-ascii', maxLength: 6 }).map((s) => JSON.stringify(s)),
  )
  const { value } = fc.letrec<{ value: string }>((tie) => ({
    value: fc.oneof(
      { depthSize: 'small', withCrossShrink: true, maxDepth },
      scalar,
      fc
        .array(fc.tuple(ws, tie('value'), ws), { maxLength: 4 })
        .map((items) => `[${items.map(([a, v, b]) => a + v + b).join(',')}]`),
      fc
        .array(fc.tuple(ws, key, ws, ws, tie('value'), ws), { maxLength: 4 })
        .map((ms) => `{${ms.map(([a, k, b, c, v, d]) => `${a}${k}${b}:${c}${v}${d}`).join(',')}}`),
    ),
  }))
  return value
}

/** A JSON object text with the given members (already JSON texts) plus random extras, in random order. */
function objectArb(
  members: readonly fc.Arbitrary<[string, string]>[],
  breaks: boolean,
): fc.Arbitrary<string> {
  const ws = wsArb(breaks)
  const extraKey = fc.constantFrom(
    'x',
    'note',
    '__proto__',
    'constructor',
    'toString',
    'é',
    'a b',
    'x\\u0041',
  )
  const extra = fc.tuple(
    extraKey.map((k) => `"${k}"`),
    jsonTextArb(breaks, 2),
  )
  return fc
    .record({
      members: fc.tuple(...members),
      extras: fc.uniqueArray(extra, { maxLength: 3, selector: ([k]) => k }),
      order: fc.array(fc.nat(), { minLength: 8, maxLength: 8 }),
      ws: fc.array(ws, { minLength: 10, maxLength: 10 }),
    })
    .map(({ members, extras, order, ws }) => {
      const all = [...members, ...extras]
        .map((m, i) => ({ m, rank: order[i % order.length]! * 8 + i }))
        .sort((a, b) => a.rank - b.rank)
        .map(({ m: [k, v] }, i) => `${ws[i % 10]}${k}${ws[(i + 3) % 10]}:${ws[(i + 5) % 10]}${v}`)
      return `{${all.join(',')}${ws[9]}}`
    })
}

const member = (key: string, value: fc.Arbitrary<string>): fc.Arbitrary<[string, string]> =>
  value.map((v) => [JSON.stringify(key), v])

const int64Arb = fc.oneof(
  fc.integer({ min: 0, max: 2 ** 31 }).map(String),
  fc.bigInt({ min: 0n, max: 2n ** 63n - 1n }).map(String),
)

const TIMESTAMPS = ['"2021-10-27T08:40:10.000Z"', '"2017-10-26T07:28:00.000+0000"', '"2015-07-16 12:07:09"']

function emnifyEventArb(breaks: boolean, id: fc.Arbitrary<string> = int64Arb): fc.Arbitrary<string> {
  return objectArb(
    [
      member('id', id),
      member('timestamp', fc.constantFrom(...TIMESTAMPS)),
      member(
        'event_type',
        fc
          .tuple(fc.integer({ min: 0, max: 12 }), fc.constantFrom('', ',"description":"Update location"'))
          .map(([n, d]) => `{"id":${n}${d}}`),
      ),
    ],
    breaks,
  )
}

/** emnify events that frame but fail the schema: a required member missing or of the wrong type. */
function emnifyInvalidEventArb(breaks: boolean): fc.Arbitrary<string> {
  return fc.oneof(
    objectArb(
      [member('timestamp', fc.constantFrom(...TIMESTAMPS)), member('event_type', fc.constant('{"id":1}'))],
      breaks,
    ),
    objectArb(
      [
        member(
          'id',
          int64Arb.map((n) => `"${n}"`),
        ),
        member('timestamp', fc.constantFrom(...TIMESTAMPS)),
        member('event_type', fc.constant('{"id":1}')),
      ],
      breaks,
    ),
    objectArb(
      [
        member('id', int64Arb),
        member('timestamp', fc.constantFrom('"yesterday"', '12', 'null')),
        member('event_type', fc.constantFrom('{"id":1}', '1', '{"id":"1"}', '{}')),
      ],
      breaks,
    ),
  )
}

function emnifyUsageArb(breaks: boolean): fc.Arbitrary<string> {
  const trafficType = fc.constantFrom('{"id":5,"description":"Data"}', '{"id":6}', '{ "id" : 5 }')
  const timestamp = fc.constantFrom(...TIMESTAMPS)
  return fc.oneof(
    objectArb(
      [member('id', int64Arb), member('traffic_type', trafficType), member('start_timestamp', timestamp)],
      breaks,
    ),
    objectArb(
      [member('id', int64Arb), member('traffic_type', trafficType), member('end_timestamp', timestamp)],
      breaks,
    ),
  )
}

function emnifyInvalidUsageArb(breaks: boolean): fc.Arbitrary<string> {
  const start = member('start_timestamp', fc.constant('"2022-04-26T11:53:43Z"'))
  return fc.oneof(
    objectArb([member('id', int64Arb), start], breaks),
    objectArb(
      [member('id', fc.constant('1.5')), member('traffic_type', fc.constant('{"id":5}')), start],
      breaks,
    ),
    objectArb([member('id', int64Arb), member('traffic_type', fc.constant('{"id":"5"}')), start], breaks),
    objectArb([member('id', int64Arb), member('traffic_type', fc.constant('{"id":5}'))], breaks),
  )
}

// ---- Azion ----------------------------------------------------------------------------------------------

/** Values Azion could render into a JSON template: anything (renderTemplate JSON-escapes them). */
const azionJsonValueArb = fc.oneof(
  fc.constant('-'),
  fc.string({ unit: 'binary', maxLength: 12 }),
  fc.constantFrom('a,b', 'x | y', 'semi;colon', '{"nested":"json"}', '[1,2]', 'line\nbreak', '\t'),
)

/** A record rendered with random values (`fixed` ones where given). */
function azionJsonRecordArb(model: string, fixed: Record<string, string> = {}): fc.Arbitrary<string> {
  return azionRecordArb(model, azionJsonValueArb, fixed)
}

function azionRecordArb(
  model: string,
  value: fc.Arbitrary<string>,
  fixed: Record<string, string>,
): fc.Arbitrary<string> {
  const t = compileTemplate(model)
  return fc
    .tuple(...t.variables.map(() => value))
    .map((values) =>
      renderTemplate(t, { ...Object.fromEntries(t.variables.map((v, i) => [v, values[i]!])), ...fixed }),
    )
}

/**
 * A JSON-template record that frames but fails the template's schema: a value not a string, or (for a
 * templateModel, a strict contract) a key missing. A preset describes its records: a record lacking a key it
 * shows is valid there (that is schema drift).
 */
function azionJsonInvalidArb(model: string, preset = false): fc.Arbitrary<string> {
  const t = compileTemplate(model)
  if (t.kind !== 'json') throw new Error('a JSON template')
  const keys = t.fields.map((f) => f.key)
  const how = preset ? ['1', 'null', '{}', '["-"]'] : ['drop', '1', 'null', '{}', '["-"]']
  return fc.tuple(fc.nat(keys.length - 1), fc.constantFrom(...how)).map(([at, how]) => {
    const members = keys.flatMap((k, i) =>
      i !== at ? [`${JSON.stringify(k)}:"v"`] : how === 'drop' ? [] : [`${JSON.stringify(k)}:${how}`],
    )
    return `{${members.join(',')}}`
  })
}

/** Text-template values: never the template's literals or the record separator (see azion-template.ts). */
function azionTextRecordArb(
  model: string,
  forbidden: string,
  fixed: Record<string, string> = {},
): fc.Arbitrary<string> {
  const value = fc
    .string({ unit: 'grapheme', maxLength: 10 })
    .map((s) => [...s].filter((ch) => !forbidden.includes(ch) && ch !== '\r' && ch !== '\n').join(''))
  return azionRecordArb(model, fc.oneof(fc.constant('-'), value), fixed)
}

const ACTIVITY_HISTORY =
  'v1\\t$time_iso8601\\t$clientid\\t$title\\t$comment\\t$type\\t$author_name\\t$author_email'
const TEMPLATE_86 = findAzionTemplate(86)!.templateModel
const TEMPLATE_2 = findAzionTemplate(2)!.templateModel
const TEMPLATE_251 = findAzionTemplate(251)!.templateModel
const AWKWARD_MODEL = '{"__proto__":"$time","constructor":"$host","a b":"$status","é":"x-$request_id"}'

// ---- the cases ------------------------------------------------------------------------------------------

interface FuzzCase {
  name: string
  config: Partial<StreamConfig> & Pick<StreamConfig, 'source'>
  /** A record as the vendor renders it, valid for the stream's validator. */
  valid: fc.Arbitrary<string>
  /** A record that frames but fails validation (none: the source has no validator). */
  invalid?: fc.Arbitrary<string>
  prefix: string
  separator: fc.Arbitrary<string>
  suffix: string
  /** Records are JSON: their line breaks are forwarded as spaces. */
  json: boolean
  /** A filter over a field the valid records have, passing some of them. */
  filter?: FilterConfig
  /** A dedupe key path every valid record has. */
  dedupeKey?: string
  /** Key texts, and a valid record whose dedupe key is the given text (for the dedupe model). */
  keys?: string[]
  keyed?: (key: string) => fc.Arbitrary<string>
  /** The stream requires an object or array around the records (an empty body is a 400, not zero records). */
  emptyIs400?: boolean
  /** One record may come alone, without the array around it (emnify's single-record form). */
  bareSingle?: boolean
  /**
   * Whitespace the body may have around its records (default: any). `lines` keeps every byte; NDJSON lines
   * and text records at the body's edge keep their spaces and tabs.
   */
  around?: 'none' | 'line-breaks'
}

const jsonArraySep = fc.constantFrom(',', ', ', ',\n', ' ,\r\n ')

const CASES: FuzzCase[] = [
  {
    name: 'emnify event',
    config: { source: 'emnify', recordType: 'event' },
    valid: emnifyEventArb(true),
    invalid: emnifyInvalidEventArb(true),
    prefix: '[',
    separator: jsonArraySep,
    suffix: ']',
    json: true,
    filter: { field: 'event_type_id', value: [1, 2, 3, 4, 5] },
    dedupeKey: 'id',
    // 2^53 and 2^53 + 1 are one JS number but two ids: keys are compared as text.
    keys: ['1', '2', '9007199254740992', '9007199254740993'],
    keyed: (key) => emnifyEventArb(true, fc.constant(key)),
    emptyIs400: true,
    bareSingle: true,
  },
  {
    name: 'emnify usage',
    config: { source: 'emnify', recordType: 'usage' },
    valid: emnifyUsageArb(false),
    invalid: emnifyInvalidUsageArb(false),
    prefix: '[',
    separator: jsonArraySep,
    suffix: ']',
    json: true,
    filter: { field: 'traffic_type.id', value: 5 },
    dedupeKey: 'id',
    emptyIs400: true,
  },
  {
    name: 'azion template 86, [$dataset] and ","',
    config: { source: 'azion', template: 86, payloadFormat: '[$dataset]', logLineSeparator: ',' },
    valid: azionJsonRecordArb(TEMPLATE_86),
    invalid: azionJsonInvalidArb(TEMPLATE_86, true),
    prefix: '[',
    separator: fc.constant(','),
    suffix: ']',
    json: true,
    filter: { field: 'logLevel', op: 'ne', value: '-' },
    dedupeKey: 'requestID',
    keys: ['r1', 'r2', 'é', 'a"b', '-', ''],
    keyed: (key) => azionJsonRecordArb(TEMPLATE_86, { request_id: key }),
  },
  {
    name: 'azion template 2, $dataset and "\\n"',
    config: { source: 'azion', template: 2, payloadFormat: '$dataset', logLineSeparator: '\\n' },
    valid: azionJsonRecordArb(TEMPLATE_2),
    invalid: azionJsonInvalidArb(TEMPLATE_2, true),
    prefix: '',
    separator: fc.constantFrom('\n', '\r\n'),
    suffix: '',
    json: true,
    dedupeKey: 'client', // a key of Azion's documented template-2 model (its templates list)
  },
  {
    name: 'azion template 251, $dataset and " | "',
    config: { source: 'azion', template: 251, payloadFormat: '$dataset', logLineSeparator: ' | ' },
    valid: azionJsonRecordArb(TEMPLATE_251),
    invalid: azionJsonInvalidArb(TEMPLATE_251, true),
    prefix: '',
    separator: fc.constant(' | '),
    suffix: '',
    json: true,
  },
  {
    name: 'azion templateModel with awkward keys, [$dataset] and ";"',
    config: {
      source: 'azion',
      templateModel: AWKWARD_MODEL,
      payloadFormat: '[ $dataset ]',
      logLineSeparator: ';',
    },
    valid: azionJsonRecordArb(AWKWARD_MODEL),
    invalid: azionJsonInvalidArb(AWKWARD_MODEL),
    prefix: '[',
    separator: fc.constantFrom(';', ' ; '),
    suffix: ']',
    json: true,
    filter: { field: 'constructor', op: 'exists', value: true },
    dedupeKey: 'a b',
  },
  {
    name: 'azion Activity History text template, "\\n"',
    config: {
      source: 'azion',
      templateModel: ACTIVITY_HISTORY,
      payloadFormat: '$dataset',
      logLineSeparator: '\\n',
    },
    valid: azionTextRecordArb(ACTIVITY_HISTORY, '\t'),
    invalid: fc.constantFrom('v1\tonly\tthree', 'v2\tx\tx\tx\tx\tx\tx\tx', '', 'v1').filter((s) => s !== ''),
    prefix: '',
    separator: fc.constantFrom('\n', '\r\n'),
    suffix: '',
    json: false,
    around: 'line-breaks', // spaces and tabs at the body's edge belong to the first or last record
    filter: { field: 'type', op: 'ne', value: 'deleted' },
    dedupeKey: 'clientid',
    keys: ['4529r', 'x y', '-'],
    keyed: (key) => azionTextRecordArb(ACTIVITY_HISTORY, '\t', { clientid: key }),
  },
  {
    name: 'azion text template, [$dataset] and " | "',
    config: {
      source: 'azion',
      templateModel: '$time $host $status',
      payloadFormat: '[$dataset]',
      logLineSeparator: ' | ',
    },
    valid: azionTextRecordArb('$time $host $status', ' |[]'),
    invalid: fc.constantFrom('onlyone', 'a b'),
    prefix: '[',
    separator: fc.constant(' | '),
    suffix: ']',
    json: false,
  },
  {
    name: 'ndjson',
    config: { source: 'ndjson' },
    valid: jsonTextArb(false),
    prefix: '',
    separator: fc.constantFrom('\n', '\r\n'),
    suffix: '',
    json: true,
    around: 'line-breaks',
    filter: { field: 'x', op: 'exists', value: false },
    dedupeKey: 'id',
  },
  {
    name: 'ndjson with a schema',
    config: {
      source: 'ndjson',
      schema: resolve(import.meta.dirname, '../../test/fixtures/needs-n.schema.json'),
    },
    valid: objectArb([member('n', fc.integer().map(String))], false),
    invalid: fc.oneof(
      objectArb([member('n', fc.constantFrom('"1"', '1.5', 'null'))], false),
      jsonTextArb(false).filter((t) => !t.trimStart().startsWith('{')),
    ),
    prefix: '',
    separator: fc.constantFrom('\n', '\r\n'),
    suffix: '',
    json: true,
    around: 'line-breaks',
  },
  {
    name: 'json',
    config: { source: 'json' },
    valid: jsonTextArb(true),
    prefix: '[',
    separator: jsonArraySep,
    suffix: ']',
    json: true,
    filter: { field: 'note', op: 'ne', value: 'skip' },
    dedupeKey: 'id',
    emptyIs400: true,
  },
  {
    name: 'lines, "\\n"',
    config: { source: 'lines', logLineSeparator: '\\n' },
    valid: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 20 }).filter((s) => !/[\r\n]/.test(s)),
    prefix: '',
    separator: fc.constantFrom('\n', '\r\n'),
    suffix: '',
    json: false,
    around: 'none',
  },
  {
    name: 'lines, ","',
    config: { source: 'lines', logLineSeparator: ',' },
    valid: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 20 }).filter((s) => !s.includes(',')),
    prefix: '',
    separator: fc.constant(','),
    suffix: '',
    json: false,
    around: 'none',
  },
]

function streamConfig(c: FuzzCase, over: Partial<StreamConfig> = {}): StreamConfig {
  return {
    recordType: 'event',
    method: 'POST',
    auth: {},
    payloadFormat: '$dataset',
    logLineSeparator: '\\n',
    validation: 'dead-letter',
    filters: [],
    durability: 'spool',
    status: 1,
    sinks: ['out'],
    ...c.config,
    ...over,
  }
}

const POLICIES: ValidationPolicy[] = ['dead-letter', 'reject', 'drop', 'off']

/**
 * The runtimes a case is fuzzed with: every validation policy, with and without filters and dedupe. The
 * model property uses the plain ones (the first of each policy).
 */
function runtimesOf(c: FuzzCase): { runtime: StreamRuntime; validation: ValidationPolicy }[] {
  return POLICIES.flatMap((validation) => {
    // `dedupe: false`: emnify streams dedupe on `id` unless told not to, and the model counts no duplicates.
    const plain = new StreamRuntime('s', streamConfig(c, { validation, dedupe: false }), validators)
    const extras: Partial<StreamConfig> = {
      ...(c.filter ? { filters: [c.filter] } : {}),
      ...(c.dedupeKey ? { dedupe: { key: c.dedupeKey, windowRecords: 1000, windowMs: 60_000 } } : {}),
    }
    if (Object.keys(extras).length === 0) return [{ runtime: plain, validation }]
    return [
      { runtime: plain, validation },
      { runtime: new StreamRuntime('s', streamConfig(c, { validation, ...extras }), validators), validation },
    ]
  })
}

// ---- bodies ---------------------------------------------------------------------------------------------

interface BodyParts {
  records: { text: string; valid: boolean }[]
  separator: string
  /** A separator after the last record. */
  trailing: boolean
  /** Whitespace around the whole body. */
  lead: string
  tail: string
  /** A single record sent without the array around it (bareSingle cases). */
  bare: boolean
}

function bodyPartsArb(c: FuzzCase, withInvalid: boolean): fc.Arbitrary<BodyParts> {
  const record = fc.oneof(
    { weight: 5, arbitrary: c.valid.map((text) => ({ text, valid: true })) },
    ...(withInvalid && c.invalid
      ? [{ weight: 1, arbitrary: c.invalid.map((text) => ({ text, valid: false })) }]
      : []),
  )
  return fc.record({
    records: fc.array(record, { minLength: c.emptyIs400 ? 1 : 0, maxLength: 8 }),
    separator: c.separator,
    trailing: fc.boolean(),
    lead: aroundArb(c, ['', ' ', '\n', '\r\n\t']),
    tail: aroundArb(c, ['', ' ', '\n', '\r\n']),
    bare: c.bareSingle ? fc.boolean() : fc.constant(false),
  })
}

function aroundArb(c: FuzzCase, ws: string[]): fc.Arbitrary<string> {
  if (c.around === 'none') return fc.constant('')
  if (c.around === 'line-breaks') return fc.constantFrom(...ws.filter((w) => /^[\r\n]*$/.test(w)))
  return fc.constantFrom(...ws)
}

function render(c: FuzzCase, p: BodyParts): string {
  if (p.bare && p.records.length === 1) return `${p.lead}${p.records[0]!.text}${p.tail}`
  const dataset = p.records.map((r) => r.text).join(p.separator) + (p.trailing ? p.separator : '')
  return `${p.lead}${c.prefix}${dataset}${c.suffix}${p.tail}`
}

type Mutation = (b: Buffer, separator: string) => Buffer

const at = (b: Buffer, n: number): number => n % (b.length + 1)
const insert = (b: Buffer, pos: number, bytes: Buffer | string): Buffer =>
  Buffer.concat([b.subarray(0, pos), Buffer.from(bytes), b.subarray(pos)])
/** Inserts right after the first `{` (or at the start): a member for the first object of the body. */
const afterFirstBrace = (b: Buffer, text: string): Buffer => {
  const i = b.indexOf('{')
  return insert(b, i < 0 ? 0 : i + 1, text)
}

const STRUCTURAL = ['"', "'", '[', ']', '{', '}', ',', ':', '\\', '\n', '\r', '\t', ' ', '\0', '|', ';', '$']
const INVALID_UTF8 = [
  [0xff],
  [0xc3],
  [0xed, 0xa0, 0x80],
  [0xf4, 0x90, 0x80, 0x80],
  [0xc0, 0xaf],
  [0xe2, 0x82],
  [0x80],
]

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.nat().map(
    (n): Mutation =>
      (b) =>
        b.subarray(0, at(b, n)),
  ), // truncated
  fc.nat().map(
    (n): Mutation =>
      (b) =>
        b.subarray(at(b, n)),
  ),
  fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })).map(
    ([n, byte]): Mutation =>
      (b) =>
        insert(b, at(b, n), Buffer.of(byte)),
  ),
  fc.tuple(fc.nat(), fc.constantFrom(...STRUCTURAL)).map(
    ([n, s]): Mutation =>
      (b) =>
        insert(b, at(b, n), s),
  ),
  fc.nat().map(
    (n): Mutation =>
      (b) =>
        Buffer.concat([b.subarray(0, at(b, n)), b.subarray(at(b, n) + 1)]),
  ), // a byte deleted
  fc.tuple(fc.nat(), fc.constantFrom(...STRUCTURAL)).map(([n, s]): Mutation => (b) => {
    const i = at(b, n)
    return Buffer.concat([b.subarray(0, i), Buffer.from(s), b.subarray(i + 1)])
  }),
  fc.constantFrom<Mutation>(
    (b) => Buffer.from(b.toString('latin1').replaceAll('"', "'"), 'latin1'),
    (b) => Buffer.from(b.toString('latin1').replace('[', '{'), 'latin1'),
    (b) => Buffer.from(b.toString('latin1').replace(/\](?=[^\]]*$)/, '}'), 'latin1'),
    (b) => Buffer.from(b.toString('latin1').replace(/"(?=[^"]*$)/, ''), 'latin1'),
    (b) => Buffer.concat([Buffer.of(0xef, 0xbb, 0xbf), b]), // BOM (stripped before framing)
    (b) => Buffer.from(b.toString('latin1').replaceAll('\n', '\r\n'), 'latin1'),
    (b) => Buffer.from(b.toString('latin1').replaceAll('\n', '\r'), 'latin1'),
    (b) => afterFirstBrace(b, '"id":1,"id":"dup",'),
    (b) => afterFirstBrace(b, '"__proto__":{"polluted":true},'),
    (b) => afterFirstBrace(b, '"constructor":{"prototype":{"polluted":true}},'),
    (b) => afterFirstBrace(b, '"n":123456789012345678901234567890,"m":1e999,"k":-0,'),
    (b, sep) => Buffer.concat([b, Buffer.from(sep), Buffer.from(sep)]), // trailing and empty records
    (b, sep) => Buffer.concat([Buffer.from(sep), b]),
    (b, sep) => Buffer.concat([b, Buffer.from(sep), b]), // the same records twice
  ),
  fc.tuple(fc.nat(), fc.constantFrom(...INVALID_UTF8)).map(
    ([n, bytes]): Mutation =>
      (b) =>
        insert(b, at(b, n), Buffer.from(bytes)),
  ),
  fc
    .tuple(fc.nat(), fc.integer({ min: 1, max: 20_000 }), fc.boolean())
    .map(([n, depth, closed]): Mutation => (b) => {
      const open = '['.repeat(depth)
      return insert(b, at(b, n), closed ? open + ']'.repeat(depth) : open)
    }),
  fc.integer({ min: 1, max: 5_000 }).map(
    (depth): Mutation =>
      (b) =>
        afterFirstBrace(b, `"deep":${'{"a":'.repeat(depth)}1${'}'.repeat(depth)},`),
  ),
)

/** Bodies of every kind: valid, near-valid (1–3 mutations of a valid one), random bytes, structural noise. */
function anyBodyArb(c: FuzzCase): fc.Arbitrary<Buffer> {
  const valid = bodyPartsArb(c, true).map((p) => ({
    body: Buffer.from(render(c, p)),
    separator: p.separator,
  }))
  return fc.oneof(
    { weight: 2, arbitrary: valid.map((v) => v.body) },
    {
      weight: 6,
      arbitrary: fc
        .tuple(valid, fc.array(mutationArb, { minLength: 1, maxLength: 3 }))
        .map(([v, ms]) => ms.reduce<Buffer>((b, m) => m(b, v.separator), v.body)),
    },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a)) },
    {
      weight: 1,
      arbitrary: fc
        .array(fc.constantFrom(...STRUCTURAL, 'null', '1', '"a"', '{}', '[]', 'v1\t'), { maxLength: 30 })
        .map((a) => Buffer.from(a.join(''))),
    },
  )
}

// ---- the properties -------------------------------------------------------------------------------------

type Answer = { outcome: ProcessOutcome } | { problem: ProblemError }

/** Runs `process`; anything but an outcome or a ProblemError 400/422 fails the property. */
function run(runtime: StreamRuntime, body: Buffer, validation: ValidationPolicy): Answer {
  try {
    return { outcome: runtime.process(body, NOW) }
  } catch (err) {
    if (!(err instanceof ProblemError))
      throw new Error(`process threw a non-ProblemError: ${String(err)}`, { cause: err })
    expect(
      err.status === 400 || (err.status === 422 && validation === 'reject'),
      `status ${err.status}`,
    ).toBe(true)
    const problem = err.toBody()
    expect(typeof problem.type, 'problem type').toBe('string')
    expect(typeof problem.title, 'problem title').toBe('string')
    expect(problem.detail, 'problem detail').toEqual(expect.any(String))
    if (err.status === 422) expect(err.errors?.length ?? 0).toBeGreaterThan(0)
    return { problem: err }
  }
}

/** An answer as one string (payload bytes as latin1): comparing big Buffers with toEqual is slow. */
function summary(a: Answer): string {
  if ('problem' in a) return JSON.stringify(a.problem.toBody())
  const { records, deadLetters, ...counts } = a.outcome
  const text = (r: SinkRecord): string =>
    JSON.stringify([r.id, r.fields, r.receivedAtMs, r.payload.toString('latin1')])
  return JSON.stringify({ ...counts, records: records.map(text), deadLetters: deadLetters.map(text) })
}

const sum = (counts: Record<string, number>): number => Object.values(counts).reduce((a, b) => a + b, 0)

/** Line breaks become spaces in forwarded JSON records (README "Sources and framing"). */
const breaksToSpaces = (b: Buffer): Buffer => Buffer.from(b.map((x) => (x === 0x0a || x === 0x0d ? 0x20 : x)))

/** Each piece occurs in `haystack` after the previous one, without overlap. */
function expectInOrder(haystack: Buffer, pieces: readonly Buffer[], what: string): void {
  let from = 0
  for (const [i, piece] of pieces.entries()) {
    const found = haystack.indexOf(piece, from)
    expect(
      found,
      `${what} ${i} (${JSON.stringify(piece.toString().slice(0, 80))}) is not a piece of the body`,
    ).toBeGreaterThanOrEqual(0)
    from = found + piece.length
  }
}

function deadLetterRaws(o: ProcessOutcome): Buffer[] {
  return o.deadLetters.map((d) => {
    const envelope = parseDeadLetter(d.payload.toString('utf8'))
    expect(envelope, 'a dead letter is an envelope').toBeDefined()
    return Buffer.from(envelope!.raw, 'utf8')
  })
}

function checkOutcome(
  c: FuzzCase,
  o: ProcessOutcome,
  validation: ValidationPolicy,
  body: Buffer,
  /** Dead letters carry text: bytes that are not UTF-8 cannot come back exactly. */
  deadLetterBytes = true,
): void {
  expect(o.received, 'received = accepted + rejected + filtered + duplicates').toBe(
    o.records.length + sum(o.rejected) + o.filtered + o.duplicates,
  )
  for (const n of [o.filtered, o.duplicates, ...Object.values(o.rejected)])
    expect(Number.isInteger(n) && n >= 0).toBe(true)
  // Under `off` the records over a limit (maxJsonDepth) are still invalid, and dead-lettered.
  if (validation === 'dead-letter' || validation === 'off')
    expect(o.deadLetters.length, 'one dead letter per rejected record').toBe(sum(o.rejected))
  else expect(o.deadLetters).toHaveLength(0)
  if (validation === 'reject') expect(sum(o.rejected)).toBe(0)
  expect(o.dedupeKeys.length).toBeLessThanOrEqual(o.records.length)

  const haystack = c.json ? breaksToSpaces(body) : body
  expectInOrder(
    haystack,
    o.records.map((r) => r.payload),
    'accepted record',
  )
  // A dead letter's raw text may keep the record's line breaks (a record over maxJsonDepth) or not.
  const raws = deadLetterRaws(o).map((r) => (c.json ? breaksToSpaces(r) : r))
  if (deadLetterBytes) expectInOrder(haystack, raws, 'dead letter')
  for (const r of o.records) {
    expect(r.stream).toBe('s')
    if (!c.json) continue
    expect(r.payload.includes(0x0a) || r.payload.includes(0x0d), 'a forwarded JSON record is one line').toBe(
      false,
    )
    let value: unknown
    expect(() => {
      value = JSON.parse(r.payload.toString('utf8'))
    }, 'an accepted JSON record parses').not.toThrow()
    if (c.config.source === 'emnify')
      expect(value !== null && typeof value === 'object' && !Array.isArray(value)).toBe(true)
  }
}

describe.each(CASES)('fuzzing $name', (c) => {
  const runtimes = runtimesOf(c)

  it('answers every body with an accounted outcome or a 400/422 problem, forwarding exact bytes', () => {
    fc.assert(
      fc.property(anyBodyArb(c), fc.nat(runtimes.length - 1), (raw, pick) => {
        const { runtime, validation } = runtimes[pick]!
        // As the HTTP path does: UTF-8 checked and a BOM stripped first. `process` itself must also survive
        // the raw bytes (a replay or a future caller may skip checkText).
        const first = run(runtime, raw, validation)
        // Bytes that are not UTF-8 cannot come back exactly from a record's text (dead letters carry text).
        if ('outcome' in first) checkOutcome(c, first.outcome, validation, raw, isUtf8(raw))
        let text: Buffer
        try {
          text = checkText(raw)
        } catch (err) {
          expect(err).toBeInstanceOf(ProblemError)
          expect((err as ProblemError).status).toBe(400)
          return
        }
        const answer = run(runtime, text, validation)
        if ('outcome' in answer) checkOutcome(c, answer.outcome, validation, text)
        // Nothing is remembered without commit(): the same body answers the same way again.
        const again = run(runtime, text, validation)
        expect(summary(again)).toBe(summary(answer))
      }),
      params(200),
    )
  })

  it('answers valid bodies as the model predicts: every record framed, valid ones accepted, invalid per policy', () => {
    fc.assert(
      fc.property(bodyPartsArb(c, true), fc.constantFrom(...POLICIES), (parts, validation) => {
        const runtime = runtimes.find((r) => r.validation === validation)!.runtime // no filters, no dedupe
        const body = Buffer.from(render(c, parts))
        const invalid = parts.records.filter((r) => !r.valid).length
        const answer = run(runtime, body, validation)
        if (validation === 'reject' && invalid > 0) {
          expect('problem' in answer && answer.problem.status).toBe(422)
          return
        }
        if (!('outcome' in answer)) throw new Error(`a valid body was refused: ${answer.problem.message}`)
        const o = answer.outcome
        expect(o.received).toBe(parts.records.length)
        const expected = parts.records.filter((r) => r.valid || validation === 'off')
        const forwarded = (text: string): string => (c.json ? text.replace(/[\r\n]/g, ' ') : text)
        expect(o.records.map((r) => r.payload.toString('utf8'))).toEqual(
          expected.map((r) => forwarded(r.text)),
        )
        if (validation === 'dead-letter')
          expect(o.deadLetters.map((d) => parseDeadLetter(d.payload.toString('utf8'))!.raw)).toEqual(
            parts.records.filter((r) => !r.valid).map((r) => forwarded(r.text)),
          )
        if (validation === 'drop' || validation === 'dead-letter') expect(sum(o.rejected)).toBe(invalid)
        checkOutcome(c, o, validation, body)
      }),
      params(120),
    )
  })
  it('replays any record text (a dead-letter replay) without throwing, accounting for every record', () => {
    const piece = fc.oneof(
      c.valid,
      ...(c.invalid ? [c.invalid] : []),
      fc.tuple(c.valid, mutationArb).map(([text, m]) => m(Buffer.from(text), '').toString('utf8')),
    )
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 6 }), fc.nat(runtimes.length - 1), (texts, pick) => {
        const { runtime, validation } = runtimes[pick]!
        const raws = texts.map((t) => Buffer.from(t))
        const o = runtime.processRecords(raws, NOW)
        expect(o.received).toBe(raws.length)
        expect(o.duplicates).toBe(0) // a replay is never deduplicated
        // A replay never answers 422: under `reject` its invalid records are dead letters again, and so
        // under `off` are the records that no longer frame (live, they would have been a 400).
        const joined = Buffer.concat(raws.flatMap((r) => [r, Buffer.of(0)]))
        const policy = validation === 'reject' || validation === 'off' ? 'dead-letter' : validation
        checkOutcome(c, o, policy, joined, false)
        // A record that does not parse again goes back to the dead letters exactly as it came.
        const candidates = raws.flatMap((r) => [r.toString('utf8'), breaksToSpaces(r).toString('utf8')])
        for (const raw of deadLetterRaws(o)) expect(candidates).toContain(raw.toString('utf8'))
      }),
      params(100),
    )
  })
})

describe.each(CASES.filter((c) => c.keyed))('dedupe of $name', (c) => {
  it('drops exactly the records whose key was committed before or came earlier in the same body', () => {
    const request = fc.record({
      records: fc.array(
        fc.oneof(
          {
            weight: 4,
            arbitrary: fc
              .constantFrom(...c.keys!)
              .chain((key) => c.keyed!(key).map((text) => ({ text, valid: true, key }))),
          },
          { weight: 1, arbitrary: c.invalid!.map((text) => ({ text, valid: false, key: undefined })) },
        ),
        { minLength: 1, maxLength: 8 },
      ),
      separator: c.separator,
      /** The request succeeded (its keys are committed), or failed after process (they are not). */
      succeeded: fc.boolean(),
    })
    fc.assert(
      fc.property(fc.array(request, { minLength: 1, maxLength: 4 }), fc.nat(1), (requests, dt) => {
        const dedupe = { key: c.dedupeKey!, windowRecords: 1000, windowMs: 60_000 }
        const runtime = new StreamRuntime('s', streamConfig(c, { dedupe }), validators)
        const committed = new Set<string>()
        for (const [n, r] of requests.entries()) {
          const parts = { ...r, trailing: false, lead: '', tail: '', bare: false }
          const now = NOW + n * dt
          const o = runtime.process(Buffer.from(render(c, parts)), now)
          const inBody = new Set<string>()
          const accepted: string[] = []
          let duplicates = 0
          for (const { key } of r.records) {
            if (key === undefined) continue
            if (committed.has(key) || inBody.has(key)) duplicates++
            else {
              inBody.add(key)
              accepted.push(key)
            }
          }
          expect(o.duplicates).toBe(duplicates)
          expect(o.records.map((rec) => rec.id)).toEqual(accepted)
          expect(o.dedupeKeys).toEqual(accepted)
          expect(o.deadLetters).toHaveLength(r.records.filter((x) => !x.valid).length)
          if (r.succeeded) {
            runtime.commit(o, now)
            for (const key of accepted) committed.add(key)
          }
        }
      }),
      params(120),
    )
  })
})

// processSliced (large bodies on the HTTP path) pauses every 64 records for a later turn of the event loop.
// Whatever it pauses between, the answer must be `process`'s: same records, dead letters, counts, dedupe
// keys, drift and problem. Bodies of 60–260 records, so most pause at least once; the slice here pauses at
// every chance, with a macrotask between.
async function runSliced(
  runtime: StreamRuntime,
  body: Buffer,
  validation: ValidationPolicy,
): Promise<{ answer: Answer; pauses: number }> {
  let pauses = 0
  const slice = {
    spent: () => true,
    next: () => {
      pauses++
      return new Promise<void>((resolve) => setImmediate(resolve))
    },
  }
  try {
    return { answer: { outcome: await runtime.processSliced(body, NOW, slice) }, pauses }
  } catch (err) {
    if (!(err instanceof ProblemError)) throw err
    expect(err.status === 400 || (err.status === 422 && validation === 'reject')).toBe(true)
    return { answer: { problem: err }, pauses }
  }
}

describe.each(CASES)('sliced processing of $name', (c) => {
  it('answers large bodies exactly as process does, pausing every 64 records', async () => {
    const record = fc.oneof(
      { weight: 5, arbitrary: c.valid.map((text) => ({ text, valid: true })) },
      ...(c.invalid ? [{ weight: 1, arbitrary: c.invalid.map((text) => ({ text, valid: false })) }] : []),
    )
    const parts = fc.record({
      records: fc.array(record, { minLength: 60, maxLength: 260 }),
      separator: c.separator,
      trailing: fc.boolean(),
      lead: fc.constant(''),
      tail: fc.constant(''),
      bare: fc.constant(false),
    })
    await fc.assert(
      fc.asyncProperty(parts, fc.nat(runtimesOf(c).length - 1), async (p, pick) => {
        // Two runtimes of the same config (dedupe windows and drift are state of their own).
        const [whole, sliced] = [runtimesOf(c)[pick]!, runtimesOf(c)[pick]!]
        const body = Buffer.from(render(c, p))
        const expected = run(whole.runtime, body, whole.validation)
        const { answer, pauses } = await runSliced(sliced.runtime, body, sliced.validation)
        expect(summary(answer)).toBe(summary(expected))
        // `since` is when each runtime was made.
        const drift = (r: StreamRuntime): unknown => ({ ...r.drift.report(), since: undefined })
        expect(drift(sliced.runtime)).toEqual(drift(whole.runtime))
        if ('outcome' in answer) expect(pauses).toBe(Math.floor(answer.outcome.received / 64))
      }),
      params(25),
    )
  })
})
