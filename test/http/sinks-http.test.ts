import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { HttpSinkConfig } from '../../src/config/types.js'
import { SinkError } from '../../src/errors.js'
import { deliver } from '../../src/pipeline/delivery.js'
import type { SinkRecord } from '../../src/records/record.js'
import { createHttpSink } from '../../src/sinks/http/sink.js'
import type { Sink } from '../../src/sinks/sink.js'
import { createLogger } from '../../src/telemetry/logger.js'
import { Metrics } from '../../src/telemetry/metrics.js'
import { records, sinkConformance } from '../conformance/sink-conformance.js'
import { readNdjsonLines, startGateway, waitFor, type TestGateway } from '../support/gateway.js'
import { send } from '../support/http.js'
import { HttpTargetMock } from '../support/mocks/http-target.js'

const logger = createLogger('silent')

const config = (url: string, extra: Partial<HttpSinkConfig> = {}): HttpSinkConfig => ({
  type: 'http',
  url,
  method: 'POST',
  format: 'ndjson',
  compression: 'none',
  timeoutMs: 10_000,
  retry: { initialMs: 10, maxMs: 100, maxAttempts: 0 },
  ...extra,
})

const record = (text: string): SinkRecord => ({
  stream: 's',
  payload: Buffer.from(text),
  receivedAtMs: Date.now(),
})

/** Records a relay must carry byte for byte: 64-bit ids, non-ASCII text, escapes, odd spacing. */
const TRICKY = [
  '{"id":12345678901234567890123,"text":"grüße aus Köln ✓ 🌍","n":1}',
  '{"id":9007199254740993, "nested":{"a":[1,2.50,{"b":"c\\"d\\u00e9"}]},"neg":-0.0}',
  '{"id":18446744073709551615,"text":"日本語のテキスト","big":1e400}',
]

async function rejection(p: Promise<unknown>): Promise<SinkError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(SinkError)
  return err as SinkError
}

describe('http sink: streamgate → streamgate relay', () => {
  let inner: TestGateway
  let edge: TestGateway
  const env = { RELAY_TOKEN: 'relay-secret-1' }

  beforeAll(async () => {
    inner = await startGateway(
      {
        sinks: {
          outNd: { type: 'file', dir: '{dir}/nd' },
          outJson: { type: 'file', dir: '{dir}/json' },
        },
        streams: {
          'from-edge': {
            source: 'ndjson',
            auth: { headers: { 'X-Relay-Token': '${RELAY_TOKEN}' } },
            sinks: ['outNd'],
          },
          'from-edge-json': {
            source: 'json',
            auth: { headers: { 'X-Relay-Token': '${RELAY_TOKEN}' } },
            sinks: ['outJson'],
          },
        },
      },
      env,
    )
    edge = await startGateway(
      {
        sinks: {
          relayNd: {
            type: 'http',
            url: `${inner.url}/ingest/from-edge`,
            compression: 'gzip',
            headers: { 'X-Relay-Token': '${RELAY_TOKEN}' },
          },
          relayJson: {
            type: 'http',
            url: `${inner.url}/ingest/from-edge-json`,
            format: 'json-array',
            headers: { 'X-Relay-Token': '${RELAY_TOKEN}' },
          },
        },
        streams: { events: { source: 'ndjson', sinks: ['relayNd', 'relayJson'] } },
      },
      env,
    )
  })

  afterAll(async () => {
    await edge?.close()
    await inner?.close()
  })

  it('preserves every record byte for byte (64-bit ids, non-ASCII), NDJSON+gzip and JSON array', async () => {
    const res = await send(`${edge.url}/ingest/events`, {
      headers: { 'content-type': 'application/x-ndjson' },
      body: TRICKY.join('\n') + '\n',
    })
    expect(res.status).toBe(200)
    expect(res.json()).toMatchObject({ accepted: 3 })
    const nd = await waitFor(
      () => {
        const lines = readNdjsonLines(join(inner.dir, 'nd'))
        return lines.length >= 3 && lines
      },
      15_000,
      'relayed NDJSON records',
    )
    expect(nd).toEqual(TRICKY)
    const js = await waitFor(
      () => {
        const lines = readNdjsonLines(join(inner.dir, 'json'))
        return lines.length >= 3 && lines
      },
      15_000,
      'relayed JSON-array records',
    )
    expect(js).toEqual(TRICKY)
  })
})

describe('http sink against a plain target', () => {
  let target: HttpTargetMock
  const sinks: Sink[] = []
  const make = (extra: Partial<HttpSinkConfig> = {}, url = target.url + '/in'): Sink => {
    const sink = createHttpSink('relay', config(url, extra), { logger })
    sinks.push(sink)
    return sink
  }

  beforeAll(async () => {
    target = await HttpTargetMock.start()
  })
  afterEach(async () => {
    target.heal()
    target.maxBodyBytes = Infinity
    target.requests.length = 0
    await Promise.all(sinks.splice(0).map((s) => s.close()))
  })
  afterAll(async () => {
    await target?.close()
  })

  it('sends NDJSON exactly, with the configured method and headers, in one request', async () => {
    const sink = make({ method: 'PUT', headers: { 'X-Api-Key': 'k-123', 'Content-Length': '1' } })
    const result = await sink.write(TRICKY.map(record), AbortSignal.timeout(10_000))
    expect(result.failed).toEqual([])
    expect(target.requests).toHaveLength(1)
    const req = target.requests[0]!
    expect(req.method).toBe('PUT')
    expect(req.path).toBe('/in')
    expect(req.headers['x-api-key']).toBe('k-123')
    expect(req.headers['content-type']).toBe('application/x-ndjson')
    expect(req.headers['content-encoding']).toBeUndefined()
    expect(req.raw.equals(Buffer.from(TRICKY.map((t) => t + '\n').join('')))).toBe(true)
  })

  it('sends a JSON array exactly, gzip-compressed on the wire', async () => {
    const sink = make({ format: 'json-array', compression: 'gzip' })
    await sink.write(TRICKY.map(record), AbortSignal.timeout(10_000))
    const req = target.requests[0]!
    expect(req.headers['content-encoding']).toBe('gzip')
    expect(req.headers['content-type']).toBe('application/json')
    expect([req.raw[0], req.raw[1]]).toEqual([0x1f, 0x8b])
    expect(req.body.toString('utf8')).toBe(`[${TRICKY.join(',')}]`)
  })

  it('reuses keep-alive connections across writes', async () => {
    const sink = make()
    for (let i = 0; i < 10; i++) await sink.write(records(3, `ka${i}`), AbortSignal.timeout(10_000))
    expect(target.requests).toHaveLength(10)
    // undici may open a second connection while the first is released; never one per request.
    expect(new Set(target.requests.map((r) => r.connection)).size).toBeLessThanOrEqual(2)
  })

  it('maps answers to transient or permanent errors, with Retry-After as seconds or an HTTP-date', async () => {
    const sink = make()
    const cases: [number, Record<string, string>, boolean, string][] = [
      [400, {}, false, 'http-400'],
      [404, {}, false, 'http-404'],
      [422, {}, false, 'http-422'],
      [408, {}, true, 'http-408'],
      [429, { 'retry-after': '7' }, true, 'http-429'],
      [500, {}, true, 'http-500'],
      [503, { 'retry-after': new Date(Date.now() + 30_000).toUTCString() }, true, 'http-503'],
    ]
    for (const [status, headers, retriable, reason] of cases) {
      target.answerNext({ status, headers, body: '{"detail":"because"}' })
      const err = await rejection(sink.write(records(2, `st${status}`), AbortSignal.timeout(10_000)))
      expect({ status, retriable: err.retriable, reason: err.reason }).toEqual({ status, retriable, reason })
      expect(err.message).toContain('because')
      if (status === 429) expect(err.retryAfterMs).toBe(7000)
      else if (status === 503) {
        expect(err.retryAfterMs).toBeGreaterThan(25_000)
        expect(err.retryAfterMs).toBeLessThanOrEqual(30_000)
      } else expect(err.retryAfterMs).toBeUndefined()
    }
  })

  it('treats a timeout and a connection reset as transient', async () => {
    const sink = make({ timeoutMs: 300 })
    target.delayNext(2_000)
    const started = Date.now()
    const timeout = await rejection(sink.write(records(1, 'slow'), AbortSignal.timeout(10_000)))
    expect(timeout).toMatchObject({ retriable: true, reason: 'timeout' })
    expect(Date.now() - started).toBeLessThan(1_500)
    target.resetNext()
    const reset = await rejection(sink.write(records(1, 'reset'), AbortSignal.timeout(10_000)))
    expect(reset).toMatchObject({ retriable: true, reason: 'network' })
  })

  it('retries transient failures through the delivery layer and delivers each record once', async () => {
    const sink = make()
    target.answerNext({ status: 503, headers: { 'retry-after': '0' } }, { status: 502 })
    target.resetNext()
    const batch = records(4, 'retry')
    const dead: SinkRecord[] = []
    await deliver(sink, batch, {
      retry: { initialMs: 10, maxMs: 50, maxAttempts: 0 },
      signal: AbortSignal.timeout(20_000),
      metrics: new Metrics({ defaultMetrics: false }),
      logger,
      deadLetter: async (r) => void dead.push(...r),
    })
    expect(dead).toEqual([])
    expect(target.deliveredLines()).toEqual(batch.map((r) => r.payload.toString()))
  })

  it('413 on a multi-record batch: halves it instead of dead-lettering; a single oversized record is permanent', async () => {
    const sink = make()
    target.maxBodyBytes = 1000
    const batch = Array.from({ length: 30 }, (_, i) => record(`{"i":${i},"pad":"${'x'.repeat(80)}"}`))
    const result = await sink.write(batch, AbortSignal.timeout(10_000))
    expect(result.failed).toEqual([])
    expect(target.deliveredLines()).toEqual(batch.map((r) => r.payload.toString()))
    expect(target.delivered().every((b) => b.length <= 1000)).toBe(true)

    target.requests.length = 0
    const huge = record(`{"huge":"${'y'.repeat(2000)}"}`)
    const mixed = [batch[0]!, huge, batch[1]!, batch[2]!]
    const second = await sink.write(mixed, AbortSignal.timeout(10_000))
    expect(second.failed.map((f) => f.index)).toEqual([1])
    expect(second.failed[0]!.error).toMatchObject({ retriable: false, reason: 'record-too-large' })
    expect(target.deliveredLines()).toEqual([0, 2, 3].map((i) => mixed[i]!.payload.toString()))
  })

  it('health check: reachable target passes, a refused connection fails', async () => {
    await make().healthcheck(AbortSignal.timeout(5_000))
    const dead = make({}, 'http://127.0.0.1:1/in')
    await expect(dead.healthcheck(AbortSignal.timeout(5_000))).rejects.toMatchObject({ reason: 'network' })
  })

  it('refuses a URL that is not http(s)', () => {
    expect(() => make({}, 'ftp://example.com/x')).toThrow(/sinks\.relay\.url/)
  })
})

sinkConformance(
  'http',
  async () => {
    const target = await HttpTargetMock.start()
    const base = (o?: { maxBatchRecords?: number }): HttpSinkConfig =>
      config(`${target.url}/ingest`, o?.maxBatchRecords ? { maxBatchRecords: o.maxBatchRecords } : {})
    return {
      create: async (o) => createHttpSink('http-conf', base(o), { logger }),
      readBack: async () => target.deliveredLines().map((l) => Buffer.from(l)),
      createPermanentlyFailing: async () => {
        const sink = createHttpSink('http-bad', config(`${target.url}/forbidden`), { logger })
        target.answerAlways({ status: 403, body: '{"title":"Forbidden"}' })
        return sink
      },
      createTransientlyFailing: async () => {
        target.answerAlways({ status: 503 })
        return {
          sink: createHttpSink('http-flaky', base(), { logger }),
          heal: async () => target.heal(),
        }
      },
      cleanup: () => target.close(),
    }
  },
  { transient: true },
)
