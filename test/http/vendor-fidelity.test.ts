import { createHmac } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { fixture, readNdjsonLines, startGateway, waitFor, type TestGateway } from '../support/gateway.js'
import { send, type Answer } from '../support/http.js'

// Vendor fidelity, round 2, over a real socket: real vendor records are never dead-lettered by our guesses
// (records posted exactly as Azion's API document and emnify's documentation show them, forwarded byte for
// byte), separators with spaces, availability probes, any Content-Type for vendor sources, and the schema
// drift report (API, metrics, status page figures). Fixtures: test/fixtures/azion/README.md.

const TOKEN = 'drift-admin-token'
const AZION_KEY = 'azion-key-1'
const EMNIFY_TOKEN = 'emnify-token-1'
const azionAuth = { 'x-azion-key': AZION_KEY }
const SEPARATOR_MODEL =
  '{"time":"$time","request_uri":"$request_uri","http_user_agent":"$http_user_agent","upstream_status":"$upstream_status"}'
const CUSTOM_MODEL = '{"custom_template_field":"$custom_value", "status":"$status"}'
const ACTIVITY_MODEL =
  'v1\\t$time_iso8601\\t$clientid\\t$title\\t$comment\\t$type\\t$author_name\\t$author_email'

let gw: TestGateway

const azion = (sink: string, over: Record<string, unknown>): Record<string, unknown> => ({
  source: 'azion',
  auth: { headers: { 'X-Azion-Key': AZION_KEY } },
  validation: 'reject',
  sinks: [sink],
  ...over,
})

beforeAll(async () => {
  const sinks: Record<string, unknown> = {}
  for (const name of [
    't2',
    't3',
    't86',
    'custom',
    'pipe',
    'tabpipe',
    'semi',
    'activity',
    'ct',
    'emnify',
    'nd',
  ])
    sinks[name] = { type: 'file', dir: `{dir}/${name}` }
  gw = await startGateway({
    admin: { token: TOKEN },
    sinks,
    streams: {
      'azion-http': azion('t2', { template: 2 }),
      'azion-t3': azion('t3', { template: 3 }),
      'azion-86': azion('t86', { template: 86 }),
      'azion-custom': azion('custom', { templateModel: CUSTOM_MODEL, unknownFields: 'reject' }),
      'azion-pipe': azion('pipe', { templateModel: SEPARATOR_MODEL, logLineSeparator: ' | ' }),
      'azion-tabpipe': azion('tabpipe', { templateModel: SEPARATOR_MODEL, logLineSeparator: '\t|\t' }),
      'azion-semi': azion('semi', { templateModel: SEPARATOR_MODEL, logLineSeparator: '; ' }),
      'azion-activity': azion('activity', { templateModel: ACTIVITY_MODEL, logLineSeparator: ' | ' }),
      'azion-ct': azion('ct', { template: 2, contentTypes: ['application/json'] }),
      emnify: {
        source: 'emnify',
        recordType: 'event',
        validation: 'reject',
        auth: { headers: ['X-Emnify-Token:' + EMNIFY_TOKEN] },
        sinks: ['emnify'],
      },
      nd: { source: 'ndjson', sinks: ['nd'] },
      signed: {
        source: 'ndjson',
        auth: { hmac: { header: 'X-Signature', secret: 'k', prefix: 'sha256=' } },
        sinks: ['nd'],
      },
      fenced: { source: 'ndjson', auth: { allowCidrs: ['10.0.0.0/8'] }, sinks: ['nd'] },
    },
  })
})

afterAll(async () => {
  await gw?.close()
})

const api = (method: string, path: string, auth = true): Promise<Answer> =>
  send(`${gw.url}/api/v1${path}`, { method, headers: auth ? { authorization: `Bearer ${TOKEN}` } : {} })

const post = (
  stream: string,
  body: Buffer | string,
  headers: Record<string, string> = azionAuth,
): Promise<Answer> => send(`${gw.url}/ingest/${stream}`, { headers, body })

/** Every record the sink wrote, once `count` have arrived. */
const delivered = (sink: string, count: number): Promise<string[]> =>
  waitFor(
    () => {
      const lines = readNdjsonLines(`${gw.dir}/${sink}`)
      return lines.length >= count ? lines : undefined
    },
    10_000,
    `${count} records in ${sink}`,
  )

const linesOf = (name: string): string[] => fixture(name).toString('utf8').split('\n')

describe('records exactly as the documents show them are accepted and forwarded byte for byte', () => {
  it('templates 2 and 3 from Azion’s templates list, 86 in both documented shapes, the custom template', async () => {
    const cases: [string, string[], string, string][] = [
      ['azion-http', ['azion/template2-list.ndjson'], 't2', 'application/x-www-form-urlencoded'],
      ['azion-t3', ['azion/template3-list.ndjson'], 't3', 'text/plain'],
      ['azion-86', ['azion/functions-preset.ndjson', 'azion/template86-detail.ndjson'], 't86', ''],
      ['azion-custom', ['azion/custom-template.ndjson'], 'custom', 'application/json'],
    ]
    for (const [stream, files, sink, contentType] of cases) {
      const body = files.map((f) => fixture(f).toString('utf8')).join('\n')
      const headers = contentType ? { ...azionAuth, 'content-type': contentType } : azionAuth
      const res = await post(stream, body, headers)
      expect(res.status, `${stream}: ${res.text}`).toBe(200)
      const expected = files.flatMap(linesOf)
      expect(res.json()).toEqual({ accepted: expected.length, rejected: 0, filtered: 0, duplicates: 0 })
      expect(await delivered(sink, expected.length)).toEqual(expected)
    }
  })

  it('the documented emnify events, nulls included, with any Content-Type', async () => {
    const body = fixture('emnify/event-nulls.json')
    const res = await post('emnify', body, {
      'x-emnify-token': EMNIFY_TOKEN,
      'content-type': 'multipart/form-data; boundary=x',
    })
    expect(res.status, res.text).toBe(200)
    const records = JSON.parse(body.toString()) as unknown
    const count = Array.isArray(records) ? records.length : 1
    expect(res.json()).toMatchObject({ accepted: count, rejected: 0 })
  })

  it('separators with spaces split only between records, never inside a value', async () => {
    for (const [stream, file, sink] of [
      ['azion-pipe', 'azion/separator-pipe.txt', 'pipe'],
      ['azion-tabpipe', 'azion/separator-tab-pipe.txt', 'tabpipe'],
      ['azion-semi', 'azion/separator-semicolon.txt', 'semi'],
    ] as const) {
      const res = await post(stream, fixture(file))
      expect(res.status, res.text).toBe(200)
      expect(res.json()).toMatchObject({ accepted: 3, rejected: 0 })
      const records = await delivered(sink, 3)
      expect(records.map((r) => (JSON.parse(r) as { http_user_agent: string }).http_user_agent)).toEqual([
        'Mozilla/5.0 (X11; Linux x86_64)',
        'curl/8.5.0; probe | check',
        '-',
      ])
    }
    const activity = await post('azion-activity', fixture('azion/activity-history-pipe.txt'))
    expect(activity.json()).toMatchObject({ accepted: 2, rejected: 0 })
  })
})

describe('Content-Type', () => {
  it('vendor sources accept any; a stream that lists contentTypes still answers 415', async () => {
    const odd = { ...azionAuth, 'content-type': 'application/x-www-form-urlencoded' }
    expect((await post('azion-http', fixture('azion/template2-list.ndjson'), odd)).status).toBe(200)
    const refused = await post('azion-ct', fixture('azion/template2-list.ndjson'), odd)
    expect(refused.status).toBe(415)
    expect((await post('nd', '{}', { 'content-type': 'application/x-www-form-urlencoded' })).status).toBe(415)
  })
})

describe('availability probes: GET and HEAD on /ingest/<id>', () => {
  it('answer 200 with valid auth and store nothing; 401 without, as a POST would', async () => {
    const before = (await api('GET', '/streams/azion-t3')).json<{ figures: { received: number } }>().figures
    const get = await send(`${gw.url}/ingest/azion-t3`, { method: 'GET', headers: azionAuth })
    expect(get.status).toBe(200)
    expect(get.json()).toEqual({ available: true })
    const head = await send(`${gw.url}/ingest/azion-t3`, { method: 'HEAD', headers: azionAuth })
    expect(head.status).toBe(200)
    expect(head.text).toBe('')
    for (const method of ['GET', 'HEAD']) {
      const none = await send(`${gw.url}/ingest/azion-t3`, { method })
      expect(none.status).toBe(401)
      const wrong = await send(`${gw.url}/ingest/azion-t3`, { method, headers: { 'x-azion-key': 'nope' } })
      expect(wrong.status).toBe(401)
    }
    const after = (await api('GET', '/streams/azion-t3')).json<{ figures: { received: number } }>().figures
    expect(after).toEqual(before)
    expect((await send(`${gw.url}/ingest/nope`, { method: 'GET' })).status).toBe(404)
  })

  it('run the source-address check (403) and, with HMAC, want the signature of the empty body', async () => {
    expect((await send(`${gw.url}/ingest/fenced`, { method: 'GET' })).status).toBe(403)
    expect((await send(`${gw.url}/ingest/signed`, { method: 'GET' })).status).toBe(401)
    const empty = `sha256=${createHmac('sha256', 'k').update('').digest('hex')}`
    expect(
      (await send(`${gw.url}/ingest/signed`, { method: 'GET', headers: { 'x-signature': empty } })).status,
    ).toBe(200)
  })

  it('other methods stay 405, with GET and HEAD in Allow', async () => {
    const res = await send(`${gw.url}/ingest/azion-t3`, { method: 'DELETE', headers: azionAuth })
    expect(res.status).toBe(405)
    expect(res.headers.allow).toBe('POST, GET, HEAD')
  })
})

describe('schema drift report', () => {
  it('counts unknown and missing fields per stream: API, metrics and the stream view', async () => {
    const res = await post('azion-http', fixture('azion/template2-extra-fields.ndjson'))
    expect(res.json()).toMatchObject({ accepted: 3, rejected: 0 })
    const report = (await api('GET', '/streams/azion-http/drift')).json<{
      stream: string
      tracking: boolean
      known: { source: string; fields: string[] }
      fields: {
        pointer: string
        kind: string
        records: number
        firstSeen: string
        lastSeen: string
        example?: string
      }[]
      unknownRecords: number
      missingRecords: number
    }>()
    expect(report).toMatchObject({
      stream: 'azion-http',
      tracking: true,
      unknownRecords: 2,
      missingRecords: 1,
    })
    expect(report.known.fields).toEqual(['/version', '/time', '/client', '/configuration', '/host'])
    expect(report.fields.map((f) => [f.pointer, f.kind, f.records]).sort()).toEqual([
      ['/request_uri', 'unknown', 2],
      ['/status', 'unknown', 2],
      ['/upstream_status', 'unknown', 2],
      ['/version', 'missing', 1],
    ])
    const status = report.fields.find((f) => f.pointer === '/status')!
    expect(status.example).toBe('"200"')
    expect(Date.parse(status.lastSeen)).toBeGreaterThanOrEqual(Date.parse(status.firstSeen))

    const metrics = (await send(`${gw.url}/metrics`, { method: 'GET' })).text
    expect(metrics).toMatch(/streamgate_schema_drift_records_total\{stream="azion-http",kind="unknown"\} 2\n/)
    expect(metrics).toMatch(/streamgate_schema_drift_records_total\{stream="azion-http",kind="missing"\} 1\n/)
    expect(metrics).not.toMatch(/streamgate_schema_drift_records_total\{[^}]*upstream_status/)

    const view = (await api('GET', '/streams/azion-http')).json<{ drift: unknown }>()
    expect(view.drift).toEqual({
      tracking: true,
      unknownFields: 3,
      missingFields: 1,
      unknownRecords: 2,
      missingRecords: 1,
    })
  })

  it('reset clears the report; unknown streams 404; the token is required; other methods 405', async () => {
    await post('azion-http', fixture('azion/template2-extra-fields.ndjson'))
    const cleared = await api('POST', '/streams/azion-http/drift/reset')
    expect(cleared.status).toBe(200)
    expect(cleared.json()).toMatchObject({ observedRecords: 0, unknownRecords: 0, fields: [] })
    expect((await api('GET', '/streams/azion-http/drift')).json()).toMatchObject({ fields: [] })
    expect((await api('GET', '/streams/nope/drift')).status).toBe(404)
    expect((await api('GET', '/streams/azion-http/drift', false)).status).toBe(401)
    expect((await api('POST', '/streams/azion-http/drift/reset', false)).status).toBe(401)
    const wrong = await api('DELETE', '/streams/azion-http/drift')
    expect(wrong.status).toBe(405)
    expect(wrong.headers.allow).toBe('GET')
  })

  it('unknownFields: reject refuses what the user’s templateModel does not declare (422 naming the field)', async () => {
    const res = await post(
      'azion-custom',
      '{"custom_template_field":"x", "status":"200", "region":"sa-east"}',
    )
    expect(res.status).toBe(422)
    expect(res.json<{ errors: unknown[] }>().errors).toEqual([
      { index: 0, pointer: '/region', message: expect.stringContaining('unknownFields: reject') as string },
    ])
    const report = (await api('GET', '/streams/azion-custom/drift')).json<{ fields: { pointer: string }[] }>()
    expect(report.fields.map((f) => f.pointer)).toEqual(['/region'])
  })

  it('a stream with nothing to compare with says so', async () => {
    const report = (await api('GET', '/streams/nd/drift')).json()
    expect(report).toMatchObject({ tracking: false, fields: [] })
    expect((await api('GET', '/streams/azion-activity/drift')).json()).toMatchObject({ tracking: false })
  })
})

describe('templates lookup', () => {
  it('shows each preset’s documented models and which are abbreviated', async () => {
    const list = (await api('GET', '/templates', false)).json<{
      results: {
        id: number
        abbreviated: boolean
        documented: boolean
        documented_models: { template_model: string; source: string; abbreviated: boolean }[]
      }[]
    }>()
    expect(list.results.map((t) => [t.id, t.documented, t.abbreviated, t.documented_models.length])).toEqual([
      [2, true, true, 1],
      [3, true, true, 1],
      [4, false, false, 0],
      [86, true, false, 2],
      [184, false, false, 0],
      [251, false, false, 0],
    ])
    const t3 = (await api('GET', '/templates/3', false)).json<{
      results: { name: string; template_model: string }
    }>()
    expect(t3.results.name).toBe('Test Applications EC')
    expect(t3.results.template_model).toContain('"proxy_status": "$proxy_status"')
  })
})
