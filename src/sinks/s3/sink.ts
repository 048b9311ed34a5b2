import { createHash, randomUUID } from 'node:crypto'
import { mkdir, open, readdir, readFile, rm } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { createGzip, type Gzip } from 'node:zlib'
import type * as S3Sdk from '@aws-sdk/client-s3'
import type { CompletedPart, S3Client, S3ClientConfig } from '@aws-sdk/client-s3'
import type { S3SinkConfig } from '../../config/types.js'
import { type SinkError, permanentError, transientError } from '../../errors.js'
import { RecordTemplate } from '../../records/template.js'
import type { Logger } from '../../telemetry/logger.js'
import { awsClientSettings, classifyAwsError, type KnownAwsErrors } from '../aws.js'
import {
  ALL_WRITTEN,
  ndjsonChunks,
  type BatchLimits,
  type Sink,
  type SinkContext,
  type SinkRecord,
  type StagedBatch,
  type Staging,
  type WriteResult,
} from '../sink.js'

// The AWS SDK is loaded when the first s3 sink is built (or an error is classified), not at start-up:
// ~200 ms and ~20 MB of RSS a gateway without an s3 sink never needs. Its packages are CommonJS, so
// `require` loads them synchronously (the same instances an `import` would give).
const requireModule = createRequire(import.meta.url)
let s3Sdk: typeof S3Sdk | undefined
const sdk = (): typeof S3Sdk => (s3Sdk ??= requireModule('@aws-sdk/client-s3') as typeof S3Sdk)

// Amazon S3 (or an S3-compatible store: MinIO, Ceph, R2 …) through @aws-sdk/client-s3. One object holds
// records of one stream:
//   key   = the `key` template rendered with the object's FIRST record (its stream and receive time, so the
//           default `{{stream}}/dt={{yyyy}}-{{MM}}-{{dd}}/hour={{HH}}/{{uuid}}.ndjson.gz` partitions by the
//           hour the first record arrived); a write that mixes streams becomes one object per stream.
//   body  = NDJSON: every payload exactly as the vendor sent it, each followed by "\n"; gzip-compressed by
//           default (Content-Encoding: gzip), Content-Type application/x-ndjson.
//
// Roll-over is batching: the sink's limits ARE the roll-over settings (maxBatchBytes = maxObjectBytes,
// maxBatchRecords = maxObjectRecords, lingerMs = maxObjectAgeMs), so one lane batch is one object. The
// common batch keys, when set, can only make objects smaller. A `durability: none` stream delivers each
// ingest request on its own (nothing lingers), so there every request becomes at least one object.
//
// Memory stays constant whatever the object size (`staging`, src/sinks/sink.ts): the lane hands an object's
// records over in pieces of at most 1 MiB while it gathers them; each piece is gzip-compressed as a stream
// (zlib's thread pool) into one part buffer, and every time that buffer holds `partBytes` it goes up as the
// next part of a multipart upload and is reused. An object that stays under one part is one PutObject at
// commit. So an open object holds at most one part buffer, one piece and zlib's window; the lane's cursor
// moves only once the object is complete (PutObject or CompleteMultipartUpload answered).
//
// An object is all or nothing: a PutObject is atomic, a multipart object becomes visible only when
// CompleteMultipartUpload succeeds; when a part or the completion fails the upload is aborted (its parts are
// deleted) and the records are written again from the spool as a NEW object (fresh {{uuid}}), so a write
// whose answer was lost can leave a duplicate object (at least once), never a half one.
//
// A process killed mid-upload leaves an incomplete multipart upload (S3 keeps and bills its parts until it
// is aborted). Before CreateMultipartUpload the sink records the object key in a small file under its state
// directory (<spool.dir>/sinks/<name>/multipart-uploads/, fsync'd), and removes it once the upload is
// completed or aborted. At start-up it aborts every upload still in progress under a recorded key and
// removes the record: those are exactly the uploads this gateway started and did not finish (the key holds
// a fresh UUID, so no other writer's upload can match), and their records are re-sent from the held cursor.
//
// Multipart uploads are made with the SDK's commands directly rather than @aws-sdk/lib-storage, for three
// things it does not give: one part buffer reused per object (lib-storage buffers `queueSize` parts),
// Content-MD5 on every part (integrity without the aws-chunked trailers some S3-compatible stores keep
// inside the object, see the client config below), and the key recorded before the upload is created.
// Retries belong to the delivery layer: the client makes exactly one attempt per request (`maxAttempts: 1`).

/** S3's smallest part, for every part but the last (https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html). */
export const S3_MIN_PART_BYTES = 5 * 1024 * 1024
/** …and at most 10,000 parts per upload. */
export const S3_MAX_PARTS = 10_000
/**
 * The default part size (`partBytes`): S3's smallest, 5 MiB, since each object being written holds one part
 * buffer (4 lanes rolling at once: 20 MiB instead of 32); 5 MiB parts carry objects up to 48 GiB.
 */
export const S3_PART_BYTES = S3_MIN_PART_BYTES
/** The pieces a lane hands over (src/pipeline/lane.ts): what a lane holds of an object at once. */
export const S3_PIECE_BYTES = 1024 * 1024
export const S3_PIECE_RECORDS = 10_000
/** The part buffer starts this small and doubles up to partBytes: a small object never holds a whole part. */
const FIRST_BUFFER_BYTES = 256 * 1024
/** Part buffers kept between objects per sink: lanes roll objects a few at a time. */
const MAX_SPARE_PARTS = 2
/** The schema's default key; with compression none it loses its `.gz`. */
export const S3_DEFAULT_KEY = '{{stream}}/dt={{yyyy}}-{{MM}}-{{dd}}/hour={{HH}}/{{uuid}}.ndjson.gz'
const NDJSON_CONTENT_TYPE = 'application/x-ndjson'
/** Subdirectory of the sink's state directory with one file per multipart upload in progress. */
const UPLOADS_DIR = 'multipart-uploads'

export function createS3Sink(name: string, config: S3SinkConfig, context: SinkContext): Sink {
  return new S3Sink(name, config, context)
}

export class S3Sink implements Sink {
  readonly type = 's3' as const
  readonly limits: BatchLimits
  readonly staging: Staging
  /** The SDK client; public so that tests can read back and add middleware (fault injection). */
  readonly client: S3Client
  readonly bucket: string
  readonly gzip: boolean
  readonly partBytes: number
  /** Resolves once uploads left by an earlier run are aborted, with how many were (0 without a state dir). */
  readonly recovered: Promise<number>
  readonly logger: Logger
  readonly ledger: UploadLedger
  private readonly key: RecordTemplate
  private readonly timeoutMs: number
  private readonly inFlight = new Set<Promise<unknown>>()
  /** Objects being written (staged by lanes or by `write`); close() aborts those still open. */
  readonly open = new Set<ObjectWriter>()
  /**
   * Part buffers of committed objects (partBytes each), for the next objects to fill: without them every
   * object grows a buffer of its own from 256 KiB to partBytes, ~7.5 MiB of garbage per object that lives as
   * long as the object fills and so waits for a major GC (bench/RESULTS.md, "S3 drain memory").
   */
  private readonly spareParts: Buffer[] = []
  closed = false

  constructor(
    readonly name: string,
    config: S3SinkConfig,
    context: SinkContext,
  ) {
    this.logger = context.logger
    this.bucket = config.bucket
    this.gzip = config.compression === 'gzip'
    this.partBytes = config.partBytes
    this.timeoutMs = config.timeoutMs
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
    if (this.partBytes < S3_MIN_PART_BYTES)
      throw new Error(`sinks.${name}.partBytes must be at least ${S3_MIN_PART_BYTES} (S3's smallest part)`)
    // The largest object: payloads, a newline each, gzip's worst case (stored blocks: +0.1 %) and header.
    const largest = (this.limits.maxBatchBytes + this.limits.maxBatchRecords) * 1.001 + 1024
    if (Math.ceil(largest / this.partBytes) > S3_MAX_PARTS)
      throw new Error(
        `sinks.${name}.partBytes: objects of up to ${this.limits.maxBatchBytes} bytes need parts of at least ${Math.ceil(largest / S3_MAX_PARTS)} bytes (S3 allows ${S3_MAX_PARTS} parts)`,
      )
    this.staging = {
      maxPieceRecords: Math.min(S3_PIECE_RECORDS, this.limits.maxBatchRecords),
      maxPieceBytes: Math.min(S3_PIECE_BYTES, this.limits.maxBatchBytes),
      begin: (lane) => new ObjectWriter(this, lane),
    }
    const clientConfig: S3ClientConfig = {
      ...awsClientSettings(config),
      region: config.region,
      forcePathStyle: config.forcePathStyle,
      // Checksums only where S3 requires them. With the SDK's default (WHEN_SUPPORTED), a streamed body is
      // sent with aws-chunked framing and a trailing checksum; stores that do not speak it (s3rver, older
      // S3-compatible servers) keep the framing INSIDE the object: silently corrupted data
      // (shared/backends.md). Integrity is kept by Content-MD5 on every PutObject and UploadPart instead,
      // which every S3-compatible store verifies.
      requestChecksumCalculation: 'WHEN_REQUIRED',
    }
    this.client = new (sdk().S3Client)(clientConfig)
    this.ledger = new UploadLedger(
      context.stateDir !== undefined ? join(context.stateDir, UPLOADS_DIR) : undefined,
    )
    this.recovered = context.stateDir !== undefined ? this.abortLeftovers() : Promise.resolve(0)
  }

  /** The key of an object whose first record is `record` (a fresh {{uuid}} every time). */
  keyFor(record: SinkRecord): string {
    return this.key.render(record)
  }

  /** A full-size part buffer a committed object left, if any. */
  takePart(): Buffer | undefined {
    return this.spareParts.pop()
  }

  /**
   * A committed object's part buffer, for the next object. Only after a commit succeeded: every request that
   * read it has been answered (a discarded object's aborted request may still be sending from it).
   */
  givePart(part: Buffer): void {
    if (part.length === this.partBytes && this.spareParts.length < MAX_SPARE_PARTS) this.spareParts.push(part)
  }

  /** A request signal that ends after timeoutMs: for clean-up calls made when the caller's signal is gone. */
  cleanupSignal(): AbortSignal {
    return AbortSignal.timeout(this.timeoutMs)
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

  /** Writes one object holding `records` (all of one stream), streamed piece by piece like a lane's. */
  private async writeObject(records: SinkRecord[], signal: AbortSignal): Promise<void> {
    const writer = new ObjectWriter(this, 'write')
    let start = 0
    while (start < records.length) {
      let end = start
      let bytes = 0
      while (
        end < records.length &&
        end - start < S3_PIECE_RECORDS &&
        (end === start || bytes + records[end]!.payload.length <= S3_PIECE_BYTES)
      )
        bytes += records[end++]!.payload.length
      await writer.write(records.slice(start, end), signal)
      start = end
    }
    await writer.commit(signal)
  }

  /**
   * Aborts every multipart upload in progress under `key` (its UUID makes them all this gateway's);
   * resolves with how many. A bucket that no longer exists has none.
   */
  async abortUploadsOf(bucket: string, key: string, signal: AbortSignal): Promise<number> {
    const s3 = sdk()
    let aborted = 0
    let KeyMarker: string | undefined
    let UploadIdMarker: string | undefined
    try {
      for (;;) {
        const page = await this.client.send(
          new s3.ListMultipartUploadsCommand({ Bucket: bucket, Prefix: key, KeyMarker, UploadIdMarker }),
          { abortSignal: signal },
        )
        for (const upload of page.Uploads ?? []) {
          if (upload.Key !== key || upload.UploadId === undefined) continue
          await this.abortUpload(bucket, key, upload.UploadId, signal)
          aborted++
        }
        if (!page.IsTruncated) return aborted
        KeyMarker = page.NextKeyMarker
        UploadIdMarker = page.NextUploadIdMarker
      }
    } catch (err) {
      if (classifyS3Error(err).reason === 'unknown-bucket') return aborted
      throw err
    }
  }

  /** AbortMultipartUpload; an upload already gone (completed or aborted) counts as aborted. */
  async abortUpload(bucket: string, key: string, uploadId: string, signal: AbortSignal): Promise<void> {
    try {
      await this.client.send(
        new (sdk().AbortMultipartUploadCommand)({ Bucket: bucket, Key: key, UploadId: uploadId }),
        { abortSignal: signal },
      )
    } catch (err) {
      if ((err as { name?: string }).name !== 'NoSuchUpload') throw err
    }
  }

  /** Start-up: aborts the uploads a previous run of this gateway left in progress (killed mid-object). */
  private async abortLeftovers(): Promise<number> {
    let aborted = 0
    let entries: LedgerEntry[]
    try {
      entries = await this.ledger.leftovers()
    } catch (err) {
      this.logger.warn({ err }, 'could not read the record of multipart uploads in progress')
      return 0
    }
    for (const entry of entries) {
      try {
        aborted += await this.abortUploadsOf(entry.bucket, entry.key, this.cleanupSignal())
        await this.ledger.remove(entry.path)
      } catch (err) {
        this.logger.warn(
          { key: entry.key, err: classifyS3Error(err).message },
          'could not abort a multipart upload left by an earlier run; trying again at the next start',
        )
      }
    }
    if (aborted > 0)
      this.logger.warn(
        { uploads: aborted },
        'aborted multipart uploads an earlier run left unfinished; their records are written again from the spool',
      )
    return aborted
  }

  async healthcheck(signal: AbortSignal): Promise<void> {
    try {
      await this.client.send(new (sdk().HeadBucketCommand)({ Bucket: this.bucket }), { abortSignal: signal })
    } catch (err) {
      throw classifyS3Error(err)
    }
  }

  /** Waits for writes in progress; objects still open (a lane that did not commit) are aborted. */
  async close(): Promise<void> {
    this.closed = true
    await Promise.allSettled([...this.inFlight])
    await Promise.allSettled([...this.open].map((w) => w.discard()))
    await this.recovered
    this.client.destroy()
  }
}

/**
 * One object being written: NDJSON in, gzip (optional) through, parts out. Used by one caller at a time.
 * Any failure discards it (aborting its upload) before the error is thrown: nothing of it stays in S3.
 */
class ObjectWriter implements StagedBatch {
  private key: string | undefined
  private records = 0
  private compressor: Compressor | undefined
  /** The piece's NDJSON, gathered for zlib: one buffer reused for every piece (not a fresh 1 MiB each). */
  private input: Buffer | undefined
  /** The part being filled, and how much of it is. */
  private part: Buffer | undefined
  private filled = 0
  private ledgerPath: string | undefined
  /** CreateMultipartUpload was sent (its upload may exist even when no answer came). */
  private creating = false
  private uploadId: string | undefined
  private readonly parts: CompletedPart[] = []
  private done = false

  constructor(
    private readonly sink: S3Sink,
    private readonly lane: string,
  ) {
    sink.open.add(this)
  }

  /**
   * Not async: the piece's NDJSON is copied into the writer's input buffer before this returns, so the
   * caller's records (views into the spool's read buffers) can be collected young (StagedBatch.write).
   */
  write(records: readonly SinkRecord[], signal: AbortSignal): Promise<void> {
    let input: Buffer
    try {
      this.usable()
      if (records.length === 0) return Promise.resolve()
      this.key ??= this.sink.keyFor(records[0]!)
      this.records += records.length
      input = this.gather(ndjsonChunks(records))
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)))
    }
    return this.writeInput(input, signal)
  }

  private async writeInput(input: Buffer, signal: AbortSignal): Promise<void> {
    try {
      if (this.sink.gzip) {
        this.compressor ??= new Compressor()
        await this.append(await this.compressor.push(input), signal)
      } else await this.append([input], signal)
    } catch (err) {
      await this.discard()
      throw classifyS3Error(err)
    }
  }

  async commit(signal: AbortSignal): Promise<void> {
    this.usable()
    if (this.records === 0) {
      this.finish()
      return
    }
    try {
      if (this.compressor) await this.append(await this.compressor.end(), signal)
      const s3 = sdk()
      if (this.uploadId === undefined) {
        const body = this.part!.subarray(0, this.filled)
        await this.sink.client.send(
          new s3.PutObjectCommand({
            ...this.headers(),
            Body: body,
            ContentLength: body.length,
            ContentMD5: md5(body),
            Metadata: { records: String(this.records) },
          }),
          { abortSignal: signal },
        )
      } else {
        if (this.filled > 0) await this.uploadPart(signal)
        await this.sink.client.send(
          new s3.CompleteMultipartUploadCommand({
            Bucket: this.sink.bucket,
            Key: this.key,
            UploadId: this.uploadId,
            MultipartUpload: { Parts: this.parts },
          }),
          { abortSignal: signal },
        )
      }
    } catch (err) {
      await this.discard()
      throw classifyS3Error(err)
    }
    if (this.part) this.sink.givePart(this.part)
    this.finish()
    // The upload is complete: its record goes (a record left behind only costs a listing at the next start).
    if (this.ledgerPath !== undefined)
      await this.sink.ledger.remove(this.ledgerPath).catch((err: unknown) => {
        this.sink.logger.warn({ err }, 'could not remove the record of a completed multipart upload')
      })
  }

  async discard(): Promise<void> {
    if (this.done) return
    this.finish()
    if (!this.creating) return // nothing was sent that S3 keeps
    const { bucket } = this.sink
    const key = this.key!
    try {
      const signal = this.sink.cleanupSignal()
      // Without an upload id the CreateMultipartUpload may still have succeeded (its answer lost).
      if (this.uploadId !== undefined) await this.sink.abortUpload(bucket, key, this.uploadId, signal)
      else await this.sink.abortUploadsOf(bucket, key, signal)
      if (this.ledgerPath !== undefined) await this.sink.ledger.remove(this.ledgerPath)
    } catch (err) {
      if (this.ledgerPath !== undefined) this.sink.ledger.forget(this.ledgerPath)
      this.sink.logger.warn(
        { lane: this.lane, key, err: classifyS3Error(err).message },
        'could not abort a multipart upload; the next start aborts it',
      )
    }
  }

  private usable(): void {
    if (this.sink.closed) throw transientError('s3 sink is closed', 'closed')
    if (this.done) throw permanentError('s3 object already committed or discarded', 'internal')
  }

  /**
   * `chunks` copied into the writer's input buffer, grown only for a larger piece. zlib (or `append`, without
   * gzip) is done with it once write() resolves, so the next piece can overwrite it.
   */
  private gather(chunks: readonly Buffer[]): Buffer {
    let length = 0
    for (const chunk of chunks) length += chunk.length
    if (this.input === undefined || this.input.length < length)
      this.input = Buffer.allocUnsafeSlow(Math.max(length, S3_PIECE_BYTES + S3_PIECE_RECORDS))
    let offset = 0
    for (const chunk of chunks) offset += chunk.copy(this.input, offset)
    return this.input.subarray(0, length)
  }

  private finish(): void {
    this.done = true
    this.compressor?.destroy()
    this.compressor = undefined
    this.part = undefined
    this.input = undefined
    this.sink.open.delete(this)
  }

  private headers(): { Bucket: string; Key: string; ContentType: string; ContentEncoding?: string } {
    return {
      Bucket: this.sink.bucket,
      Key: this.key!,
      ContentType: NDJSON_CONTENT_TYPE,
      ...(this.sink.gzip ? { ContentEncoding: 'gzip' } : {}),
    }
  }

  /** Copies `chunks` into the part buffer, uploading it each time it holds partBytes. */
  private async append(chunks: readonly Buffer[], signal: AbortSignal): Promise<void> {
    const { partBytes } = this.sink
    for (const chunk of chunks) {
      let offset = 0
      while (offset < chunk.length) {
        if (!this.part) this.part = Buffer.allocUnsafe(Math.min(partBytes, FIRST_BUFFER_BYTES))
        else if (this.filled === this.part.length) {
          const grown = this.sink.takePart() ?? Buffer.allocUnsafe(Math.min(partBytes, this.part.length * 2))
          this.part.copy(grown, 0, 0, this.filled)
          this.part = grown
        }
        const n = chunk.copy(this.part, this.filled, offset)
        this.filled += n
        offset += n
        if (this.filled === partBytes) await this.uploadPart(signal)
      }
    }
  }

  private async uploadPart(signal: AbortSignal): Promise<void> {
    const s3 = sdk()
    const { bucket, client } = this.sink
    const key = this.key!
    if (this.uploadId === undefined) {
      this.ledgerPath ??= await this.sink.ledger.add({ bucket, key, lane: this.lane })
      this.creating = true
      const created = await client.send(new s3.CreateMultipartUploadCommand(this.headers()), {
        abortSignal: signal,
      })
      if (created.UploadId === undefined)
        throw transientError('s3: CreateMultipartUpload answered no UploadId', 'bad-response')
      this.uploadId = created.UploadId
    }
    const PartNumber = this.parts.length + 1
    if (PartNumber > S3_MAX_PARTS)
      throw permanentError(`s3 object over ${S3_MAX_PARTS} parts: raise partBytes`, 'object-too-large')
    const body = this.part!.subarray(0, this.filled)
    const answer = await client.send(
      new s3.UploadPartCommand({
        Bucket: bucket,
        Key: key,
        UploadId: this.uploadId,
        PartNumber,
        Body: body,
        ContentLength: body.length,
        ContentMD5: md5(body),
      }),
      { abortSignal: signal },
    )
    this.parts.push({ PartNumber, ETag: answer.ETag })
    this.filled = 0
  }
}

const md5 = (body: Buffer): string => createHash('md5').update(body).digest('base64')

/** A gzip stream fed piece by piece; its output is collected as it comes and taken by the caller. */
class Compressor {
  private readonly gzip: Gzip = createGzip({ chunkSize: 64 * 1024 })
  private out: Buffer[] = []

  constructor() {
    this.gzip.on('data', (chunk: Buffer) => this.out.push(chunk))
    // Errors reach the caller through the write callback or end(); this keeps them from being unhandled.
    this.gzip.on('error', () => undefined)
  }

  /** Compresses `input`; resolves with the output produced so far (zlib keeps some until the end). */
  push(input: Buffer): Promise<Buffer[]> {
    return new Promise((resolve, reject) => {
      this.gzip.write(input, (err) => (err ? reject(err) : resolve(this.take())))
    })
  }

  /** Ends the stream; resolves with the rest of the output. */
  end(): Promise<Buffer[]> {
    return new Promise((resolve, reject) => {
      this.gzip.once('end', () => resolve(this.take()))
      this.gzip.once('error', reject)
      this.gzip.end()
    })
  }

  destroy(): void {
    this.gzip.destroy()
  }

  private take(): Buffer[] {
    const out = this.out
    this.out = []
    return out
  }
}

interface LedgerEntry {
  path: string
  bucket: string
  key: string
}

/** Files recorded by any sink of this process and not yet removed: never taken for leftovers. */
const liveLedgerPaths = new Set<string>()

/**
 * The record of multipart uploads this gateway has in progress: one small JSON file per upload, written
 * and fsync'd before CreateMultipartUpload, removed once the upload is completed or aborted. Without a
 * directory (a sink built only to check a config) nothing is recorded.
 */
export class UploadLedger {
  private made = false

  constructor(private readonly dir: string | undefined) {}

  /** Records an upload about to be created under `key`; resolves with its file (undefined: no directory). */
  async add(entry: { bucket: string; key: string; lane: string }): Promise<string | undefined> {
    if (this.dir === undefined) return undefined
    if (!this.made) await mkdir(this.dir, { recursive: true })
    this.made = true
    const path = join(this.dir, `${randomUUID()}.json`)
    liveLedgerPaths.add(path)
    const handle = await open(path, 'wx')
    try {
      await handle.writeFile(JSON.stringify({ ...entry, startedAt: new Date().toISOString() }))
      await handle.datasync()
    } finally {
      await handle.close()
    }
    // The new name must survive a crash too, not only the file's bytes.
    const dir = await open(this.dir, 'r')
    try {
      await dir.sync()
    } finally {
      await dir.close()
    }
    return path
  }

  async remove(path: string): Promise<void> {
    await rm(path, { force: true })
    liveLedgerPaths.delete(path)
  }

  /** Leaves a record for the next start (its upload could not be aborted now). */
  forget(path: string): void {
    liveLedgerPaths.delete(path)
  }

  /** Records of uploads no live writer of this process owns: left by an earlier run. */
  async leftovers(): Promise<LedgerEntry[]> {
    if (this.dir === undefined) return []
    let names: string[]
    try {
      names = await readdir(this.dir)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
      throw err
    }
    const out: LedgerEntry[] = []
    for (const name of names.filter((n) => n.endsWith('.json')).sort()) {
      const path = join(this.dir, name)
      if (liveLedgerPaths.has(path)) continue
      try {
        const doc = JSON.parse(await readFile(path, 'utf8')) as Partial<LedgerEntry>
        if (typeof doc.bucket === 'string' && typeof doc.key === 'string')
          out.push({ path, bucket: doc.bucket, key: doc.key })
        else await rm(path, { force: true })
      } catch {
        // Torn by a crash before its fsync: CreateMultipartUpload was never sent for it.
        await rm(path, { force: true })
      }
    }
    return out
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
  // A part's ETag no longer matches (the part was replaced or lost): the object is written again.
  InvalidPart: { retriable: true, reason: 'upload-lost' },
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
