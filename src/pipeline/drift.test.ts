import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { compileTemplate, templateKeys, templateRecordCheck } from '../ingest/azion-template.js'
import { findAzionTemplate, presetModels } from '../ingest/azion-templates.js'
import { Validators, type RecordError } from '../validate/validators.js'
import {
  DriftTracker,
  EXAMPLE_CHARS,
  knownFromSchema,
  LEARN_RECORDS,
  MAX_FIELDS,
  MISSING,
  SAMPLE_EVERY,
  UNKNOWN,
  type KnownFields,
} from './drift.js'

const T0 = Date.parse('2026-12-01T00:00:00Z')

function template(variants: string[][], countMissing = true): KnownFields {
  return { kind: 'template', variants, countMissing, source: 'test' }
}

describe('DriftTracker: templates', () => {
  it('reports unknown and missing keys with records seen, first/last seen and an example', () => {
    const d = new DriftTracker(template([['time', 'host']]), T0)
    expect(d.value({ time: 't', host: 'h' }, T0, 1)).toBe(0)
    expect(d.value({ time: 't', host: 'h', status: '200' }, T0 + 1000, 1)).toBe(UNKNOWN)
    expect(d.value({ time: 't', status: '304' }, T0 + 2000, 1)).toBe(UNKNOWN | MISSING)
    const r = d.report()
    expect(r).toMatchObject({ tracking: true, observedRecords: 3, unknownRecords: 2, missingRecords: 1 })
    expect(r.known.fields).toEqual(['/time', '/host'])
    expect(r.fields).toEqual([
      {
        pointer: '/host',
        kind: 'missing',
        records: 1,
        firstSeen: '2026-12-01T00:00:02.000Z',
        lastSeen: '2026-12-01T00:00:02.000Z',
      },
      {
        pointer: '/status',
        kind: 'unknown',
        records: 2,
        firstSeen: '2026-12-01T00:00:01.000Z',
        lastSeen: '2026-12-01T00:00:02.000Z',
        example: '"200"',
      },
    ])
  })

  it('compares with the nearest documented model (template 86 has two)', () => {
    const variants = presetModels(findAzionTemplate(86)!).map((m) => templateKeys(compileTemplate(m)))
    const d = new DriftTracker(template(variants), T0)
    const eight = Object.fromEntries(variants[0]!.map((k) => [k, 'x']))
    const four = Object.fromEntries(variants[1]!.map((k) => [k, 'x']))
    expect(d.value(eight, T0, 1)).toBe(0)
    expect(d.value(four, T0, 1)).toBe(0)
    expect(d.value({ ...four, logLevel: 'INFO' }, T0, 1)).toBe(UNKNOWN)
    expect(d.report().fields.map((f) => [f.pointer, f.kind])).toEqual([['/logLevel', 'unknown']])
  })

  it('never reports missing keys of a reconstructed preset', () => {
    const d = new DriftTracker(template([['a', 'b']], false), T0)
    expect(d.value({ a: '1', c: '2' }, T0, 1)).toBe(UNKNOWN)
    expect(d.report().fields.map((f) => f.kind)).toEqual(['unknown'])
  })

  it('reads the keys of a proven flat record from its bytes', () => {
    const d = new DriftTracker(template([['time', 'host']]), T0)
    d.flat(Buffer.from('{ "time" : "t", "extra":"a \\" quote" ,"x/y~z":"v"}'), UNKNOWN | MISSING, T0, 1)
    d.exact()
    const r = d.report()
    expect(r.observedRecords).toBe(2)
    expect(r.fields.map((f) => [f.pointer, f.kind, f.example])).toEqual([
      ['/extra', 'unknown', '"a \\" quote"'],
      ['/host', 'missing', undefined],
      ['/x~1y~0z', 'unknown', '"v"'],
    ])
  })

  it('cuts examples to 100 characters and collects unknown fields as errors when asked', () => {
    const d = new DriftTracker(template([['a']]), T0)
    const errors: RecordError[] = []
    d.value({ a: '1', long: 'x'.repeat(500) }, T0, 1, errors)
    expect(errors).toEqual([
      { pointer: '/long', message: expect.stringContaining('unknownFields: reject') as string },
    ])
    const example = d.report().fields[0]!.example!
    expect(example).toHaveLength(EXAMPLE_CHARS + 1)
    expect(example.endsWith('…')).toBe(true)
  })

  it('only checks, never counts, when not recording (a dead-letter replay)', () => {
    const d = new DriftTracker(template([['a']]), T0)
    const errors: RecordError[] = []
    expect(d.value({ b: '1' }, T0, 1, errors, false)).toBe(UNKNOWN | MISSING)
    expect(errors).toHaveLength(1)
    expect(d.report()).toMatchObject({ observedRecords: 0, unknownRecords: 0, fields: [] })
  })
})

describe('DriftTracker: bounds, sampling, reset', () => {
  it('tracks at most MAX_FIELDS pointers and counts the rest', () => {
    const d = new DriftTracker(template([['a']]), T0)
    const record: Record<string, string> = { a: '1' }
    for (let i = 0; i < MAX_FIELDS + 50; i++) record[`k${i}`] = 'v'
    d.value(record, T0, 1)
    const r = d.report()
    expect(r.fields).toHaveLength(MAX_FIELDS)
    expect(r.untrackedSightings).toBe(50)
    expect(r.unknownRecords).toBe(1)
  })

  it('looks at every record while learning, then at one in SAMPLE_EVERY, and learns again on news', () => {
    const d = new DriftTracker(template([['a']]), T0)
    const weights: number[] = []
    for (let i = 0; i < LEARN_RECORDS; i++) weights.push(d.sample(false))
    expect(weights.every((w) => w === 1)).toBe(true)
    expect(d.report().sampling).toEqual({ learning: false, oneIn: SAMPLE_EVERY })
    const after = Array.from({ length: SAMPLE_EVERY * 4 }, () => d.sample(false))
    expect(after.filter((w) => w === SAMPLE_EVERY)).toHaveLength(4)
    expect(after.filter((w) => w === 0)).toHaveLength(SAMPLE_EVERY * 4 - 4)
    expect(d.sample(true)).toBe(1) // unknownFields: reject looks at every record
    // A sampled record stands for SAMPLE_EVERY records; something new restarts learning.
    d.value({ a: '1', fresh: 'x' }, T0, SAMPLE_EVERY)
    expect(d.report()).toMatchObject({ unknownRecords: SAMPLE_EVERY, sampling: { learning: true, oneIn: 1 } })
    expect(d.report().fields[0]!.records).toBe(SAMPLE_EVERY)
    expect(d.sample(false)).toBe(1)
  })

  it('hands counts to the counter once per flush, and reset clears the report', () => {
    const calls: [number, number][] = []
    const d = new DriftTracker(template([['a']]), T0, (u, m) => calls.push([u, m]))
    d.value({ a: '1', b: '2' }, T0, 1)
    d.value({ b: '2' }, T0, 1)
    d.flush()
    d.flush()
    expect(calls).toEqual([[2, 1]])
    d.reset(T0 + 5000)
    expect(d.report()).toMatchObject({
      since: '2026-12-01T00:00:05.000Z',
      observedRecords: 0,
      unknownRecords: 0,
      fields: [],
    })
  })

  it('keeps its report across a config change only when what it compares with is the same', () => {
    const a = new DriftTracker(template([['a']]), T0)
    a.value({ a: '1', b: '2' }, T0, 1)
    const same = new DriftTracker(template([['a']]), T0 + 1)
    same.adopt(a)
    expect(same.report().fields).toHaveLength(1)
    const other = new DriftTracker(template([['a', 'b']]), T0 + 1)
    other.adopt(a)
    expect(other.report().fields).toHaveLength(0)
  })

  it('a schema file whose declarations changed under the same name starts a new report', () => {
    const known = (schema: Record<string, unknown>): KnownFields => ({
      kind: 'schema',
      root: knownFromSchema(schema)!,
      source: 'schema s.json',
    })
    const a = new DriftTracker(known({ properties: { a: {} } }), T0)
    a.value({ a: 1, b: 2 }, T0, 1)
    const same = new DriftTracker(known({ properties: { a: {} } }), T0)
    same.adopt(a)
    expect(same.report().fields).toHaveLength(1)
    const nested = new DriftTracker(known({ properties: { a: { properties: { x: {} } } } }), T0)
    nested.adopt(a)
    expect(nested.report().fields).toHaveLength(0)
    const required = new DriftTracker(known({ properties: { a: {} }, required: ['a'] }), T0)
    required.adopt(a)
    expect(required.report().fields).toHaveLength(0)
  })
})

describe('knownFromSchema', () => {
  it('follows properties, nested properties, $ref, allOf, anyOf, oneOf and patternProperties', () => {
    const root = knownFromSchema({
      type: 'object',
      required: ['id'],
      properties: {
        id: { type: 'integer' },
        sim: { $ref: '#/definitions/sim' },
        tags: { type: 'array', items: { type: 'object', properties: { x: {} } } },
      },
      allOf: [{ properties: { extra: { type: 'string' } }, required: ['extra'] }],
      anyOf: [{ properties: { start: {} }, required: ['start'] }, { properties: { end: {} } }],
      patternProperties: { '^x-': {} },
      definitions: {
        sim: { type: ['object', 'null'], required: ['iccid'], properties: { iccid: { type: 'string' } } },
      },
    })!
    const d = new DriftTracker({ kind: 'schema', root, source: 'test' }, T0)
    expect(d.report().known.fields).toEqual([
      '/id',
      '/sim',
      '/sim/iccid',
      '/tags',
      '/extra',
      '/start',
      '/end',
    ])
    expect(
      d.value({ id: 1, extra: 'e', sim: { iccid: '1' }, 'x-custom': 1, tags: [{ y: 1 }], start: 's' }, T0, 1),
    ).toBe(0)
    // anyOf's required are not "every record": only the schema's own and allOf's are.
    expect(d.value({ id: 1, extra: 'e', sim: null }, T0, 1)).toBe(0)
    expect(d.value({ id: 1, sim: { imsi: '2' }, new: true }, T0, 1)).toBe(UNKNOWN | MISSING)
    expect(
      d
        .report()
        .fields.map((f) => [f.pointer, f.kind])
        .sort(),
    ).toEqual([
      ['/extra', 'missing'],
      ['/new', 'unknown'],
      ['/sim/iccid', 'missing'],
      ['/sim/imsi', 'unknown'],
    ])
  })

  it('has nothing to compare with for a schema without properties', () => {
    expect(knownFromSchema({ type: 'object' })).toBeUndefined()
  })

  it('finds unknown fields in the documented emnify event with a field emnify added', () => {
    const validators = new Validators()
    const root = knownFromSchema(validators.builtinSchema('emnify-event'))!
    const d = new DriftTracker({ kind: 'schema', root, source: 'emnify-event' }, T0)
    const event = {
      id: 176777623,
      timestamp: '2017-10-26T07:28:00.000+0000',
      event_type: { id: 1, description: 'Update location' },
      endpoint: { id: 733023, name: 'GPS Tracker', tags: null, imei: '732554536373291', firmware: '1.2' },
      roaming: true,
    }
    expect(d.value(event, T0, 1)).toBe(UNKNOWN)
    expect(
      d
        .report()
        .fields.map((f) => f.pointer)
        .sort(),
    ).toEqual(['/endpoint/firmware', '/roaming'])
  })
})

describe('the framer scan and the tracker agree on drift', () => {
  // The framer's byte-level scan answers the bits for proven records (counted without reading keys); the
  // tracker compares parsed records. Both must say the same for the same record.
  const keyArb = fc.constantFrom('time', 'client', 'requestID', 'logmessage', 'logMessage', 'host', 'x', 'é')
  const cases = [
    { variants: presetModels(findAzionTemplate(86)!), countMissing: true },
    { variants: presetModels(findAzionTemplate(2)!), countMissing: true },
    { variants: [findAzionTemplate(4)!.templateModel], countMissing: false },
  ]
  it('for any flat record of strings (property)', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...cases),
        fc.uniqueArray(keyArb, { maxLength: 9 }),
        ({ variants, countMissing }, keys) => {
          const compiled = variants.map((m) => compileTemplate(m))
          const scan = templateRecordCheck(compiled, { contract: 'describe', countMissing })!
          const d = new DriftTracker(template(compiled.map(templateKeys), countMissing), T0)
          const text = JSON.stringify(Object.fromEntries(keys.map((k) => [k, 'v'])))
          const buf = Buffer.from(text)
          expect(scan(buf, 0, buf.length)).toBe(d.value(JSON.parse(text), T0, 1))
        },
      ),
      { numRuns: 300 },
    )
  })
})
