import { createHash } from 'node:crypto'
import { createRequire } from 'node:module'
import { promisify } from 'node:util'
import { gzip } from 'node:zlib'
import type * as S3Sdk from '@aws-sdk/client-s3'
import type { PutObjectCommandInput, S3Client, S3ClientConfig } from '@aws-sdk/client-s3'
import type * as S3Storage from '@aws-sdk/lib-storage'
import type { S3SinkConfig } from '../config/types.js'
import { type SinkError, transientError } from '../errors.js'
import { RecordTemplate } from '../records/template.js'
import { awsClientSettings, classifyAwsError, type KnownAwsErrors } from './aws.js'
import {
  ALL_WRITTEN,
  ndjsonChunks,
  type BatchLimits,
  type Sink,
  type SinkContext,
  type SinkRecord,
  type WriteResult,
} from './sink.js'

// The AWS SDK is loaded when the first s3 sink is built (or an error is classified), not at start-up:
// ~300 ms and ~40 MB of RSS a gateway without an s3 sink never needs. Its packages are CommonJS, so
// `require` loads them synchronously (the same instances an `import` would give).
const requireModule = createRequire(import.meta.url)
let s3Sdk: typeof S3Sdk | undefined
let s3Storage: typeof S3Storage | undefined
const sdk = (): typeof S3Sdk => (s3Sdk ??= requireModule('@aws-sdk/client-s3') as typeof S3Sdk)
const storage = (): typeof S3Storage =>
  (s3Storage ??= requireModule('@aws-sdk/lib-storage') as typeof S3Storage)

// Amazon S3 (or an S3-compatible store: MinIO, Ceph, R2 …) through @aws-sdk/client-s3. Every write is one
// object per stream:
//   key   = the `key` template rendered with the batch's FIRST record (its stream and receive time, so the
//           default `{{stream}}/dt={{yyyy}}-{{MM}}-{{dd}}/hour={{HH}}/{{uuid}}.ndjson.gz` partitions by the
//           hour the first record arrived); a batch that mixes streams becomes one object per stream.
//   body  = NDJSON: every payload exactly as the vendor sent it, each followed by "\n"; gzip-compressed by
//           default (Content-Encoding: gzip), Content-Type application/x-ndjson.
//
// Roll-over is batching: the sink's limits ARE the roll-over settings (maxBatchBytes = maxObjectBytes,
// maxBatchRecords = maxObjectRecords, lingerMs = maxObjectAgeMs), so the delivery worker hands over one
// object's worth of records per write. The common batch keys, when set, can only make objects smaller.
// A `durability: none` stream delivers each ingest request on its own (nothing lingers), so there every
// request becomes at least one object: use the spool for streams with small requests.
//
// An object is all or nothing: a single PutObject is atomic, a large object goes multipart and becomes
// visible only when CompleteMultipartUpload succeeds; on failure the upload is aborted (the parts are
// deleted). A failed write is retried by the delivery layer as a NEW object (the key has a fresh {{uuid}}),
// so a write whose answer was lost can leave a duplicate object (at-least-once), never a half one.
// Retries belong to the delivery layer: the client makes exactly one attempt per request (`maxAttempts: 1`).

/** Objects whose body (after compression) is larger than this go multipart; smaller ones one PutObject. */
export const S3_MULTIPART_THRESHOLD_BYTES = 16 * 1024 * 1024
/**
 * Part size of a multipart upload. S3 wants every part but the last to be at least 5 MiB and allows
 * 10,000 parts (https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html): 8 MiB parts carry
 * objects up to 78 GiB, far above any maxObjectBytes here.
 */
export const S3_PART_BYTES = 8 * 1024 * 1024
/** Parts uploaded at the same time. */
const S3_PART_CONCURRENCY = 4
/** The schema's default key; with compression none it loses its `.gz`. */
export const S3_DEFAULT_KEY = '{{stream}}/dt={{yyyy}}-{{MM}}-{{dd}}/hour={{HH}}/{{uuid}}.ndjson.gz'
const NDJSON_CONTENT_TYPE = 'application/x-ndjson'

const gzipAsync = promisify(gzip)

export function createS3Sink(name: string, config: S3SinkConfig, context: SinkContext): Sink {
  return new S3Sink(name, config, context)
}

export class S3Sink implements Sink {
  readonly type = 's3' as const
  readonly limits: BatchLimits
  /** The SDK client; public so that tests can read back and add middleware (fault injection). */
  readonly client: S3Client
  private readonly bucket: string
  private readonly key: RecordTemplate
  private readonly gzip: boolean
  private readonly inFlight = new Set<Promise<unknown>>()
  private closed = false

  constructor(
    readonly name: string,
    config: S3SinkConfig,
    _context: SinkContext,
  ) {
    this.bucket = config.bucket
    this.gzip = config.compression === 'gzip'
    const key = !this.gzip && config.key === S3_DEFAULT_KEY ? config.key.slice(0, -'.gz'.length) : config.key
    // Without a unique part every object of an hour would get the same key and overwrite the previous one.
    if (!/\{\{\s*uuid\s*\}\}/.test(key))
      throw new Error(`sinks.${name}.key must contain {{uuid}} so that objects never overwrite each other`)
    this.key = new RecordTemplate(key)
    this.limits = {
      maxBatchRecords: Math.min(config.maxBatchRecords ?? Infinity, config.maxObjectRecords),
      maxBatchBytes: Math.min(config.maxBatchBytes ?? Infinity, config.maxObjectBytes),
      lingerMs: Math.min(config.lingerMs ?? Infinity, config.maxObjectAgeMs),
      maxRecordBytes: config.maxObjectBytes,
    }
    const clientConfig: S3ClientConfig = {
      ...awsClientSettings(config),
      region: config.region,
      forcePathStyle: config.forcePathStyle,
      // Checksums only where S3 requires them. With the SDK's default (WHEN_SUPPORTED), a streamed body is
      // sent with aws-chunked framing and a trailing checksum; stores that do not speak it (s3rver, older
      // S3-compatible servers) keep the framing INSIDE the object: silently corrupted data
      // (shared/backends.md). Integrity is kept by Content-MD5 on every PutObject instead, which every
      // S3-compatible store verifies; multipart parts go over TCP/TLS checksums only.
      requestChecksumCalculation: 'WHEN_REQUIRED',
    }
    this.client = new (sdk().S3Client)(clientConfig)
  }

  write(batch: readonly SinkRecord[], signal: AbortSignal): Promise<WriteResult> {
    if (this.closed) return Promise.reject(transientError('s3 sink is closed', 'closed'))
    if (batch.length === 0) return Promise.resolve(ALL_WRITTEN)
    const work = this.writeObjects(batch, signal)
    this.inFlight.add(work)
    const forget = (): void => void this.inFlight.delete(work)
    work.then(forget, forget)
    return work
  }

  private async writeObjects(batch: readonly SinkRecord[], signal: AbortSignal): Promise<WriteResult> {
    const byStream = new Map<string, { records: SinkRecord[]; indexes: number[] }>()
    for (let i = 0; i < batch.length; i++) {
      const record = batch[i]!
      let group = byStream.get(record.stream)
      if (!group) byStream.set(record.stream, (group = { records: [], indexes: [] }))
      group.records.push(record)
      group.indexes.push(i)
    }
    const groups = [...byStream.values()]
    if (groups.length === 1) {
      await this.writeObject(groups[0]!.records, signal)
      return ALL_WRITTEN
    }
    // Several streams: one object each. An object that failed fails only its own records, so a retry does
    // not write the objects that succeeded a second time.
    const outcomes = await Promise.allSettled(groups.map((g) => this.writeObject(g.records, signal)))
    if (outcomes.every((o) => o.status === 'rejected')) throw (outcomes[0] as PromiseRejectedResult).reason
    const failed: WriteResult['failed'] = []
    outcomes.forEach((outcome, g) => {
      if (outcome.status === 'fulfilled') return
      const error = outcome.reason as SinkError
      for (const index of groups[g]!.indexes) failed.push({ index, error })
    })
    failed.sort((a, b) => a.index - b.index)
    return failed.length === 0 ? ALL_WRITTEN : { failed }
  }

  /** Writes one object holding `records` (all of one stream); rejects with a SinkError. */
  private async writeObject(records: SinkRecord[], signal: AbortSignal): Promise<void> {
    const key = this.key.render(records[0]!)
    const ndjson = Buffer.concat(ndjsonChunks(records))
    const body = this.gzip ? await gzipAsync(ndjson) : ndjson
    const params: PutObjectCommandInput = {
      Bucket: this.bucket,
      Key: key,
      Body: body,
      ContentType: NDJSON_CONTENT_TYPE,
      Metadata: { records: String(records.length) },
      ...(this.gzip ? { ContentEncoding: 'gzip' } : {}),
    }
    try {
      if (body.length <= S3_MULTIPART_THRESHOLD_BYTES) {
        params.ContentLength = body.length
        params.ContentMD5 = createHash('md5').update(body).digest('base64')
        await this.client.send(new (sdk().PutObjectCommand)(params), { abortSignal: signal })
      } else {
        await this.upload(params, signal)
      }
    } catch (err) {
      throw classifyS3Error(err)
    }
  }

  /** A multipart upload; lib-storage aborts it (deleting the parts) when a part or the completion fails. */
  private async upload(params: PutObjectCommandInput, signal: AbortSignal): Promise<void> {
    signal.throwIfAborted()
    const abortController = new AbortController()
    const onAbort = (): void => abortController.abort()
    signal.addEventListener('abort', onAbort, { once: true })
    try {
      const upload = new (storage().Upload)({
        client: this.client,
        params,
        partSize: S3_PART_BYTES,
        queueSize: S3_PART_CONCURRENCY,
        leavePartsOnError: false,
        abortController,
      })
      await upload.done()
    } finally {
      signal.removeEventListener('abort', onAbort)
    }
  }

  async healthcheck(signal: AbortSignal): Promise<void> {
    try {
      await this.client.send(new (sdk().HeadBucketCommand)({ Bucket: this.bucket }), { abortSignal: signal })
    } catch (err) {
      throw classifyS3Error(err)
    }
  }

  async close(): Promise<void> {
    this.closed = true
    await Promise.allSettled([...this.inFlight])
    this.client.destroy()
  }
}

/**
 * S3 error codes that decide between retry and dead-letter. Source:
 * https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html#ErrorCodeList
 */
const S3_ERRORS: KnownAwsErrors = {
  NoSuchBucket: { retriable: false, reason: 'unknown-bucket' },
  AccessDenied: { retriable: false, reason: 'unauthorized' },
  InvalidAccessKeyId: { retriable: false, reason: 'unauthorized' },
  SignatureDoesNotMatch: { retriable: false, reason: 'unauthorized' },
  AllAccessDisabled: { retriable: false, reason: 'unauthorized' },
  AccountProblem: { retriable: false, reason: 'unauthorized' },
  InvalidBucketName: { retriable: false, reason: 'unknown-bucket' },
  // The bucket lives in another region than the one configured.
  PermanentRedirect: { retriable: false, reason: 'wrong-region' },
  AuthorizationHeaderMalformed: { retriable: false, reason: 'wrong-region' },
  EntityTooLarge: { retriable: false, reason: 'object-too-large' },
  // Temporary credentials ran out or the clock drifted: the SDK refreshes credentials and corrects its
  // clock offset from the failed answer, so the next attempt can succeed.
  ExpiredToken: { retriable: true, reason: 'credentials-expired' },
  RequestTimeTooSkewed: { retriable: true, reason: 'clock-skew' },
  CredentialsProviderError: { retriable: true, reason: 'credentials' },
  SlowDown: { retriable: true, reason: 'throttled' },
  ServiceUnavailable: { retriable: true, reason: 'unavailable' },
  InternalError: { retriable: true, reason: 'server-error' },
  // S3 closed a request whose body arrived too slowly (400): a network problem, not a bad request.
  RequestTimeout: { retriable: true, reason: 'timeout' },
  // The multipart upload vanished (aborted by a lifecycle rule); the next attempt starts a new one.
  NoSuchUpload: { retriable: true, reason: 'upload-lost' },
  // Content-MD5 did not match what arrived: corrupted in transit.
  BadDigest: { retriable: true, reason: 'corrupted-in-transit' },
}

/** Maps an error thrown by an S3 call to a SinkError that says whether a retry can help. */
export function classifyS3Error(err: unknown): SinkError {
  return classifyAwsError(err, {
    service: 's3',
    known: S3_ERRORS,
    isServiceException: (e) => e instanceof sdk().S3ServiceException,
    statuses: {
      // HEAD answers carry no error body, so only the status tells (HeadBucket: 404 NotFound, 403 Forbidden).
      404: { retriable: false, reason: 'unknown-bucket' },
      503: { retriable: true, reason: 'throttled' }, // S3's SlowDown
    },
  })
}
