import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { testConnect, type TestConnect } from '../../test/support/connect-context.js'
import { DomoApiMock } from '../../test/support/mocks/domo-api.js'
import { connectDomo, disconnectDomo, listDomo } from './domo.js'
import { ConnectProblem, VendorError } from './vendor-http.js'

// Against the Domo Streams mock (test/support/mocks/domo-api.ts: the public API and vendor-docs/002's
// instance API), through the Domo sink's own API code.

const CLIENT = 'domo-client'
const SECRET = 'domo-client-secret'
const DEV_TOKEN = 'domo-developer-token'
let domo: DomoApiMock
let t: TestConnect

function sinkDoc(sink: Record<string, unknown>): Record<string, unknown> {
  return {
    sinks: {
      bi: {
        type: 'domo',
        columns: ['id', 'sim.iccid'],
        clientId: CLIENT,
        clientSecret: SECRET,
        apiBase: domo.url,
        tokenUrl: domo.tokenUrl,
        ...sink,
      },
    },
    streams: {},
  }
}

beforeEach(async () => {
  domo = await DomoApiMock.start({
    clientId: CLIENT,
    clientSecret: SECRET,
    developerToken: DEV_TOKEN,
    streams: { 42: { columns: 2, name: 'Leonhard Euler Party' } },
  })
  t = testConnect(sinkDoc({}), {})
})
afterEach(async () => {
  await domo.close()
  t.cleanup()
})

const streamCalls = (): string[] =>
  domo.requests.filter((r) => !r.path.startsWith('/oauth')).map((r) => `${r.method} ${r.path} ${r.status}`)

describe('connect domo', () => {
  it('creates the stream with a schema from the sink columns when the search finds none, and writes streamId', async () => {
    const report = await connectDomo(t.ctx(), 'bi')
    expect(report).toMatchObject({ action: 'created', vendorId: '1000', config: { streamId: 1000 } })
    expect(streamCalls()).toEqual([
      'GET /v1/streams/search?q=dataSource.name%3Abi&fields=all 200',
      'POST /v1/streams 201',
    ])
    const create = domo.requests.find((r) => r.method === 'POST' && r.path === '/v1/streams')!
    expect(create.headers.authorization).toMatch(/^bearer /)
    expect(JSON.parse(create.raw.toString())).toEqual({
      dataSet: {
        name: 'bi',
        description: '',
        schema: {
          columns: [
            { type: 'STRING', name: 'id' },
            { type: 'STRING', name: 'sim.iccid' },
          ],
        },
      },
      updateMethod: 'APPEND',
    })
    expect(t.patches).toEqual([{ name: 'bi', patch: { streamId: 1000 } }])
    expect(await t.ledger.get('domo', 'sink', 'bi')).toMatchObject({ vendorId: '1000', created: true })
  })

  it('finds the stream of create.name by search, pins it as streamId and drops create', async () => {
    t = testConnect(
      sinkDoc({
        create: { name: 'Leonhard Euler Party', columns: ['Friend', { name: 'Attending', type: 'LONG' }] },
      }),
      {},
    )
    const report = await connectDomo(t.ctx(), 'bi')
    expect(report).toMatchObject({ action: 'updated', vendorId: '42' })
    expect(domo.requests.filter((r) => r.method !== 'GET')).toEqual([])
    expect(t.patches).toEqual([{ name: 'bi', patch: { streamId: 42, create: null } }])
    expect(await t.ledger.get('domo', 'sink', 'bi')).toMatchObject({ created: false })
  })

  it('is idempotent: with streamId set, one read and nothing else', async () => {
    await connectDomo(t.ctx(), 'bi')
    domo.requests.length = 0
    const again = await connectDomo(t.ctx(), 'bi')
    expect(again.action).toBe('unchanged')
    expect(streamCalls()).toEqual(['GET /v1/streams/1000 200'])
    expect(t.patches).toHaveLength(1)
  })

  it('the instance API: create with the 002 body, then its schemaDefinition', async () => {
    t = testConnect(
      sinkDoc({
        api: 'instance',
        clientId: undefined,
        clientSecret: undefined,
        instanceUrl: domo.url,
        developerToken: DEV_TOKEN,
      }),
      {},
    )
    const report = await connectDomo(t.ctx(), 'bi')
    expect(report.vendorId).toBe('1000')
    expect(streamCalls()).toEqual([
      'GET /api/data/v1/streams/search?q=dataSource.name%3Abi 200',
      'POST /api/data/v1/streams 201',
      'PUT /api/data/v1/streams/1000 200',
    ])
    expect(domo.requests[1]!.headers['x-domo-developer-token']).toBe(DEV_TOKEN)
    expect(domo.stream(1000)!.columns).toEqual([
      { type: 'STRING', name: 'id' },
      { type: 'STRING', name: 'sim.iccid' },
    ])
    expect(report.requests[1]!.headers['x-domo-developer-token']).toBe('***')
  })

  it('two streams with the dataset name: ambiguous, nothing created', async () => {
    await domo.close()
    domo = await DomoApiMock.start({
      clientId: CLIENT,
      clientSecret: SECRET,
      streams: { 7: { columns: 2, name: 'Twice' }, 8: { columns: 2, name: 'Twice' } },
    })
    t = testConnect(sinkDoc({ create: { name: 'Twice' } }), {})
    const err = await connectDomo(t.ctx(), 'bi').catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ConnectProblem)
    expect((err as ConnectProblem).message).toMatch(
      /2 Domo streams have a dataset named "Twice" \(ids 7, 8\)/,
    )
    expect(domo.requests.filter((r) => r.method !== 'GET')).toEqual([])
    expect(t.patches).toEqual([])
  })

  it('--dry-run: token and search are sent, the create is shown, nothing written', async () => {
    const report = await connectDomo(t.ctx({ dryRun: true }), 'bi')
    expect(report).toMatchObject({ action: 'created', dryRun: true })
    expect(streamCalls()).toEqual(['GET /v1/streams/search?q=dataSource.name%3Abi&fields=all 200'])
    expect(report.requests.map((r) => [r.method, r.sent])).toEqual([
      ['GET', true],
      ['GET', true],
      ['POST', false],
    ])
    expect(report.requests[0]!.url).toBe(`${domo.url}/oauth/token?grant_type=client_credentials&scope=data`)
    expect(report.requests[0]!.headers.authorization).toBe('Basic ***')
    expect(domo.requests[0]!.path).toBe('/oauth/token?grant_type=client_credentials&scope=data')
    expect(report.requests[1]!.headers.authorization).toBe('bearer ***')
    expect(t.patches).toEqual([])
    expect(JSON.stringify(report)).not.toContain(SECRET)
  })
})

describe('Domo errors are made plain', () => {
  it('401 from the token endpoint: the client credentials', async () => {
    t = testConnect(sinkDoc({ clientSecret: 'not-the-secret' }), {})
    const err = (await connectDomo(t.ctx(), 'bi').catch((e: unknown) => e)) as VendorError
    expect(err).toBeInstanceOf(VendorError)
    expect(err.call).toBe('token request GET /oauth/token')
    expect(err.hint).toContain('check sinks.bi.clientId and sinks.bi.clientSecret')
    expect(err.message).not.toContain('not-the-secret')
  })

  for (const [status, hint] of [
    [403, 'lack a permission'],
    [404, 'sinks.bi.apiBase does not point'],
    [409, 'streamgate connections domo'],
    [422, 'fix the config'],
    [500, 'run again later'],
  ] as const)
    it(`${status} on the create`, async () => {
      domo.failNextApiCall(status, 'POST')
      const err = (await connectDomo(t.ctx(), 'bi').catch((e: unknown) => e)) as VendorError
      expect(err).toMatchObject({ vendor: 'domo', status, call: 'POST /v1/streams' })
      expect(err.message).toContain(`injected failure ${status}`)
      expect(err.hint).toContain(hint)
      expect(t.patches).toEqual([])
    })
})

describe('list and disconnect', () => {
  it('lists each domo sink and its stream', async () => {
    expect(await listDomo(t.ctx())).toEqual([
      {
        vendor: 'domo',
        kind: 'sink',
        name: 'bi',
        matches: false,
        differences: [],
        detail: 'not connected: run streamgate connect domo bi',
      },
    ])
    await connectDomo(t.ctx(), 'bi')
    expect(await listDomo(t.ctx())).toEqual([
      {
        vendor: 'domo',
        kind: 'sink',
        name: 'bi',
        vendorId: '1000',
        status: 'APPEND',
        matches: true,
        differences: [],
        detail: 'dataset "bi"',
      },
    ])
  })

  it('disconnect deletes a stream connect created and removes streamId', async () => {
    await connectDomo(t.ctx(), 'bi')
    const report = await disconnectDomo(t.ctx(), 'bi')
    expect(report).toMatchObject({ action: 'deleted', vendorId: '1000', config: { streamId: null } })
    expect(streamCalls().at(-1)).toBe('DELETE /v1/streams/1000 204')
    expect(domo.stream(1000)).toBeUndefined()
    expect(t.config.sinks.bi).not.toHaveProperty('streamId')
    expect((await disconnectDomo(t.ctx(), 'bi')).action).toBe('absent')
  })

  it('a stream connect only found stays at Domo', async () => {
    t = testConnect(sinkDoc({ create: { name: 'Leonhard Euler Party' } }), {})
    await connectDomo(t.ctx(), 'bi')
    const report = await disconnectDomo(t.ctx(), 'bi')
    expect(report).toMatchObject({ action: 'deleted', config: { streamId: null } })
    expect(report.notes.join()).toContain('was not made by streamgate connect: it stays at Domo')
    expect(domo.requests.some((r) => r.method === 'DELETE')).toBe(false)
    expect(domo.stream(42)).toBeDefined()
  })
})
