import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { startGateway, waitFor, type TestGateway } from '../support/gateway.js'
import { send } from '../support/http.js'
import { FlowServiceFake } from '../support/mocks/adobe-flow-service.js'
import { AdobeInletMock } from '../support/mocks/adobe-inlet.js'
import { EmnifyApiFake } from '../support/mocks/emnify-api.js'

// The connect operations of the management API (SPEC §7: POST /streams/{id}/connect, POST
// /sinks/{name}/connect, …) on a real gateway over loopback, against the vendor fakes. Vendor tokens and
// API bases come from the gateway's environment (this test file's process).

const ADMIN = 'connect-api-admin-token'
const EMNIFY_TOKEN = 'jwt-for-connect-api'
const ORG = 'ORG@AdobeOrg'
const API_KEY = 'aep-api-key'
const auth = { authorization: `Bearer ${ADMIN}` }

let emnify: EmnifyApiFake
let flow: FlowServiceFake
let inlet: AdobeInletMock
let gw: TestGateway | undefined

beforeAll(async () => {
  emnify = await EmnifyApiFake.start({ token: EMNIFY_TOKEN })
  inlet = await AdobeInletMock.start({ imsOrgId: ORG })
  flow = await FlowServiceFake.start({
    apiKey: API_KEY,
    imsOrgId: ORG,
    inletBase: inlet.url,
    inletId: inlet.inletId,
  })
  process.env.EMNIFY_API_URL = emnify.url
  process.env.EMNIFY_API_TOKEN = EMNIFY_TOKEN
  process.env.ADOBE_PLATFORM_URL = flow.url
  process.env.ADOBE_ACCESS_TOKEN = flow.issueToken()
})
afterAll(async () => {
  await Promise.all([emnify.close(), flow.close(), inlet.close()])
})
afterEach(async () => {
  await gw?.close()
  gw = undefined
})

const config = {
  admin: { token: ADMIN },
  server: { publicUrl: 'https://gw.example' },
  sinks: {
    out: { type: 'file', dir: '{dir}/out' },
    aep: {
      type: 'adobe',
      mode: 'batch',
      schemaRef: 'https://ns.adobe.com/t/schemas/s',
      imsOrgId: ORG,
      apiKey: API_KEY,
      retry: { initialMs: 20, maxMs: 100, maxAttempts: 2 },
    },
  },
  streams: {
    events: {
      source: 'emnify',
      auth: { headers: { 'X-Emnify-Token': 'shared-secret-123' } },
      sinks: ['out'],
    },
    raw: { source: 'ndjson', sinks: ['aep'] },
  },
}

function post(path: string, body?: unknown, headers: Record<string, string> = auth): ReturnType<typeof send> {
  return send(`${gw!.url}/api/v1${path}`, {
    method: 'POST',
    headers: body === undefined ? headers : { ...headers, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  })
}

describe('POST /api/v1/sinks/{name}/connect (adobe)', () => {
  it('a sink without inletUrl holds its records as not connected; connect writes inletUrl and they flow', async () => {
    gw = await startGateway(config)
    const ingest = await send(`${gw.url}/ingest/raw`, {
      headers: { 'content-type': 'application/x-ndjson' },
      body: '{"id":1}\n{"id":2}\n',
    })
    expect(ingest.status).toBe(200)
    // The sink says what to run; the records wait in the spool (retried, never dead-lettered).
    const held = await waitFor(
      async () => {
        const v = (await send(`${gw!.url}/api/v1/sinks/aep`, { method: 'GET', headers: auth })).json<{
          lastError: { message: string; reason: string } | null
          figures: { lag: number }
        }>()
        return v.lastError ? v : undefined
      },
      10_000,
      'the not-connected error',
    )
    expect(held.lastError).toMatchObject({
      message: 'not connected: run streamgate connect adobe aep',
      reason: 'not-connected',
    })
    expect(held.figures.lag).toBe(2)
    const stream = (await send(`${gw.url}/api/v1/streams/raw`, { method: 'GET', headers: auth })).json<{
      delivery: { sink: string; lastError: { message: string } | null }[]
    }>()
    expect(stream.delivery.find((d) => d.sink === 'aep')!.lastError!.message).toContain('not connected')

    const res = await post('/sinks/aep/connect')
    expect(res.status).toBe(200)
    const report = res.json<{ action: string; config: { inletUrl: string }; vendorId: string }>()
    expect(report).toMatchObject({ action: 'created', config: { inletUrl: inlet.inletUrl } })
    // Applied at once: the held records reach the inlet.
    await waitFor(() => inlet.accepted.length >= 2 || undefined, 15_000, 'records at the inlet')
    const sink = (await send(`${gw.url}/api/v1/sinks/aep`, { method: 'GET', headers: auth })).json<{
      inletUrl: string
    }>()
    expect(sink.inletUrl).toBe(inlet.inletUrl)
    // Persisted in the management API's state, and the connection id in the ledger beside it.
    const state = JSON.parse(readFileSync(join(gw.dir, 'api-state.json'), 'utf8')) as {
      sinks: { aep: { definition: { inletUrl: string } } }
    }
    expect(state.sinks.aep.definition.inletUrl).toBe(inlet.inletUrl)
    const ledger = JSON.parse(readFileSync(join(gw.dir, 'connections', 'adobe.sink.aep.json'), 'utf8')) as {
      vendorId: string
    }
    expect(ledger.vendorId).toBe(report.vendorId)

    // Idempotent, and a dry run of disconnect changes nothing.
    expect((await post('/sinks/aep/connect')).json<{ action: string }>().action).toBe('unchanged')
    const dry = await post('/sinks/aep/disconnect', { dryRun: true })
    expect(dry.json<{ action: string; dryRun: boolean }>()).toMatchObject({ action: 'deleted', dryRun: true })
    expect(gw.gateway.config.sinks.aep).toHaveProperty('inletUrl')
    const off = await post('/sinks/aep/disconnect')
    expect(off.status).toBe(200)
    expect(gw.gateway.config.sinks.aep).not.toHaveProperty('inletUrl')
  })

  it('two connects of one sink at once make one connection at Adobe', async () => {
    gw = await startGateway(config)
    const before = flow.connections.size
    const answers = await Promise.all([post('/sinks/aep/connect'), post('/sinks/aep/connect')])
    expect(answers.map((a) => a.status)).toEqual([200, 200])
    expect(answers.map((a) => a.json<{ action: string }>().action).sort()).toEqual(['created', 'unchanged'])
    expect(flow.connections.size).toBe(before + 1)
  })

  it('a sink of another type is 400; an unknown sink 404; a body with unknown keys 400', async () => {
    gw = await startGateway(config)
    expect((await post('/sinks/out/connect')).status).toBe(400)
    expect((await post('/sinks/nope/connect')).status).toBe(404)
    const bad = await post('/sinks/aep/connect', { dryRun: 'yes', extra: 1 })
    expect(bad.status).toBe(400)
    expect(
      bad
        .json<{ errors: { pointer: string }[] }>()
        .errors.map((e) => e.pointer)
        .sort(),
    ).toEqual(['/dryRun', '/extra'])
  })
})

describe('POST /api/v1/streams/{id}/connect (emnify)', () => {
  it('creates, finds again, lists and deletes the data stream; dry run sends nothing', async () => {
    gw = await startGateway(config)
    const dry = await post('/streams/events/connect', { dryRun: true })
    expect(dry.status).toBe(200)
    const plan = dry.json<{ requests: { method: string; sent: boolean; body?: unknown }[] }>()
    expect(plan.requests.map((r) => [r.method, r.sent])).toEqual([
      ['GET', true],
      ['POST', false],
    ])
    expect(dry.text).not.toContain('shared-secret-123')
    expect(emnify.streams.size).toBe(0)

    const made = await post('/streams/events/connect')
    expect(made.json()).toMatchObject({ action: 'created', vendor: 'emnify', kind: 'stream', name: 'events' })
    const [stream] = [...emnify.streams.values()]
    expect(stream!.destination.credentials).toMatchObject({
      url: 'https://gw.example/ingest/events',
      headers: ['X-Emnify-Token:shared-secret-123'],
    })
    expect((await post('/streams/events/connect')).json<{ action: string }>().action).toBe('unchanged')

    const listing = await send(`${gw.url}/api/v1/connections?vendor=emnify`, { method: 'GET', headers: auth })
    expect(listing.status).toBe(200)
    expect(listing.json()).toEqual({
      rows: [expect.objectContaining({ name: 'events', matches: true, headers: ['X-Emnify-Token'] })],
      skipped: [],
    })
    expect(listing.text).not.toContain('shared-secret-123')

    expect((await post('/streams/events/disconnect')).json<{ action: string }>().action).toBe('deleted')
    expect(emnify.streams.size).toBe(0)
  })

  it("the vendor's refusal is a 502 problem naming the call, status, message and what to do", async () => {
    gw = await startGateway(config)
    emnify.failNext({ method: 'GET', status: 403, body: { message: 'role may not manage integrations' } })
    const res = await post('/streams/events/connect')
    expect(res.status).toBe(502)
    expect(res.headers['content-type']).toMatch(/application\/problem\+json/)
    expect(res.json()).toMatchObject({
      type: 'https://streamgate.dev/problems/vendor-error',
      vendor: 'emnify',
      call: 'GET /api/v2/data_stream',
      vendorStatus: 403,
      vendorMessage: 'role may not manage integrations',
      hint: expect.stringContaining('lack a permission') as unknown,
    })
  })

  it('422 when the gateway has no token for the vendor; 400 for a stream of another source; 401 without the admin token', async () => {
    gw = await startGateway(config)
    const saved = process.env.EMNIFY_API_TOKEN
    delete process.env.EMNIFY_API_TOKEN
    try {
      const res = await post('/streams/events/connect')
      expect(res.status).toBe(422)
      expect(res.json<{ detail: string }>().detail).toContain('EMNIFY_API_TOKEN is not set')
    } finally {
      process.env.EMNIFY_API_TOKEN = saved
    }
    expect((await post('/streams/raw/connect')).status).toBe(400)
    expect((await post('/streams/events/connect', undefined, {})).status).toBe(401)
    expect((await send(`${gw.url}/api/v1/connections`, { method: 'GET' })).status).toBe(401)
    const wrong = await send(`${gw.url}/api/v1/streams/events/connect`, { method: 'GET', headers: auth })
    expect(wrong.status).toBe(405)
    expect(wrong.headers.allow).toBe('POST')
  })

  it('the OpenAPI document lists the connect operations', async () => {
    gw = await startGateway(config)
    const doc = (await send(`${gw.url}/api/v1/openapi.json`, { method: 'GET' })).json<{
      paths: Record<string, Record<string, unknown>>
      components: { schemas: Record<string, unknown> }
    }>()
    for (const path of [
      '/api/v1/streams/{id}/connect',
      '/api/v1/streams/{id}/disconnect',
      '/api/v1/sinks/{name}/connect',
      '/api/v1/sinks/{name}/disconnect',
    ])
      expect(doc.paths[path]).toHaveProperty('post')
    expect(doc.paths['/api/v1/connections']).toHaveProperty('get')
    expect(doc.components.schemas).toHaveProperty('ConnectReport')
  })
})
