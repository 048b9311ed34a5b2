import type { RetryConfig } from '../config/types.js'
import type { SinkError } from '../errors.js'
import { backoffDelay, sleep } from '../retry.js'
import type { SinkRecord } from '../records/record.js'
import type { Sink } from '../sinks/sink.js'
import { FrameKind, type Frame } from '../spool/format.js'
import type { StreamSpool } from '../spool/spool.js'
import type { LogReader, Position } from '../spool/stream-log.js'
import type { Logger } from '../telemetry/logger.js'
import type { Metrics } from '../telemetry/metrics.js'
import type { CircuitBreaker, CircuitSnapshot } from './circuit.js'
import { deliver } from './delivery.js'

// A delivery lane: one sink of one stream (or the stream's dead-letter sink), reading the stream's spool
// log from its own cursor. Lanes never wait for each other, so a slow or dead sink only grows its own lag
// (until the spool's maxBytes). A batch is cut when the sink's maxBatchRecords/maxBatchBytes is reached,
// or lingerMs after its first record (the S3 sink's object roll-over by age is this linger). The cursor
// moves only after every record of the batch was delivered or handed to the dead-letter lane durably.
// While the sink's circuit breaker is open the lane waits with its batch (its lag grows, nothing is lost).
// A sink whose limits allow several batches in flight (maxInFlightBatches) gets the next batch while the
// earlier ones are still being written; the cursor then moves over the longest run of finished batches
// from its position, never past one still in flight, so a crash delivers those again and skips nothing.

export interface LaneOptions {
  stream: string
  lane: string
  kind: FrameKind
  sink: Sink
  retry: RetryConfig
  spool: StreamSpool
  metrics: Metrics
  logger: Logger
  isPaused(): boolean
  /** The sink's circuit breaker (shared with the other lanes of the same sink). */
  circuit?: CircuitBreaker
  /** Takes records the sink rejected permanently; resolves once they are safe (spooled as dead letters). */
  deadLetter(records: SinkRecord[], error: SinkError): Promise<void>
  onError?(error: SinkError): void
  onDelivered?(records: number): void
  /** Called after the cursor moved (segment garbage collection). */
  onAdvance?(): void
}

interface Batch {
  records: SinkRecord[]
  end: Position
}

/** A batch handed to the sink, in the order the batches were read. */
interface InFlight {
  end: Position
  /** Settles (never rejects) when the delivery has finished. */
  settled: Promise<void>
  state: 'pending' | 'done' | 'failed'
}

export class DeliveryLane {
  private readonly stopSignal = new AbortController()
  /** Aborts an in-flight delivery (shutdown timeout). */
  private readonly hardStop = new AbortController()
  private running: Promise<void> | undefined
  /** The cursor: everything before it was delivered (or dead-lettered). */
  private position: Position
  /** Where the next batch starts: the cursor, or the end of the last batch in flight. */
  private readAt: Position
  /** Aborts the wait for new records when a delivery failed, so the lane rewinds at once. */
  private interrupt = new AbortController()
  private carry: { frame: Frame; next: number } | undefined
  private reader: LogReader
  lastError: { message: string; reason: string; at: string } | undefined
  delivered = 0

  constructor(private readonly o: LaneOptions) {
    const { log, cursors } = o.spool
    let start = cursors.get(o.lane)
    if (!start || start.seq > log.nextSeq || start.seq < log.firstSeq) {
      // A new lane starts at the end for a sink added to a running stream; with no cursor at all on a
      // fresh log (first start), at the beginning. A cursor outside the log (spool wiped) is reset.
      if (start && (start.seq > log.nextSeq || start.seq < log.firstSeq))
        o.logger.warn(
          { stream: o.stream, lane: o.lane, cursor: start, first: log.firstSeq, next: log.nextSeq },
          'lane cursor outside the log; reset',
        )
      // A cursor beyond the end means the log was wiped and restarted: everything in it is new to the lane.
      const fromStart = cursors.loadedEmpty || start !== undefined
      start = { seq: fromStart ? log.firstSeq : log.nextSeq, index: 0 }
      cursors.set(o.lane, start)
    }
    this.position = start
    this.readAt = start
    this.reader = log.reader(start)
  }

  get sinkName(): string {
    return this.o.sink.name
  }

  get laneName(): string {
    return this.o.lane
  }

  get lag(): number {
    return this.o.spool.log.lag(this.o.kind, this.position)
  }

  /** The sink's circuit breaker state; closed when the lane has none. */
  get circuit(): CircuitSnapshot {
    return this.o.circuit?.snapshot() ?? { state: 'closed', failures: 0 }
  }

  get at(): Position {
    return { ...this.position }
  }

  start(): void {
    this.running ??= this.run().catch((err: unknown) => {
      this.o.logger.error(
        { err, stream: this.o.stream, lane: this.o.lane },
        'delivery lane stopped unexpectedly',
      )
    })
  }

  /** Stops taking new batches; a delivery in progress may finish within `graceMs`, then is aborted. */
  async stop(graceMs: number): Promise<void> {
    this.stopSignal.abort(new Error('lane stopping'))
    if (this.running) {
      const timer = setTimeout(() => this.hardStop.abort(new Error('shutdown timeout')), graceMs)
      await this.running
      clearTimeout(timer)
    }
    await this.reader.close()
  }

  private async run(): Promise<void> {
    const maxInFlight = Math.max(1, this.o.sink.limits.maxInFlightBatches ?? 1)
    const inFlight: InFlight[] = []
    let failures = 0
    let failure: unknown
    /** Moves the cursor over the batches that finished, in order, up to the first one that has not. */
    const advance = (): void => {
      let end: Position | undefined
      while (inFlight[0]?.state === 'done') end = inFlight.shift()!.end
      if (!end) return
      this.position = end
      this.o.spool.cursors.set(this.o.lane, end)
      this.o.onAdvance?.()
    }
    while (!this.stopSignal.signal.aborted) {
      if (failure !== undefined) {
        // A delivery failed for a reason other than the sink (deliver retries those): the dead-letter
        // hand-off (disk?). Let the other batches finish, then start over from the cursor after a pause;
        // the batches after the cursor are delivered again (at least once).
        await Promise.all(inFlight.map((b) => b.settled))
        advance()
        inFlight.length = 0
        if (this.stopSignal.signal.aborted) return
        failures++
        this.o.logger.error(
          { err: failure, stream: this.o.stream, lane: this.o.lane },
          'delivery failed; retrying from the cursor',
        )
        failure = undefined
        this.interrupt = new AbortController()
        await this.rewind()
        await sleep(backoffDelay(failures, this.o.retry), this.stopSignal.signal).catch(() => undefined)
        continue
      }
      if (this.o.isPaused()) {
        await sleep(250, this.stopSignal.signal).catch(() => undefined)
        continue
      }
      const pending = inFlight.filter((b) => b.state === 'pending')
      if (pending.length >= maxInFlight) {
        await Promise.race(pending.map((b) => b.settled))
        continue
      }
      const batch = await this.collect()
      if (!batch) continue
      this.readAt = batch.end
      this.reader.advance(batch.end)
      if (batch.records.length === 0) {
        // Only frames of another kind: nothing to deliver, the cursor may move past them in turn.
        inFlight.push({ end: batch.end, settled: Promise.resolve(), state: 'done' })
        advance()
        continue
      }
      const entry: InFlight = { end: batch.end, settled: Promise.resolve(), state: 'pending' }
      inFlight.push(entry)
      entry.settled = this.deliver(batch.records).then(
        () => {
          entry.state = 'done'
          failures = 0
          advance()
        },
        (err: unknown) => {
          entry.state = 'failed'
          // Stopping: the cursor stays before the batch; the next start delivers it again.
          if (this.stopSignal.signal.aborted) return
          failure ??= err
          this.interrupt.abort()
        },
      )
    }
    await Promise.all(inFlight.map((b) => b.settled))
    advance()
  }

  private deliver(records: SinkRecord[]): Promise<void> {
    return deliver(this.o.sink, records, {
      retry: this.o.retry,
      signal: this.hardStop.signal,
      waitSignal: this.stopSignal.signal,
      circuit: this.o.circuit,
      metrics: this.o.metrics,
      logger: this.o.logger,
      deadLetter: (records, error) => this.o.deadLetter(records, error),
      onError: (error) => {
        this.lastError = { message: error.message, reason: error.reason, at: new Date().toISOString() }
        this.o.onError?.(error)
      },
      onDelivered: (n) => {
        this.delivered += n
        this.o.onDelivered?.(n)
      },
    })
  }

  private async rewind(): Promise<void> {
    await this.reader.close()
    this.carry = undefined
    this.readAt = this.position
    this.reader = this.o.spool.log.reader(this.position)
  }

  /** Gathers the next batch; undefined when stopped or paused before anything was gathered. */
  private async collect(): Promise<Batch | undefined> {
    const { maxBatchRecords, maxBatchBytes, lingerMs } = this.o.sink.limits
    const records: SinkRecord[] = []
    let bytes = 0
    let end = this.readAt
    let firstAt = 0
    for (;;) {
      if (!this.carry) {
        const next = await this.reader.next()
        if (next) this.carry = { frame: next.frame, next: next.skip }
      }
      if (this.carry) {
        const { frame } = this.carry
        if (frame.kind !== this.o.kind) {
          this.carry = undefined
          end = { seq: frame.seq + 1, index: 0 }
          continue
        }
        while (this.carry.next < frame.records.length) {
          const record = frame.records[this.carry.next]!
          if (
            records.length > 0 &&
            (records.length >= maxBatchRecords || bytes + record.payload.length > maxBatchBytes)
          )
            return { records, end }
          if (records.length === 0) firstAt = performance.now()
          records.push(record)
          bytes += record.payload.length
          this.carry.next++
          end = { seq: frame.seq, index: this.carry.next }
        }
        this.carry = undefined
        end = { seq: frame.seq + 1, index: 0 }
        if (records.length >= maxBatchRecords || bytes >= maxBatchBytes) return { records, end }
        continue
      }
      // Nothing more written yet.
      if (records.length === 0) {
        if (end.seq !== this.readAt.seq || end.index !== this.readAt.index) return { records, end } // skipped frames
        const interrupt = this.interrupt.signal
        await this.o.spool.log.waitForAppend(AbortSignal.any([this.stopSignal.signal, interrupt]))
        // Paused while waiting (SPEC: a paused stream delivers nothing): run() waits for the resume. A
        // delivery that failed meanwhile: run() rewinds.
        if (this.stopSignal.signal.aborted || this.o.isPaused() || interrupt.aborted) return undefined
        continue
      }
      const remaining = lingerMs - (performance.now() - firstAt)
      if (remaining <= 0 || this.stopSignal.signal.aborted) return { records, end }
      // A delivery that failed meanwhile: whatever was gathered is read again after the rewind.
      if (this.interrupt.signal.aborted) return undefined
      await this.waitForAppendOrLinger(remaining)
    }
  }

  /**
   * Waits for more records or until the linger time is up. An explicit timer rather than
   * AbortSignal.timeout(): that rejects fractional milliseconds with a RangeError and, on Node 20,
   * can be garbage-collected before it fires when nothing else references it.
   */
  private async waitForAppendOrLinger(remainingMs: number): Promise<void> {
    const linger = new AbortController()
    const onStop = (): void => linger.abort()
    const interrupt = this.interrupt.signal
    this.stopSignal.signal.addEventListener('abort', onStop, { once: true })
    interrupt.addEventListener('abort', onStop, { once: true })
    const timer = setTimeout(() => linger.abort(), Math.max(1, Math.ceil(remainingMs)))
    try {
      await this.o.spool.log.waitForAppend(linger.signal)
    } finally {
      clearTimeout(timer)
      this.stopSignal.signal.removeEventListener('abort', onStop)
      interrupt.removeEventListener('abort', onStop)
    }
  }
}
