import { gzipSync } from 'node:zlib'
import { afterEach, describe, expect, it } from 'vitest'
import type { DomoSinkConfig } from '../../src/config/types.js'
import { SinkError } from '../../src/errors.js'
import { deliver } from '../../src/pipeline/delivery.js'
import type { SinkRecord } from '../../src/records/record.js'
import { createDomoSink } from '../../src/sinks/domo.js'
import type { Sink } from '../../src/sinks/sink.js'
import { createLogger } from '../../src/telemetry/logger.js'
import { Metrics } from '../../src/telemetry/metrics.js'
import { sinkConformance } from '../conformance/sink-conformance.js'
import { send } from '../support/http.js'
import { DomoApiMock } from '../support/mocks/domo-api.js'

const logger = createLogger('silent')
const CLIENT_ID = 'domo-client-1'
const CLIENT_SECRET = 'domo-secret-1'

const domoConfig = (mock: DomoApiMock, extra: Partial<DomoSinkConfig> = {}): DomoSinkConfig => ({
  type: 'domo',
  clientId: CLIENT_ID,
  clientSecret: CLIENT_SECRET,
  streamId: 42,
  columns: ['id', 'n'],
  apiBase: mock.url,
  tokenUrl: mock.tokenUrl,
  partBytes: 52_428_800,
  parallelParts: 2,
  retry: { initialMs: 10, maxMs: 100, maxAttempts: 0 },
  ...extra,
})

const record = (text: string): SinkRecord => ({
  stream: 's',
  payload: Buffer.from(text),
  receivedAtMs: Date.now(),
})
const rowsOf = (n: number, prefix: string): SinkRecord[] =>
  Array.from({ length: n }, (_, i) => record(`{"id":"${prefix}-${i}","n":${i}}`))

async function rejection(p: Promise<unknown>): Promise<SinkError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(SinkError)
  return err as SinkError
}

const opened: { sinks: Sink[]; mocks: DomoApiMock[] } = { sinks: [], mocks: [] }
async function api(
  columns = 2,
  extra: Partial<Parameters<typeof DomoApiMock.start>[0]> = {},
): Promise<DomoApiMock> {
  const mock = await DomoApiMock.start({
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    streams: { '42': { columns } },
    ...extra,
  })
  opened.mocks.push(mock)
  return mock
}
function sink(config: DomoSinkConfig): Sink {
  const s = createDomoSink('domo', config, { logger })
  opened.sinks.push(s)
  return s
}
afterEach(async () => {
  await Promise.all(opened.sinks.splice(0).map((s) => s.close()))
  await Promise.all(opened.mocks.splice(0).map((m) => m.close()))
})

const noDeadLetters = async (): Promise<void> => {
  throw new Error('nothing should be dead-lettered')
}

describe('domo sink', () => {
  it('writes RFC 4180 CSV exactly: quotes, commas, newlines, null vs empty, 64-bit numbers, JSON values', async () => {
    const columns = [
      'id',
      'name',
      'note',
      'count',
      'ok',
      'nested',
      'missing',
      'nullv',
      'empty',
      'sim.iccid',
      'list',
    ]
    const mock = await api(columns.length)
    const batch = [
      record(
        '{"id":12345678901234567890,"name":"Smith, John","note":"He said \\"hi\\"\\nnext line","count":1.50,' +
          '"ok":true,"nested":{"a":"b,c"},"nullv":null,"empty":"","sim":{"iccid":"8988303000000001234"},"list":[1,"two"]}',
      ),
      record(
        '{"id":-7,"name":"Zoë ✓","note":"tab\\there","count":0,"ok":false,"nested":[],"nullv":"null","empty":" ",' +
          '"sim":{},"list":"x"}',
      ),
      record('{"id":1e3}'),
    ]
    const result = await sink(domoConfig(mock, { columns })).write(batch, AbortSignal.timeout(10_000))
    expect(result.failed).toEqual([])
    expect(mock.committedCsv(42)).toEqual([
      '12345678901234567890,"Smith, John","He said ""hi""\nnext line",1.50,true,"{""a"":""b,c""}",,,"",8988303000000001234,"[1,""two""]"\n' +
        '-7,Zoë ✓,tab\there,0,false,"[]",,null, ,,x\n' +
        '1e3,,,,,,,,,,\n',
    ])
    const [first, second] = mock.rows(42)
    expect(first).toEqual([
      '12345678901234567890',
      'Smith, John',
      'He said "hi"\nnext line',
      '1.50',
      'true',
      '{"a":"b,c"}',
      null,
      null,
      '',
      '8988303000000001234',
      '[1,"two"]',
    ])
    expect(second![7]).toBe('null')
  })

  it('one execution per write: token once, execution, gzip CSV parts as text/csv + Content-Encoding gzip, commit', async () => {
    const mock = await api()
    const s = sink(domoConfig(mock))
    for (let i = 0; i < 3; i++) await s.write(rowsOf(3, `w${i}`), AbortSignal.timeout(10_000))
    expect([...mock.executions.values()].map((e) => e.state)).toEqual(['SUCCESS', 'SUCCESS', 'SUCCESS'])
    expect(mock.tokenRequests).toBe(1)
    const token = mock.requests.find((r) => r.path.startsWith('/oauth/token'))!
    expect(token.method).toBe('GET')
    const query = new URL(token.path, mock.url).searchParams
    expect(query.get('grant_type')).toBe('client_credentials')
    expect(query.get('scope')).toBe('data')
    expect(token.headers.authorization).toBe(
      `Basic ${Buffer.from(`${CLIENT_ID}:${CLIENT_SECRET}`).toString('base64')}`,
    )
    const api1 = mock.requests.filter((r) => r.path.startsWith('/v1/')).slice(0, 3)
    expect(api1.map((r) => `${r.method} ${r.path}`)).toEqual([
      'POST /v1/streams/42/executions',
      'PUT /v1/streams/42/executions/1/part/1',
      'PUT /v1/streams/42/executions/1/commit',
    ])
    expect(api1[1]!.headers['content-type']).toBe('text/csv')
    expect(api1[1]!.headers['content-encoding']).toBe('gzip')
    expect(api1[1]!.headers.authorization).toMatch(/^bearer /)
    expect(mock.rows(42).map((r) => r[0])).toEqual([
      'w0-0',
      'w0-1',
      'w0-2',
      'w1-0',
      'w1-1',
      'w1-2',
      'w2-0',
      'w2-1',
      'w2-2',
    ])
  })

  it('never runs two executions on the stream at once, even for concurrent writes', async () => {
    const mock = await api()
    mock.delayParts(30)
    const s = sink(domoConfig(mock))
    await Promise.all([0, 1, 2].map((i) => s.write(rowsOf(2, `c${i}`), AbortSignal.timeout(10_000))))
    expect(mock.executions.size).toBe(3)
    expect(mock.maxActiveExecutions).toBe(1)
    expect(mock.rows(42)).toHaveLength(6)
  })

  it('splits a write into parts of partBytes and uploads them in parallel within parallelParts', async () => {
    const mock = await api()
    mock.delayParts(60)
    const batch = rowsOf(80, 'part') // ~900 bytes of rows: 9 or 10 parts of at most 100 bytes
    await sink(domoConfig(mock, { partBytes: 100, parallelParts: 3 })).write(
      batch,
      AbortSignal.timeout(20_000),
    )
    const exec = [...mock.executions.values()][0]!
    expect(exec.parts.size).toBeGreaterThanOrEqual(8)
    for (const part of exec.parts.values()) expect(Buffer.byteLength(part.csv)).toBeLessThanOrEqual(100)
    expect(mock.maxConcurrentParts).toBe(3)
    expect(mock.rows(42).map((r) => r[0])).toEqual(batch.map((_, i) => `part-${i}`))
  })

  it('a failed part aborts the execution and rejects; the retry commits every row exactly once', async () => {
    const mock = await api()
    mock.failNextParts(1, 500)
    const batch = rowsOf(20, 'retry')
    const s = sink(domoConfig(mock, { partBytes: 120, parallelParts: 2 }))
    const err = await rejection(s.write(batch, AbortSignal.timeout(10_000)))
    expect(err).toMatchObject({ retriable: true, reason: 'domo-500' })
    expect([...mock.executions.values()].map((e) => e.state)).toEqual(['ABORTED'])
    expect(mock.requests.some((r) => r.path === '/v1/streams/42/executions/1/abort')).toBe(true)
    expect(mock.rows(42)).toEqual([])

    mock.failNextCommits(1, 503)
    await deliver(s, batch, {
      retry: { initialMs: 10, maxMs: 50, maxAttempts: 0 },
      signal: AbortSignal.timeout(20_000),
      metrics: new Metrics({ defaultMetrics: false }),
      logger,
      deadLetter: noDeadLetters,
    })
    expect([...mock.executions.values()].map((e) => e.state)).toEqual(['ABORTED', 'ABORTED', 'SUCCESS'])
    const ids = mock.rows(42).map((r) => r[0])
    expect(ids).toEqual(batch.map((_, i) => `retry-${i}`))
  })

  it('renews an expired token once on 401; a refused token request is permanent "unauthorized"', async () => {
    const mock = await api()
    const s = sink(domoConfig(mock))
    await s.write(rowsOf(1, 'a'), AbortSignal.timeout(10_000))
    mock.expireTokens()
    await s.write(rowsOf(1, 'b'), AbortSignal.timeout(10_000))
    expect(mock.tokenRequests).toBe(2)
    expect(mock.rows(42).map((r) => r[0])).toEqual(['a-0', 'b-0'])

    const fresh = sink(domoConfig(mock))
    mock.failNextTokens(1, 401)
    const err = await rejection(fresh.write(rowsOf(1, 'c'), AbortSignal.timeout(10_000)))
    expect(err).toMatchObject({ retriable: false, reason: 'unauthorized' })
    expect(err.message).not.toContain(CLIENT_SECRET)
    const wrong = sink(domoConfig(mock, { clientSecret: 'nope' }))
    expect(await rejection(wrong.write(rowsOf(1, 'd'), AbortSignal.timeout(10_000)))).toMatchObject({
      retriable: false,
      reason: 'unauthorized',
    })
    expect(mock.executions.size).toBe(2)
  })

  it('an unknown stream is permanent; the health check reads the stream', async () => {
    const mock = await api()
    await sink(domoConfig(mock)).healthcheck(AbortSignal.timeout(5_000))
    const unknown = sink(domoConfig(mock, { streamId: 999 }))
    await expect(unknown.healthcheck(AbortSignal.timeout(5_000))).rejects.toMatchObject({
      reason: 'domo-404',
    })
    expect(await rejection(unknown.write(rowsOf(1, 'x'), AbortSignal.timeout(10_000)))).toMatchObject({
      retriable: false,
      reason: 'domo-404',
    })
  })
})

describe('domo API mock follows vendor-formats.md §4', () => {
  it('accepts the Node SDK’s Content-Type: application/gzip parts too', async () => {
    const mock = await api()
    const basic = Buffer.from(`${CLIENT_ID}:${CLIENT_SECRET}`).toString('base64')
    const tokenRes = await send(`${mock.tokenUrl}?grant_type=client_credentials&scope=data`, {
      method: 'POST',
      headers: { authorization: `Basic ${basic}` },
    })
    expect(tokenRes.status).toBe(200)
    const auth = { authorization: `bearer ${tokenRes.json<{ access_token: string }>().access_token}` }
    const exec = await send(`${mock.url}/v1/streams/42/executions`, { headers: auth })
    expect(exec.status).toBe(201)
    const id = exec.json<{ id: number }>().id
    const part = await send(`${mock.url}/v1/streams/42/executions/${id}/part/1`, {
      method: 'PUT',
      headers: { ...auth, 'content-type': 'application/gzip' },
      body: gzipSync('a,""\nb,\n'),
    })
    expect(part.status).toBe(200)
    const commit = await send(`${mock.url}/v1/streams/42/executions/${id}/commit`, {
      method: 'PUT',
      headers: auth,
    })
    expect(commit.status).toBe(200)
    expect(mock.rows(42)).toEqual([
      ['a', ''],
      ['b', null],
    ])
  })
})

sinkConformance(
  'domo',
  async () => {
    const mock = await DomoApiMock.start({
      clientId: CLIENT_ID,
      clientSecret: CLIENT_SECRET,
      streams: { '42': { columns: 3 } },
    })
    const config = (o?: { maxBatchRecords?: number }): DomoSinkConfig =>
      domoConfig(mock, {
        columns: ['id', 'n', 'big'],
        ...(o?.maxBatchRecords ? { maxBatchRecords: o.maxBatchRecords } : {}),
      })
    return {
      create: async (o) => createDomoSink('domo-conf', config(o), { logger }),
      // Rows back to the conformance records' JSON (string id, numbers as written).
      readBack: async () =>
        mock.rows(42).map((r) => Buffer.from(`{"id":${JSON.stringify(r[0])},"n":${r[1]},"big":${r[2]}}`)),
      createPermanentlyFailing: async () =>
        createDomoSink('domo-bad', { ...config(), streamId: 404404 }, { logger }),
      createTransientlyFailing: async () => {
        mock.failPartsAlways(503)
        return { sink: createDomoSink('domo-flaky', config(), { logger }), heal: async () => mock.heal() }
      },
      cleanup: () => mock.close(),
    }
  },
  { transient: true, partialFailure: false },
)
