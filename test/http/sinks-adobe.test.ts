import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { validateConfig } from '../../src/config/load.js'
import type { AdobeSinkConfig } from '../../src/config/types.js'
import { SinkError } from '../../src/errors.js'
import { deliver } from '../../src/pipeline/delivery.js'
import type { SinkRecord } from '../../src/records/record.js'
import { ADOBE_MAX_REQUEST_BYTES, createAdobeSink } from '../../src/sinks/adobe/sink.js'
import type { Sink } from '../../src/sinks/sink.js'
import { createLogger } from '../../src/telemetry/logger.js'
import { Metrics } from '../../src/telemetry/metrics.js'
import { records, sinkConformance } from '../conformance/sink-conformance.js'
import { readNdjsonLines, startGateway, waitFor } from '../support/gateway.js'
import { send } from '../support/http.js'
import { AdobeInletMock } from '../support/mocks/adobe-inlet.js'

const logger = createLogger('silent')
const SCHEMA = 'https://ns.adobe.com/acmecorp/schemas/7b3e2c1d9f'
const CONTENT_TYPE = 'application/vnd.adobe.xed-full+json;version=1'
const ORG = '5D3A2B1C@AdobeOrg'
const RECEIVED = 1_700_000_000_123

const adobeConfig = (mock: AdobeInletMock, extra: Partial<AdobeSinkConfig> = {}): AdobeSinkConfig => ({
  type: 'adobe',
  inletUrl: mock.inletUrl,
  mode: 'batch',
  syncValidation: false,
  schemaRef: SCHEMA,
  schemaContentType: CONTENT_TYPE,
  imsOrgId: ORG,
  datasetId: '5c8c3c555033b814b69f947f',
  flowId: 'd8a6f005-flow',
  sourceName: 'streamgate',
  requestsPerSecond: 1000,
  messagesPerSecond: 10_000,
  retry: { initialMs: 10, maxMs: 100, maxAttempts: 0 },
  ...extra,
})

const record = (text: string, receivedAtMs = RECEIVED): SinkRecord => ({
  stream: 'events',
  payload: Buffer.from(text),
  receivedAtMs,
})

const PAYLOADS = [
  '{"id":12345678901234567890123,"text":"grüße ✓ 日本","timestamp":"2024-05-01T10:00:00Z"}',
  '{"id":9007199254740993, "sim":{"iccid":"8988303000000001234"},"n":-0.0}',
  '{"id":3,"s":"quote \\" backslash \\\\ \\u00e9"}',
]

/** The envelope as vendor-formats.md §3.2 shows it, written out independently of the sink's code. */
const expectedEnvelope = (payload: string, createdAt = RECEIVED): string =>
  `{"header":{"schemaRef":{"id":"${SCHEMA}","contentType":"${CONTENT_TYPE}"},"imsOrgId":"${ORG}",` +
  `"datasetId":"5c8c3c555033b814b69f947f","flowId":"d8a6f005-flow","source":{"name":"streamgate"},` +
  `"createdAt":${createdAt}},"body":{"xdmMeta":{"schemaRef":{"id":"${SCHEMA}","contentType":"${CONTENT_TYPE}"}},` +
  `"xdmEntity":${payload}}}`

async function rejection(p: Promise<unknown>): Promise<SinkError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(SinkError)
  return err as SinkError
}

/** A logger whose lines the test can read. */
function capturingLogger(): { logger: ReturnType<typeof createLogger>; lines: string[] } {
  const lines: string[] = []
  return { logger: createLogger('info', { write: (line: string) => void lines.push(line) }), lines }
}

const opened: { sinks: Sink[]; mocks: AdobeInletMock[] } = { sinks: [], mocks: [] }
async function inlet(options: Parameters<typeof AdobeInletMock.start>[0] = {}): Promise<AdobeInletMock> {
  const mock = await AdobeInletMock.start({ imsOrgId: ORG, ...options })
  opened.mocks.push(mock)
  return mock
}
function sink(config: AdobeSinkConfig, log = logger): Sink {
  const s = createAdobeSink('aep', config, { logger: log })
  opened.sinks.push(s)
  return s
}
afterEach(async () => {
  await Promise.all(opened.sinks.splice(0).map((s) => s.close()))
  await Promise.all(opened.mocks.splice(0).map((m) => m.close()))
})

const batchRequests = (mock: AdobeInletMock): AdobeInletMock['requests'] =>
  mock.requests.filter((r) => r.path.startsWith('/collection/batch/'))

describe('adobe sink: envelopes and requests', () => {
  it('builds the XDM envelope as configured, with the record bytes verbatim as xdmEntity', async () => {
    const mock = await inlet()
    const result = await sink(adobeConfig(mock)).write(
      PAYLOADS.map((p) => record(p)),
      AbortSignal.timeout(10_000),
    )
    expect(result.failed).toEqual([])
    expect(mock.requests).toHaveLength(1)
    const req = mock.requests[0]!
    expect(req.method).toBe('POST')
    expect(req.path).toBe(`/collection/batch/${mock.inletId}`)
    expect(req.headers['content-type']).toBe('application/json')
    // An unauthenticated inlet needs no auth headers [AEP-RECORD].
    expect(req.headers.authorization).toBeUndefined()
    expect(req.headers['x-api-key']).toBeUndefined()
    expect(req.raw.toString('utf8')).toBe(
      `{"messages":[${PAYLOADS.map((p) => expectedEnvelope(p)).join(',')}]}`,
    )
    const first = (req.body as { messages: { header: unknown; body: { xdmMeta: unknown } }[] }).messages[0]!
    expect(first.header).toEqual({
      schemaRef: { id: SCHEMA, contentType: CONTENT_TYPE },
      imsOrgId: ORG,
      datasetId: '5c8c3c555033b814b69f947f',
      flowId: 'd8a6f005-flow',
      source: { name: 'streamgate' },
      createdAt: RECEIVED,
    })
    expect(first.body.xdmMeta).toEqual({ schemaRef: { id: SCHEMA, contentType: CONTENT_TYPE } })
    expect(mock.entities()).toEqual(PAYLOADS)
    expect(mock.entities()[0]).toContain('12345678901234567890123')
  })

  it('leaves out envelope keys that are not configured', async () => {
    const mock = await inlet()
    const config = adobeConfig(mock)
    delete config.imsOrgId
    delete config.flowId
    delete config.sourceName
    await sink(config).write([record('{"a":1}')], AbortSignal.timeout(10_000))
    const text = mock.requests[0]!.raw.toString('utf8')
    expect(text).toBe(
      `{"messages":[{"header":{"schemaRef":{"id":"${SCHEMA}","contentType":"${CONTENT_TYPE}"},` +
        `"datasetId":"5c8c3c555033b814b69f947f","createdAt":${RECEIVED}},"body":{"xdmMeta":{"schemaRef":` +
        `{"id":"${SCHEMA}","contentType":"${CONTENT_TYPE}"}},"xdmEntity":{"a":1}}}]}`,
    )
  })

  it('builds xdmEntity from a mapping with each value’s exact JSON text', async () => {
    const mock = await inlet()
    const mapping = {
      _id: 'id',
      timestamp: 'timestamp',
      '_acmecorp.sim.iccid': 'sim.iccid',
      '_acmecorp.sim.imsi': 'sim.imsi',
      '_acmecorp.usage': 'usage',
      '_acmecorp.label': 'label',
      '_acmecorp.absent': 'no.such.field',
    }
    const payload =
      '{"id":12345678901234567890,"timestamp":"2024-05-01T10:00:00Z","label":"a \\"quoted\\" ü",' +
      '"sim":{"imsi":"295050900000001","iccid":"8988303000000001234"},"usage":{"volume":{"rx":1.50,"tx":0}},"x":null}'
    await sink(adobeConfig(mock, { mapping })).write([record(payload)], AbortSignal.timeout(10_000))
    expect(mock.entities()).toEqual([
      '{"_id":12345678901234567890,"timestamp":"2024-05-01T10:00:00Z","_acmecorp":{"sim":{"iccid":"8988303000000001234",' +
        '"imsi":"295050900000001"},"usage":{"volume":{"rx":1.50,"tx":0}},"label":"a \\"quoted\\" ü"}}',
    ])
  })

  it('keeps every request within 1 MB and delivers each of many records exactly once', async () => {
    const mock = await inlet()
    const many = Array.from({ length: 2500 }, (_, i) =>
      record(`{"id":${9_007_199_254_740_993n + BigInt(i)},"pad":"${'p'.repeat(1500)}"}`),
    )
    const result = await sink(adobeConfig(mock)).write(many, AbortSignal.timeout(30_000))
    expect(result.failed).toEqual([])
    const requests = batchRequests(mock)
    expect(requests.length).toBeGreaterThanOrEqual(4)
    for (const r of requests) expect(r.raw.length).toBeLessThanOrEqual(ADOBE_MAX_REQUEST_BYTES)
    expect(requests.every((r) => r.status === 207)).toBe(true)
    const got = mock.entities().sort()
    expect(got).toEqual(many.map((r) => r.payload.toString()).sort())
    expect(new Set(got).size).toBe(many.length)
  })

  it('sends the authenticated-inlet headers with a static token', async () => {
    const mock = await inlet({ authenticated: true })
    const token = mock.issueToken()
    const config = adobeConfig(mock, { auth: { token }, apiKey: 'acme-api-key', sandboxName: 'prod' })
    const result = await sink(config).write([record('{"a":1}')], AbortSignal.timeout(10_000))
    expect(result.failed).toEqual([])
    const headers = mock.requests[0]!.headers
    expect(headers.authorization).toBe(`Bearer ${token}`)
    expect(headers['x-gw-ims-org-id']).toBe(ORG)
    expect(headers['x-api-key']).toBe('acme-api-key')
    expect(headers['x-sandbox-name']).toBe('prod')
  })

  it('single mode posts one message per request to the inlet URL, with syncValidation when asked', async () => {
    const mock = await inlet()
    const plain = sink(adobeConfig(mock, { mode: 'single' }))
    expect(
      (
        await plain.write(
          PAYLOADS.map((p) => record(p)),
          AbortSignal.timeout(10_000),
        )
      ).failed,
    ).toEqual([])
    expect(mock.requests.map((r) => r.path)).toEqual(PAYLOADS.map(() => `/collection/${mock.inletId}`))
    expect(mock.requests.map((r) => r.raw.toString()).sort()).toEqual(
      PAYLOADS.map((p) => expectedEnvelope(p)).sort(),
    )
    expect(mock.requests.every((r) => !r.query.has('syncValidation'))).toBe(true)

    mock.requests.length = 0
    const validated = sink(adobeConfig(mock, { mode: 'single', syncValidation: true }))
    expect((await validated.write([record('{"b":2}')], AbortSignal.timeout(10_000))).failed).toEqual([])
    expect(mock.requests[0]!.query.get('syncValidation')).toBe('true')
  })

  it('single mode: a region without sync validation (501) is a permanent failure', async () => {
    const mock = await inlet({ syncValidationSupported: false })
    const s = sink(adobeConfig(mock, { mode: 'single', syncValidation: true }))
    const err = await rejection(s.write([record('{"b":2}')], AbortSignal.timeout(10_000)))
    expect(err).toMatchObject({ retriable: false, reason: 'adobe-501' })
  })

  it('raw mode posts the record as is with x-adobe-flow-id', async () => {
    const mock = await inlet()
    const s = sink(adobeConfig(mock, { mode: 'raw', flowId: 'raw-flow-7' }))
    expect((await s.write([record(PAYLOADS[0]!)], AbortSignal.timeout(10_000))).failed).toEqual([])
    const req = mock.requests[0]!
    expect(req.path).toBe(`/collection/${mock.inletId}`)
    expect(req.headers['x-adobe-flow-id']).toBe('raw-flow-7')
    expect(req.raw.equals(Buffer.from(PAYLOADS[0]!))).toBe(true)
    expect(mock.accepted[0]!.endpoint).toBe('raw')
  })

  it('refuses configurations the inlet cannot take', async () => {
    const mock = await inlet()
    expect(() => sink(adobeConfig(mock, { inletUrl: 'https://dcs.adobedc.net/elsewhere' }))).toThrow(
      /inletUrl/,
    )
    const noSchema = adobeConfig(mock)
    delete noSchema.schemaRef
    expect(() => sink(noSchema)).toThrow(/schemaRef/)
    const noFlow = adobeConfig(mock, { mode: 'raw' })
    delete noFlow.flowId
    expect(() => sink(noFlow)).toThrow(/flowId/)
    expect(() => sink(adobeConfig(mock, { syncValidation: true }))).toThrow(/sinks\.aep\.syncValidation/)
  })

  it('a query string on inletUrl is not copied onto the batch URL; single-message requests keep it', async () => {
    const mock = await inlet()
    const inletUrl = `${mock.inletUrl}?syncValidation=true&x-adobe-flow-id=flow-9`
    const batched = sink(adobeConfig(mock, { inletUrl }))
    expect((await batched.write([record('{"a":1}')], AbortSignal.timeout(10_000))).failed).toEqual([])
    const batchReq = mock.requests[0]!
    expect(batchReq.path).toBe(`/collection/batch/${mock.inletId}`)
    expect(batchReq.query.toString()).toBe('')
    expect(batchReq.status).toBe(207)

    mock.requests.length = 0
    const single = sink(adobeConfig(mock, { inletUrl, mode: 'single' }))
    expect((await single.write([record('{"b":2}')], AbortSignal.timeout(10_000))).failed).toEqual([])
    const singleReq = mock.requests[0]!
    expect(singleReq.path).toBe(`/collection/${mock.inletId}`)
    expect(Object.fromEntries(singleReq.query)).toEqual({
      syncValidation: 'true',
      'x-adobe-flow-id': 'flow-9',
    })
  })
})

describe('adobe sink: answers and failures', () => {
  const metricsText = async (m: Metrics): Promise<string> => m.registry.metrics()

  it('207 partial failure: resends only the failed messages, dead-letters the 400 ones with Adobe’s message', async () => {
    const mock = await inlet()
    const batch = Array.from({ length: 10 }, (_, i) => record(`{"id":"p-${i}","n":${i}}`))
    mock.failMessagesContaining('"id":"p-3"', 400, 'Message has an absent or wrong ims org in the header')
    mock.failMessagesAt([5, 7], 503, 1)
    const dead: { records: SinkRecord[]; error: SinkError }[] = []
    const metrics = new Metrics({ defaultMetrics: false })
    await deliver(sink(adobeConfig(mock)), batch, {
      retry: { initialMs: 10, maxMs: 50, maxAttempts: 0 },
      signal: AbortSignal.timeout(20_000),
      metrics,
      logger,
      deadLetter: async (records, error) => void dead.push({ records, error }),
    })
    expect(dead).toHaveLength(1)
    expect(dead[0]!.records.map((r) => r.payload.toString())).toEqual(['{"id":"p-3","n":3}'])
    expect(dead[0]!.error).toMatchObject({ retriable: false, reason: 'adobe-400' })
    expect(dead[0]!.error.message).toContain('Message has an absent or wrong ims org in the header')
    const sizes = batchRequests(mock).map((r) => (r.body as { messages: unknown[] }).messages.length)
    expect(sizes).toEqual([10, 2])
    const got = mock.entities().sort()
    expect(got).toEqual(
      batch
        .filter((_, i) => i !== 3)
        .map((r) => r.payload.toString())
        .sort(),
    )
    expect(await metricsText(metrics)).toContain(
      'streamgate_sink_records_failed_total{sink="aep",reason="adobe-400"} 1',
    )
  })

  it('413: halves the request and resends; a single message over the limit is permanent record-too-large', async () => {
    // The documented limit is 1 MB and the sink never sends more; a stricter server exercises the fallback.
    const mock = await inlet({ maxRequestBytes: 20_000 })
    const small = Array.from({ length: 40 }, (_, i) => record(`{"i":${i},"pad":"${'s'.repeat(900)}"}`))
    const huge = record(`{"huge":"${'h'.repeat(25_000)}"}`)
    const s = sink(adobeConfig(mock))
    const result = await s.write(
      [...small.slice(0, 20), huge, ...small.slice(20)],
      AbortSignal.timeout(20_000),
    )
    expect(result.failed.map((f) => f.index)).toEqual([20])
    expect(result.failed[0]!.error).toMatchObject({ retriable: false, reason: 'record-too-large' })
    expect(batchRequests(mock).some((r) => r.status === 413)).toBe(true)
    expect(mock.entities().sort()).toEqual(small.map((r) => r.payload.toString()).sort())
  })

  it('a record whose envelope cannot fit in 1 MB is refused before sending', async () => {
    const mock = await inlet()
    const s = sink(adobeConfig(mock))
    expect(s.limits.maxRecordBytes).toBeLessThan(ADOBE_MAX_REQUEST_BYTES)
    expect(s.limits.maxRecordBytes).toBeGreaterThan(ADOBE_MAX_REQUEST_BYTES - 1000)
    const justOver = record(`{"x":"${'x'.repeat(s.limits.maxRecordBytes - 7)}"}`)
    expect(justOver.payload.length).toBe(s.limits.maxRecordBytes + 1)
    const result = await s.write([justOver, record('{"ok":1}')], AbortSignal.timeout(10_000))
    expect(result.failed.map((f) => [f.index, f.error.reason])).toEqual([[0, 'record-too-large']])
    expect(mock.entities()).toEqual(['{"ok":1}'])
  })

  it('401 without a token (AEP-HTTP’s answer) and 403 with a bad one are "auth failed", not bad records', async () => {
    const mock = await inlet({ authenticated: true })
    const { logger: log, lines } = capturingLogger()
    const none = await rejection(
      sink(adobeConfig(mock), log).write(records(2, 'noauth'), AbortSignal.timeout(10_000)),
    )
    const bad = await rejection(
      sink(adobeConfig(mock, { auth: { token: 'not-a-valid-token' } }), log).write(
        records(2, 'bad'),
        AbortSignal.timeout(10_000),
      ),
    )
    for (const err of [none, bad]) expect(err).toMatchObject({ retriable: true, reason: 'auth' })
    expect(none.message).toMatch(/^auth failed: .*401.*Ims service token is empty/)
    expect(bad.message).toMatch(/^auth failed: .*403/)
    expect(mock.requests.map((r) => r.status)).toEqual([401, 403])
    const errors = lines.filter((l) => l.includes('"level":50'))
    expect(errors).toHaveLength(2)
    expect(errors.join('')).toContain('records stay in the spool')
    expect(lines.join('')).not.toContain('not-a-valid-token')
    expect(mock.accepted).toEqual([])
  })

  it('an expired static token holds the records: retried with backoff past maxAttempts, counted, never dead-lettered', async () => {
    const mock = await inlet({ authenticated: true })
    const token = mock.issueToken()
    const s = sink(adobeConfig(mock, { auth: { token } }))
    await s.write(records(1, 'before'), AbortSignal.timeout(10_000))
    mock.expireTokens()
    const metrics = new Metrics({ defaultMetrics: false })
    const dead: SinkError[] = []
    const batch = records(3, 'held')
    const delivering = deliver(s, batch, {
      retry: { initialMs: 5, maxMs: 40, maxAttempts: 2 },
      signal: AbortSignal.timeout(20_000),
      metrics,
      logger,
      deadLetter: async (_, error) => void dead.push(error),
    })
    await waitFor(() => batchRequests(mock).filter((r) => r.status === 403).length >= 4, 10_000, '403s')
    mock.acceptToken(token) // the operator renewed it
    await delivering
    expect(dead).toEqual([])
    expect(mock.entities()).toHaveLength(4)
    const text = await metrics.registry.metrics()
    expect(text).toMatch(/streamgate_sink_auth_failures_total\{sink="aep"\} ([4-9]|\d\d+)/)
    expect(text).toMatch(/streamgate_sink_records_retried_total\{sink="aep",reason="auth"\} \d+/)
  })

  it('OAuth: a renewal the token endpoint refuses is the same auth failure; delivered once it works again', async () => {
    const mock = await inlet({ authenticated: true, clientId: 'cid', clientSecret: 'sec' })
    const s = sink(
      adobeConfig(mock, { auth: { clientId: 'cid', clientSecret: 'sec', tokenUrl: mock.tokenUrl } }),
    )
    await s.write(records(1, 'first'), AbortSignal.timeout(10_000))
    mock.expireTokens()
    mock.failNextTokens(3, 401)
    const dead: SinkError[] = []
    await deliver(s, records(2, 'renewal'), {
      retry: { initialMs: 5, maxMs: 40, maxAttempts: 2 },
      signal: AbortSignal.timeout(20_000),
      metrics: new Metrics({ defaultMetrics: false }),
      logger,
      deadLetter: async (_, error) => void dead.push(error),
    })
    expect(dead).toEqual([])
    expect(mock.tokenRequests).toBe(5) // the first token, 3 refused renewals, the one that worked
    expect(mock.entities()).toHaveLength(3)
  })

  it('OAuth server-to-server: one token for many writes, renewed once after the inlet refuses it', async () => {
    const mock = await inlet({ authenticated: true, clientId: 'cid-1', clientSecret: 'csecret-1' })
    const config = adobeConfig(mock, {
      auth: {
        clientId: 'cid-1',
        clientSecret: 'csecret-1',
        tokenUrl: mock.tokenUrl,
        scopes: ['openid', 'AdobeID'],
      },
    })
    const s = sink(config)
    for (let i = 0; i < 3; i++) await s.write(records(2, `oauth${i}`), AbortSignal.timeout(10_000))
    expect(mock.tokenRequests).toBe(1)
    const tokenRequest = mock.requests.find((r) => r.path === '/ims/token/v3')!
    const form = new URLSearchParams(tokenRequest.raw.toString())
    expect(Object.fromEntries(form)).toEqual({
      grant_type: 'client_credentials',
      client_id: 'cid-1',
      client_secret: 'csecret-1',
      scope: 'openid,AdobeID',
    })
    const inletRequest = batchRequests(mock)[0]!
    expect(inletRequest.headers.authorization).toMatch(/^Bearer tok-/)
    expect(inletRequest.headers['x-api-key']).toBe('cid-1')
    expect(inletRequest.headers['x-gw-ims-org-id']).toBe(ORG)

    mock.expireTokens()
    const result = await s.write(records(2, 'after-expiry'), AbortSignal.timeout(10_000))
    expect(result.failed).toEqual([])
    expect(mock.tokenRequests).toBe(2)
    expect(
      batchRequests(mock)
        .slice(-2)
        .map((r) => r.status),
    ).toEqual([403, 207])
    expect(mock.accepted).toHaveLength(8)
  })

  it('OAuth: renews the token shortly before expires_in, and wrong credentials are an auth failure', async () => {
    const mock = await inlet({
      authenticated: true,
      clientId: 'cid',
      clientSecret: 'right',
      tokenLifetimeS: 1,
    })
    const s = sink(
      adobeConfig(mock, { auth: { clientId: 'cid', clientSecret: 'right', tokenUrl: mock.tokenUrl } }),
    )
    await s.write(records(1, 'a'), AbortSignal.timeout(10_000))
    await s.write(records(1, 'b'), AbortSignal.timeout(10_000))
    expect(mock.tokenRequests).toBe(1)
    await new Promise((r) => setTimeout(r, 950))
    await s.write(records(1, 'c'), AbortSignal.timeout(10_000))
    expect(mock.tokenRequests).toBe(2)
    expect(batchRequests(mock).every((r) => r.status === 207)).toBe(true)

    const wrong = sink(
      adobeConfig(mock, { auth: { clientId: 'cid', clientSecret: 'wrong', tokenUrl: mock.tokenUrl } }),
    )
    const err = await rejection(wrong.write(records(1, 'd'), AbortSignal.timeout(10_000)))
    expect(err).toMatchObject({ retriable: true, reason: 'auth' })
    expect(err.message).not.toContain('wrong')
  })

  it('429 is transient, with Retry-After when the inlet sends one and without when it does not', async () => {
    const mock = await inlet()
    const s = sink(adobeConfig(mock))
    mock.failNext(1, 429, '3')
    const withHeader = await rejection(s.write(records(2, 'r1'), AbortSignal.timeout(10_000)))
    expect(withHeader).toMatchObject({ retriable: true, reason: 'adobe-429', retryAfterMs: 3000 })
    mock.failNext(1, 429)
    const without = await rejection(s.write(records(2, 'r2'), AbortSignal.timeout(10_000)))
    expect(without).toMatchObject({ retriable: true, reason: 'adobe-429' })
    expect(without.retryAfterMs).toBeUndefined()
    mock.failNext(1, 500)
    expect(await rejection(s.write(records(2, 'r3'), AbortSignal.timeout(10_000)))).toMatchObject({
      retriable: true,
      reason: 'adobe-500',
    })
  })

  it('503 is retried at least 3 times with backoff (the default policy retries forever) and then delivered', async () => {
    const { config } = validateConfig({
      sinks: { aep: { type: 'adobe', inletUrl: 'https://dcs.adobedc.net/collection/x', schemaRef: SCHEMA } },
      streams: {},
    })
    const defaults = config!.sinks.aep!.retry
    expect(defaults.maxAttempts === 0 || defaults.maxAttempts > 3).toBe(true)

    const mock = await inlet()
    mock.failNext(3, 503)
    const batch = records(3, 'unavailable')
    const metrics = new Metrics({ defaultMetrics: false })
    await deliver(sink(adobeConfig(mock)), batch, {
      retry: { initialMs: 10, maxMs: 100, maxAttempts: 0 },
      signal: AbortSignal.timeout(20_000),
      metrics,
      logger,
      deadLetter: async () => {
        throw new Error('nothing should be dead-lettered')
      },
    })
    expect(batchRequests(mock).map((r) => r.status)).toEqual([503, 503, 503, 207])
    expect(mock.entities().sort()).toEqual(batch.map((r) => r.payload.toString()).sort())
    expect(await metrics.registry.metrics()).toContain(
      'streamgate_sink_records_retried_total{sink="aep",reason="adobe-503"} 9',
    )
  })

  it('connection resets are transient and retried; each record arrives once', async () => {
    const mock = await inlet()
    mock.resetNext(2)
    const batch = records(5, 'reset')
    await deliver(sink(adobeConfig(mock)), batch, {
      retry: { initialMs: 10, maxMs: 50, maxAttempts: 0 },
      signal: AbortSignal.timeout(20_000),
      metrics: new Metrics({ defaultMetrics: false }),
      logger,
      deadLetter: async () => {
        throw new Error('nothing should be dead-lettered')
      },
    })
    expect(mock.entities().sort()).toEqual(batch.map((r) => r.payload.toString()).sort())
  })

  it('rate limiter: requestsPerSecond 5 spreads 20 requests over about 3 s', async () => {
    const mock = await inlet()
    const s = sink(adobeConfig(mock, { mode: 'single', requestsPerSecond: 5 }))
    const started = performance.now()
    const result = await s.write(records(20, 'rate'), AbortSignal.timeout(20_000))
    const elapsed = performance.now() - started
    expect(result.failed).toEqual([])
    expect(mock.accepted).toHaveLength(20)
    // A burst of 5, then 15 more at 5 per second.
    expect(elapsed).toBeGreaterThanOrEqual(2_800)
    expect(elapsed).toBeLessThan(6_000)
  })

  it('rate limiter honours the abort signal while waiting', async () => {
    const mock = await inlet()
    const s = sink(adobeConfig(mock, { mode: 'single', requestsPerSecond: 1 }))
    const controller = new AbortController()
    setTimeout(() => controller.abort(new Error('shutting down')), 200)
    const started = performance.now()
    await expect(s.write(records(5, 'abort'), controller.signal)).rejects.toThrow('shutting down')
    expect(performance.now() - started).toBeLessThan(1_500)
  })
})

describe('adobe inlet mock follows vendor-formats.md §3', () => {
  it('batch: always 207, one entry per message in order, unknown xdm format for a message without body', async () => {
    const mock = await inlet()
    const res = await send(mock.batchUrl, {
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ messages: [{ header: {}, body: { xdmEntity: {} } }, { header: {} }] }),
    })
    expect(res.status).toBe(207)
    const doc = res.json<{
      batchId: string
      responses: { xactionId?: string; statusCode?: number; message?: string }[]
    }>()
    expect(doc.responses[0]!.xactionId).toBe(`${doc.batchId}:0`)
    expect(doc.responses[1]).toMatchObject({ statusCode: 400 })
    expect(doc.responses[1]!.message).toContain('Message has unknown xdm format')
  })

  it('authenticated: 401 with "status" as a string, 413 over 1 MB', async () => {
    const authed = await inlet({ authenticated: true })
    const res = await send(authed.batchUrl, {
      headers: { 'content-type': 'application/json' },
      body: '{"messages":[]}',
    })
    expect(res.status).toBe(401)
    expect(res.json()).toMatchObject({ status: '401', title: 'Authorization' })
    const open = await inlet()
    const big = await send(open.batchUrl, { body: `{"messages":["${'x'.repeat(ADOBE_MAX_REQUEST_BYTES)}"]}` })
    expect(big.status).toBe(413)
  })
})

sinkConformance(
  'adobe',
  async () => {
    const mock = await AdobeInletMock.start()
    const config = (o?: { maxBatchRecords?: number }): AdobeSinkConfig =>
      adobeConfig(mock, o?.maxBatchRecords ? { maxBatchRecords: o.maxBatchRecords } : {})
    return {
      create: async (o) => createAdobeSink('adobe-conf', config(o), { logger }),
      readBack: async () => mock.entities().map((e) => Buffer.from(e)),
      // An inlet id the service does not know: 404 on every request.
      createPermanentlyFailing: async () =>
        createAdobeSink(
          'adobe-bad',
          { ...config(), inletUrl: `${mock.url}/collection/no-such-inlet` },
          { logger },
        ),
      createTransientlyFailing: async () => {
        mock.failAlways(503)
        return { sink: createAdobeSink('adobe-flaky', config(), { logger }), heal: async () => mock.heal() }
      },
      injectPartialFailure: async () => mock.failMessagesAt([1, 4, 7], 503, 1),
      cleanup: () => mock.close(),
    }
  },
  { transient: true, partialFailure: true },
)

describe('adobe sink through the gateway: an expired static token', () => {
  it('holds the lane: sink status says "auth failed", the circuit opens, nothing is dead-lettered; delivered once renewed', async () => {
    const mock = await inlet({ authenticated: true })
    const token = 'static-token-expired'
    const ADMIN = 'auth-hold-admin'
    const gw = await startGateway({
      admin: { token: ADMIN },
      sinks: {
        aep: {
          type: 'adobe',
          inletUrl: mock.inletUrl,
          schemaRef: SCHEMA,
          imsOrgId: ORG,
          auth: { token },
          retry: { initialMs: 10, maxMs: 50, maxAttempts: 3 },
          circuit: { failureThreshold: 2, openMs: 200, maxOpenMs: 400 },
        },
      },
      streams: { events: { source: 'ndjson', sinks: ['aep'] } },
    })
    try {
      const res = await send(`${gw.url}/ingest/events`, { body: '{"n":1}\n{"n":2}\n' })
      expect(res.json()).toMatchObject({ accepted: 2 })
      const auth = { authorization: `Bearer ${ADMIN}` }
      interface View {
        figures: { lag: number; delivered: number; circuit?: { state: string } }
        lastError: { reason: string; message: string } | null
      }
      const view = await waitFor(
        async () => {
          const v = (await send(`${gw.url}/api/v1/sinks/aep`, { method: 'GET', headers: auth })).json<View>()
          return v.figures.circuit && v.lastError?.reason === 'auth' ? v : undefined
        },
        10_000,
        'the sink to report the auth failure with its circuit open',
      )
      expect(view.lastError!.message).toMatch(/^auth failed: .*403/)
      expect(view.figures.lag).toBe(2)
      // More attempts than retry.maxAttempts, and still nothing dead-lettered.
      await waitFor(() => batchRequests(mock).filter((r) => r.status === 403).length > 3, 10_000, 'retries')
      expect(readNdjsonLines(join(gw.dir, 'dead-letter'))).toEqual([])
      const metrics = (await send(`${gw.url}/metrics`, { method: 'GET' })).text
      expect(metrics).toMatch(/streamgate_sink_auth_failures_total\{sink="aep"\} [1-9]/)
      expect(metrics).not.toMatch(/streamgate_sink_records_failed_total\{sink="aep"/)

      mock.acceptToken(token)
      await waitFor(() => mock.accepted.length === 2, 10_000, 'delivery after the token works again')
      expect(mock.entities().sort()).toEqual(['{"n":1}', '{"n":2}'])
      expect(readNdjsonLines(join(gw.dir, 'dead-letter'))).toEqual([])
    } finally {
      await gw.close()
    }
  })
})
