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
   * writes may overlap; the lane's cursor still moves over finished batches in order.
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
}

export interface SinkContext {
  logger: Logger
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
