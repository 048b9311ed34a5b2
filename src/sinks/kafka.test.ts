import { createRequire } from 'node:module'
import { createServer } from 'node:net'
import * as zlib from 'node:zlib'
import { afterEach, describe, expect, it, vi } from 'vitest'
import type { KafkaSinkConfig } from '../config/types.js'
import type { SinkError } from '../errors.js'
import type { SinkRecord } from '../records/record.js'
import { createLogger } from '../telemetry/logger.js'
import { classifyKafkaError, contentTypeOf, createKafkaSink } from './kafka.js'

// Without a broker: config checks, error mapping on the errors kafkajs really builds, content types, and
// what the sink does when nothing answers. Broker behaviour is in test/integration/kafka.test.ts.

// kafkajs' own error constructors and retrier, so the mapping is tested on the shapes kafkajs produces.
const require = createRequire(import.meta.url)
const { createErrorFromCode } = require('kafkajs/src/protocol/error') as {
  createErrorFromCode: (code: number) => Error
}
const createRetry = require('kafkajs/src/retry') as (o: {
  retries: number
}) => <T>(fn: () => Promise<T>) => Promise<T>
const errors = require('kafkajs') as Record<string, new (message: string, meta?: object) => Error>

/** An error as it leaves a kafkajs call after its retries are used up (or at once if not retriable). */
const afterRetries = (err: Error): Promise<unknown> =>
  createRetry({ retries: 0 })(() => Promise.reject(err)).catch((e: unknown) => e)

const config = (extra: Partial<KafkaSinkConfig> = {}): KafkaSinkConfig => ({
  type: 'kafka',
  brokers: '127.0.0.1:9',
  topic: 'events',
  acks: -1,
  idempotent: true,
  compression: 'gzip',
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
  it('refuses an idempotent producer without acks -1', () => {
    expect(() => createKafkaSink('k', config({ acks: 1 }), silent)).toThrow(
      /sinks\.k: an idempotent producer needs acks: -1/,
    )
    expect(() => createKafkaSink('k', config({ acks: 1, idempotent: false }), silent)).not.toThrow()
  })

  it('refuses compression codecs that are not installed, naming the alternatives', () => {
    for (const compression of ['snappy', 'lz4'] as const)
      expect(() => createKafkaSink('k', config({ compression }), silent)).toThrow(
        `sinks.k.compression: "${compression}" needs a codec that kafkajs does not bundle and none is installed; use "gzip" or "none"`,
      )
    const nodeHasZstd = typeof (zlib as { zstdCompress?: unknown }).zstdCompress === 'function'
    if (nodeHasZstd) expect(() => createKafkaSink('k', config({ compression: 'zstd' }), silent)).not.toThrow()
    else
      expect(() => createKafkaSink('k', config({ compression: 'zstd' }), silent)).toThrow(
        /"zstd" needs a codec .* \(Node 22\.15\+ has zstd built in\)/,
      )
    expect(() => createKafkaSink('k', config({ compression: 'none' }), silent)).not.toThrow()
  })

  it('names the bad key: no brokers, an invalid constant topic, an unreadable TLS file', () => {
    expect(() => createKafkaSink('k', config({ brokers: ' , ' }), silent)).toThrow(
      'sinks.k.brokers: no broker address given',
    )
    expect(() => createKafkaSink('k', config({ topic: 'no spaces' }), silent)).toThrow(
      'sinks.k.topic: "no spaces" is not a valid Kafka topic name',
    )
    expect(() => createKafkaSink('k', config({ ssl: { caFile: '/nonexistent/ca.pem' } }), silent)).toThrow(
      'sinks.k.ssl.caFile: cannot read /nonexistent/ca.pem (ENOENT)',
    )
  })

  it('uses 1 MiB as the record limit and its own batch defaults', () => {
    const sink = createKafkaSink('k', config(), silent)
    expect(sink.limits).toEqual({
      maxBatchRecords: 10_000,
      maxBatchBytes: 8 * 1024 * 1024,
      lingerMs: 50,
      maxRecordBytes: 1024 * 1024,
    })
    expect(createKafkaSink('k', config({ maxBatchRecords: 7, lingerMs: 0 }), silent).limits).toMatchObject({
      maxBatchRecords: 7,
      lingerMs: 0,
    })
  })
})

describe('classifyKafkaError', () => {
  const cases: [string, () => unknown, string, boolean, string?][] = [
    [
      'unknown topic (after kafkajs retries)',
      () => afterRetries(createErrorFromCode(3)),
      'unknown-topic',
      true,
      'unknown-topic',
    ],
    [
      'MESSAGE_TOO_LARGE',
      () => afterRetries(createErrorFromCode(10)),
      'record-too-large',
      false,
      'too-large',
    ],
    [
      'RECORD_LIST_TOO_LARGE',
      () => afterRetries(createErrorFromCode(18)),
      'record-too-large',
      false,
      'too-large',
    ],
    ['TOPIC_AUTHORIZATION_FAILED', () => afterRetries(createErrorFromCode(29)), 'unauthorized', false],
    ['SASL_AUTHENTICATION_FAILED', () => afterRetries(createErrorFromCode(58)), 'unauthorized', false],
    [
      'a SASL handshake that failed',
      () => afterRetries(new errors.KafkaJSSASLAuthenticationError!('SASL PLAIN authentication failed: bad')),
      'unauthorized',
      false,
    ],
    ['NOT_ENOUGH_REPLICAS', () => afterRetries(createErrorFromCode(19)), 'not-enough-replicas', true],
    ['LEADER_NOT_AVAILABLE', () => afterRetries(createErrorFromCode(5)), 'leader-not-available', true],
    ['REQUEST_TIMED_OUT', () => afterRetries(createErrorFromCode(7)), 'timeout', true],
    ['OUT_OF_ORDER_SEQUENCE_NUMBER', () => afterRetries(createErrorFromCode(45)), 'producer-state', true],
    [
      'connection refused',
      () =>
        afterRetries(
          new errors.KafkaJSConnectionError!('Connection error: connect ECONNREFUSED', {
            code: 'ECONNREFUSED',
          }),
        ),
      'unreachable',
      true,
    ],
    [
      'request timeout',
      () => afterRetries(new errors.KafkaJSRequestTimeoutError!('Request Produce timed out')),
      'timeout',
      true,
    ],
    ['another retriable broker error', () => afterRetries(createErrorFromCode(2)), 'kafka-error', true],
    ['another final broker error', () => afterRetries(createErrorFromCode(42)), 'kafka-rejected', false],
    ['a bug', () => new TypeError('x is not a function'), 'internal', false],
  ]
  for (const [what, make, reason, retriable, kind = 'other'] of cases)
    it(`${what} → ${reason} (${retriable ? 'retriable' : 'permanent'})`, async () => {
      const failure = classifyKafkaError(await make())
      expect(failure.error.reason).toBe(reason)
      expect(failure.error.retriable).toBe(retriable)
      expect(failure.kind).toBe(kind)
    })
})

describe('contentTypeOf', () => {
  it('labels JSON records application/json and other text text/plain', () => {
    expect(contentTypeOf(record('{"a":1}'))).toBe('application/json')
    expect(contentTypeOf(record(' [1,2]'))).toBe('application/json')
    expect(contentTypeOf(record('42'))).toBe('application/json')
    expect(contentTypeOf(record('"text"'))).toBe('application/json')
    expect(contentTypeOf(record('hello world'))).toBe('text/plain; charset=utf-8')
    expect(contentTypeOf(record('null pointer'))).toBe('text/plain; charset=utf-8')
    expect(contentTypeOf(record('v1\t2026-11-23T10:00:00Z\tGET', { fields: { time: 'x' } }))).toBe(
      'text/plain; charset=utf-8',
    )
  })
})

describe('kafka sink without a broker', () => {
  afterEach(() => vi.restoreAllMocks())

  it('answers an empty batch and records with invalid topics without connecting', async () => {
    const sink = createKafkaSink(
      'k',
      config({ brokers: `127.0.0.1:${await closedPort()}`, topic: '{{t}}' }),
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

  it('fails a write transiently when no broker answers; kafkajs logs go to our logger at warn, without secrets', async () => {
    const lines: string[] = []
    const logger = createLogger('debug', { write: (line: string) => void lines.push(line) })
    const consoleCalls = (['log', 'info', 'warn', 'error', 'debug'] as const).map((m) =>
      vi.spyOn(console, m).mockImplementation(() => undefined),
    )
    const sink = createKafkaSink(
      'k',
      config({
        brokers: `127.0.0.1:${await closedPort()}`,
        sasl: { mechanism: 'plain', username: 'user', password: 'hunter2-secret' },
      }),
      { logger },
    )
    const started = Date.now()
    const err = await sink.write([record('{"a":1}')], AbortSignal.timeout(10_000)).then(
      () => undefined,
      (e: SinkError) => e,
    )
    expect(err?.retriable).toBe(true)
    expect(err?.reason).toBe('unreachable')
    expect(Date.now() - started).toBeLessThan(5_000) // kafkajs does not sit on its own retries
    await expect(sink.healthcheck(AbortSignal.timeout(10_000))).rejects.toMatchObject({
      reason: 'unreachable',
    })
    await sink.close()
    await expect(sink.write([record('{}')], AbortSignal.timeout(1_000))).rejects.toMatchObject({
      reason: 'closed',
    })

    for (const spy of consoleCalls) expect(spy).not.toHaveBeenCalled()
    const entries = lines.map((l) => JSON.parse(l) as { level: number; msg: string; kafkajs?: string })
    const fromKafkajs = entries.filter((e) => e.kafkajs !== undefined)
    expect(fromKafkajs.length).toBeGreaterThan(0)
    for (const e of fromKafkajs) {
      expect(e.level).toBe(40)
      expect(e.msg).toMatch(/^kafkajs: /)
    }
    expect(lines.join('\n')).not.toContain('hunter2-secret')
  })

  it('rejects at once when the signal is already aborted', async () => {
    const sink = createKafkaSink('k', config(), silent)
    const controller = new AbortController()
    controller.abort(new Error('stopping'))
    await expect(sink.write([record('{}')], controller.signal)).rejects.toThrow('stopping')
    await sink.close()
  })
})
