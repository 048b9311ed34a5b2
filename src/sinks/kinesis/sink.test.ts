import {
  KinesisServiceException,
  type PutRecordsCommandOutput,
  type PutRecordsInput,
  type ServiceInputTypes,
  type ServiceOutputTypes,
} from '@aws-sdk/client-kinesis'
import type { InitializeMiddleware } from '@smithy/types'
import { describe, expect, it } from 'vitest'
import type { KinesisSinkConfig } from '../../config/types.js'
import type { SinkRecord } from '../../records/record.js'
import { createLogger } from '../../telemetry/logger.js'
import {
  KINESIS_MAX_BYTES_PER_CALL,
  KINESIS_MAX_RECORD_BYTES,
  KINESIS_MAX_RECORDS_PER_CALL,
  KinesisSink,
  classifyKinesisError,
} from './sink.js'

// What the sink does before and after the wire, without a server: the PutRecords calls it builds are
// captured by a client middleware that answers them itself (every entry accepted).

const config = (extra: Partial<KinesisSinkConfig> = {}): KinesisSinkConfig => ({
  type: 'kinesis',
  streamName: 'unit',
  region: 'eu-central-1',
  endpoint: 'http://127.0.0.1:9',
  credentials: { accessKeyId: 'AKIDUNIT', secretAccessKey: 'unit-secret' },
  timeoutMs: 1_000,
  maxParallelCalls: 4,
  retry: { initialMs: 1, maxMs: 1, maxAttempts: 0 },
  ...extra,
})

/**
 * A sink whose PutRecords calls are answered by `answer` (default: every entry accepted) instead of a
 * server; `calls` has every call's input, `maxInFlight` the most calls that were waiting at once.
 */
function capturingSink(
  extra: Partial<KinesisSinkConfig> = {},
  respond: (input: PutRecordsInput, call: number) => Promise<PutRecordsCommandOutput> = async (input) => ({
    $metadata: {},
    FailedRecordCount: 0,
    Records: input.Records!.map((_, i) => ({ SequenceNumber: String(i), ShardId: 'shardId-000000000000' })),
  }),
): {
  sink: KinesisSink
  calls: PutRecordsInput[]
  maxInFlight: () => number
} {
  const sink = new KinesisSink('k', config(extra), { logger: createLogger('silent') })
  const calls: PutRecordsInput[] = []
  let inFlight = 0
  let maxInFlight = 0
  const answer: InitializeMiddleware<ServiceInputTypes, ServiceOutputTypes> = () => async (args) => {
    const input = args.input as PutRecordsInput
    calls.push(input)
    maxInFlight = Math.max(maxInFlight, ++inFlight)
    try {
      return { output: await respond(input, calls.length - 1), response: {} }
    } finally {
      inFlight--
    }
  }
  sink.client.middlewareStack.add(answer, { step: 'initialize', name: 'unitAnswer' })
  return { sink, calls, maxInFlight: () => maxInFlight }
}

const accepted = (input: PutRecordsInput): PutRecordsCommandOutput => ({
  $metadata: {},
  FailedRecordCount: 0,
  Records: input.Records!.map((_, i) => ({ SequenceNumber: String(i), ShardId: 'shardId-000000000000' })),
})
const later = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

const rec = (payload: string | Buffer, id?: string): SinkRecord => ({
  stream: 's',
  payload: Buffer.isBuffer(payload) ? payload : Buffer.from(payload),
  receivedAtMs: 0,
  ...(id !== undefined ? { id } : {}),
})

describe('kinesis sink (no server)', () => {
  it('a batch is maxParallelCalls calls worth of the PutRecords limits; configuration can only lower it', () => {
    const { sink } = capturingSink()
    expect(sink.limits.maxBatchRecords).toBe(4 * KINESIS_MAX_RECORDS_PER_CALL)
    expect(sink.limits.maxBatchBytes).toBeLessThan(4 * KINESIS_MAX_BYTES_PER_CALL)
    expect(sink.limits.maxBatchBytes).toBeGreaterThan(4 * (KINESIS_MAX_BYTES_PER_CALL - 500 * 256) - 1)
    expect(sink.limits.maxRecordBytes).toBeLessThan(KINESIS_MAX_RECORD_BYTES)
    const one = capturingSink({ maxParallelCalls: 1 }).sink
    expect(one.limits.maxBatchRecords).toBe(KINESIS_MAX_RECORDS_PER_CALL)
    expect(one.limits.maxBatchBytes).toBe(sink.limits.maxBatchBytes / 4)
    const raised = capturingSink({ maxBatchRecords: 10_000, maxBatchBytes: 100 * 1024 * 1024 }).sink
    expect(raised.limits.maxBatchRecords).toBe(4 * KINESIS_MAX_RECORDS_PER_CALL)
    expect(raised.limits.maxBatchBytes).toBe(sink.limits.maxBatchBytes)
    expect(capturingSink({ maxBatchRecords: 20 }).sink.limits.maxBatchRecords).toBe(20)
  })

  it('sends the calls of a batch in parallel, never more than maxParallelCalls at once', async () => {
    const slow = async (input: PutRecordsInput): Promise<PutRecordsCommandOutput> => {
      await later(30)
      return accepted(input)
    }
    const batch = Array.from({ length: 2_600 }, (_, i) => rec(`{"i":${i}}`, `id-${i}`))
    const four = capturingSink({ maxParallelCalls: 4 }, slow)
    expect((await four.sink.write(batch, AbortSignal.timeout(5_000))).failed).toEqual([])
    // 2,600 entries: five full calls and one of 100, at most four of them waiting at once.
    expect(four.calls.map((c) => c.Records!.length)).toEqual([500, 500, 500, 500, 500, 100])
    expect(four.maxInFlight()).toBe(4)
    const one = capturingSink({ maxParallelCalls: 1 }, slow)
    expect((await one.sink.write(batch.slice(0, 1_000), AbortSignal.timeout(5_000))).failed).toEqual([])
    expect(one.calls).toHaveLength(2)
    expect(one.maxInFlight()).toBe(1)
  })

  it('a call that fails as a whole fails only its own entries; all calls failing fails the write', async () => {
    const throttled = new KinesisServiceException({
      name: 'ProvisionedThroughputExceededException',
      $fault: 'client',
      $metadata: { httpStatusCode: 400 },
      message: 'Rate exceeded for stream',
    })
    const secondFails = capturingSink({}, async (input, call) => {
      if (call === 1) throw throttled
      return accepted(input)
    })
    const batch = Array.from({ length: 1_200 }, (_, i) => rec(`{"i":${i}}`, `id-${i}`))
    const result = await secondFails.sink.write(batch, AbortSignal.timeout(5_000))
    expect(result.failed.map((f) => f.index)).toEqual(Array.from({ length: 500 }, (_, i) => 500 + i))
    expect(result.failed[0]!.error).toMatchObject({ retriable: true, reason: 'throttled' })

    const allFail = capturingSink({}, async () => {
      throw throttled
    })
    await expect(allFail.sink.write(batch, AbortSignal.timeout(5_000))).rejects.toMatchObject({
      retriable: true,
      reason: 'throttled',
    })
    expect(allFail.calls).toHaveLength(3)
  })

  it('entries failed inside the answers of parallel calls map back to their batch indexes', async () => {
    const { sink } = capturingSink({}, async (input) => {
      await later(Math.random() * 20)
      return {
        $metadata: {},
        FailedRecordCount: 1,
        Records: input.Records!.map((r, i) =>
          i === 7
            ? { ErrorCode: 'ProvisionedThroughputExceededException', ErrorMessage: 'Rate exceeded' }
            : { SequenceNumber: String(i), ShardId: 'shardId-000000000001' },
        ),
      }
    })
    const batch = Array.from({ length: 1_600 }, (_, i) => rec(`{"i":${i}}`, `id-${i}`))
    const result = await sink.write(batch, AbortSignal.timeout(5_000))
    expect(result.failed.map((f) => f.index)).toEqual([7, 507, 1007, 1507])
    expect(result.failed.every((f) => f.error.retriable && f.error.reason === 'throttled')).toBe(true)
  })

  it('cuts a 256+ character key by code points, never inside a surrogate pair', async () => {
    const { sink, calls } = capturingSink({ partitionKey: '{{k}}' })
    const key = '😀'.repeat(300)
    expect((await sink.write([rec(`{"k":"${key}"}`)], AbortSignal.timeout(5_000))).failed).toEqual([])
    expect(calls[0]!.Records![0]!.PartitionKey).toBe('😀'.repeat(256))
    expect(calls[0]!.StreamName).toBe('unit')
  })

  it('a record whose data plus partition key is over 1 MiB fails alone, permanently', async () => {
    const { sink, calls } = capturingSink({ partitionKey: '{{k}}' })
    const key = 'é'.repeat(256) // 512 bytes of UTF-8
    const big = Buffer.from(`{"k":"${key}","p":"${'x'.repeat(KINESIS_MAX_RECORD_BYTES - 530)}"}`)
    expect(big.length).toBeLessThan(KINESIS_MAX_RECORD_BYTES)
    const result = await sink.write(
      [rec('{"n":1}', 'a'), rec(big), rec('{"n":3}', 'c')],
      AbortSignal.timeout(5_000),
    )
    expect(result.failed.map((f) => [f.index, f.error.retriable, f.error.reason])).toEqual([
      [1, false, 'record-too-large'],
    ])
    expect(calls).toHaveLength(1)
    expect(calls[0]!.Records!.map((r) => r.PartitionKey)).toEqual(['a', 'c'])
  })

  it('a batch over 500 records or 5 MiB with its keys is cut into several calls within the limits', async () => {
    const { sink, calls } = capturingSink({ partitionKey: '{{k}}' })
    const longKey = 'k'.repeat(256)
    const batch = Array.from({ length: 1_100 }, (_, i) =>
      rec(`{"k":"${longKey}","p":"${'x'.repeat(9_000)}","i":${i}}`),
    )
    expect((await sink.write(batch, AbortSignal.timeout(5_000))).failed).toEqual([])
    expect(calls.reduce((n, c) => n + c.Records!.length, 0)).toBe(1_100)
    for (const c of calls) {
      expect(c.Records!.length).toBeLessThanOrEqual(KINESIS_MAX_RECORDS_PER_CALL)
      const bytes = c.Records!.reduce((n, r) => n + r.Data!.length + Buffer.byteLength(r.PartitionKey!), 0)
      expect(bytes).toBeLessThanOrEqual(KINESIS_MAX_BYTES_PER_CALL)
    }
    // The entries keep their order across calls (by the "i" field).
    const order = calls.flatMap((c) =>
      c.Records!.map((r) => (JSON.parse(Buffer.from(r.Data!).toString()) as { i: number }).i),
    )
    expect(order).toEqual(batch.map((_, i) => i))
  })

  it('a write after close is refused as transient', async () => {
    const { sink } = capturingSink()
    await sink.close()
    await expect(sink.write([rec('{}')], AbortSignal.timeout(1_000))).rejects.toMatchObject({
      retriable: true,
    })
  })
})

const serviceError = (name: string, status: number, fault: 'client' | 'server' = 'client'): Error =>
  new KinesisServiceException({ name, $fault: fault, $metadata: { httpStatusCode: status }, message: name })

describe('classifyKinesisError', () => {
  it.each([
    ['ResourceNotFoundException', 400, false, 'unknown-stream'],
    ['AccessDeniedException', 400, false, 'unauthorized'],
    ['UnrecognizedClientException', 400, false, 'unauthorized'],
    ['InvalidSignatureException', 400, false, 'unauthorized'],
    ['ValidationException', 400, false, 'invalid-request'],
    ['InvalidArgumentException', 400, false, 'invalid-request'],
    ['KMSAccessDeniedException', 400, false, 'kms-access-denied'],
    ['KMSDisabledException', 400, false, 'kms-disabled'],
    ['KMSNotFoundException', 400, false, 'kms-not-found'],
    ['KMSThrottlingException', 400, true, 'kms-throttled'],
    ['ProvisionedThroughputExceededException', 400, true, 'throttled'],
    ['LimitExceededException', 400, true, 'throttled'],
    ['ExpiredTokenException', 400, true, 'credentials-expired'],
    ['InternalFailure', 500, true, 'internal'],
    ['SomethingNew', 503, true, 'server-error'],
    ['SomethingNew', 429, true, 'throttled'],
    ['SomethingNew', 403, false, 'unauthorized'],
    ['SomethingNew', 400, false, 'rejected'],
  ] as const)('%s (%i) → retriable %s, %s', (name, status, retriable, reason) => {
    expect(classifyKinesisError(serviceError(name, status))).toMatchObject({ retriable, reason })
  })

  it('network failures and timeouts are transient; programming errors are not', () => {
    const reset = Object.assign(new Error('socket hang up'), { name: 'TimeoutError', code: 'ECONNRESET' })
    expect(classifyKinesisError(reset)).toMatchObject({ retriable: true, reason: 'network' })
    expect(classifyKinesisError(Object.assign(new Error('t'), { name: 'TimeoutError' }))).toMatchObject({
      retriable: true,
      reason: 'timeout',
    })
    expect(classifyKinesisError(new TypeError('x is undefined'))).toMatchObject({ retriable: false })
  })
})
