import type { RetryConfig } from '../config/types.js'
import { asSinkError, permanentError, type SinkError } from '../errors.js'
import { backoffDelay, sleep } from '../retry.js'
import type { SinkRecord } from '../records/record.js'
import type { Sink } from '../sinks/sink.js'
import type { Logger } from '../telemetry/logger.js'
import type { Metrics } from '../telemetry/metrics.js'

// Delivery of records to one sink: batches within the sink's limits, retries transient failures with
// exponential backoff and jitter (only the entries that failed), and hands permanent failures to the
// dead-letter callback. The same code serves the durable spool's workers and `durability: none` streams.

export interface DeliveryOptions {
  retry: RetryConfig
  signal: AbortSignal
  metrics: Metrics
  logger: Logger
  /** Receives records the sink rejected permanently; must hand them to the dead-letter sink. */
  deadLetter(records: SinkRecord[], error: SinkError): Promise<void>
  /** Called after each successful write with the number of records acknowledged. */
  onDelivered?(records: number): void
  /** Reports the sink's last error (for stream status and the status page). */
  onError?(error: SinkError): void
}

export function splitBatches(sink: Sink, records: readonly SinkRecord[]): SinkRecord[][] {
  const { maxBatchRecords, maxBatchBytes } = sink.limits
  const batches: SinkRecord[][] = []
  let current: SinkRecord[] = []
  let bytes = 0
  for (const record of records) {
    const size = record.payload.length
    if (current.length > 0 && (current.length >= maxBatchRecords || bytes + size > maxBatchBytes)) {
      batches.push(current)
      current = []
      bytes = 0
    }
    current.push(record)
    bytes += size
  }
  if (current.length > 0) batches.push(current)
  return batches
}

export async function deliver(
  sink: Sink,
  records: readonly SinkRecord[],
  options: DeliveryOptions,
): Promise<void> {
  const tooLarge = records.filter((r) => r.payload.length > sink.limits.maxRecordBytes)
  if (tooLarge.length > 0) {
    const error = permanentError(
      `record larger than the ${sink.type} limit of ${sink.limits.maxRecordBytes} bytes`,
      'record-too-large',
    )
    options.metrics.sinkFailed(sink.name, error.reason, tooLarge.length)
    await options.deadLetter(tooLarge, error)
    records = records.filter((r) => r.payload.length <= sink.limits.maxRecordBytes)
  }
  for (const batch of splitBatches(sink, records)) await deliverBatch(sink, batch, options)
}

async function deliverBatch(sink: Sink, batch: SinkRecord[], options: DeliveryOptions): Promise<void> {
  const { retry, signal, metrics } = options
  let pending = batch
  let attempt = 0
  while (pending.length > 0) {
    signal.throwIfAborted()
    const started = performance.now()
    let retryable: SinkRecord[] = []
    let lastError: SinkError | undefined
    try {
      const result = await sink.write(pending, signal)
      const permanent = new Map<string, { records: SinkRecord[]; error: SinkError }>()
      for (const { index, error } of result.failed) {
        const record = pending[index]
        if (!record) continue
        if (error.retriable) {
          retryable.push(record)
          lastError = error
        } else {
          const group = permanent.get(error.reason) ?? { records: [], error }
          group.records.push(record)
          permanent.set(error.reason, group)
        }
      }
      const ok = pending.length - result.failed.length
      metrics.sinkDelivered(sink.name, ok, (performance.now() - started) / 1000)
      if (ok > 0) options.onDelivered?.(ok)
      for (const { records, error } of permanent.values()) {
        metrics.sinkFailed(sink.name, error.reason, records.length)
        options.onError?.(error)
        await options.deadLetter(records, error)
      }
    } catch (err) {
      if (signal.aborted) throw signal.reason
      const error = asSinkError(err)
      options.onError?.(error)
      if (!error.retriable) {
        metrics.sinkFailed(sink.name, error.reason, pending.length)
        await options.deadLetter(pending, error)
        return
      }
      retryable = pending
      lastError = error
    }
    if (retryable.length === 0) return
    attempt++
    if (retry.maxAttempts > 0 && attempt >= retry.maxAttempts) {
      const error = permanentError(
        `gave up after ${attempt} attempts: ${lastError?.message ?? 'unknown error'}`,
        'retries-exhausted',
        lastError,
      )
      metrics.sinkFailed(sink.name, error.reason, retryable.length)
      await options.deadLetter(retryable, error)
      return
    }
    metrics.sinkRetried(sink.name, lastError?.reason ?? 'error', retryable.length)
    if (attempt === 1 || attempt % 10 === 0)
      options.logger.warn(
        {
          sink: sink.name,
          attempt,
          records: retryable.length,
          reason: lastError?.reason,
          err: lastError?.message,
        },
        'sink write failed; retrying',
      )
    // A server's Retry-After wins over our own backoff when it asks for longer.
    await sleep(Math.max(backoffDelay(attempt, retry), lastError?.retryAfterMs ?? 0), signal)
    pending = retryable
  }
}
