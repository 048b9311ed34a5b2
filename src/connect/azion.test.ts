import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { testConnect, type TestConnect } from '../../test/support/connect-context.js'
import { AzionApiFake } from '../../test/support/mocks/azion-api.js'
import { azionDiff, azionPlan, connectAzion, disconnectAzion, listAzion, readStreaming } from './azion.js'
import { VendorError } from './vendor-http.js'

// Against the Azion Data Streaming API v3 fake (test/support/mocks/azion-api.ts), built from vendor-docs/001.

const TOKEN = '583f8a9ca8d6d5ff2cb50f1d3c4d35cb8939f1bf'
const KEY = 'azion-shared-key'
let api: AzionApiFake
let t: TestConnect

const doc = (overrides: Record<string, unknown> = {}): Record<string, unknown> => ({
  sinks: { out: { type: 'stdout' } },
  streams: {
    'azion-http': {
      source: 'azion',
      template: 2,
      domainIds: [1616535973],
      auth: { headers: { 'X-Azion-Key': KEY } },
      sinks: ['out'],
      ...overrides,
    },
  },
})

beforeEach(async () => {
  api = await AzionApiFake.start({ token: TOKEN })
  t = testConnect(doc(), { AZION_API_URL: api.url, AZION_API_TOKEN: TOKEN })
})
afterEach(async () => {
  await api.close()
  t.cleanup()
})

describe('connect azion', () => {
  it('creates the streaming as documented: Accept version=3, Token auth, template, data source, domains, standard endpoint', async () => {
    const report = await connectAzion(t.ctx(), 'azion-http')
    expect(report).toMatchObject({ action: 'created', vendorId: '56' })
    const [list, create] = api.calls
    expect(list).toMatchObject({ method: 'GET', path: '/data_streaming/streamings', status: 200 })
    expect(create).toMatchObject({ method: 'POST', path: '/data_streaming/streamings', status: 201 })
    expect(create!.headers.accept).toBe('application/json; version=3')
    expect(create!.headers.authorization).toBe(`Token ${TOKEN}`)
    expect(create!.headers['content-type']).toBe('application/json')
    expect(create!.body).toEqual({
      name: 'streamgate-azion-http',
      template_id: 2,
      data_source: 'http',
      domain_ids: [1616535973],
      endpoint: {
        endpoint_type: 'standard',
        url: 'https://gw.example/ingest/azion-http',
        payload_format: '$dataset',
        log_line_separator: '\n',
        headers: { 'X-Azion-Key': KEY },
      },
    })
    expect(JSON.stringify(report)).not.toContain(KEY)
  })

  it('a custom templateModel goes as template_model; the data source defaults from a built-in template', async () => {
    t = testConnect(
      doc({
        template: undefined,
        templateModel: '{"time":"$time","status":"$status"}',
        payloadFormat: '[$dataset]',
        logLineSeparator: ',',
      }),
      t.env,
    )
    await connectAzion(t.ctx(), 'azion-http')
    expect(api.calls[1]!.body).toMatchObject({
      template_model: '{"time":"$time","status":"$status"}',
      data_source: 'http',
      endpoint: { payload_format: '[$dataset]', log_line_separator: ',' },
    })
    expect(api.calls[1]!.body).not.toHaveProperty('template_id')
    t = testConnect(doc({ template: 4 }), t.env)
    await connectAzion(t.ctx(), 'azion-http').catch(() => undefined)
    expect(api.calls.at(-1)!.body).toMatchObject({ template_id: 4, data_source: 'waf' })
  })

  it('is idempotent: found again by name, nothing changed', async () => {
    await connectAzion(t.ctx(), 'azion-http')
    const before = api.calls.length
    const again = await connectAzion(t.ctx(), 'azion-http')
    expect(again).toMatchObject({ action: 'unchanged', vendorId: '56' })
    expect(api.calls.slice(before).map((c) => c.method)).toEqual(['GET'])
  })

  it('a changed header value (shown in clear by Azion) is PATCHed with the whole endpoint', async () => {
    await connectAzion(t.ctx(), 'azion-http')
    t.config.streams['azion-http']!.auth.headers = { 'X-Azion-Key': 'rotated' }
    const before = api.calls.length
    const report = await connectAzion(t.ctx(), 'azion-http')
    expect(report).toMatchObject({ action: 'updated', changes: ['endpoint.headers'] })
    expect(api.calls[before + 1]).toMatchObject({
      method: 'PATCH',
      path: '/data_streaming/streamings/56',
      status: 200,
    })
    expect(api.calls[before + 1]!.body).toEqual({
      endpoint: {
        endpoint_type: 'standard',
        url: 'https://gw.example/ingest/azion-http',
        payload_format: '$dataset',
        log_line_separator: '\n',
        headers: { 'X-Azion-Key': 'rotated' },
      },
    })
    expect(api.streamings.get(56)!.endpoint.headers).toEqual({ 'X-Azion-Key': 'rotated' })
  })

  it('with masked header values, the fingerprint decides', async () => {
    await api.close()
    api = await AzionApiFake.start({ token: TOKEN, maskHeaders: true })
    t.env.AZION_API_URL = api.url
    await connectAzion(t.ctx(), 'azion-http')
    expect((await connectAzion(t.ctx(), 'azion-http')).action).toBe('unchanged')
    t.config.streams['azion-http']!.auth.headers = { 'X-Azion-Key': 'rotated' }
    expect((await connectAzion(t.ctx(), 'azion-http')).changes).toEqual(['endpoint.headers'])
  })

  it('domain ids and the data source are PATCHed alone when they change', async () => {
    await connectAzion(t.ctx(), 'azion-http')
    t.config.streams['azion-http']!.domainIds = [1616535973, 1629290002]
    t.config.streams['azion-http']!.dataSource = 'waf'
    const before = api.calls.length
    await connectAzion(t.ctx(), 'azion-http')
    expect(api.calls[before + 1]!.body).toEqual({ data_source: 'waf', domain_ids: [1616535973, 1629290002] })
  })

  it('--dry-run: only the list is sent; the planned create is shown with the header value masked', async () => {
    const report = await connectAzion(t.ctx({ dryRun: true }), 'azion-http')
    expect(api.calls.map((c) => c.method)).toEqual(['GET'])
    expect(report.requests[1]).toMatchObject({
      method: 'POST',
      sent: false,
      headers: { accept: 'application/json; version=3', authorization: 'Token ***' },
      body: { endpoint: { headers: { 'X-Azion-Key': '***' } } },
    })
  })

  it('needs domainIds, POST and at most 5 headers, and no HMAC', async () => {
    delete t.config.streams['azion-http']!.domainIds
    await expect(connectAzion(t.ctx(), 'azion-http')).rejects.toThrow(
      /streams\.azion-http\.domainIds: set the ids/,
    )
    t.config.streams['azion-http']!.domainIds = [1]
    t.config.streams['azion-http']!.method = 'PUT'
    await expect(connectAzion(t.ctx(), 'azion-http')).rejects.toThrow(/Azion sends POST/)
    expect(api.calls).toEqual([])
  })
})

describe('Azion errors are made plain', () => {
  const cases: [number, string][] = [
    [401, 'check AZION_API_TOKEN'],
    [403, 'Edit Data Streaming'],
    [404, 'AZION_API_URL does not point at its API'],
    [409, 'streamgate connections azion'],
    [422, 'fix the config'],
    [500, 'run again later'],
    [502, 'run again later'],
  ]
  for (const [status, hint] of cases)
    it(`${status}`, async () => {
      api.failNext({ method: 'POST', status, body: { detail: `azion says ${status}` } })
      const err = (await connectAzion(t.ctx(), 'azion-http').catch((e: unknown) => e)) as VendorError
      expect(err).toBeInstanceOf(VendorError)
      expect(err).toMatchObject({ vendor: 'azion', call: 'POST /data_streaming/streamings', status })
      expect(err.message).toContain(`Azion POST /data_streaming/streamings answered ${status}`)
      expect(err.message).toContain(`azion says ${status}`)
      expect(err.hint).toContain(hint)
    })

  it("Azion's own 400 for a body it refuses names the field", async () => {
    t.config.streams['azion-http']!.dataSource = 'waf'
    api.failNext({ method: 'POST', status: 400, body: { domain_ids: ['Domain 1616535973 does not exist.'] } })
    const err = (await connectAzion(t.ctx(), 'azion-http').catch((e: unknown) => e)) as VendorError
    expect(err.status).toBe(400)
    expect(err.message).toContain('Domain 1616535973 does not exist.')
    expect(err.hint).toContain('fix the config')
  })
})

describe('list and delete', () => {
  it('lists the streaming with its state and header names; a difference shows', async () => {
    await connectAzion(t.ctx(), 'azion-http')
    expect(await listAzion(t.ctx())).toEqual([
      {
        vendor: 'azion',
        kind: 'stream',
        name: 'azion-http',
        vendorId: '56',
        status: 'active',
        url: 'https://gw.example/ingest/azion-http',
        headers: ['X-Azion-Key'],
        matches: true,
        differences: [],
      },
    ])
    t.config.streams['azion-http']!.payloadFormat = '[$dataset]'
    expect((await listAzion(t.ctx()))[0]).toMatchObject({
      matches: false,
      differences: ['endpoint.payload_format'],
    })
  })

  it('disconnect deletes it (204); then there is nothing to delete', async () => {
    await connectAzion(t.ctx(), 'azion-http')
    expect(await disconnectAzion(t.ctx(), 'azion-http')).toMatchObject({ action: 'deleted', vendorId: '56' })
    expect(api.calls.at(-1)).toMatchObject({
      method: 'DELETE',
      path: '/data_streaming/streamings/56',
      status: 204,
    })
    expect(api.streamings.size).toBe(0)
    expect((await disconnectAzion(t.ctx(), 'azion-http')).action).toBe('absent')
  })
})

describe('comparing what an answer shows', () => {
  it("fields an answer leaves out (001's detail example has no template_id) are not sent again for it", async () => {
    const plan = azionPlan('azion-http', t.config.streams['azion-http']!, 'https://gw.example')
    const shown = readStreaming({
      id: 15,
      name: 'streamgate-azion-http',
      active: true,
      endpoint: {
        endpoint_type: 'standard',
        url: 'https://gw.example/ingest/azion-http',
        headers: { 'X-Azion-Key': KEY },
      },
    })!
    expect(azionDiff(plan, shown, undefined).changes).toEqual([])
    const moved = readStreaming({
      ...shown,
      id: 15,
      endpoint: {
        endpoint_type: 'standard',
        url: 'https://x.example/ingest/azion-http',
        headers: { 'X-Azion-Key': KEY },
      },
    })!
    expect(azionDiff(plan, moved, undefined).changes).toEqual(['endpoint.url'])
    expect(await t.ledger.all()).toEqual([])
  })
})
