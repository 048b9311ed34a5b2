import { gzipSync } from 'node:zlib'
import { afterEach, describe, expect, it } from 'vitest'
import type { DomoSinkConfig } from '../../src/config/types.js'
import { SinkError } from '../../src/errors.js'
import { deliver } from '../../src/pipeline/delivery.js'
import type { SinkRecord } from '../../src/records/record.js'
import { createDomoSink, DOMO_MAX_BISECT_UPLOADS } from '../../src/sinks/domo/sink.js'
import type { Sink } from '../../src/sinks/sink.js'
import { createLogger } from '../../src/telemetry/logger.js'
import { Metrics } from '../../src/telemetry/metrics.js'
import { sinkConformance } from '../conformance/sink-conformance.js'
import { send } from '../support/http.js'
import { waitFor } from '../support/gateway.js'
import { DomoApiMock, type DomoApiOptions } from '../support/mocks/domo-api.js'

const logger = createLogger('silent')
const CLIENT_ID = 'domo-client-1'
const CLIENT_SECRET = 'domo-secret-1'
const DEV_TOKEN = 'domo-developer-token-1'

const domoConfig = (mock: DomoApiMock, extra: Partial<DomoSinkConfig> = {}): DomoSinkConfig => ({
  type: 'domo',
  api: 'public',
  clientId: CLIENT_ID,
  clientSecret: CLIENT_SECRET,
  streamId: 42,
  updateMethod: 'APPEND',
  columns: ['id', 'n'],
  apiBase: mock.url,
  tokenUrl: mock.tokenUrl,
  partBytes: 52_428_800,
  compression: 'gzip',
  parallelParts: 2,
  retry: { initialMs: 10, maxMs: 100, maxAttempts: 0 },
  ...extra,
})

/** The instance API (vendor-docs/002) with a developer token. */
const instanceConfig = (mock: DomoApiMock, extra: Partial<DomoSinkConfig> = {}): DomoSinkConfig => ({
  type: 'domo',
  api: 'instance',
  instanceUrl: mock.url,
  developerToken: DEV_TOKEN,
  streamId: 42,
  columns: ['id', 'n'],
  updateMethod: 'APPEND',
  apiBase: 'https://api.domo.com',
  tokenUrl: 'https://api.domo.com/oauth/token',
  partBytes: 52_428_800,
  compression: 'gzip',
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
async function api(columns = 2, extra: Partial<DomoApiOptions> = {}): Promise<DomoApiMock> {
  const mock = await DomoApiMock.start({
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    developerToken: DEV_TOKEN,
    streams: { '42': { columns } },
    ...extra,
  })
  opened.mocks.push(mock)
  return mock
}
function sink(config: DomoSinkConfig, log = logger): Sink {
  const s = createDomoSink('domo', config, { logger: log })
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

/** A logger whose lines the test can read (parsed). */
function capturingLogger(): { logger: ReturnType<typeof createLogger>; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = []
  const write = (line: string): void => void lines.push(JSON.parse(line) as Record<string, unknown>)
  return { logger: createLogger('info', { write }), lines }
}

/** Delivers through the real delivery code, collecting dead letters. */
async function deliverAll(
  s: Sink,
  batch: SinkRecord[],
  metrics = new Metrics({ defaultMetrics: false }),
  maxAttempts = 0,
): Promise<{ records: SinkRecord[]; error: SinkError }[]> {
  const dead: { records: SinkRecord[]; error: SinkError }[] = []
  await deliver(s, batch, {
    retry: { initialMs: 5, maxMs: 40, maxAttempts },
    signal: AbortSignal.timeout(60_000),
    metrics,
    logger,
    deadLetter: async (records, error) => void dead.push({ records, error }),
  })
  return dead
}

const ids = (rows: (string | null)[][]): (string | null)[] => rows.map((r) => r[0]!)
const partUploads = (mock: DomoApiMock): number =>
  mock.requests.filter((r) => r.method === 'PUT' && /\/parts?\/\d+$/.test(r.path)).length

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

  it('compression: none uploads plain text/csv parts (no Content-Encoding)', async () => {
    const mock = await api()
    const s = sink({ ...domoConfig(mock), compression: 'none' })
    await s.write(rowsOf(2, 'plain'), AbortSignal.timeout(10_000))
    const part = mock.requests.find((r) => r.path.includes('/part/'))!
    expect(part.headers['content-type']).toBe('text/csv')
    expect(part.headers['content-encoding']).toBeUndefined()
    expect(mock.rows(42).map((r) => r[0])).toEqual(['plain-0', 'plain-1'])
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

  it('renews an expired token once on 401; a refused token request is an "auth" failure that holds the records', async () => {
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
    expect(err).toMatchObject({ retriable: true, reason: 'auth' })
    expect(err.message).toMatch(/^auth failed: /)
    expect(err.message).not.toContain(CLIENT_SECRET)
    const wrong = sink(domoConfig(mock, { clientSecret: 'nope' }))
    expect(await rejection(wrong.write(rowsOf(1, 'd'), AbortSignal.timeout(10_000)))).toMatchObject({
      retriable: true,
      reason: 'auth',
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

describe('domo sink: updateMethod', () => {
  it('sends {"updateMethod":"APPEND"} with every execution, so a REPLACE stream keeps its rows; warns at start naming both', async () => {
    const mock = await api(2, { streams: { '42': { columns: 2, updateMethod: 'REPLACE' } } })
    const { logger: log, lines } = capturingLogger()
    const s = sink(domoConfig(mock), log)
    await s.healthcheck(AbortSignal.timeout(5_000))
    const warnings = lines.filter((l) => l.level === 40)
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toMatchObject({ streamUpdateMethod: 'REPLACE', updateMethod: 'APPEND' })
    expect(warnings[0]!.msg).toMatch(/REPLACE.*APPEND/)
    await s.healthcheck(AbortSignal.timeout(5_000))
    expect(lines.filter((l) => l.level === 40)).toHaveLength(1) // once, not on every check

    await s.write(rowsOf(2, 'a'), AbortSignal.timeout(10_000))
    await s.write(rowsOf(2, 'b'), AbortSignal.timeout(10_000))
    // The stream's own REPLACE would have left only the last write's rows.
    expect(ids(mock.rows(42))).toEqual(['a-0', 'a-1', 'b-0', 'b-1'])
    const creates = mock.requests.filter((r) => r.method === 'POST' && r.path === '/v1/streams/42/executions')
    expect(creates.map((r) => [r.headers['content-type'], r.raw.toString()])).toEqual([
      ['application/json', '{"updateMethod":"APPEND"}'],
      ['application/json', '{"updateMethod":"APPEND"}'],
    ])
  })

  it('updateMethod REPLACE is sent as configured (each write replaces); no warning when the stream agrees', async () => {
    const mock = await api(2, { streams: { '42': { columns: 2, updateMethod: 'REPLACE' } } })
    const { logger: log, lines } = capturingLogger()
    const s = sink(domoConfig(mock, { updateMethod: 'REPLACE' }), log)
    await s.healthcheck(AbortSignal.timeout(5_000))
    await s.write(rowsOf(2, 'a'), AbortSignal.timeout(10_000))
    await s.write(rowsOf(3, 'b'), AbortSignal.timeout(10_000))
    expect(ids(mock.rows(42))).toEqual(['b-0', 'b-1', 'b-2'])
    expect(lines.filter((l) => l.level === 40)).toEqual([])
    expect(mock.requests.filter((r) => r.path.endsWith('/executions')).map((r) => r.raw.toString())).toEqual([
      '{"updateMethod":"REPLACE"}',
      '{"updateMethod":"REPLACE"}',
    ])
  })
})

describe('domo sink: the instance API (vendor-docs/002)', () => {
  it('creates the execution, uploads parts under data/{id}/parts/{n} and commits with PUT data/{id}/commit, with X-DOMO-Developer-Token', async () => {
    const mock = await api()
    const s = sink(instanceConfig(mock, { partBytes: 30 })) // rows are 6 bytes: two parts
    await s.healthcheck(AbortSignal.timeout(5_000))
    expect((await s.write(rowsOf(8, 'i'), AbortSignal.timeout(10_000))).failed).toEqual([])
    // Parts go up `parallelParts` at a time (DOMO-PAR), so they may reach the server in either order; the
    // execution comes before them and the commit after both.
    const calls = mock.requests.map((r) => `${r.method} ${r.path}`)
    expect(calls.slice(0, 2)).toEqual([
      'GET /api/data/v1/streams/42',
      'POST /api/data/v1/streams/42/executions',
    ])
    expect(calls.slice(2, 4).sort()).toEqual([
      'PUT /api/data/v1/streams/42/data/1/parts/1',
      'PUT /api/data/v1/streams/42/data/1/parts/2',
    ])
    expect(calls.slice(4)).toEqual(['PUT /api/data/v1/streams/42/data/1/commit'])
    for (const r of mock.requests) {
      expect(r.headers['x-domo-developer-token']).toBe(DEV_TOKEN)
      expect(r.headers.authorization).toBeUndefined()
    }
    expect(mock.requests[1]!.raw.toString()).toBe('{"updateMethod":"APPEND"}')
    expect(mock.requests[1]!.headers['content-type']).toBe('application/json')
    expect(mock.requests[2]!.headers['content-type']).toBe('text/csv')
    expect(mock.requests[2]!.headers['content-encoding']).toBe('gzip')
    expect(mock.tokenRequests).toBe(0)
    expect(ids(mock.rows(42))).toEqual(rowsOf(8, 'i').map((_, i) => `i-${i}`))
  })

  it('a failed part aborts the execution with DELETE …/executions/{id}; the retry commits every row once', async () => {
    const mock = await api()
    mock.failNextParts(1, 503)
    const s = sink(instanceConfig(mock))
    const dead = await deliverAll(s, rowsOf(5, 'x'))
    expect(dead).toEqual([])
    expect(
      mock.requests.some((r) => r.method === 'DELETE' && r.path === '/api/data/v1/streams/42/executions/1'),
    ).toBe(true)
    expect([...mock.executions.values()].map((e) => e.state)).toEqual(['ABORTED', 'SUCCESS'])
    expect(ids(mock.rows(42))).toEqual(rowsOf(5, 'x').map((_, i) => `x-${i}`))
  })

  it('a refused developer token holds the records (retried, never dead-lettered, even past maxAttempts) until it works', async () => {
    const mock = await api()
    mock.setDeveloperToken('some-other-token')
    const metrics = new Metrics({ defaultMetrics: false })
    const s = sink(instanceConfig(mock))
    const delivering = deliverAll(s, rowsOf(3, 'held'), metrics, 2)
    await waitFor(() => mock.requests.filter((r) => r.status === 401).length >= 4, 10_000, 'four refusals')
    expect(mock.executions.size).toBe(0)
    mock.setDeveloperToken(DEV_TOKEN)
    expect(await delivering).toEqual([])
    expect(ids(mock.rows(42))).toEqual(['held-0', 'held-1', 'held-2'])
    const text = await metrics.registry.metrics()
    expect(text).toMatch(/streamgate_sink_auth_failures_total\{sink="domo"\} ([4-9]|\d\d+)/)
    expect(text).toMatch(/streamgate_sink_records_retried_total\{sink="domo",reason="auth"\} \d+/)
    expect(text).not.toContain('streamgate_sink_records_failed_total{')
  })
})

describe('domo sink: rows Domo refuses are isolated, not the whole batch', () => {
  const typed: DomoApiOptions['streams'] = {
    '42': {
      columns: [
        { type: 'STRING', name: 'id' },
        { type: 'LONG', name: 'n' },
      ],
    },
  }
  /** 100 rows; rows 7, 50 and 93 carry a value the LONG column refuses. */
  const BAD = [7, 50, 93]
  const mixed = (prefix: string): SinkRecord[] =>
    Array.from({ length: 100 }, (_, i) =>
      record(
        BAD.includes(i) ? `{"id":"${prefix}-${i}","n":"oops-${i}"}` : `{"id":"${prefix}-${i}","n":${i}}`,
      ),
    )

  it.each([
    ['public', domoConfig],
    ['instance', instanceConfig],
  ] as const)(
    '%s API: a 400 part is bisected; only the 3 bad rows are dead-lettered, the 97 others committed once',
    async (_, config) => {
      const mock = await api(2, { streams: typed })
      const batch = mixed('b')
      const dead = await deliverAll(sink(config(mock)), batch)
      const deadIds = dead.flatMap((d) =>
        d.records.map((r) => (JSON.parse(r.payload.toString()) as { id: string }).id),
      )
      expect(deadIds.sort()).toEqual(['b-50', 'b-7', 'b-93'])
      for (const d of dead) {
        expect(d.error).toMatchObject({ retriable: false, reason: 'domo-400' })
        expect(d.error.message).toMatch(/"oops-\d+" is not a LONG/)
      }
      const good = batch.map((_, i) => `b-${i}`).filter((_, i) => !BAD.includes(i))
      expect([...ids(mock.rows(42))].sort()).toEqual([...good].sort())
      // One execution, committed once; bounded work: ≤ 2 halves per level per bad row, depth ≤ log2(100).
      expect([...mock.executions.values()].map((e) => e.state)).toEqual(['SUCCESS'])
      expect(partUploads(mock)).toBeLessThanOrEqual(1 + BAD.length * 2 * Math.ceil(Math.log2(100)))
    },
  )

  it('when a refused part ends the execution: probes in executions of their own, one commit with every good row (REPLACE keeps them all)', async () => {
    const mock = await api(2, {
      streams: { '42': { ...typed['42']!, updateMethod: 'REPLACE' } },
      refusalEndsExecution: true,
    })
    const s = sink(domoConfig(mock, { updateMethod: 'REPLACE', partBytes: 400 }))
    await s.write(rowsOf(4, 'before'), AbortSignal.timeout(10_000))
    const batch = mixed('r')
    const dead = await deliverAll(s, batch)
    expect(
      dead
        .flatMap((d) => d.records.map((r) => (JSON.parse(r.payload.toString()) as { id: string }).id))
        .sort(),
    ).toEqual(['r-50', 'r-7', 'r-93'])
    // REPLACE: the dataset is exactly this batch's good rows (one commit), not the last half's.
    const good = batch.map((_, i) => `r-${i}`).filter((_, i) => !BAD.includes(i))
    expect([...ids(mock.rows(42))].sort()).toEqual([...good].sort())
    const states = [...mock.executions.values()].map((e) => e.state)
    expect(states.filter((st) => st === 'SUCCESS')).toHaveLength(2) // 'before' and this batch
    expect(states.filter((st) => st === 'ABORTED').length).toBeGreaterThan(3) // the probes
    expect(states.filter((st) => st === 'ACTIVE' || st === 'FAILED')).toEqual([])
    expect(mock.maxActiveExecutions).toBe(1)
  })

  it.each([
    ['the commit is refused', 40],
    ['every row seemed refused', 0],
  ])('same when Domo cannot show the execution state and %s: found by probing', async (_, goodFirst) => {
    const mock = await api(2, { streams: typed, refusalEndsExecution: true, retrieveExecutions: false })
    // parallelParts 1, partBytes 300: the first part (the 40 good rows, 300 bytes) is taken before the refusal.
    const good = Array.from({ length: goodFirst }, (_, i) => record(`{"id":"g-${i}","n":${i}}`))
    const suspect = Array.from({ length: 12 }, (_, i) =>
      record(i === 4 || i === 9 ? `{"id":"s-${i}","n":"bad"}` : `{"id":"s-${i}","n":${i}}`),
    )
    const s = sink(domoConfig(mock, { parallelParts: 1, partBytes: goodFirst ? 300 : 1000 }))
    const dead = await deliverAll(s, [...good, ...suspect])
    expect(
      dead
        .flatMap((d) => d.records.map((r) => (JSON.parse(r.payload.toString()) as { id: string }).id))
        .sort(),
    ).toEqual(['s-4', 's-9'])
    const expected = [...good.map((_, i) => `g-${i}`), ...suspect.map((_, i) => `s-${i}`)].filter(
      (id) => id !== 's-4' && id !== 's-9',
    )
    expect([...ids(mock.rows(42))].sort()).toEqual(expected.sort())
    expect([...mock.executions.values()].filter((e) => e.state === 'SUCCESS')).toHaveLength(1)
    const refusedCommits = mock.requests.filter((r) => r.path.endsWith('/commit') && r.status === 400)
    expect(refusedCommits).toHaveLength(goodFirst ? 1 : 0)
  })

  it('a batch whose every row is refused commits nothing (a REPLACE dataset keeps its rows)', async () => {
    const mock = await api(2, { streams: typed })
    const s = sink(domoConfig(mock, { updateMethod: 'REPLACE' }))
    await s.write(rowsOf(2, 'kept'), AbortSignal.timeout(10_000))
    const bad = Array.from({ length: 5 }, (_, i) => record(`{"id":"z-${i}","n":"no"}`))
    const dead = await deliverAll(s, bad)
    expect(dead.flatMap((d) => d.records)).toHaveLength(5)
    expect(ids(mock.rows(42))).toEqual(['kept-0', 'kept-1'])
    expect([...mock.executions.values()].map((e) => e.state)).toEqual(['SUCCESS', 'ABORTED'])
  })

  it(`bounds the work: after ${DOMO_MAX_BISECT_UPLOADS} extra uploads the rows not yet isolated are reported together`, async () => {
    const mock = await api(2, { streams: typed })
    const n = DOMO_MAX_BISECT_UPLOADS + 500
    const bad = Array.from({ length: n }, (_, i) => record(`{"id":"all-${i}","n":"bad"}`))
    const result = await sink(domoConfig(mock, { parallelParts: 8 })).write(bad, AbortSignal.timeout(60_000))
    expect(result.failed).toHaveLength(n)
    expect(result.failed.some((f) => f.error.message.includes('not isolated'))).toBe(true)
    expect(partUploads(mock)).toBeLessThanOrEqual(1 + DOMO_MAX_BISECT_UPLOADS)
    expect(mock.rows(42)).toEqual([])
  })
})

describe('domo sink: create finds or creates the stream', () => {
  // DOMO-QS's example dataset.
  const create = {
    name: 'Leonhard Euler Party',
    description: 'Mathematician Guest List',
    columns: ['Friend', { name: 'Attending', type: 'LONG' as const }],
  }
  const noStream = { streamId: undefined, create, columns: ['friend', 'attending'] }
  const guests = [record('{"friend":"Gauss","attending":1}'), record('{"friend":"Bernoulli","attending":0}')]

  it('public API: searches by dataset name, creates the stream with its schema, and a second sink finds it', async () => {
    const mock = await api(2, { streams: {} })
    const first = sink(domoConfig(mock, noStream))
    expect((await first.write(guests, AbortSignal.timeout(10_000))).failed).toEqual([])
    const [search, created] = mock.requests.filter((r) => r.path.startsWith('/v1/'))
    expect(search!.method).toBe('GET')
    const q = new URL(search!.path, mock.url).searchParams
    expect(q.get('q')).toBe('dataSource.name:Leonhard Euler Party')
    expect(`${created!.method} ${created!.path}`).toBe('POST /v1/streams')
    expect(JSON.parse(created!.raw.toString())).toEqual({
      dataSet: {
        name: 'Leonhard Euler Party',
        description: 'Mathematician Guest List',
        schema: {
          columns: [
            { type: 'STRING', name: 'Friend' },
            { type: 'LONG', name: 'Attending' },
          ],
        },
      },
      updateMethod: 'APPEND',
    })
    const [id] = mock.streamsNamed('Leonhard Euler Party')
    expect(mock.rows(id!)).toEqual([
      ['Gauss', '1'],
      ['Bernoulli', '0'],
    ])
    const second = sink(domoConfig(mock, noStream))
    await second.healthcheck(AbortSignal.timeout(5_000))
    await second.write([record('{"friend":"Euler","attending":1}')], AbortSignal.timeout(10_000))
    expect(mock.streamsNamed('Leonhard Euler Party')).toEqual([id])
    expect(mock.requests.filter((r) => r.method === 'POST' && r.path === '/v1/streams')).toHaveLength(1)
    expect(ids(mock.rows(id!))).toEqual(['Gauss', 'Bernoulli', 'Euler'])
  })

  it('instance API: POST with 002’s shape {transport, dataSource}, then PUT {schemaDefinition}; rows land there', async () => {
    const mock = await api(2, { streams: {} })
    const s = sink(instanceConfig(mock, noStream))
    await s.healthcheck(AbortSignal.timeout(5_000))
    await s.write(guests, AbortSignal.timeout(10_000))
    const [id] = mock.streamsNamed('Leonhard Euler Party')
    expect(mock.requests.slice(0, 4).map((r) => `${r.method} ${r.path}`)).toEqual([
      `GET /api/data/v1/streams/search?q=${encodeURIComponent('dataSource.name:Leonhard Euler Party').replaceAll('%20', '+')}`,
      'POST /api/data/v1/streams',
      `PUT /api/data/v1/streams/${id}`,
      `GET /api/data/v1/streams/${id}`,
    ])
    expect(JSON.parse(mock.requests[1]!.raw.toString())).toEqual({
      transport: { type: 'API' },
      dataSource: { name: 'Leonhard Euler Party', description: 'Mathematician Guest List' },
    })
    expect(JSON.parse(mock.requests[2]!.raw.toString())).toEqual({
      schemaDefinition: {
        columns: [
          { type: 'STRING', name: 'Friend' },
          { type: 'LONG', name: 'Attending' },
        ],
      },
    })
    expect(mock.rows(id!)).toEqual([
      ['Gauss', '1'],
      ['Bernoulli', '0'],
    ])
  })

  it('picks the exact name among wildcard matches; two streams of that name hold the records (which one?)', async () => {
    const mock = await api(2, {
      streams: {
        '7': { columns: 2, name: 'Leonhard Euler Party (archive)' },
        '8': { columns: 2, name: 'Leonhard Euler Party' },
      },
    })
    await sink(domoConfig(mock, noStream)).write(guests, AbortSignal.timeout(10_000))
    expect(mock.rows(8)).toHaveLength(2)
    expect(mock.rows(7)).toEqual([])

    const wrapped = await api(2, {
      streams: { '9': { columns: 2, name: 'Leonhard Euler Party' } },
      wrapSearch: true,
    })
    await sink(instanceConfig(wrapped, noStream)).write(guests, AbortSignal.timeout(10_000))
    expect(wrapped.rows(9)).toHaveLength(2) // found inside {"streams": […]}, not created again
    expect(wrapped.streamsNamed('Leonhard Euler Party')).toEqual([9])

    const twice = await api(2, {
      streams: {
        '7': { columns: 2, name: 'Leonhard Euler Party' },
        '8': { columns: 2, name: 'Leonhard Euler Party' },
      },
    })
    const err = await rejection(sink(domoConfig(twice, noStream)).write(guests, AbortSignal.timeout(10_000)))
    expect(err).toMatchObject({ retriable: true, reason: 'domo-ambiguous-stream' })
    expect(err.message).toContain('7, 8')
  })
})

describe('domo instance API mock follows vendor-docs/002', () => {
  const auth = { 'x-domo-developer-token': DEV_TOKEN }
  const jsonHeaders = { ...auth, 'content-type': 'application/json' }

  it('takes 002’s create example as is, answers in its retrieval shape, searches, and updates only the four fields', async () => {
    const mock = await api(2, { streams: {} })
    const base = `${mock.url}/api/data/v1/streams`
    // 002's own request example, verbatim.
    const example = `{
  "transport": {
    "type": "SFTP"
  },
  "dataSource": {
    "name": "My New DataSet",
    "description": "This will bring about world peace"
  },
  "account": {
    "id": 19
  }
}`
    expect((await send(base, { headers: auth, body: example })).status).toBe(415) // no Content-Type
    const created = await send(base, { headers: jsonHeaders, body: example })
    expect(created.status).toBe(201)
    const stream = created.json<Record<string, unknown>>()
    // The keys of 002's retrieval example.
    for (const key of [
      'id',
      'valid',
      'transport',
      'account',
      'dataProvider',
      'dataSource',
      'executions',
      'changes',
    ])
      expect(stream).toHaveProperty(key)
    expect(stream.dataSource).toMatchObject({
      name: 'My New DataSet',
      description: 'This will bring about world peace',
    })
    const id = stream.id as number
    expect((await send(`${base}/${id}`, { method: 'GET', headers: auth })).json()).toMatchObject({
      id,
      transport: { type: 'SFTP' },
    })
    expect((await send(`${base}/${id}`, { method: 'GET' })).status).toBe(401)

    const search = await send(`${base}/search?q=${encodeURIComponent('dataSource.name:My New*')}`, {
      method: 'GET',
      headers: auth,
    })
    expect(search.json<{ id: number }[]>().map((s) => s.id)).toEqual([id])
    expect(
      (
        await send(`${base}/search?q=${encodeURIComponent('transport.type:SFTP')}`, {
          method: 'GET',
          headers: auth,
        })
      ).json<unknown[]>().length,
    ).toBe(1)

    const put = (body: unknown): Promise<{ status: number }> =>
      send(`${base}/${id}`, { method: 'PUT', headers: jsonHeaders, body: JSON.stringify(body) })
    expect((await put({ schemaDefinition: { columns: [{ type: 'STRING', name: 'a' }] } })).status).toBe(200)
    expect((await put({ executions: [] })).status).toBe(400) // not one of the updatable fields

    // 002: "You can override this behavior by passing this information into the body".
    const exec = await send(`${base}/${id}/executions`, {
      headers: jsonHeaders,
      body: '{"updateMethod":"REPLACE"}',
    })
    expect(exec.status).toBe(201)
    const execId = exec.json<{ id: number }>().id
    expect(mock.executions.get(execId)!.updateMethod).toBe('REPLACE')
    const part = await send(`${base}/${id}/data/${execId}/parts/1`, {
      method: 'PUT',
      headers: { ...auth, 'content-type': 'text/csv' },
      body: 'x\n',
    })
    expect(part.status).toBe(200)
    expect((await send(`${base}/${id}/data/${execId}/commit`, { method: 'PUT', headers: auth })).status).toBe(
      200,
    )
    expect(mock.rows(id)).toEqual([['x']])
    const second = (await send(`${base}/${id}/executions`, { headers: auth })).json<{ id: number }>().id
    const deleted = await send(`${base}/${id}/executions/${second}`, { method: 'DELETE', headers: auth })
    expect(deleted.json()).toMatchObject({ currentState: 'ABORTED' })
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
