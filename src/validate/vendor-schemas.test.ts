import { readFileSync } from 'node:fs'
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv'
import addFormatsModule from 'ajv-formats'
import { beforeAll, describe, expect, it } from 'vitest'
import {
  compileTemplate,
  renderTemplate,
  templateSchema,
  type CompiledTemplate,
} from '../ingest/azion-template.js'
import { AZION_TEMPLATES } from '../ingest/azion-templates.js'

// ajv-formats ships CJS with a default export; under NodeNext the callable sits on .default.
type AddFormats = (ajv: Ajv) => Ajv
const addFormats = ((addFormatsModule as unknown as { default?: AddFormats }).default ??
  addFormatsModule) as unknown as AddFormats

const root = new URL('../../', import.meta.url)
const readJson = (path: string): unknown => JSON.parse(readFileSync(new URL(path, root), 'utf8')) as unknown
const emnify = (name: string): unknown => readJson(`test/fixtures/emnify/${name}`)
const azion = (name: string): string => readFileSync(new URL(`test/fixtures/azion/${name}`, root), 'utf8')

/** A fixture file holds one record or an array of records (a bulk body). */
const recordsOf = (body: unknown): unknown[] => (Array.isArray(body) ? body : [body])

const clone = <T>(v: T): T => structuredClone(v)

let ajv: Ajv
let event: ValidateFunction
let usage: ValidateFunction

function newAjv(): Ajv {
  const a = new Ajv({ allErrors: true, strict: false })
  addFormats(a)
  return a
}

function errorsOf(validate: ValidateFunction, record: unknown): ErrorObject[] {
  return validate(record) ? [] : (validate.errors ?? [])
}

beforeAll(() => {
  ajv = newAjv()
  event = ajv.compile(readJson('schemas/emnify-event.schema.json') as object)
  usage = ajv.compile(readJson('schemas/emnify-usage.schema.json') as object)
})

describe('emnify schemas: shape', () => {
  it.each(['emnify-event', 'emnify-usage'])(
    '%s has its $id, a title and a description citing a source on every property',
    (name) => {
      const schema = readJson(`schemas/${name}.schema.json`) as Record<string, unknown>
      expect(schema.$id).toBe(`https://streamgate.dev/schemas/${name}.json`)
      expect(schema.$schema).toBe('http://json-schema.org/draft-07/schema#')
      expect(typeof schema.title).toBe('string')
      const missing: string[] = []
      const walk = (s: unknown, path: string): void => {
        if (typeof s !== 'object' || s === null) return
        const o = s as Record<string, unknown>
        for (const [k, p] of Object.entries(
          (o.properties ?? {}) as Record<string, Record<string, unknown>>,
        )) {
          const d = p.description
          if (typeof d !== 'string' || !/\[[A-Z0-9]+-[A-Z0-9-]+/.test(d)) missing.push(`${path}/${k}`)
          walk(p, `${path}/${k}`)
        }
        walk(o.items, `${path}/items`)
      }
      walk(schema, '#')
      expect(missing).toEqual([])
    },
  )

  it("compiles under ajv's default (strict) options without a warning", () => {
    const warnings: unknown[] = []
    const log = (...args: unknown[]): void => void warnings.push(args)
    const strict = new Ajv({ logger: { log, warn: log, error: log } })
    addFormats(strict)
    strict.compile(readJson('schemas/emnify-event.schema.json') as object)
    strict.compile(readJson('schemas/emnify-usage.schema.json') as object)
    expect(warnings).toEqual([])
  })
})

describe('emnify event schema', () => {
  it.each([
    'event-update-location.json',
    'event-delete-pdp.json',
    'event-user-auth-failed.json',
    'events-bulk.json',
    'event-legacy-name.json',
    'event-nulls.json',
    'event-delete-pdp-nulls.json',
    'event-bigint-id.json',
  ])('accepts %s', (name) => {
    const records = recordsOf(emnify(name))
    expect(records.length).toBeGreaterThan(0)
    for (const r of records) expect(errorsOf(event, r)).toEqual([])
  })

  it('events-bulk.json holds the three samples', () => {
    expect(recordsOf(emnify('events-bulk.json'))).toEqual([
      emnify('event-update-location.json'),
      emnify('event-delete-pdp.json'),
      emnify('event-user-auth-failed.json'),
    ])
  })

  it('sees a 64-bit id parsed by JSON.parse as an integer (precision lost, type kept)', () => {
    const r = emnify('event-bigint-id.json') as { id: number }
    expect(r.id).toBe(9007199254740992)
    expect(Number.isInteger(r.id)).toBe(true)
  })

  it('rejects invalid-event-missing-id.json at the record root', () => {
    const errors = errorsOf(event, emnify('invalid-event-missing-id.json'))
    expect(errors.map((e) => [e.instancePath, e.keyword, e.params])).toEqual([
      ['', 'required', { missingProperty: 'id' }],
    ])
  })

  it('rejects invalid-event-type-not-object.json at /event_type', () => {
    const errors = errorsOf(event, emnify('invalid-event-type-not-object.json'))
    expect(errors.map((e) => [e.instancePath, e.keyword])).toEqual([['/event_type', 'type']])
  })

  const base = (): Record<string, unknown> =>
    clone(emnify('event-update-location.json')) as Record<string, unknown>

  it.each<[string, (r: Record<string, unknown>) => void, string]>([
    ['a string id', (r) => (r.id = '176777623'), '/id'],
    ['a fractional id', (r) => (r.id = 1.5), '/id'],
    ['an empty timestamp', (r) => (r.timestamp = ''), '/timestamp'],
    ['a timestamp that is not a date', (r) => (r.timestamp = 'yesterday'), '/timestamp'],
    ['a numeric timestamp', (r) => (r.timestamp = 1509002880000), '/timestamp'],
    ['no timestamp', (r) => delete r.timestamp, ''],
    ['no event_type', (r) => delete r.event_type, ''],
    ['a null event_type', (r) => (r.event_type = null), '/event_type'],
    ['an event_type without id', (r) => (r.event_type = { description: 'Update location' }), '/event_type'],
    ['a string event_type.id', (r) => (r.event_type = { id: '1' }), '/event_type/id'],
    ['an imsi string (the usage form)', (r) => (r.imsi = '401960166508658'), '/imsi'],
    [
      'a numeric endpoint.imei',
      (r) => ((r.endpoint as Record<string, unknown>).imei = 732554536373291),
      '/endpoint/imei',
    ],
    ['a non-boolean alert', (r) => (r.alert = 'false'), '/alert'],
    ['a numeric event_source.name', (r) => (r.event_source = { id: 0, name: 0 }), '/event_source/name'],
  ])('rejects %s', (_label, mutate, path) => {
    const r = base()
    expect(errorsOf(event, r)).toEqual([])
    mutate(r)
    const errors = errorsOf(event, r)
    expect(errors.length).toBeGreaterThan(0)
    expect(errors.map((e) => e.instancePath)).toContain(path)
  })

  it.each<[string, (r: Record<string, unknown>) => void]>([
    [
      'an unknown event type id',
      (r) => (r.event_type = { id: 4711, description: 'Endpoint limit extension' }),
    ],
    ['an unknown top-level field', (r) => (r.new_field = { anything: [1, 2] })],
    ['an unknown field inside an entity', (r) => ((r.sim as Record<string, unknown>).eid = 'x')],
    ['severity in upper case', (r) => (r.event_severity = { id: 2, description: 'CRITICAL' })],
    [
      'entity objects left out',
      (r) => ['organisation', 'endpoint', 'imsi', 'sim', 'detail'].forEach((k) => delete r[k]),
    ],
    ['a timestamp without seconds fraction or zone', (r) => (r.timestamp = '2021-10-27T08:38:02')],
    ['a timestamp with a +00:00 offset', (r) => (r.timestamp = '2021-10-27T08:38:02+00:00')],
    [
      'Create PDP Context ids as numeric strings',
      (r) =>
        (r.detail = {
          pdp_context: { pdp_context_id: '79790039', tariff_id: '555', ratezone_id: 7, operator_id: '3' },
        }),
    ],
    [
      'a quota detail',
      (r) => (r.detail = { quota: { threshold_percentage: 80, threshold_volume: 0.8, volume: -0.0012 } }),
    ],
  ])('accepts %s', (_label, mutate) => {
    const r = base()
    mutate(r)
    expect(errorsOf(event, r)).toEqual([])
  })

  it('rejects a Create PDP Context id that is a non-numeric string', () => {
    const r = base()
    r.detail = { pdp_context: { tariff_id: 'five' } }
    expect(errorsOf(event, r).map((e) => e.instancePath)).toContain('/detail/pdp_context/tariff_id')
  })
})

describe('emnify usage schema', () => {
  it.each(['usage-data.json', 'usage-sms.json', 'usage-data-nulls.json'])('accepts %s', (name) => {
    const records = recordsOf(emnify(name))
    expect(records).toHaveLength(1)
    for (const r of records) expect(errorsOf(usage, r)).toEqual([])
  })

  it('rejects an event record (no traffic_type, imsi is an object)', () => {
    const paths = errorsOf(usage, emnify('event-update-location.json')).map((e) => e.instancePath)
    expect(paths).toContain('/imsi')
    expect(paths).toContain('')
  })

  it('rejects invalid-usage-no-traffic-type.json at the record root', () => {
    const errors = errorsOf(usage, emnify('invalid-usage-no-traffic-type.json'))
    expect(errors.map((e) => [e.instancePath, e.keyword, e.params])).toEqual([
      ['', 'required', { missingProperty: 'traffic_type' }],
    ])
  })

  const base = (): Record<string, unknown> =>
    clone(recordsOf(emnify('usage-data.json'))[0]) as Record<string, unknown>

  it('accepts a record with only one of start_timestamp / end_timestamp', () => {
    const onlyStart = base()
    delete onlyStart.end_timestamp
    expect(errorsOf(usage, onlyStart)).toEqual([])
    const onlyEnd = base()
    delete onlyEnd.start_timestamp
    expect(errorsOf(usage, onlyEnd)).toEqual([])
  })

  it.each<[string, (r: Record<string, unknown>) => void, string]>([
    ['no timestamps at all', (r) => (delete r.start_timestamp, delete r.end_timestamp), ''],
    ['a string id', (r) => (r.id = '333333333333333'), '/id'],
    ['a traffic_type without integer id', (r) => (r.traffic_type = { id: 'Data' }), '/traffic_type/id'],
    ['an imsi object (the event form)', (r) => (r.imsi = { id: 1, imsi: '295050901064821' }), '/imsi'],
    ['a string imsi_id', (r) => (r.imsi_id = '9624042'), '/imsi_id'],
    ['a string volume', (r) => ((r.volume as Record<string, unknown>).total = '0.219933'), '/volume/total'],
    ['a string cost', (r) => (r.cost = '0.07'), '/cost'],
    ['a malformed end_timestamp', (r) => (r.end_timestamp = '15.02.2024 14:56'), '/end_timestamp'],
  ])('rejects %s', (_label, mutate, path) => {
    const r = base()
    expect(errorsOf(usage, r)).toEqual([])
    mutate(r)
    expect(errorsOf(usage, r).map((e) => e.instancePath)).toContain(path)
  })

  it('accepts null entity objects and unknown fields', () => {
    const r = base()
    for (const k of ['organisation', 'endpoint', 'sim', 'volume', 'currency', 'operator', 'tariff'])
      r[k] = null
    r.something_new = 1
    expect(errorsOf(usage, r)).toEqual([])
  })
})

describe('emnify schemas: null wherever emnify may leave a value out', () => {
  // emnify sends null for a value it leaves out (msisdn, ip_address, imei, volume figures, nested objects).
  // Every field of every documented sample is set to null in turn, then all at once: only the fields a
  // record is useless without may refuse it.
  const samples: [string, () => ValidateFunction, string, Set<string>][] = [
    [
      'event-update-location.json',
      () => event,
      'event',
      new Set(['/id', '/timestamp', '/event_type', '/event_type/id']),
    ],
    [
      'event-delete-pdp.json',
      () => event,
      'event',
      new Set(['/id', '/timestamp', '/event_type', '/event_type/id']),
    ],
    [
      'event-user-auth-failed.json',
      () => event,
      'event',
      new Set(['/id', '/timestamp', '/event_type', '/event_type/id']),
    ],
    ['usage-data.json', () => usage, 'usage', new Set(['/id', '/traffic_type', '/traffic_type/id'])],
    ['usage-sms.json', () => usage, 'usage', new Set(['/id', '/traffic_type', '/traffic_type/id'])],
  ]

  it.each(samples)(
    '%s: any one field null is valid, except the required ones',
    (name, validator, _kind, required) => {
      const sample = recordsOf(emnify(name))[0] as Record<string, unknown>
      const paths = leafAndObjectPaths(sample)
      expect(paths.length).toBeGreaterThan(10)
      const refused: string[] = []
      for (const path of paths) {
        const r = clone(sample)
        setAt(r, path, null)
        if (errorsOf(validator(), r).length > 0) refused.push(path)
      }
      expect(refused).toEqual(paths.filter((p) => required.has(p)))
    },
  )

  it.each(samples)('%s: every optional field null at once is valid', (name, validator, kind) => {
    const r = clone(recordsOf(emnify(name))[0]) as Record<string, unknown>
    const keep =
      kind === 'event' ? ['id', 'timestamp', 'event_type'] : ['id', 'traffic_type', 'start_timestamp']
    for (const path of leafAndObjectPaths(r))
      if (path.split('/').length === 2 && !keep.includes(path.slice(1))) setAt(r, path, null)
    expect(errorsOf(validator(), r)).toEqual([])
  })

  it('a usage record needs one of its timestamps as a string, not both null', () => {
    const r = clone(recordsOf(emnify('usage-data.json'))[0]) as Record<string, unknown>
    r.start_timestamp = null
    expect(errorsOf(usage, r)).toEqual([])
    r.end_timestamp = null
    expect(errorsOf(usage, r).length).toBeGreaterThan(0)
  })

  it('still refuses a wrong type where null is allowed', () => {
    const r = clone(recordsOf(emnify('usage-data-nulls.json'))[0]) as Record<string, Record<string, unknown>>
    r.sim!.msisdn = 423663920123456
    expect(errorsOf(usage, r).map((e) => e.instancePath)).toEqual(['/sim/msisdn'])
  })
})

/** JSON pointers of every member of a record (objects and scalars; array elements included). */
function leafAndObjectPaths(value: unknown, prefix = ''): string[] {
  if (value === null || typeof value !== 'object') return []
  const out: string[] = []
  for (const [k, v] of Object.entries(value)) {
    const path = `${prefix}/${k}`
    out.push(path)
    out.push(...leafAndObjectPaths(v, path))
  }
  return out
}

function setAt(root: Record<string, unknown>, pointer: string, v: unknown): void {
  const keys = pointer.slice(1).split('/')
  let cur = root
  for (const k of keys.slice(0, -1)) cur = cur[k] as Record<string, unknown>
  cur[keys.at(-1)!] = v
}

describe('generated Azion template schemas', () => {
  const compiled = (t: CompiledTemplate, id: string): ValidateFunction =>
    newAjv().compile(templateSchema(t, id))

  it('accept the AZ-REF sample bodies and reject a record missing a field or with a non-string value', () => {
    const t = compileTemplate('{"request_method":"$request_method","host":"$host","status":"$status"}')
    const validate = compiled(t, 'https://streamgate.dev/schemas/azion-sample.json')
    const records = [
      ...(JSON.parse(azion('array-dataset.txt')) as unknown[]),
      ...azion('ndjson-dataset.txt')
        .split('\n')
        .map((l) => JSON.parse(l) as unknown),
    ]
    expect(records).toHaveLength(4)
    for (const r of records) expect(errorsOf(validate, r)).toEqual([])

    const missing = clone(records[0]) as Record<string, unknown>
    delete missing.status
    expect(errorsOf(validate, missing).map((e) => [e.instancePath, e.keyword, e.params])).toEqual([
      ['', 'required', { missingProperty: 'status' }],
    ])
    const numeric = { ...(records[0] as object), status: 200 }
    expect(errorsOf(validate, numeric).map((e) => [e.instancePath, e.keyword])).toEqual([['/status', 'type']])
    expect(errorsOf(validate, { ...(records[0] as object), extra: 'x' })).toEqual([]) // additionalProperties: true
  })

  it('every built-in template: accepts rendered records, rejects a missing field and a non-string value', () => {
    for (const tpl of AZION_TEMPLATES) {
      const t = compileTemplate(tpl.templateModel)
      if (t.kind !== 'json') throw new Error(`template ${tpl.id} is not JSON`)
      const validate = compiled(t, `https://streamgate.dev/schemas/azion-template-${tpl.id}.json`)
      const values = Object.fromEntries(t.variables.map((v, i) => [v, i % 3 === 0 ? '-' : `value "${i}"\n`]))
      const record = JSON.parse(renderTemplate(t, values)) as Record<string, unknown>
      expect(errorsOf(validate, record)).toEqual([])
      const key = t.fields[t.fields.length - 1]!.key
      const missing = { ...record }
      delete missing[key]
      expect(errorsOf(validate, missing).map((e) => e.params)).toEqual([{ missingProperty: key }])
      expect(errorsOf(validate, { ...record, [key]: null }).map((e) => e.instancePath)).toEqual([`/${key}`])
    }
  })

  it('the Functions preset schema accepts the fixture records', () => {
    const tpl = AZION_TEMPLATES.find((t) => t.id === 86)!
    const validate = compiled(
      compileTemplate(tpl.templateModel),
      'https://streamgate.dev/schemas/azion-86.json',
    )
    const lines = azion('functions-preset.ndjson').split('\n')
    expect(lines).toHaveLength(3)
    for (const l of lines) expect(errorsOf(validate, JSON.parse(l))).toEqual([])
    expect(errorsOf(validate, { ...(JSON.parse(lines[0]!) as object), logLevel: 3 })).not.toEqual([])
  })

  it('text templates: the schema describes the parsed fields', () => {
    const t = compileTemplate(
      'v1\t$time_iso8601\t$clientid\t$title\t$comment\t$type\t$author_name\t$author_email',
    )
    if (t.kind !== 'text') throw new Error('expected a text template')
    const validate = compiled(t, 'https://streamgate.dev/schemas/azion-activity-tsv.json')
    for (const line of azion('activity-history.tsv').split('\n')) {
      const fields = t.parse(line)
      expect(errorsOf(validate, fields)).toEqual([])
    }
    const fields = { ...(t.parse(azion('activity-history.tsv').split('\n')[0]!) as Record<string, string>) }
    delete fields.author_email
    expect(errorsOf(validate, fields).map((e) => e.params)).toEqual([{ missingProperty: 'author_email' }])
    expect(errorsOf(validate, { ...fields, author_email: ['x'] }).map((e) => e.instancePath)).toEqual([
      '/author_email',
    ])
  })

  it('a __proto__ key is validated like any other key', () => {
    const t = compileTemplate('{"__proto__":"$p","b":"$b"}')
    const validate = compiled(t, 'https://streamgate.dev/schemas/azion-proto.json')
    const good = JSON.parse(renderTemplate(t, { p: 'x', b: 'y' })) as unknown
    expect(Object.getOwnPropertyNames(good)).toEqual(['__proto__', 'b'])
    expect(errorsOf(validate, good)).toEqual([])
    expect(errorsOf(validate, JSON.parse('{"__proto__":5,"b":"y"}')).map((e) => e.instancePath)).toEqual([
      '/__proto__',
    ])
    expect(errorsOf(validate, JSON.parse('{"b":"y"}')).map((e) => [e.instancePath, e.keyword])).toEqual([
      ['', 'not'],
    ])
    expect(errorsOf(validate, JSON.parse('{"__proto__":"x"}')).map((e) => e.params)).toEqual([
      { missingProperty: 'b' },
    ])
    // The same for a text template whose variable is $__proto__ (parse returns a null-prototype object).
    const text = compileTemplate('$__proto__\t$b')
    if (text.kind !== 'text') throw new Error('expected a text template')
    const validateText = compiled(text, 'https://streamgate.dev/schemas/azion-proto-text.json')
    expect(errorsOf(validateText, text.parse('x\ty'))).toEqual([])
    const noProto = Object.assign(Object.create(null) as Record<string, string>, { b: 'y' })
    expect(errorsOf(validateText, noProto).map((e) => e.keyword)).toEqual(['not'])
  })
})
