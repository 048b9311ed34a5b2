import type { RetryConfig } from '../config/types.js'
import { asSinkError, AUTH_FAILED, holdsRecords, permanentError, type SinkError } from '../errors.js'
import { backoffDelay, sleep } from '../retry.js'
import type { SinkRecord } from '../records/record.js'
import type { Sink, WriteResult } from '../sinks/sink.js'
import type { Logger } from '../telemetry/logger.js'
import type { Metrics } from '../telemetry/metrics.js'
import type { CircuitAttempt, CircuitBreaker } from './circuit.js'

// Delivery of records to one sink: batches within the sink's limits, retries transient failures with
// exponential backoff and jitter (only the entries that failed), and hands permanent failures to the
// dead-letter callback. The same code serves the durable spool's workers and `durability: none` streams.
// Every attempt first passes the sink's circuit breaker (when given): while it is open, delivery waits.
// A refused credential (reason "auth", errors.ts authError) is no record's fault: it is retried with backoff
// like any transient failure but never counts against retry.maxAttempts, so those records wait in the
// spool until the credentials work again instead of being dead-lettered; each such write is counted in
// streamgate_sink_auth_failures_total. A sink that is not connected yet (reason "not-connected", errors.ts
// notConnectedError) holds its records the same way, until `streamgate connect` wires it.

export interface DeliveryOptions {
  retry: RetryConfig
  /** Aborts everything, a write in progress included. */
  signal: AbortSignal
  /**
   * Also aborts the waits between writes (circuit cool-down, backoff), never a write in progress: a lane
   * that is stopping should not sit out a cool-down first. Must abort whenever `signal` does (the lane's
   * stop signal aborts before its hard stop). Defaults to `signal`.
   */
  waitSignal?: AbortSignal
  metrics: Metrics
  logger: Logger
  /** Receives records the sink rejected permanently; must hand them to the dead-letter sink. */
  deadLetter(records: SinkRecord[], error: SinkError): Promise<void>
  /** Called after each successful write with the number of records acknowledged. */
  onDelivered?(records: number): void
  /** Reports the sink's last error (for stream status and the status page). */
  onError?(error: SinkError): void
  /** The sink's circuit breaker; every write waits for its admission and reports its verdict to it. */
  circuit?: CircuitBreaker
}

export function splitBatches(sink: Sink, records: readonly SinkRecord[]): (readonly SinkRecord[])[] {
  const { maxBatchRecords, maxBatchBytes } = sink.limits
  // A lane's batch is gathered within the limits already: one pass to check, no copy.
  if (records.length <= maxBatchRecords) {
    let bytes = 0
    for (let i = 0; i < records.length && bytes <= maxBatchBytes; i++) bytes += records[i]!.payload.length
    if (bytes <= maxBatchBytes) return records.length > 0 ? [records] : []
  }
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
  const { maxRecordBytes } = sink.limits
  let fits = true
  for (let i = 0; i < records.length && fits; i++) fits = records[i]!.payload.length <= maxRecordBytes
  if (!fits) {
    const tooLarge = records.filter((r) => r.payload.length > maxRecordBytes)
    const error = permanentError(
      `record larger than the ${sink.type} limit of ${sink.limits.maxRecordBytes} bytes`,
      'record-too-large',
    )
    options.metrics.sinkFailed(sink.name, error.reason, tooLarge.length)
    await options.deadLetter(tooLarge, error)
    records = records.filter((r) => r.payload.length <= maxRecordBytes)
  }
  for (const batch of splitBatches(sink, records)) await deliverBatch(sink, batch, options)
}

/** A lane's batch as NDJSON lines for a sink with `writeLines` (see Sink.writeLines). */
export interface LinesBatch {
  lines: readonly Buffer[]
  /** How many records the lines hold. */
  count: number
  /** The same records as objects, made only when the lines' write failed (to retry or dead-letter them). */
  records(): SinkRecord[]
}

/**
 * Delivers a batch gathered within the sink's limits (records within maxRecordBytes) through the sink's
 * `writeLines`. Only the first attempt goes as lines: when it fails, the records are made and delivery goes
 * on as for `deliver` (retries counted from that first attempt, dead letters, the circuit's verdicts).
 */
export async function deliverLines(sink: Sink, batch: LinesBatch, options: DeliveryOptions): Promise<void> {
  const { signal } = options
  signal.throwIfAborted()
  const admitted = await options.circuit?.admit(options.waitSignal ?? signal)
  const started = performance.now()
  try {
    await sink.writeLines!(batch.lines, batch.count, signal)
  } catch (err) {
    if (signal.aborted) {
      admitted?.abandoned()
      throw signal.reason
    }
    const error = asSinkError(err)
    if (error.retriable) admitted?.failed()
    else admitted?.succeeded() // the sink answered; a retry would not help, nothing to protect
    await deliverBatch(sink, batch.records(), options, error)
    return
  }
  admitted?.succeeded()
  options.metrics.sinkDelivered(sink.name, batch.count, (performance.now() - started) / 1000)
  options.onDelivered?.(batch.count)
}

/** `failed`: the batch's first attempt was already made (as lines) and failed as a whole with this error. */
async function deliverBatch(
  sink: Sink,
  batch: readonly SinkRecord[],
  options: DeliveryOptions,
  failed?: SinkError,
): Promise<void> {
  const { retry, signal, metrics } = options
  const waitSignal = options.waitSignal ?? signal
  let pending = batch
  /** Failed attempts so far (drives the backoff). */
  let attempt = 0
  /** Failed attempts that count against retry.maxAttempts (auth failures do not). */
  let counted = 0
  let carried = failed
  while (pending.length > 0) {
    const linesFailure = carried
    carried = undefined
    let admitted: CircuitAttempt | undefined
    if (!linesFailure) {
      signal.throwIfAborted()
      admitted = await options.circuit?.admit(waitSignal)
    }
    const started = performance.now()
    let retryable: SinkRecord[] = []
    let lastError: SinkError | undefined
    try {
      if (linesFailure) throw linesFailure
      let result: WriteResult
      try {
        result = await sink.write(pending, signal)
      } catch (err) {
        if (signal.aborted) admitted?.abandoned()
        else if (asSinkError(err).retriable) admitted?.failed()
        else admitted?.succeeded() // the sink answered; a retry would not help, nothing to protect
        throw err
      }
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
      if (ok === 0 && retryable.length > 0) admitted?.failed()
      else admitted?.succeeded()
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
        await options.deadLetter(pending.slice(), error)
        return
      }
      retryable = pending.slice()
      lastError = error
    }
    if (retryable.length === 0) return
    attempt++
    if (lastError?.reason === AUTH_FAILED) metrics.sinkAuthFailed(sink.name)
    if (!holdsRecords(lastError)) counted++
    if (retry.maxAttempts > 0 && counted >= retry.maxAttempts) {
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
    await sleep(Math.max(backoffDelay(attempt, retry), lastError?.retryAfterMs ?? 0), waitSignal)
    pending = retryable
  }
}
