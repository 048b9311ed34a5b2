import type { RetryConfig } from '../config/types.js'
import { asSinkError, permanentError, type SinkError } from '../errors.js'
import { backoffDelay, sleep } from '../retry.js'
import type { SinkRecord } from '../records/record.js'
import type { Sink, StagedBatch } from '../sinks/sink.js'
import {
  FrameKind,
  frameLines,
  payloadLength,
  recordAt,
  recordCount,
  recordsIn,
  type Frame,
} from '../spool/format.js'
import type { StreamSpool } from '../spool/spool.js'
import type { LogReader, Position } from '../spool/stream-log.js'
import type { Logger } from '../telemetry/logger.js'
import type { Metrics } from '../telemetry/metrics.js'
import type { CircuitAttempt, CircuitBreaker, CircuitSnapshot } from './circuit.js'
import { deliver, deliverLines, type DeliveryOptions } from './delivery.js'

// A delivery lane: one sink of one stream (or the stream's dead-letter sink), reading the stream's spool
// log from its own cursor. Lanes never wait for each other, so a slow or dead sink only grows its own lag
// (until the spool's maxBytes). A batch is cut when the sink's maxBatchRecords/maxBatchBytes is reached,
// or lingerMs after its first record (the S3 sink's object roll-over by age is this linger). The cursor
// moves only after every record of the batch was delivered or handed to the dead-letter lane durably.
// While the sink's circuit breaker is open the lane waits with its batch (its lag grows, nothing is lost).
// A sink whose limits allow several batches in flight (maxInFlightBatches) gets the next batch while the
// earlier ones are still being written; the cursor then moves over the longest run of finished batches
// from its position, never past one still in flight, so a crash delivers those again and skips nothing.
//
// A sink with `staging` (S3) is handed the batch in pieces while the lane gathers it, so the lane holds
// one piece, never the whole batch; the batch is committed once complete, and only then does the cursor
// move. When a piece's write or the commit fails, the staged batch is gone: the lane rewinds to its cursor
// and sends those records again with plain `write`s, piece by piece (each its own small unit, retried and
// dead-lettered by delivery as for any sink), up to where the lost batch ended; then it stages again.
// A staging lane runs one batch at a time (its maxInFlightBatches is not used, nor while it replays): the
// staged batch is already written while it is gathered, so a second one in flight would only hold a
// second piece in memory, and the cursor moving only after each commit stays simple.

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
  /** The records, empty when gathered as `slices`. */
  records: SinkRecord[]
  /**
   * For a sink with `writeLines`: the batch as runs of records of the frames read (no record objects made);
   * `records` is then empty.
   */
  slices: FrameSlice[] | undefined
  /** How many records the batch (or piece) holds. */
  count: number
  /** The largest payload of the batch, in bytes. */
  largest: number
  end: Position
  /** false: a piece of a staged batch; more of the batch follows. */
  last: boolean
  /** When the batch's first record was gathered (performance.now()). */
  firstAt: number
}

/** Records from..to−1 of a frame. */
interface FrameSlice {
  frame: Frame
  from: number
  to: number
}

/** A lane's open staged batch: what was handed to the sink so far. */
interface OpenBatch {
  writer: StagedBatch
  /** Records gathered and their payload bytes (against the sink's limits); `written` leaves out dead letters. */
  records: number
  bytes: number
  written: number
  firstAt: number
}

/** A batch handed to the sink, in the order the batches were read (the in-flight path). */
interface InFlight {
  end: Position
  /** Settles (never rejects) when the delivery has finished. */
  settled: Promise<void>
  state: 'pending' | 'done' | 'failed'
}

/** The records of the slices, made now (to retry or dead-letter a batch gathered as slices). */
function recordsOf(slices: readonly FrameSlice[]): SinkRecord[] {
  const records: SinkRecord[] = []
  for (const { frame, from, to } of slices) recordsIn(frame, from, to, records)
  return records
}

const before = (a: Position, b: Position): boolean => a.seq < b.seq || (a.seq === b.seq && a.index < b.index)

export class DeliveryLane {
  private readonly stopSignal = new AbortController()
  /** Aborts an in-flight delivery (shutdown timeout). */
  private readonly hardStop = new AbortController()
  private running: Promise<void> | undefined
  /** The cursor: everything before it was delivered (or dead-lettered). */
  private position: Position
  /** A delivery in flight failed: the wait for new records ends, so that the lane rewinds at once. */
  private interrupted = false
  /**
   * Ends the lane's current wait for records (an append, the linger time, stop or a failed delivery). One
   * function per wait, so a call meant for an earlier wait (the log does not take listeners back) is a no-op.
   */
  private wake: (() => void) | undefined
  private carry: { frame: Frame; next: number } | undefined
  private reader: LogReader
  /**
   * Where the next batch starts: where the records handed to the sink end, ahead of `position` while a
   * staged batch is open or batches are in flight.
   */
  private gathered: Position
  private open: OpenBatch | undefined
  /** After a staged batch was lost: the records before this go out with plain writes, piece by piece. */
  private replayUntil: Position | undefined
  lastError: { message: string; reason: string; at: string } | undefined
  /** How this lane's batches are delivered (the same for every batch). */
  private readonly delivery: DeliveryOptions
  delivered = 0

  constructor(private readonly o: LaneOptions) {
    this.delivery = {
      retry: o.retry,
      signal: this.hardStop.signal,
      waitSignal: this.stopSignal.signal,
      circuit: o.circuit,
      metrics: o.metrics,
      logger: o.logger,
      deadLetter: (records, error) => o.deadLetter(records, error),
      onError: (error) => this.reportError(error),
      onDelivered: (n) => {
        this.delivered += n
        o.onDelivered?.(n)
      },
    }
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
    this.gathered = start
    this.reader = log.reader(start)
    this.stopSignal.signal.addEventListener('abort', () => this.wake?.(), { once: true })
  }

  get sinkName(): string {
    return this.o.sink.name
  }

  get laneName(): string {
    return this.o.lane
  }

  /** How long the sink may hold records before they count as delivered (admission's lag budget adds it). */
  get lingerMs(): number {
    return this.o.sink.limits.lingerMs
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
    // A staged batch still open when the lane stops is committed within the grace time (else discarded:
    // its records are sent again after the restart).
    this.running ??= this.run()
      .finally(() => this.open && this.commit())
      .catch((err: unknown) => {
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
    if (this.o.sink.staging) await this.runStaged()
    else await this.runInFlight()
  }

  /** A sink with `staging`: one batch at a time, staged in pieces, the cursor moved after each commit. */
  private async runStaged(): Promise<void> {
    let failures = 0
    while (!this.stopSignal.signal.aborted) {
      if (this.o.isPaused()) {
        // What was staged before the pause is completed; nothing more is gathered until the resume.
        if (this.open) await this.commit()
        await sleep(250, this.stopSignal.signal).catch(() => undefined)
        continue
      }
      const batch = await this.collect()
      if (!batch) continue
      try {
        if (this.staging) {
          // stage/commit answer false when the staged batch was lost (the lane rewound to its cursor).
          if ((await this.stage(batch)) && batch.last && (await this.commit())) failures = 0
          continue
        }
        // Replaying a lost staged batch: plain writes, one piece at a time.
        if (batch.count > 0) await this.deliver(batch.records)
        failures = 0
        this.advance(batch.end)
      } catch (err) {
        // Stopping: the cursor stays before the batch; the next start delivers it again.
        if (this.stopSignal.signal.aborted) return
        await this.retryFromCursor(err, ++failures)
      }
    }
  }

  /**
   * Any other sink: up to maxInFlightBatches batches in `write` at once; the cursor moves over the finished
   * ones in order.
   */
  private async runInFlight(): Promise<void> {
    const maxInFlight = Math.max(1, this.o.sink.limits.maxInFlightBatches ?? 1)
    const recycles = this.o.sink.releasesOnSettle === true
    const inFlight: InFlight[] = []
    let failures = 0
    let failure: unknown
    /** Moves the cursor over the batches that finished, in order, up to the first one that has not. */
    const settle = (): void => {
      let end: Position | undefined
      while (inFlight[0]?.state === 'done') end = inFlight.shift()!.end
      if (end) this.moveCursor(end)
    }
    while (!this.stopSignal.signal.aborted) {
      if (failure !== undefined) {
        // Let the other batches finish, then start over from the cursor after a pause; the batches after
        // the cursor are delivered again (at least once).
        await Promise.all(inFlight.map((b) => b.settled))
        settle()
        inFlight.length = 0
        if (this.stopSignal.signal.aborted) return
        const err = failure
        failure = undefined
        this.interrupted = false
        await this.retryFromCursor(err, ++failures)
        continue
      }
      if (this.o.isPaused()) {
        await sleep(250, this.stopSignal.signal).catch(() => undefined)
        continue
      }
      // Every batch gathered so far is finished: deliver settled, so every write() of the sink settled and
      // it reads none of their records any more (Sink.releasesOnSettle), nor does a retry or dead-letter
      // hand-off. The reader may read into the buffers they were views of, all but the one holding the frame
      // the next batch goes on with.
      if (recycles && inFlight.length === 0) this.reader.recycle()
      const pending = inFlight.filter((b) => b.state === 'pending')
      if (pending.length >= maxInFlight) {
        await Promise.race(pending.map((b) => b.settled))
        continue
      }
      const batch = await this.collect()
      if (!batch) continue
      this.gathered = batch.end
      this.reader.advance(batch.end)
      if (batch.count === 0) {
        // Only frames of another kind: nothing to deliver, the cursor may move past them in turn.
        inFlight.push({ end: batch.end, settled: Promise.resolve(), state: 'done' })
        settle()
        continue
      }
      const entry: InFlight = { end: batch.end, settled: Promise.resolve(), state: 'pending' }
      inFlight.push(entry)
      entry.settled = this.deliverBatch(batch).then(
        () => {
          entry.state = 'done'
          failures = 0
          settle()
        },
        (err: unknown) => {
          entry.state = 'failed'
          // Stopping: the cursor stays before the batch; the next start delivers it again.
          if (this.stopSignal.signal.aborted) return
          failure ??= err
          this.interrupted = true
          this.wake?.()
        },
      )
    }
    await Promise.all(inFlight.map((b) => b.settled))
    settle()
  }

  /** A batch gathered as slices goes to the sink as lines when all its records are within its limit. */
  private deliverBatch(batch: Batch): Promise<void> {
    const { slices } = batch
    if (!slices) return this.deliver(batch.records)
    if (batch.largest > this.o.sink.limits.maxRecordBytes) return this.deliver(recordsOf(slices))
    const lines = slices.map((s) => frameLines(s.frame, s.from, s.to))
    return deliverLines(
      this.o.sink,
      { lines, count: batch.count, records: () => recordsOf(slices) },
      this.delivery,
    )
  }

  private deliver(records: SinkRecord[]): Promise<void> {
    return deliver(this.o.sink, records, this.delivery)
  }

  /**
   * Not a sink failure (deliver, stage and commit handle those): the dead-letter hand-off itself failed
   * (disk?). Start over from the cursor after a pause; the batches after it are delivered again (at least
   * once).
   */
  private async retryFromCursor(err: unknown, failures: number): Promise<void> {
    this.o.logger.error(
      { err, stream: this.o.stream, lane: this.o.lane },
      'delivery failed; retrying from the cursor',
    )
    await this.rewind()
    await sleep(backoffDelay(failures, this.o.retry), this.stopSignal.signal).catch(() => undefined)
  }

  private reportError(error: SinkError): void {
    this.lastError = { message: error.message, reason: error.reason, at: new Date().toISOString() }
    this.o.onError?.(error)
  }

  /** Moves the cursor: everything before `end` was delivered or handed to the dead-letter lane durably. */
  private moveCursor(end: Position): void {
    this.position = end
    this.o.spool.cursors.set(this.o.lane, end)
    this.o.onAdvance?.()
  }

  /** The staged path: the cursor and the next batch's start both move to `end` (nothing in flight). */
  private advance(end: Position): void {
    this.moveCursor(end)
    this.gathered = end
    this.reader.advance(end)
    if (this.replayUntil && !before(end, this.replayUntil)) this.replayUntil = undefined
  }

  /** The lane stages its batches: the sink has `staging`, and no lost batch is being sent again. */
  private get staging(): boolean {
    return this.o.sink.staging !== undefined && this.replayUntil === undefined
  }

  /**
   * Writes a piece into the open staged batch, beginning one if there is none. Records over the sink's
   * limit go to the dead-letter lane instead, as delivery does. False when the batch was lost (rewound).
   */
  private async stage(piece: Batch): Promise<boolean> {
    const { sink } = this.o
    let records = piece.records
    const tooLarge = records.filter((r) => r.payload.length > sink.limits.maxRecordBytes)
    if (tooLarge.length > 0) {
      const error = permanentError(
        `record larger than the ${sink.type} limit of ${sink.limits.maxRecordBytes} bytes`,
        'record-too-large',
      )
      this.o.metrics.sinkFailed(sink.name, error.reason, tooLarge.length)
      await this.o.deadLetter(tooLarge, error)
      records = records.filter((r) => r.payload.length <= sink.limits.maxRecordBytes)
    }
    if (piece.records.length === 0 && !this.open) {
      this.gathered = piece.end // only frames of the other kind: nothing to stage
      return true
    }
    const open = (this.open ??= {
      writer: sink.staging!.begin(`${this.o.stream}/${this.o.lane}`),
      records: 0,
      bytes: 0,
      written: 0,
      firstAt: piece.firstAt,
    })
    const count = piece.records.length
    let bytes = 0
    for (const r of piece.records) bytes += r.payload.length
    const written = records.length
    if (written > 0) {
      // The writer copies what it keeps before write() returns (StagedBatch): the piece's records are let
      // go of here, not after the write resolved. They are views into the spool's read buffers; held over a
      // part upload they would be promoted with those buffers and freed only by a full GC (issue 14 item 2).
      const writing = open.writer.write(records, this.hardStop.signal)
      // Not read again, but a suspended async function keeps its locals: this drops the last reference.
      // eslint-disable-next-line no-useless-assignment
      records = []
      piece.records = []
      // …and so are the spool's read buffers behind them, but for the frame being consumed (`carry`).
      this.reader.recycle()
      try {
        await writing
      } catch (err) {
        await this.lose(err, piece.end, written)
        return false
      }
    }
    open.records += count
    open.bytes += bytes
    open.written += written
    this.gathered = piece.end
    this.reader.advance(piece.end)
    return true
  }

  /** Commits the open staged batch and moves the cursor past it; false when it was lost (rewound). */
  private async commit(): Promise<boolean> {
    const open = this.open
    if (!open) {
      this.advance(this.gathered)
      return true
    }
    const started = performance.now()
    let admitted: CircuitAttempt | undefined
    try {
      // Not the stop signal: a lane that is stopping must still commit (within the grace time).
      admitted = await this.o.circuit?.admit(this.hardStop.signal)
      await open.writer.commit(this.hardStop.signal)
    } catch (err) {
      if (this.hardStop.signal.aborted) admitted?.abandoned()
      else if (asSinkError(err).retriable) admitted?.failed()
      else admitted?.succeeded() // the sink answered; a retry would not help, nothing to protect
      await this.lose(err, this.gathered)
      return false
    }
    admitted?.succeeded()
    this.open = undefined
    if (open.written > 0) {
      this.o.metrics.sinkDelivered(this.o.sink.name, open.written, (performance.now() - started) / 1000)
      this.delivered += open.written
      this.o.onDelivered?.(open.written)
    }
    this.advance(this.gathered)
    return true
  }

  /**
   * The open staged batch failed; the sink has discarded it. `end`: where the records handed to it end.
   * The lane rewinds to its cursor and, unless it is stopping (then the next start sends them again),
   * sends those records again with plain writes.
   */
  private async lose(err: unknown, end: Position, writing = 0): Promise<void> {
    const records = (this.open?.written ?? 0) + writing
    await this.rewind()
    if (this.stopSignal.signal.aborted) return
    const error = asSinkError(err)
    this.reportError(error)
    this.o.metrics.sinkRetried(this.o.sink.name, error.reason, records)
    this.o.logger.warn(
      {
        stream: this.o.stream,
        lane: this.o.lane,
        sink: this.o.sink.name,
        records,
        reason: error.reason,
        err: error.message,
      },
      'staged batch failed; its records are written again from the cursor',
    )
    this.replayUntil = end
  }

  /** Back to the cursor: a staged batch still open is discarded, the reader starts over there. */
  private async rewind(): Promise<void> {
    const open = this.open
    this.open = undefined
    await open?.writer.discard()
    await this.reader.close()
    this.carry = undefined
    this.gathered = this.position
    this.reader = this.o.spool.log.reader(this.position)
  }

  /**
   * Gathers the next batch, or the next piece of a staged batch; undefined when stopped or paused before
   * anything was gathered. While lost records are sent again, batches are piece-sized and do not linger.
   */
  private async collect(): Promise<Batch | undefined> {
    const { sink } = this.o
    const staging = this.staging ? sink.staging : undefined
    const replaying = sink.staging !== undefined && this.replayUntil !== undefined
    const maxBatchRecords = replaying ? sink.staging.maxPieceRecords : sink.limits.maxBatchRecords
    const maxBatchBytes = replaying ? sink.staging.maxPieceBytes : sink.limits.maxBatchBytes
    const lingerMs = replaying ? 0 : sink.limits.lingerMs
    const maxPieceRecords = staging?.maxPieceRecords ?? Infinity
    const maxPieceBytes = staging?.maxPieceBytes ?? Infinity
    // The batch so far: the pieces already handed to the sink, plus this piece.
    const open = this.open
    const records: SinkRecord[] = []
    // A sink that writes lines gets runs of the frames' records, not a record object each.
    const slices: FrameSlice[] | undefined =
      sink.writeLines !== undefined && sink.staging === undefined ? [] : undefined
    /** Records in this piece: records.length, or the slices' total. */
    let count = 0
    let bytes = 0
    let largest = 0
    let end = this.gathered
    let firstAt = open?.firstAt ?? 0
    const openRecords = open?.records ?? 0
    const openBytes = open?.bytes ?? 0
    const batchRecords = (): number => openRecords + count
    const batchBytes = (): number => openBytes + bytes
    const gathered = (last: boolean): Batch => ({ records, slices, count, largest, end, last, firstAt })
    for (;;) {
      if (!this.carry) {
        const next = await this.reader.next(this.o.kind)
        if (next) this.carry = { frame: next.frame, next: next.skip }
      }
      if (this.carry) {
        const { frame } = this.carry
        if (frame.kind !== this.o.kind) {
          this.carry = undefined
          end = { seq: frame.seq + 1, index: 0 }
          continue
        }
        const frameCount = recordCount(frame)
        const from = this.carry.next
        let i = from
        /** A limit was reached within the frame: the batch (true) or the piece (false) is complete. */
        let full: boolean | undefined
        for (; i < frameCount; i++) {
          const size = payloadLength(frame, i)
          const taken = openRecords + count
          if (taken > 0 && (taken >= maxBatchRecords || openBytes + bytes + size > maxBatchBytes)) {
            full = true
            break
          }
          if (count > 0 && (count >= maxPieceRecords || bytes + size > maxPieceBytes)) {
            full = false
            break
          }
          if (taken === 0) firstAt = performance.now()
          if (!slices) records.push(recordAt(frame, i))
          count++
          bytes += size
          if (size > largest) largest = size
        }
        if (i > from) {
          slices?.push({ frame, from, to: i })
          end = { seq: frame.seq, index: i }
        }
        if (full !== undefined) {
          this.carry.next = i
          return gathered(full)
        }
        this.carry = undefined
        end = { seq: frame.seq + 1, index: 0 }
        if (batchRecords() >= maxBatchRecords || batchBytes() >= maxBatchBytes) return gathered(true)
        if (count >= maxPieceRecords || bytes >= maxPieceBytes) return gathered(false)
        continue
      }
      // Nothing more written yet.
      if (batchRecords() === 0) {
        // Skipped frames of the other kind: the cursor moves past them.
        if (end.seq !== this.gathered.seq || end.index !== this.gathered.index) return gathered(true)
        await this.waitForRecords()
        // Paused while waiting (SPEC: a paused stream delivers nothing): run() waits for the resume. A
        // delivery in flight that failed meanwhile: run() rewinds.
        if (this.stopSignal.signal.aborted || this.o.isPaused() || this.interrupted) return undefined
        continue
      }
      const remaining = lingerMs - (performance.now() - firstAt)
      if (remaining <= 0 || this.stopSignal.signal.aborted) return gathered(true)
      // A delivery in flight that failed meanwhile: whatever was gathered is read again after the rewind.
      if (this.interrupted) return undefined
      await this.waitForRecords(remaining)
      // A staged batch is completed when the stream is paused, with nothing gathered after the pause.
      if (staging && this.o.isPaused()) return gathered(true)
    }
  }

  /**
   * Waits for more records, or until `lingerMs` is up, the lane stops or a delivery in flight fails. A plain
   * callback and timer rather than AbortSignal.any() and an AbortController per wait: a caught-up lane waits
   * at every append, and those cost ~6 % of the main thread on one-record requests (bench/RESULTS.md
   * 2026-12-04, fifth session). The timer is explicit rather than AbortSignal.timeout(): that rejects
   * fractional milliseconds with a RangeError.
   */
  private waitForRecords(lingerMs?: number): Promise<void> {
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined
      const done = (): void => {
        if (this.wake !== done) return
        this.wake = undefined
        if (timer !== undefined) clearTimeout(timer)
        resolve()
      }
      this.wake = done
      if (this.stopSignal.signal.aborted || this.interrupted) {
        done()
        return
      }
      this.o.spool.log.onAppend(done)
      if (lingerMs !== undefined) timer = setTimeout(done, Math.max(1, Math.ceil(lingerMs)))
    })
  }
}
