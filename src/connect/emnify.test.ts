import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { testConnect, type TestConnect } from '../../test/support/connect-context.js'
import { EmnifyApiFake } from '../../test/support/mocks/emnify-api.js'
import {
  connectEmnify,
  disconnectEmnify,
  emnifyDiff,
  emnifyPlan,
  listEmnify,
  readDataStream,
} from './emnify.js'
import { connect } from './service.js'
import { ConnectProblem, VendorError } from './vendor-http.js'

// Against the emnify Data Streamer API fake (test/support/mocks/emnify-api.ts), built from vendor-docs/000.

const TOKEN = 'jwt-emnify-test-token'
const HEADER_VALUE = 'emnify-shared-secret'
let api: EmnifyApiFake
let t: TestConnect

const streamDoc = (overrides: Record<string, unknown> = {}): Record<string, unknown> => ({
  sinks: { out: { type: 'stdout' } },
  streams: {
    'emnify-events': {
      source: 'emnify',
      recordType: 'event',
      auth: { headers: { 'X-Emnify-Token': HEADER_VALUE } },
      filters: [
        { field: 'event_type.id', value: [1, 2, 3] },
        { field: 'sim.iccid', value: '8988' },
      ],
      sinks: ['out'],
      ...overrides,
    },
  },
})

beforeEach(async () => {
  api = await EmnifyApiFake.start({ token: TOKEN })
  t = testConnect(streamDoc(), { EMNIFY_API_URL: api.url, EMNIFY_API_TOKEN: TOKEN })
})
afterEach(async () => {
  await api.close()
  t.cleanup()
})

describe('connect emnify', () => {
  it('creates the data stream as documented: RestAPI, ingest URL, method, "name:value" headers, Json, type, filters', async () => {
    const report = await connectEmnify(t.ctx(), 'emnify-events')
    expect(report).toMatchObject({ action: 'created', vendorId: '123', dryRun: false })
    const [list, create] = api.calls
    expect(list).toMatchObject({ method: 'GET', path: '/api/v2/data_stream', status: 200 })
    expect(create).toMatchObject({ method: 'POST', path: '/api/v2/data_stream', status: 201 })
    expect(create!.headers.authorization).toBe(`Bearer ${TOKEN}`)
    expect(create!.headers['content-type']).toBe('application/json')
    expect(create!.body).toEqual({
      data_stream_type: { id: 2 },
      destination: {
        connection_type: 'RestAPI',
        credentials: {
          url: 'https://gw.example/ingest/emnify-events',
          method: 'POST',
          headers: [`X-Emnify-Token:${HEADER_VALUE}`],
        },
        format: 'Json',
      },
      filters: [{ field: 'event_type_id', value: [1, 2, 3] }],
    })
    expect(report.notes).toContain('filters[1]: applied by the gateway only')
    // Nothing in the report carries a secret.
    expect(JSON.stringify(report)).not.toContain(HEADER_VALUE)
    expect(JSON.stringify(report)).not.toContain(TOKEN)
  })

  it('usage streams are type 1 without filters; a PUT-only stream gets method PUT', async () => {
    t = testConnect(streamDoc({ recordType: 'usage', method: 'PUT', filters: [] }), t.env)
    await connectEmnify(t.ctx(), 'emnify-events')
    const body = api.calls[1]!.body as {
      data_stream_type: unknown
      destination: { credentials: { method: string } }
    }
    expect(body.data_stream_type).toEqual({ id: 1 })
    expect(body.destination.credentials.method).toBe('PUT')
    expect(body).not.toHaveProperty('filters')
  })

  it('is idempotent: a second run finds the data stream by its URL and changes nothing', async () => {
    await connectEmnify(t.ctx(), 'emnify-events')
    const before = api.calls.length
    const again = await connectEmnify(t.ctx(), 'emnify-events')
    expect(again).toMatchObject({ action: 'unchanged', vendorId: '123', changes: [] })
    expect(api.calls.slice(before).map((c) => c.method)).toEqual(['GET'])
    expect(api.streams.size).toBe(1)
  })

  it('a changed header value is detected through the fingerprint (emnify masks values) and PATCHed', async () => {
    await connectEmnify(t.ctx(), 'emnify-events')
    t.config.streams['emnify-events']!.auth.headers = { 'X-Emnify-Token': 'rotated-secret' }
    const before = api.calls.length
    const report = await connectEmnify(t.ctx(), 'emnify-events')
    expect(report).toMatchObject({ action: 'updated', changes: ['destination.credentials.headers'] })
    const patch = api.calls[before + 1]!
    expect(patch).toMatchObject({ method: 'PATCH', path: '/api/v2/data_stream/123', status: 200 })
    expect(patch.body).toEqual({
      destination: {
        connection_type: 'RestAPI',
        credentials: {
          url: 'https://gw.example/ingest/emnify-events',
          method: 'POST',
          headers: ['X-Emnify-Token:rotated-secret'],
        },
        format: 'Json',
      },
    })
    expect(api.streams.get(123)!.destination.credentials.headers).toEqual(['X-Emnify-Token:rotated-secret'])
    // …and the run after that is a no-op again.
    const n = api.calls.length
    expect((await connectEmnify(t.ctx(), 'emnify-events')).action).toBe('unchanged')
    expect(api.writes().length).toBe(2)
    expect(api.calls.length).toBe(n + 1)
  })

  it('a data stream made elsewhere with masked headers gets them sent once, then is left alone', async () => {
    api.add({
      statusId: 1,
      typeId: 2,
      destination: {
        connection_type: 'RestAPI',
        credentials: {
          url: 'https://gw.example/ingest/emnify-events',
          method: 'POST',
          headers: [`X-Emnify-Token:${HEADER_VALUE}`],
        },
        format: 'Json',
      },
      filters: [{ field: 'event_type_id', value: [1, 2, 3] }],
    })
    const first = await connectEmnify(t.ctx(), 'emnify-events')
    expect(first.action).toBe('updated')
    expect(first.notes.join('\n')).toContain('does not show header values')
    expect((await connectEmnify(t.ctx(), 'emnify-events')).action).toBe('unchanged')
  })

  it('a changed public URL moves the data stream made before instead of creating a second one', async () => {
    await connectEmnify(t.ctx(), 'emnify-events')
    const before = api.calls.length
    const report = await connectEmnify(t.ctx({ publicUrl: 'https://new-gw.example' }), 'emnify-events')
    expect(report).toMatchObject({
      action: 'updated',
      vendorId: '123',
      changes: ['destination.credentials.url'],
    })
    expect(report.notes.join()).toContain('moved to https://new-gw.example/ingest/emnify-events')
    expect(api.calls.slice(before).map((c) => `${c.method} ${c.path}`)).toEqual([
      'GET /api/v2/data_stream',
      'PATCH /api/v2/data_stream/123',
    ])
    expect(api.streams.size).toBe(1)
    expect(api.streams.get(123)!.destination.credentials.url).toBe(
      'https://new-gw.example/ingest/emnify-events',
    )
  })

  it('PATCHes only the filters when only they changed', async () => {
    await connectEmnify(t.ctx(), 'emnify-events')
    t.config.streams['emnify-events']!.filters = [{ or: [{ field: 'alert', value: true }] }]
    const before = api.calls.length
    const report = await connectEmnify(t.ctx(), 'emnify-events')
    expect(report.changes).toEqual(['filters'])
    expect(api.calls[before + 1]!.body).toEqual({ filters: [{ or: [{ field: 'alert', value: true }] }] })
  })

  it('with an empty create answer, the new id is found by listing again', async () => {
    await api.close()
    api = await EmnifyApiFake.start({ token: TOKEN, emptyCreateAnswer: true })
    t.env.EMNIFY_API_URL = api.url
    const report = await connectEmnify(t.ctx(), 'emnify-events')
    expect(report.vendorId).toBe('123')
    expect(api.calls.map((c) => c.method)).toEqual(['GET', 'POST', 'GET'])
  })

  it('--dry-run reads, sends no change, and shows the exact request with secrets masked', async () => {
    const report = await connectEmnify(t.ctx({ dryRun: true }), 'emnify-events')
    expect(report).toMatchObject({ action: 'created', dryRun: true })
    expect(api.calls.map((c) => c.method)).toEqual(['GET'])
    expect(api.streams.size).toBe(0)
    const planned = report.requests[1]!
    expect(planned).toMatchObject({
      method: 'POST',
      url: `${api.url}/api/v2/data_stream`,
      sent: false,
      headers: { authorization: 'Bearer ***', 'content-type': 'application/json' },
    })
    expect(
      (planned.body as { destination: { credentials: { headers: string[] } } }).destination.credentials
        .headers,
    ).toEqual(['X-Emnify-Token:***'])
    expect(JSON.stringify(report)).not.toContain(HEADER_VALUE)
  })

  it('refuses what emnify cannot send, before any call: HMAC auth, no token, no public URL, another source', async () => {
    t.config.streams['emnify-events']!.auth.hmac = {
      header: 'X-Sig',
      secret: 's',
      algorithm: 'sha256',
      encoding: 'hex',
      prefix: '',
    }
    await expect(connectEmnify(t.ctx(), 'emnify-events')).rejects.toThrow(/auth\.hmac: emnify cannot sign/)
    delete t.config.streams['emnify-events']!.auth.hmac
    t.env.EMNIFY_API_TOKEN = ''
    await expect(connectEmnify(t.ctx(), 'emnify-events')).rejects.toThrow(/EMNIFY_API_TOKEN is not set/)
    t.env.EMNIFY_API_TOKEN = TOKEN
    const noUrl = { ...t.ctx(), publicUrl: undefined }
    delete noUrl.publicUrl
    await expect(connectEmnify(noUrl, 'emnify-events')).rejects.toThrow(/no public URL/)
    t.config.streams['emnify-events']!.source = 'json'
    await expect(connect(t.ctx(), 'emnify', 'emnify-events')).rejects.toMatchObject({ status: 400 })
    expect(api.calls).toEqual([])
  })

  it('two data streams sending to one ingest URL are a conflict to resolve by hand', async () => {
    await connectEmnify(t.ctx(), 'emnify-events')
    api.add({ ...api.streams.get(123)!, statusId: 2 })
    const err = await connectEmnify(t.ctx(), 'emnify-events').catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ConnectProblem)
    expect((err as ConnectProblem).message).toContain(
      '2 data streams sending to https://gw.example/ingest/emnify-events',
    )
  })
})

describe('emnify errors are made plain', () => {
  const cases: [number, string][] = [
    [401, 'check EMNIFY_API_TOKEN'],
    [403, 'lack a permission'],
    [404, 'EMNIFY_API_URL does not point at its API'],
    [409, 'streamgate connections emnify'],
    [422, 'fix the config'],
    [500, 'run again later'],
    [503, 'run again later'],
  ]
  for (const [status, hint] of cases)
    it(`${status}: which call, which status, what emnify said, what to do`, async () => {
      api.failNext({ method: 'POST', status, body: { error_code: status, message: `emnify says ${status}` } })
      const err = (await connectEmnify(t.ctx(), 'emnify-events').catch((e: unknown) => e)) as VendorError
      expect(err).toBeInstanceOf(VendorError)
      expect(err).toMatchObject({ vendor: 'emnify', call: 'POST /api/v2/data_stream', status })
      expect(err.message).toContain(`emnify POST /api/v2/data_stream answered ${status}`)
      expect(err.message).toContain(`emnify says ${status}`)
      expect(err.hint).toContain(hint)
    })

  it('a wrong token: the real 401 of the fake', async () => {
    t.env.EMNIFY_API_TOKEN = 'wrong-token'
    const err = (await connectEmnify(t.ctx(), 'emnify-events').catch((e: unknown) => e)) as VendorError
    expect(err.message).toContain(
      'GET /api/v2/data_stream answered 401 Unauthorized: Invalid or missing authentication token',
    )
    expect(err.message).not.toContain('wrong-token')
  })

  it('an unreachable API names the origin and the variable to check', async () => {
    t.env.EMNIFY_API_URL = 'http://127.0.0.1:9'
    const err = (await connectEmnify(t.ctx(), 'emnify-events').catch((e: unknown) => e)) as VendorError
    expect(err.status).toBeUndefined()
    expect(err.message).toContain('Could not reach http://127.0.0.1:9: check EMNIFY_API_URL')
  })
})

describe('list and delete', () => {
  it('connections shows each data stream, its status and header names, and whether it matches', async () => {
    await connectEmnify(t.ctx(), 'emnify-events')
    let rows = await listEmnify(t.ctx())
    expect(rows).toEqual([
      {
        vendor: 'emnify',
        kind: 'stream',
        name: 'emnify-events',
        vendorId: '123',
        status: 'Running',
        url: 'https://gw.example/ingest/emnify-events',
        headers: ['X-Emnify-Token'],
        matches: true,
        differences: [],
      },
    ])
    t.config.streams['emnify-events']!.filters = []
    rows = await listEmnify(t.ctx())
    expect(rows[0]).toMatchObject({ matches: false, differences: ['filters'] })
    expect(JSON.stringify(rows)).not.toContain(HEADER_VALUE)
  })

  it('an orphan at this gateway and a stream with no data stream are both listed', async () => {
    api.add({
      statusId: 3,
      typeId: 2,
      destination: {
        connection_type: 'RestAPI',
        credentials: { url: 'https://gw.example/ingest/gone' },
        format: 'Json',
      },
      filters: [],
    })
    api.add({
      statusId: 1,
      typeId: 2,
      destination: {
        connection_type: 'RestAPI',
        credentials: { url: 'https://other.example/ingest/x' },
        format: 'Json',
      },
      filters: [],
    })
    const rows = await listEmnify(t.ctx())
    expect(rows).toEqual([
      expect.objectContaining({
        name: 'emnify-events',
        matches: false,
        detail: 'no emnify data stream sends here',
      }),
      expect.objectContaining({
        vendorId: '123',
        status: 'Error',
        matches: null,
        detail: 'no emnify stream "gone" in the config',
      }),
    ])
  })

  it('disconnect also deletes the data stream connect made when it sends to an older public URL', async () => {
    await connectEmnify(t.ctx({ publicUrl: 'https://old-gw.example' }), 'emnify-events')
    const report = await disconnectEmnify(t.ctx(), 'emnify-events')
    expect(report).toMatchObject({ action: 'deleted', vendorId: '123' })
    expect(api.streams.size).toBe(0)
  })

  it('disconnect deletes the data stream; a second disconnect finds nothing to delete', async () => {
    await connectEmnify(t.ctx(), 'emnify-events')
    const dry = await disconnectEmnify(t.ctx({ dryRun: true }), 'emnify-events')
    expect(dry).toMatchObject({ action: 'deleted', vendorId: '123' })
    expect(api.streams.size).toBe(1)
    const report = await disconnectEmnify(t.ctx(), 'emnify-events')
    expect(report).toMatchObject({ action: 'deleted', vendorId: '123' })
    expect(api.calls.at(-1)).toMatchObject({ method: 'DELETE', path: '/api/v2/data_stream/123', status: 204 })
    expect(api.streams.size).toBe(0)
    expect(await t.ledger.get('emnify', 'stream', 'emnify-events')).toBeUndefined()
    expect((await disconnectEmnify(t.ctx(), 'emnify-events')).action).toBe('absent')
  })
})

describe('comparing what an answer shows', () => {
  it('a data stream shown without filters or type is not PATCHed for them', () => {
    const plan = emnifyPlan('emnify-events', t.config.streams['emnify-events']!, 'https://gw.example')
    const shown = readDataStream({
      id: 9,
      destination: {
        connection_type: { id: 2, description: 'RestAPI' },
        credentials: {
          url: 'https://gw.example/ingest/emnify-events',
          headers: [`X-Emnify-Token:${HEADER_VALUE}`],
        },
      },
    })!
    expect(emnifyDiff(plan, shown, undefined).changes).toEqual([])
    const withFilters = readDataStream({
      ...shown,
      id: 9,
      destination: { credentials: { url: shown.url } },
      filters: [],
    })!
    expect(emnifyDiff(plan, withFilters, undefined).changes).toEqual([
      'destination.credentials.headers',
      'filters',
    ])
  })
})
