import { randomUUID } from 'node:crypto'
import { createRequire } from 'node:module'
import type * as KinesisSdk from '@aws-sdk/client-kinesis'
import type {
  KinesisClient,
  KinesisClientConfig,
  PutRecordsRequestEntry,
  PutRecordsResultEntry,
} from '@aws-sdk/client-kinesis'
import type { KinesisSinkConfig } from '../../config/types.js'
import { SinkError, permanentError, transientError } from '../../errors.js'
import { RecordTemplate } from '../../records/template.js'
import { awsClientSettings, classifyAwsError, type KnownAwsErrors } from '../aws.js'
import {
  ALL_WRITTEN,
  batchLimits,
  type BatchLimits,
  type Sink,
  type SinkContext,
  type SinkRecord,
  type WriteResult,
} from '../sink.js'

// The AWS SDK is loaded when the first kinesis sink is built (or an error is classified), not at start-up:
// ~90 ms and ~15 MB of RSS a gateway without a kinesis sink never needs. Its packages are CommonJS, so
// `require` loads them synchronously (the same instances an `import` would give).
const requireModule = createRequire(import.meta.url)
let kinesisSdk: typeof KinesisSdk | undefined
const sdk = (): typeof KinesisSdk =>
  (kinesisSdk ??= requireModule('@aws-sdk/client-kinesis') as typeof KinesisSdk)

// Amazon Kinesis Data Streams through @aws-sdk/client-kinesis. A write is cut into PutRecords calls of at
// most 500 entries / 5 MiB, in order, and up to `maxParallelCalls` of them are in flight at once. Each entry:
//   Data         = the record's payload bytes, exactly as the vendor sent them
//   PartitionKey = the `partitionKey` template rendered for the record; when there is no template, or it
//                  renders empty (a missing field), the record id, else a random UUID (spreads the records
//                  over all shards). Keys longer than 256 characters are cut to 256 (Kinesis' limit), so
//                  records with the same long key still land on the same shard.
// PutRecords is not atomic: the answer lists every entry in request order, each with a SequenceNumber or an
// ErrorCode. Failed entries are reported by index and the delivery layer resends only those
// (https://docs.aws.amazon.com/kinesis/latest/APIReference/API_PutRecords.html). A call that fails as a
// whole fails only its own entries; when every call of a write fails, the write fails as a whole.
//
// Parallel calls, not calls grouped by shard: Kinesis routes every entry to its shard by the MD5 of its
// partition key, so one call of 500 entries with varied keys already spreads over all shards, and a shard
// over its write limit (1 MiB or 1,000 records per second) throttles only its own entries, which come back
// as ProvisionedThroughputExceeded and are retried by themselves. Grouping by shard would need ListShards
// and the hash ranges kept current through every reshard, for no gain in throughput. The limit it would
// help with is order: records of one key in two calls in flight at once can land out of order. PutRecords
// does not promise order anyway (a retried entry lands after later ones; AWS: "use PutRecord instead of
// PutRecords" for strict order, https://docs.aws.amazon.com/streams/latest/dev/developing-producers-with-sdk.html);
// `maxParallelCalls: 1` keeps a lane's calls one after the other.
//
// Retries belong to the delivery layer: the client makes exactly one attempt (`maxAttempts: 1`).
// The HTTP/1.1 handler is deliberate: the SDK's default HTTP/2 handler fails 500-record batches against
// kinesis-local with ERR_HTTP2_ERROR (shared/backends.md); HTTP/1.1 with keep-alive works against AWS too.

/** PutRecords takes at most 500 entries per call. */
export const KINESIS_MAX_RECORDS_PER_CALL = 500
/** …and at most 5 MiB per call, counting every entry's data and partition key. */
export const KINESIS_MAX_BYTES_PER_CALL = 5 * 1024 * 1024
/** One entry's data blob plus its partition key may not exceed 1 MiB. */
export const KINESIS_MAX_RECORD_BYTES = 1024 * 1024
/** A partition key is 1 to 256 Unicode characters. */
export const KINESIS_MAX_PARTITION_KEY_CHARS = 256
/**
 * Bytes kept free for partition keys when sizing batches by payload bytes (the delivery layer counts
 * payloads only): 256 bytes per entry covers any ASCII key (ids, ICCIDs, UUIDs). A batch whose keys are
 * longer still never exceeds the call limit: `write` cuts it into as many calls as needed.
 */
const PARTITION_KEY_HEADROOM_BYTES = 256

/** One call's worth of a lane batch: the delivery layer counts payload bytes only. */
const CALL_PAYLOAD_BYTES =
  KINESIS_MAX_BYTES_PER_CALL - KINESIS_MAX_RECORDS_PER_CALL * PARTITION_KEY_HEADROOM_BYTES

/** A lane's batch: `parallelCalls` calls' worth, so a lane that is behind fills every call in flight. */
function kinesisDefaults(parallelCalls: number): BatchLimits {
  return {
    maxBatchRecords: KINESIS_MAX_RECORDS_PER_CALL * parallelCalls,
    maxBatchBytes: CALL_PAYLOAD_BYTES * parallelCalls,
    lingerMs: 0,
    maxRecordBytes: KINESIS_MAX_RECORD_BYTES - PARTITION_KEY_HEADROOM_BYTES,
  }
}

export function createKinesisSink(name: string, config: KinesisSinkConfig, context: SinkContext): Sink {
  return new KinesisSink(name, config, context)
}

export class KinesisSink implements Sink {
  readonly type = 'kinesis' as const
  readonly limits: BatchLimits
  /** The SDK client; public so that tests can add middleware to it (fault injection). */
  readonly client: KinesisClient
  private readonly target: { StreamName: string } | { StreamARN: string }
  private readonly partitionKey: RecordTemplate | undefined
  private readonly parallelCalls: number
  private readonly inFlight = new Set<Promise<unknown>>()
  private closed = false

  constructor(
    readonly name: string,
    config: KinesisSinkConfig,
    _context: SinkContext,
  ) {
    if (config.streamArn !== undefined) this.target = { StreamARN: config.streamArn }
    else if (config.streamName !== undefined) this.target = { StreamName: config.streamName }
    else throw new Error(`sinks.${name}: a kinesis sink needs streamName or streamArn`)
    this.parallelCalls = config.maxParallelCalls
    const defaults = kinesisDefaults(this.parallelCalls)
    const limits = batchLimits(config, defaults)
    // Configuration can lower a batch below its calls' worth, never raise it above.
    this.limits = {
      ...limits,
      maxBatchRecords: Math.min(limits.maxBatchRecords, defaults.maxBatchRecords),
      maxBatchBytes: Math.min(limits.maxBatchBytes, defaults.maxBatchBytes),
    }
    this.partitionKey = config.partitionKey ? new RecordTemplate(config.partitionKey) : undefined
    const clientConfig: KinesisClientConfig = awsClientSettings(config)
    // A stream ARN names its region (arn:aws:kinesis:<region>:<account>:stream/<name>); else the SDK's chain.
    const region = config.region ?? regionOfArn(config.streamArn)
    if (region !== undefined) clientConfig.region = region
    this.client = new (sdk().KinesisClient)(clientConfig)
  }

  write(batch: readonly SinkRecord[], signal: AbortSignal): Promise<WriteResult> {
    if (this.closed) return Promise.reject(transientError('kinesis sink is closed', 'closed'))
    if (batch.length === 0) return Promise.resolve(ALL_WRITTEN)
    const work = this.put(batch, signal)
    this.inFlight.add(work)
    const forget = (): void => void this.inFlight.delete(work)
    work.then(forget, forget)
    return work
  }

  private async put(batch: readonly SinkRecord[], signal: AbortSignal): Promise<WriteResult> {
    const failed: WriteResult['failed'] = []
    const calls: { entries: PutRecordsRequestEntry[]; indexes: number[] }[] = []
    let call: (typeof calls)[number] | undefined
    let callBytes = 0
    for (let i = 0; i < batch.length; i++) {
      const record = batch[i]!
      const key = this.keyFor(record)
      const size = record.payload.length + Buffer.byteLength(key)
      if (size > KINESIS_MAX_RECORD_BYTES) {
        failed.push({
          index: i,
          error: permanentError(
            `record of ${size} bytes (data and partition key) is over the kinesis limit of ${KINESIS_MAX_RECORD_BYTES}`,
            'record-too-large',
          ),
        })
        continue
      }
      if (
        call === undefined ||
        call.entries.length >= KINESIS_MAX_RECORDS_PER_CALL ||
        callBytes + size > KINESIS_MAX_BYTES_PER_CALL
      ) {
        call = { entries: [], indexes: [] }
        calls.push(call)
        callBytes = 0
      }
      call.entries.push({ Data: record.payload, PartitionKey: key })
      call.indexes.push(i)
      callBytes += size
    }
    const outcomes = await settleBounded(calls, this.parallelCalls, (c) => this.putRecords(c.entries, signal))
    // Every call failed as a whole (stream missing, network down …): the write failed as a whole.
    if (failed.length === 0 && outcomes.length > 0 && outcomes.every((o) => o.status === 'rejected'))
      throw classifyKinesisError((outcomes[0] as PromiseRejectedResult).reason)
    for (let c = 0; c < calls.length; c++) {
      const outcome = outcomes[c]!
      const { indexes } = calls[c]!
      if (outcome.status === 'rejected') {
        const error = classifyKinesisError(outcome.reason)
        for (const index of indexes) failed.push({ index, error })
        continue
      }
      const results = outcome.value
      for (let j = 0; j < indexes.length; j++) {
        const entry = results[j]!
        if (entry.ErrorCode !== undefined) failed.push({ index: indexes[j]!, error: entryError(entry) })
      }
    }
    if (failed.length === 0) return ALL_WRITTEN
    failed.sort((a, b) => a.index - b.index)
    return { failed }
  }

  /** One PutRecords call; resolves with one result entry per request entry, in request order. */
  private async putRecords(
    entries: PutRecordsRequestEntry[],
    signal: AbortSignal,
  ): Promise<PutRecordsResultEntry[]> {
    const answer = await this.client.send(
      new (sdk().PutRecordsCommand)({ ...this.target, Records: entries }),
      {
        abortSignal: signal,
      },
    )
    const results = answer.Records ?? []
    if (results.length !== entries.length)
      throw transientError(
        `kinesis answered ${results.length} result entries for ${entries.length} records`,
        'bad-response',
      )
    return results
  }

  private keyFor(record: SinkRecord): string {
    let key = this.partitionKey?.render(record)
    if (!key) key = record.id || randomUUID()
    return key.length > KINESIS_MAX_PARTITION_KEY_CHARS ? cutKey(key) : key
  }

  async healthcheck(signal: AbortSignal): Promise<void> {
    try {
      await this.client.send(new (sdk().DescribeStreamSummaryCommand)(this.target), { abortSignal: signal })
    } catch (err) {
      throw classifyKinesisError(err)
    }
  }

  async close(): Promise<void> {
    this.closed = true
    await Promise.allSettled([...this.inFlight])
    this.client.destroy()
  }
}

/** Runs `fn` over `items` with at most `limit` in flight; the outcomes in the order of `items`. */
async function settleBounded<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<R>,
): Promise<PromiseSettledResult<R>[]> {
  const outcomes = new Array<PromiseSettledResult<R>>(items.length)
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++
      try {
        outcomes[i] = { status: 'fulfilled', value: await fn(items[i]!) }
      } catch (reason) {
        outcomes[i] = { status: 'rejected', reason }
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
  return outcomes
}

/** The first 256 characters (code points, so a surrogate pair is never split). */
function cutKey(key: string): string {
  let out = ''
  let chars = 0
  for (const ch of key) {
    if (chars++ === KINESIS_MAX_PARTITION_KEY_CHARS) break
    out += ch
  }
  return out
}

function regionOfArn(arn: string | undefined): string | undefined {
  const region = arn?.split(':')[3]
  return region ? region : undefined
}

/**
 * Kinesis error codes, per failed PutRecords entry (`ErrorCode`) or for a whole call (the exception name).
 * Sources: https://docs.aws.amazon.com/kinesis/latest/APIReference/API_PutRecords.html#API_PutRecords_Errors
 * and https://docs.aws.amazon.com/kinesis/latest/APIReference/CommonErrors.html.
 */
const KINESIS_ERRORS: KnownAwsErrors = {
  ProvisionedThroughputExceededException: { retriable: true, reason: 'throttled' },
  ThrottlingException: { retriable: true, reason: 'throttled' },
  LimitExceededException: { retriable: true, reason: 'throttled' },
  InternalFailure: { retriable: true, reason: 'internal' },
  InternalFailureException: { retriable: true, reason: 'internal' },
  ServiceUnavailable: { retriable: true, reason: 'unavailable' },
  ServiceUnavailableException: { retriable: true, reason: 'unavailable' },
  // The stream exists but is being updated or resharded; writes work again when it settles.
  ResourceInUseException: { retriable: true, reason: 'stream-busy' },
  // Temporary credentials ran out; the SDK's provider chain fetches new ones for the next attempt.
  ExpiredTokenException: { retriable: true, reason: 'credentials-expired' },
  CredentialsProviderError: { retriable: true, reason: 'credentials' },
  KMSThrottlingException: { retriable: true, reason: 'kms-throttled' },
  KMSAccessDeniedException: { retriable: false, reason: 'kms-access-denied' },
  KMSDisabledException: { retriable: false, reason: 'kms-disabled' },
  KMSInvalidStateException: { retriable: false, reason: 'kms-invalid-state' },
  KMSNotFoundException: { retriable: false, reason: 'kms-not-found' },
  KMSOptInRequired: { retriable: false, reason: 'kms-opt-in-required' },
  ResourceNotFoundException: { retriable: false, reason: 'unknown-stream' },
  AccessDeniedException: { retriable: false, reason: 'unauthorized' },
  UnrecognizedClientException: { retriable: false, reason: 'unauthorized' },
  InvalidSignatureException: { retriable: false, reason: 'unauthorized' },
  IncompleteSignature: { retriable: false, reason: 'unauthorized' },
  MissingAuthenticationToken: { retriable: false, reason: 'unauthorized' },
  NotAuthorized: { retriable: false, reason: 'unauthorized' },
  ValidationException: { retriable: false, reason: 'invalid-request' },
  InvalidArgumentException: { retriable: false, reason: 'invalid-request' },
}

function entryError(entry: PutRecordsResultEntry): SinkError {
  const code = entry.ErrorCode ?? 'unknown'
  const known = KINESIS_ERRORS[code]
  // An entry error code we do not know is retried: PutRecords documents only transient ones per entry.
  const { retriable, reason } = known ?? { retriable: true, reason: 'entry-failed' }
  return new SinkError(`kinesis rejected the record: ${code}`, { retriable, reason })
}

/** Maps an error thrown by a whole Kinesis call to a SinkError that says whether a retry can help. */
export function classifyKinesisError(err: unknown): SinkError {
  return classifyAwsError(err, {
    service: 'kinesis',
    known: KINESIS_ERRORS,
    isServiceException: (e) => e instanceof sdk().KinesisServiceException,
  })
}
