import type { SinkError } from '../errors.js'
import type { SinkConfig, SinkType } from '../config/types.js'
import type { SinkRecord } from '../records/record.js'
import type { Logger } from '../telemetry/logger.js'

export type { SinkRecord }

/** How a sink wants its records batched by the delivery worker. */
export interface BatchLimits {
  maxBatchRecords: number
  maxBatchBytes: number
  lingerMs: number
  /** A record larger than this can never be delivered: it goes to the dead-letter sink at once. */
  maxRecordBytes: number
  /**
   * How many batches a lane may have in `write` at once (default 1). More than 1 only for a sink whose
   * writes may overlap; the lane's cursor still moves over finished batches in order. Not used for a sink
   * with `staging`, whose lane has one batch at a time.
   */
  maxInFlightBatches?: number
}

/**
 * The result of one write. Records not listed in `failed` were delivered. A failed entry's error says
 * whether a retry can help; the caller retries only those entries (never the whole batch again).
 */
export interface WriteResult {
  failed: { index: number; error: SinkError }[]
}

export const ALL_WRITTEN: WriteResult = Object.freeze({ failed: [] })

/**
 * The one contract every destination implements. `write` either resolves (possibly reporting failures by
 * index) or rejects with a SinkError for the whole batch. It must not retry internally: the delivery
 * worker owns retries, backoff and dead-lettering, the same for every sink.
 */
export interface Sink {
  readonly name: string
  readonly type: SinkType
  readonly limits: BatchLimits
  write(batch: readonly SinkRecord[], signal: AbortSignal): Promise<WriteResult>
  /** Makes the same kind of call the sink really makes (metadata, HEAD bucket, describe stream …). */
  healthcheck(signal: AbortSignal): Promise<void>
  /** Flushes; resolves when in-flight work is done. */
  close(): Promise<void>
  /** Present when the sink takes a lane's batch in pieces (see Staging); `write` still works on its own. */
  readonly staging?: Staging
  /**
   * True when the sink never reads a batch's payloads once the promise `write` returned has settled
   * (resolved or rejected) — it may hold views of them until then, but nothing of it may go on in the
   * background after (an aborted write included). The lane then lets the spool reader reuse the read
   * buffers and tail-cache frames those payloads were views of once every batch it handed over has settled
   * (LogReader.recycle), instead of leaving one buffer per read to the garbage collector.
   */
  readonly releasesOnSettle?: boolean
  /**
   * Present when the sink writes each record as its payload and a "\n" and nothing else of it (file,
   * stdout): the lane then hands it a batch as NDJSON, runs of records straight from the spool's lines frames
   * (views of the frames, no record objects; bench/RESULTS.md 2026-12-04, sixth session). `lines` are whole
   * lines, `records` how many. All or nothing: resolves when every line was written, rejects with a SinkError
   * otherwise (the lane then retries or dead-letters those records through `write`). Limits apply as to
   * `write`; what `releasesOnSettle` says of payloads applies to `lines`.
   */
  writeLines?(lines: readonly Buffer[], records: number, signal: AbortSignal): Promise<void>
}

/**
 * A sink whose batch is one durable unit built over several writes: the S3 sink's object, uploaded part
 * by part while the lane gathers it, so that a batch as large as `limits` (64 MiB) is never held whole.
 * The lane gathers a batch by `limits` as for any sink, but hands it over in pieces of at most
 * `maxPieceRecords`/`maxPieceBytes` through a StagedBatch, commits it once the batch is complete (limits
 * or lingerMs reached, or the lane stopping), and moves its cursor only after the commit resolved.
 * Pieces written but not committed are not durable: when a write or the commit fails, or the process dies,
 * they are gone and the lane sends them again from its cursor (duplicates are possible, loss is not).
 * A staging lane has one batch at a time: `limits.maxInFlightBatches` does not apply to it.
 */
export interface Staging {
  maxPieceRecords: number
  maxPieceBytes: number
  /** Starts a new batch for `lane` (a name for logs); nothing is sent before its first write. */
  begin(lane: string): StagedBatch
}

/** One staged batch; used by one lane at a time, one call after the other. */
export interface StagedBatch {
  /**
   * Adds records. Rejects with a SinkError, and the whole batch is then lost (discarded already). Whatever
   * the batch keeps of `records` it copies before `write` returns: the caller lets go of the records (views
   * into the spool's read buffers) as soon as the call returned, not when the promise settles.
   */
  write(records: readonly SinkRecord[], signal: AbortSignal): Promise<void>
  /** Completes the batch: resolves once everything written is durable. Rejects like `write`. */
  commit(signal: AbortSignal): Promise<void>
  /** Gives the batch up (best effort, never rejects): whatever was written must be sent again. */
  discard(): Promise<void>
}

export interface SinkContext {
  logger: Logger
  /**
   * A directory the sink may keep state in across restarts, owned by this gateway alone (beside the spool,
   * under its lock); created by the sink when it needs it. Absent when the sink is only built to check a
   * config: then it must keep no state.
   */
  stateDir?: string
}

export type SinkFactory<T extends SinkType = SinkType> = (
  name: string,
  config: Extract<SinkConfig, { type: T }>,
  context: SinkContext,
) => Sink

/** Applies the config's batch keys over a sink type's defaults. */
export function batchLimits(config: SinkConfig, defaults: BatchLimits): BatchLimits {
  return {
    maxBatchRecords: config.maxBatchRecords ?? defaults.maxBatchRecords,
    maxBatchBytes: config.maxBatchBytes ?? defaults.maxBatchBytes,
    lingerMs: config.lingerMs ?? defaults.lingerMs,
    maxRecordBytes: defaults.maxRecordBytes,
    ...(defaults.maxInFlightBatches !== undefined ? { maxInFlightBatches: defaults.maxInFlightBatches } : {}),
  }
}

/** NDJSON framing used by file, s3 and http sinks: every payload followed by "\n". */
export function ndjsonChunks(batch: readonly SinkRecord[]): Buffer[] {
  const chunks: Buffer[] = new Array<Buffer>(batch.length * 2)
  for (let i = 0; i < batch.length; i++) {
    chunks[2 * i] = batch[i]!.payload
    chunks[2 * i + 1] = NEWLINE
  }
  return chunks
}

const NEWLINE = Buffer.from('\n')
