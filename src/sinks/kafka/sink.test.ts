import { createServer } from 'node:net'
import { afterEach, describe, expect, it, vi } from 'vitest'
import type { KafkaSinkConfig } from '../../config/types.js'
import type { SinkError } from '../../errors.js'
import type { SinkRecord } from '../../records/record.js'
import { createLogger } from '../../telemetry/logger.js'
import { createKafkaSink } from './sink.js'

// Without a broker: config checks and what the sink does when nothing answers, for both clients. Broker
// behaviour is in test/integration/kafka.test.ts; the error mapping in errors.test.ts.

const config = (extra: Partial<KafkaSinkConfig> = {}): KafkaSinkConfig => ({
  type: 'kafka',
  brokers: '127.0.0.1:9',
  topic: 'events',
  acks: -1,
  idempotent: true,
  compression: 'gzip',
  client: 'kafkajs',
  producers: 1,
  clientId: 'streamgate-test',
  timeoutMs: 5_000,
  retry: { initialMs: 10, maxMs: 100, maxAttempts: 0 },
  ...extra,
})

const silent = { logger: createLogger('silent') }

const record = (payload: string, extra: Partial<SinkRecord> = {}): SinkRecord => ({
  stream: 's',
  payload: Buffer.from(payload),
  receivedAtMs: 0,
  ...extra,
})

/** A loopback port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

describe('kafka sink config', () => {
  it('refuses an idempotent producer without acks -1', async () => {
    expect(() => createKafkaSink('k', config({ acks: 1 }), silent)).toThrow(
      /sinks\.k: an idempotent producer needs acks: -1/,
    )
    await createKafkaSink('k', config({ acks: 1, idempotent: false }), silent).close()
  })

  it('kafkajs: refuses snappy and lz4 without a registered codec, naming the alternatives; zstd is built in', async () => {
    for (const compression of ['snappy', 'lz4'] as const)
      expect(() => createKafkaSink('k', config({ compression }), silent)).toThrow(
        `sinks.k.compression: "${compression}" needs a codec that kafkajs does not bundle and none is installed; use "gzip", "zstd" or "none", or client: platformatic (all codecs built in)`,
      )
    for (const compression of ['zstd', 'gzip', 'none'] as const)
      await createKafkaSink('k', config({ compression }), silent).close()
  })

  it('platformatic: takes every codec', async () => {
    for (const compression of ['none', 'gzip', 'snappy', 'lz4', 'zstd'] as const)
      await createKafkaSink('k', config({ compression, client: 'platformatic' }), silent).close()
  })

  it('names the bad key: no brokers, an invalid constant topic, an unreadable TLS file', () => {
    for (const client of ['kafkajs', 'platformatic'] as const) {
      expect(() => createKafkaSink('k', config({ client, brokers: ' , ' }), silent)).toThrow(
        'sinks.k.brokers: no broker address given',
      )
      expect(() => createKafkaSink('k', config({ client, topic: 'no spaces' }), silent)).toThrow(
        'sinks.k.topic: "no spaces" is not a valid Kafka topic name',
      )
      expect(() =>
        createKafkaSink('k', config({ client, ssl: { caFile: '/nonexistent/ca.pem' } }), silent),
      ).toThrow('sinks.k.ssl.caFile: cannot read /nonexistent/ca.pem (ENOENT)')
    }
  })

  it('uses 1 MiB as the record limit and its own batch defaults', () => {
    const sink = createKafkaSink('k', config(), silent)
    expect(sink.limits).toEqual({
      maxBatchRecords: 10_000,
      maxBatchBytes: 8 * 1024 * 1024,
      lingerMs: 50,
      maxRecordBytes: 1024 * 1024,
      maxInFlightBatches: 2,
    })
    expect(createKafkaSink('k', config({ maxBatchRecords: 7, lingerMs: 0 }), silent).limits).toMatchObject({
      maxBatchRecords: 7,
      lingerMs: 0,
    })
  })
})

describe.each(['kafkajs', 'platformatic'] as const)('kafka sink without a broker (%s)', (client) => {
  afterEach(() => vi.restoreAllMocks())

  it('answers an empty batch and records with invalid topics without connecting', async () => {
    const sink = createKafkaSink(
      'k',
      config({ client, brokers: `127.0.0.1:${await closedPort()}`, topic: '{{t}}' }),
      silent,
    )
    expect(await sink.write([], AbortSignal.timeout(1_000))).toEqual({ failed: [] })
    const result = await sink.write(
      [record('{"t":"bad topic"}'), record('{"other":1}')],
      AbortSignal.timeout(1_000),
    )
    expect(result.failed.map((f) => [f.index, f.error.reason, f.error.retriable])).toEqual([
      [0, 'invalid-topic', false],
      [1, 'invalid-topic', false],
    ])
    expect(result.failed[0]!.error.message).not.toContain('bad topic') // record data stays out of messages
    await sink.close()
  })

  it('fails a write and the health check transiently when no broker answers, at once; closes', async () => {
    const consoleCalls = (['log', 'info', 'warn', 'error', 'debug'] as const).map((m) =>
      vi.spyOn(console, m).mockImplementation(() => undefined),
    )
    const sink = createKafkaSink(
      'k',
      config({ client, brokers: `127.0.0.1:${await closedPort()}`, producers: 2 }),
      silent,
    )
    // (The platformatic client's thread takes a moment to load the library; the health check waits for it.)
    await expect(sink.healthcheck(AbortSignal.timeout(60_000))).rejects.toMatchObject({
      reason: 'unreachable',
      retriable: true,
    })
    const started = Date.now()
    const err = await sink.write([record('{"a":1}')], AbortSignal.timeout(10_000)).then(
      () => undefined,
      (e: SinkError) => e,
    )
    expect(err?.retriable).toBe(true)
    expect(err?.reason).toBe('unreachable')
    expect(Date.now() - started).toBeLessThan(5_000) // the client does not sit on retries of its own
    // A second write tries again (a new producer) and fails the same way.
    const again = await sink.write([record('{"b":2}')], AbortSignal.timeout(10_000)).then(
      () => undefined,
      (e: SinkError) => e,
    )
    expect(again?.reason).toBe('unreachable')
    await sink.close()
    await expect(sink.write([record('{}')], AbortSignal.timeout(1_000))).rejects.toMatchObject({
      reason: 'closed',
    })
    for (const spy of consoleCalls) expect(spy).not.toHaveBeenCalled()
  }, 60_000)

  it('fails a write that went out as several sends as one transient failure when no broker answers', async () => {
    const sink = createKafkaSink(
      'k',
      config({ client, brokers: `127.0.0.1:${await closedPort()}`, producers: 2, key: '{{k}}' }),
      silent,
      { produceChunkBytes: 200 },
    )
    // Chunks of about two records, their keys spread over two producers: several sends, each of which fails.
    const batch = Array.from({ length: 12 }, (_, i) => record(`{"k":"key-${i}","pad":"${'x'.repeat(60)}"}`))
    const err = await sink.write(batch, AbortSignal.timeout(30_000)).then(
      (r) => r,
      (e: SinkError) => e,
    )
    expect(err).toMatchObject({ reason: 'unreachable', retriable: true })
    await sink.close()
  }, 60_000)

  it('rejects at once when the signal is already aborted', async () => {
    const sink = createKafkaSink('k', config({ client }), silent)
    const controller = new AbortController()
    controller.abort(new Error('stopping'))
    await expect(sink.write([record('{}')], controller.signal)).rejects.toThrow('stopping')
    await sink.close()
  })
})

describe('kafka sink logs (kafkajs)', () => {
  it('sends kafkajs logs to our logger at warn, without secrets', async () => {
    const lines: string[] = []
    const logger = createLogger('debug', { write: (line: string) => void lines.push(line) })
    const sink = createKafkaSink(
      'k',
      config({
        brokers: `127.0.0.1:${await closedPort()}`,
        sasl: { mechanism: 'plain', username: 'user', password: 'hunter2-secret' },
      }),
      { logger },
    )
    await sink.write([record('{"a":1}')], AbortSignal.timeout(10_000)).catch(() => undefined)
    await sink.close()
    const entries = lines.map((l) => JSON.parse(l) as { level: number; msg: string; kafkajs?: string })
    const fromKafkajs = entries.filter((e) => e.kafkajs !== undefined)
    expect(fromKafkajs.length).toBeGreaterThan(0)
    for (const e of fromKafkajs) {
      expect(e.level).toBe(40)
      expect(e.msg).toMatch(/^kafkajs: /)
    }
    expect(lines.join('\n')).not.toContain('hunter2-secret')
  })
})
