// The kinesis sink against kinesis-local (kinesis-mock) of scripts/backends/kinesis.ts. Every test uses its
// own stream. kinesis-mock does not enforce per-shard write throughput (40 MB into one shard within 30 s
// came back without a single ProvisionedThroughputExceeded), so a partial failure is made by a client
// middleware that withholds some entries from the real PutRecords call and answers for them the way
// Kinesis answers a throttled entry; kinesis-local stores only the entries it really received.
import { randomUUID } from 'node:crypto'
import {
  CreateStreamCommand,
  DeleteStreamCommand,
  DescribeStreamSummaryCommand,
  GetRecordsCommand,
  GetShardIteratorCommand,
  KinesisClient,
  ListShardsCommand,
  type PutRecordsInput,
  type PutRecordsCommandOutput,
  type ServiceInputTypes,
  type ServiceOutputTypes,
} from '@aws-sdk/client-kinesis'
import { NodeHttpHandler } from '@smithy/node-http-handler'
import type { InitializeMiddleware } from '@smithy/types'
import { afterAll, describe, expect, inject, it } from 'vitest'
import type { KinesisSinkConfig } from '../../src/config/types.js'
import type { SinkError } from '../../src/errors.js'
import { deliver } from '../../src/pipeline/delivery.js'
import { parseDeadLetter } from '../../src/records/dead-letter.js'
import type { SinkRecord } from '../../src/records/record.js'
import {
  KINESIS_MAX_PARTITION_KEY_CHARS,
  KINESIS_MAX_RECORDS_PER_CALL,
  KinesisSink,
  createKinesisSink,
} from '../../src/sinks/kinesis/sink.js'
import type { Sink } from '../../src/sinks/sink.js'
import { createLogger } from '../../src/telemetry/logger.js'
import { Metrics } from '../../src/telemetry/metrics.js'
import { records, sinkConformance } from '../conformance/sink-conformance.js'
import { readNdjsonLines, startGateway, waitFor } from '../support/gateway.js'
import { send } from '../support/http.js'
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js'

const backends = inject('backends')
const endpoint = backends.KINESIS_ENDPOINT
const region = backends.AWS_REGION
const credentials = {
  accessKeyId: backends.AWS_ACCESS_KEY_ID,
  secretAccessKey: backends.AWS_SECRET_ACCESS_KEY,
}
const logger = createLogger('silent')
// A copy of the credentials: the SDK writes bookkeeping ($source) into the object it is given.
const admin = new KinesisClient({
  endpoint,
  region,
  credentials: { ...credentials },
  requestHandler: new NodeHttpHandler(),
})
const createdStreams: string[] = []
const proxies: TcpProxy[] = []

afterAll(async () => {
  await Promise.allSettled(
    createdStreams.map((StreamName) =>
      admin.send(new DeleteStreamCommand({ StreamName, EnforceConsumerDeletion: true })),
    ),
  )
  await Promise.allSettled(proxies.map((p) => p.close()))
  admin.destroy()
})

const unique = (prefix: string): string => `${prefix}-${randomUUID().slice(0, 8)}`

async function createStream(shards = 2): Promise<string> {
  const StreamName = unique('sg-kinesis')
  await admin.send(new CreateStreamCommand({ StreamName, ShardCount: shards }))
  createdStreams.push(StreamName)
  await waitFor(
    async () => {
      const s = await admin.send(new DescribeStreamSummaryCommand({ StreamName }))
      return s.StreamDescriptionSummary?.StreamStatus === 'ACTIVE'
    },
    30_000,
    `stream ${StreamName} ACTIVE`,
  )
  return StreamName
}

const sinkConfig = (streamName: string, extra: Partial<KinesisSinkConfig> = {}): KinesisSinkConfig => ({
  type: 'kinesis',
  streamName,
  region,
  endpoint,
  credentials: { ...credentials },
  timeoutMs: 10_000,
  maxParallelCalls: 4,
  retry: { initialMs: 10, maxMs: 100, maxAttempts: 0 },
  ...extra,
})

interface StoredRecord {
  data: Buffer
  partitionKey: string
}

/** Every record of every shard, from the trim horizon (kinesis-mock keeps them all). */
async function readStream(StreamName: string): Promise<StoredRecord[]> {
  const shards = await admin.send(new ListShardsCommand({ StreamName }))
  const out: StoredRecord[] = []
  for (const shard of shards.Shards ?? []) {
    const it = await admin.send(
      new GetShardIteratorCommand({
        StreamName,
        ShardId: shard.ShardId!,
        ShardIteratorType: 'TRIM_HORIZON',
      }),
    )
    let iterator = it.ShardIterator
    while (iterator) {
      const page = await admin.send(new GetRecordsCommand({ ShardIterator: iterator, Limit: 10_000 }))
      for (const r of page.Records ?? [])
        out.push({ data: Buffer.from(r.Data!), partitionKey: r.PartitionKey! })
      if ((page.Records ?? []).length === 0) break
      iterator = page.NextShardIterator
    }
  }
  return out
}

/**
 * Makes the next PutRecords of `sink` throttle the entries at `indexes`: they are left out of the request
 * that really goes to kinesis-local, and the answer gets, at their places, the entry Kinesis returns for a
 * throttled record (no SequenceNumber, ErrorCode ProvisionedThroughputExceededException).
 */
function throttleNextPut(
  sink: Sink,
  indexes: ReadonlySet<number>,
  code = 'ProvisionedThroughputExceededException',
): void {
  const client = (sink as KinesisSink).client
  let armed = true
  const throttle: InitializeMiddleware<ServiceInputTypes, ServiceOutputTypes> =
    (next, context) => async (args) => {
      if (!armed || context.commandName !== 'PutRecordsCommand') return next(args)
      armed = false
      const input = args.input as PutRecordsInput
      const kept = input.Records!.filter((_, i) => !indexes.has(i))
      const result = await next({ ...args, input: { ...input, Records: kept } })
      const output = result.output as PutRecordsCommandOutput
      const real = [...(output.Records ?? [])]
      const spliced = input.Records!.map((_, i) =>
        indexes.has(i)
          ? { ErrorCode: code, ErrorMessage: `Rate exceeded for shard (test, entry ${i})` }
          : real.shift()!,
      )
      const throttled: PutRecordsCommandOutput = {
        ...output,
        FailedRecordCount: (output.FailedRecordCount ?? 0) + indexes.size,
        Records: spliced,
      }
      return { ...result, output: throttled }
    }
  client.middlewareStack.add(throttle, { step: 'initialize', name: `testThrottleEntries-${randomUUID()}` })
}

sinkConformance(
  'kinesis',
  async () => {
    const streamName = await createStream()
    return {
      create: async (o) =>
        createKinesisSink(
          'kinesis-out',
          sinkConfig(streamName, o?.maxBatchRecords ? { maxBatchRecords: o.maxBatchRecords } : {}),
          { logger },
        ),
      readBack: async () => (await readStream(streamName)).map((r) => r.data),
      createPermanentlyFailing: async () =>
        createKinesisSink('kinesis-missing', sinkConfig(unique('sg-no-such-stream')), { logger }),
      createTransientlyFailing: async () => {
        const proxy = await startTcpProxy('127.0.0.1', Number(new URL(endpoint).port))
        proxies.push(proxy)
        proxy.pause()
        const sink = createKinesisSink(
          'kinesis-flaky',
          sinkConfig(streamName, { endpoint: `http://127.0.0.1:${proxy.port}`, timeoutMs: 2_000 }),
          { logger },
        )
        return { sink, heal: async () => proxy.resume() }
      },
      injectPartialFailure: async (sink) => throttleNextPut(sink, new Set([1, 4, 7])),
      cleanup: async () => {
        await admin.send(new DeleteStreamCommand({ StreamName: streamName })).catch(() => undefined)
      },
    }
  },
  { transient: true, partialFailure: true },
)

const quiet = {
  signal: AbortSignal.timeout(60_000),
  metrics: new Metrics({ defaultMetrics: false }),
  logger,
  retry: { initialMs: 10, maxMs: 100, maxAttempts: 0 },
}

describe('kinesis sink', () => {
  it('resends exactly the entries Kinesis reported failed, and maps entry error codes', async () => {
    const streamName = await createStream()
    const sink = createKinesisSink('k', sinkConfig(streamName), { logger })
    const batch = records(12, 'exact')
    throttleNextPut(sink, new Set([0, 5, 11]))
    const first = await sink.write(batch, AbortSignal.timeout(30_000))
    expect(first.failed.map((f) => f.index)).toEqual([0, 5, 11])
    expect(first.failed.every((f) => f.error.retriable && f.error.reason === 'throttled')).toBe(true)

    // Through the delivery layer: the second write carries exactly the failed entries.
    const batch2 = records(6, 'exact2')
    throttleNextPut(sink, new Set([2, 3]), 'InternalFailure')
    const writes: string[][] = []
    const spy: Sink = {
      name: sink.name,
      type: sink.type,
      limits: sink.limits,
      write: (b, s) => (writes.push(b.map((r) => r.id!)), sink.write(b, s)),
      healthcheck: (s) => sink.healthcheck(s),
      close: () => sink.close(),
    }
    await deliver(spy, batch2, {
      ...quiet,
      deadLetter: async () => {
        throw new Error('nothing should be dead-lettered')
      },
    })
    expect(writes).toEqual([batch2.map((r) => r.id), ['exact2-2', 'exact2-3']])

    // A KMS failure of one entry is permanent: only that entry is dead-lettered.
    const batch3 = records(3, 'kms')
    throttleNextPut(sink, new Set([1]), 'KMSAccessDeniedException')
    const dead: { ids: string[]; error: SinkError }[] = []
    await deliver(sink, batch3, {
      ...quiet,
      deadLetter: async (recs, error) => void dead.push({ ids: recs.map((r) => r.id!), error }),
    })
    expect(dead).toHaveLength(1)
    expect(dead[0]!.ids).toEqual(['kms-1'])
    expect(dead[0]!.error).toMatchObject({ retriable: false, reason: 'kms-access-denied' })
    await sink.close()

    const stored = (await readStream(streamName)).map((r) => r.data.toString())
    const expected = [
      ...batch.filter((_, i) => ![0, 5, 11].includes(i)),
      ...batch2,
      batch3[0]!,
      batch3[2]!,
    ].map((r) => r.payload.toString())
    expect(stored.sort()).toEqual(expected.sort())
  })

  it('a full batch (maxParallelCalls × 500 records) goes as full PutRecords calls in flight at once, byte for byte', async () => {
    const streamName = await createStream(4)
    const sink = createKinesisSink('k', sinkConfig(streamName), { logger })
    expect(sink.limits.maxBatchRecords).toBe(4 * KINESIS_MAX_RECORDS_PER_CALL)
    const calls: number[] = []
    let inFlight = 0
    let maxInFlight = 0
    ;(sink as KinesisSink).client.middlewareStack.add(
      ((next, context) => async (args) => {
        if (context.commandName !== 'PutRecordsCommand') return next(args)
        calls.push((args.input as PutRecordsInput).Records!.length)
        maxInFlight = Math.max(maxInFlight, ++inFlight)
        try {
          return await next(args)
        } finally {
          inFlight--
        }
      }) satisfies InitializeMiddleware<ServiceInputTypes, ServiceOutputTypes>,
      { step: 'initialize', name: 'testCountCalls' },
    )
    // 2,000 records of ~500 bytes (1 MiB): kinesis-local takes ~1 s per MiB, so the byte limit is unit-tested.
    const batch = records(sink.limits.maxBatchRecords, 'full', 400)
    expect(batch.reduce((n, r) => n + r.payload.length, 0)).toBeLessThanOrEqual(sink.limits.maxBatchBytes)
    const result = await sink.write(batch, AbortSignal.timeout(120_000))
    expect(result.failed).toEqual([])
    expect(calls).toEqual([500, 500, 500, 500])
    expect(maxInFlight).toBeGreaterThan(1)
    await sink.close()
    const stored = await readStream(streamName)
    expect(stored.map((r) => r.data.toString()).sort()).toEqual(batch.map((r) => r.payload.toString()).sort())
    // No template: the record id is the partition key.
    expect(stored.map((r) => r.partitionKey).sort()).toEqual(batch.map((r) => r.id).sort())
  })

  it('a batch over the limits (a caller ignoring `limits`) is cut into calls, not rejected', async () => {
    const streamName = await createStream()
    const sink = createKinesisSink('k', sinkConfig(streamName, { maxParallelCalls: 2 }), { logger })
    const batch = records(sink.limits.maxBatchRecords + 20, 'over')
    const result = await sink.write(batch, AbortSignal.timeout(60_000))
    expect(result.failed).toEqual([])
    await sink.close()
    expect((await readStream(streamName)).length).toBe(batch.length)
  })

  it('partition keys: template, fallback to the id or a UUID when it renders empty, cut to 256 chars', async () => {
    const streamName = await createStream()
    const sink = createKinesisSink('k', sinkConfig(streamName, { partitionKey: '{{sim.iccid}}' }), { logger })
    const long = 'é'.repeat(300)
    const rec = (payload: string, id?: string): SinkRecord => ({
      stream: 's',
      payload: Buffer.from(payload),
      receivedAtMs: Date.now(),
      ...(id !== undefined ? { id } : {}),
    })
    const batch = [
      rec('{"sim":{"iccid":"8988303000000001234"},"n":1}', 'id-1'),
      rec('{"n":2}', 'id-2'),
      rec('{"n":3}'),
      rec(`{"sim":{"iccid":"${long}"},"n":4}`),
    ]
    expect((await sink.write(batch, AbortSignal.timeout(30_000))).failed).toEqual([])
    await sink.close()
    const byN = new Map(
      (await readStream(streamName)).map((r) => [(JSON.parse(r.data.toString()) as { n: number }).n, r]),
    )
    expect(byN.get(1)!.partitionKey).toBe('8988303000000001234')
    expect(byN.get(2)!.partitionKey).toBe('id-2')
    expect(byN.get(3)!.partitionKey).toMatch(
      /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$/,
    )
    expect(byN.get(4)!.partitionKey).toBe('é'.repeat(KINESIS_MAX_PARTITION_KEY_CHARS))
  })

  it('maps whole-call failures: an unknown stream is permanent, an outage transient; ARN works like a name', async () => {
    const missing = createKinesisSink('k', sinkConfig(unique('sg-missing')), { logger })
    const err1 = (await missing
      .write(records(1), AbortSignal.timeout(30_000))
      .catch((e: unknown) => e)) as SinkError
    expect(err1).toMatchObject({ retriable: false, reason: 'unknown-stream' })
    const health = (await missing
      .healthcheck(AbortSignal.timeout(30_000))
      .catch((e: unknown) => e)) as SinkError
    expect(health).toMatchObject({ retriable: false, reason: 'unknown-stream' })
    await missing.close()

    const streamName = await createStream(1)
    const ok = createKinesisSink('k', sinkConfig(streamName), { logger })
    await expect(ok.healthcheck(AbortSignal.timeout(30_000))).resolves.toBeUndefined()
    await ok.close()

    // By ARN (the region comes from the ARN).
    const arn = (await admin.send(new DescribeStreamSummaryCommand({ StreamName: streamName })))
      .StreamDescriptionSummary!.StreamARN!
    const byArn = createKinesisSink(
      'k',
      { ...sinkConfig(streamName), streamName: undefined, streamArn: arn, region: undefined },
      { logger },
    )
    expect((await byArn.write(records(2, 'arn'), AbortSignal.timeout(30_000))).failed).toEqual([])
    await byArn.close()
    // Without credentials in the config, the SDK's default chain finds them (here: AWS_* from the rig).
    expect(process.env.AWS_ACCESS_KEY_ID).toBe(credentials.accessKeyId)
    const byChain = createKinesisSink('k', { ...sinkConfig(streamName), credentials: undefined }, { logger })
    expect((await byChain.write(records(1, 'chain'), AbortSignal.timeout(30_000))).failed).toEqual([])
    await byChain.close()
    expect((await readStream(streamName)).length).toBe(3)

    const proxy = await startTcpProxy('127.0.0.1', Number(new URL(endpoint).port))
    proxies.push(proxy)
    proxy.pause()
    const down = createKinesisSink(
      'k',
      sinkConfig(streamName, { endpoint: `http://127.0.0.1:${proxy.port}`, timeoutMs: 2_000 }),
      { logger },
    )
    const err2 = (await down
      .write(records(1), AbortSignal.timeout(30_000))
      .catch((e: unknown) => e)) as SinkError
    expect(err2).toMatchObject({ retriable: true, reason: 'network' })
    await down.close()
  })
})

describe('kinesis sink through the gateway', () => {
  it('delivers /ingest records byte for byte with the configured partition keys; >1 MiB is dead-lettered', async () => {
    const streamName = await createStream()
    const gw = await startGateway({
      server: { maxBodyBytes: 8 * 1024 * 1024 },
      sinks: {
        kin: {
          type: 'kinesis',
          streamName,
          region,
          endpoint,
          credentials: { ...credentials },
          partitionKey: '{{sim.iccid}}',
          retry: { initialMs: 50, maxMs: 500 },
        },
        dlq: { type: 'file', dir: '{dir}/dlq' },
      },
      streams: { usage: { source: 'ndjson', sinks: ['kin'], deadLetter: 'dlq' } },
    })
    try {
      const lines = Array.from(
        { length: 40 },
        (_, i) =>
          `{"id":${9007199254740993n + BigInt(i)},"sim":{"iccid":"89883030000000${String(i).padStart(5, '0')}"},"text":"grüße \\u00e9 ${i}","volume":{"rx":1.50,"tx":0}}`,
      )
      const huge = `{"id":1,"sim":{"iccid":"8988303000000099999"},"blob":"${'h'.repeat(1024 * 1024)}"}`
      const res = await send(`${gw.url}/ingest/usage`, {
        headers: { 'content-type': 'application/x-ndjson' },
        body: [...lines.slice(0, 20), huge, ...lines.slice(20)].join('\n'),
      })
      expect(res.status).toBe(200)
      expect(res.json()).toMatchObject({ accepted: 41, rejected: 0 })

      const stored = await waitFor(
        async () => {
          const got = await readStream(streamName)
          return got.length >= lines.length && got
        },
        30_000,
        'records in kinesis',
      )
      expect(stored.map((r) => r.data.toString('utf8')).sort()).toEqual([...lines].sort())
      for (const r of stored) {
        const iccid = /"iccid":"(\d+)"/.exec(r.data.toString())![1]
        expect(r.partitionKey).toBe(iccid)
      }

      const dead = await waitFor(
        () => {
          const got = readNdjsonLines(`${gw.dir}/dlq`)
          return got.length > 0 && got
        },
        30_000,
        'the dead-lettered record',
      )
      expect(dead).toHaveLength(1)
      const envelope = parseDeadLetter(dead[0]!)!
      expect(envelope).toMatchObject({ stream: 'usage', reason: 'record-too-large', sink: 'kin' })
      expect(envelope.raw).toBe(huge)
      expect((await readStream(streamName)).length).toBe(lines.length)
    } finally {
      await gw.close()
    }
  })
})
