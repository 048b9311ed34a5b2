import type { AdmissionFigures, AdmissionReason } from '../telemetry/metrics.js'

import type { SpoolConfig } from '../config/types.js'
import { problem, type ProblemError } from '../errors.js'
import type { Logger } from '../telemetry/logger.js'

export type { AdmissionFigures, AdmissionReason }

// Admission control and fair scheduling between ingest and delivery (issue 17).
//
// Admission: an ingest request is refused with 503 + Retry-After (SPEC's spool-full row, problem type
// `spool-full`) at the cost of a header check, before its body is read or parsed, while
//  - the spool holds more than `spool.highWaterBytes`, until it is back at `spool.lowWaterBytes` or below
//    (hysteresis: refusing stops only well below the mark, so admission does not flap at its edge), or
//  - a lane of the stream is more than `spool.maxLagSeconds` behind: its lag (records) divided by its recent
//    delivery rate (records/s, measured while it had work), until it is back at half of that. A sink that
//    holds records on purpose before delivering them (its `lingerMs`: the S3 sink's object age, Domo's
//    execution) delivers in steps; its lane's budget is maxLagSeconds plus that hold, its rate is averaged
//    over at least two holds and it counts as stalled only after LANE_STALL_MS plus the hold — else a 2 s
//    object roll tripped a 5 s budget between steps, and a 5-minute roll was never judged at all.
// A lane that delivers nothing for LANE_STALL_MS (its sink is down, its circuit open, the stream paused) is
// not judged by the lag budget: riding out an outage is what the spool is for, and its marks bound it.
// `spool.maxBytes` stays the hard limit (SpoolFullError): requests admitted just before the mark still fit.
//
// Backpressure (`backpressure: pause`, opt-in per stream): instead of the refusal, `admit` returns a promise and
// the request waits — its body unread, so node stops reading the socket once its buffer is full, TCP's window
// fills, and the sender's write blocks — until admission would let it in (re-judged at every sample, every
// ADMISSION_SAMPLE_MS), or for at most `spool.maxPauseMs`, after which it gets the refusal it would have got.
// A held request whose client closes the connection is let go at once (counted as abandoned): it does not
// keep its in-flight slot (server.maxInFlightRequests) until the bound. The close is seen when node reads the
// socket's end: at once for a body that fits the socket buffers; a sender blocked mid-body (its unread bytes
// filling the buffers) is seen only when the socket is read again, at admission or at the bound.
//
// Fair scheduling: IngestTurns bounds the framing and validation work (StreamRuntime.process) done per turn
// of the event loop, so delivery lanes, whose every step is an I/O callback in the same loop, get a turn
// between any two slices of ingest work however many connections push at once. A large body is itself
// worked in slices (StreamRuntime.processSliced, 64 records between looks at the clock): one 2,000-record
// batch no longer holds a turn for its whole 3–16 ms.

/** Defaults of the marks, as fractions of spool.maxBytes. */
export const DEFAULT_HIGH_WATER_RATIO = 0.9
export const DEFAULT_LOW_WATER_RATIO = 0.75
/** A lane over its lag budget lets requests in again once its lag is this fraction of the budget. */
export const LAG_RESUME_RATIO = 0.5
/** How often lanes are sampled for their delivery rate (and the marks re-checked without traffic). */
export const ADMISSION_SAMPLE_MS = 250
/** The delivery rate is an exponential moving average with this time constant. */
export const RATE_TIME_CONSTANT_MS = 2_000
/** A lane that delivered nothing for this long is stalled, not slow: the lag budget does not apply. */
export const LANE_STALL_MS = 5_000
/** Retry-After of a refusal at the spool's high-water mark. */
export const HIGH_WATER_RETRY_AFTER_S = 5
/** Bounds of the Retry-After of a lag-budget refusal (the time the lane needs to be back under). */
export const LAG_RETRY_AFTER_MAX_S = 30
/**
 * Ingest work (framing, validation) per turn of the event loop before a large body waits for the next turn:
 * about one 2,000-record batch (~1–3 ms). Was 5 ms for every body: several batches back to back kept the
 * lane's reads, the spool's fsync completions and the answers waiting; at 1 ms the overload bench
 * (bench/admission.ts) accepted and delivered 21–37 % more records with a 200 p99 of ~255 ms instead of
 * ~400 ms (bench/RESULTS.md, 2026-12-04 second session).
 */
export const INGEST_TURN_BUDGET_MS = 1
/**
 * The same for a small body (at most INGEST_SMALL_BODY_BYTES): 5 ms, as before. One-record requests cost
 * ~0.1 ms each; at 1 ms, 32 connections' requests spread over several turns and so over several spool
 * writes and fdatasyncs instead of one, and emnify-single lost 7–10 % of its req/s.
 */
export const INGEST_TURN_SMALL_BUDGET_MS = 5
/** Bodies up to this size are small for the turn budget (one socket read). */
export const INGEST_SMALL_BODY_BYTES = 64 * 1024
/**
 * Large bodies requests under way may hold (read, waiting for their ingest turn, in it, waiting for their
 * spool write) before a new large body waits to be read (IngestTurns.roomToRead). Four keep the turns fed
 * (one is framed while the next waits and the one before waits for its fsync); more only held memory: with
 * 16 connections of 2.5 MB bodies, peak RSS 269–289 → 211–224 MB and records per CPU-second +15–30 %
 * (bench/RESULTS.md, 2026-12-04 seventh session).
 */
export const INGEST_LARGE_BODIES = 4
/** A body still being read, or still handed off, this long after that began stops counting (roomToRead). */
export const LARGE_BODY_SLOW_MS = 100
/** How often waiting readers are looked at when nothing else lets them go. */
const READ_AHEAD_CHECK_MS = 25

/** spool.maxPauseMs when a config built in code leaves it out (the loader fills in the schema's default). */
export const DEFAULT_MAX_PAUSE_MS = 10_000

/** spool.maxLagSeconds when a config built in code leaves it out (the loader fills in the schema's default). */
export const DEFAULT_MAX_LAG_SECONDS = 5

export interface WaterMarks {
  highBytes: number
  lowBytes: number
}

/** The effective marks: the configured ones, else 90 % and 75 % of maxBytes. */
export function waterMarks(spool: SpoolConfig): WaterMarks {
  const highBytes = spool.highWaterBytes ?? Math.floor(spool.maxBytes * DEFAULT_HIGH_WATER_RATIO)
  const lowBytes =
    spool.lowWaterBytes ??
    Math.min(highBytes, Math.floor((highBytes * DEFAULT_LOW_WATER_RATIO) / DEFAULT_HIGH_WATER_RATIO))
  return { highBytes, lowBytes }
}

/** On at `high` or above, off again only at `low` or below. */
export class Hysteresis {
  on = false

  constructor(
    public high: number,
    public low: number,
  ) {}

  /** Feeds a reading; true when the state changed. */
  update(value: number): boolean {
    if (!this.on && value >= this.high) this.on = true
    else if (this.on && value <= this.low) this.on = false
    else return false
    return true
  }
}

/** What admission reads of a delivery lane. */
export interface LaneReading {
  readonly sinkName: string
  readonly laneName: string
  readonly lag: number
  readonly delivered: number
  /** How long the lane's sink may hold records before they count as delivered (its limits.lingerMs). */
  readonly lingerMs?: number
}

/** A lane's budget in seconds: spool.maxLagSeconds plus its sink's hold; 0 (off) stays off. */
export function laneBudgetSeconds(maxLagSeconds: number, lingerMs = 0): number {
  return maxLagSeconds > 0 ? maxLagSeconds + lingerMs / 1000 : 0
}

/** Where admission reads the spool and the lanes (the Gateway). */
export interface AdmissionSource {
  spoolConfig(): SpoolConfig
  usedBytes(): number
  /** The lanes of every stream, with whether the stream is paused (its lanes deliver nothing on purpose). */
  lanes(): Iterable<{ stream: string; paused: boolean; lanes: readonly LaneReading[] }>
}

/** One lane's delivery rate and its lag budget state. */
export class LaneBudget {
  /** Records/s delivered while the lane had work (EWMA); undefined until measured. */
  rate: number | undefined
  lagSeconds = 0
  readonly over = new Hysteresis(0, 0)
  private lastAt: number | undefined
  private lastDelivered = 0
  private lastLag = 0
  private lastDeliveryAt = -Infinity

  /** The lane's whole budget in seconds as of its last sample (laneBudgetSeconds). */
  get budgetSeconds(): number {
    return this.over.high
  }

  /**
   * Feeds one sample; true when the over-budget state changed. `budgetSeconds` is the lane's whole budget
   * (laneBudgetSeconds), `lingerMs` its sink's hold.
   */
  sample(
    now: number,
    lag: number,
    delivered: number,
    budgetSeconds: number,
    paused: boolean,
    lingerMs = 0,
  ): boolean {
    const prevAt = this.lastAt
    const delta = delivered - this.lastDelivered
    const busy = this.lastLag > 0 || delta > 0
    this.lastAt = now
    this.lastDelivered = delivered
    this.lastLag = lag
    if (delta > 0) this.lastDeliveryAt = now
    if (prevAt !== undefined && busy && now > prevAt && !paused) {
      const dt = now - prevAt
      const instant = (Math.max(0, delta) * 1000) / dt
      const alpha = 1 - Math.exp(-dt / Math.max(RATE_TIME_CONSTANT_MS, 2 * lingerMs))
      this.rate = this.rate === undefined ? instant : this.rate + alpha * (instant - this.rate)
    }
    this.lagSeconds = lag === 0 ? 0 : this.rate ? lag / this.rate : Infinity
    this.over.high = budgetSeconds
    this.over.low = budgetSeconds * LAG_RESUME_RATIO
    const judged =
      budgetSeconds > 0 &&
      !paused &&
      this.rate !== undefined &&
      now - this.lastDeliveryAt < LANE_STALL_MS + lingerMs
    if (!judged) {
      if (!this.over.on) return false
      this.over.on = false
      return true
    }
    return this.over.update(this.lagSeconds)
  }
}

export interface AdmissionView {
  state: 'accepting' | 'refusing'
  reasons: { reason: AdmissionReason; sink?: string; message: string }[]
  /** Per lane: seconds of delivery its lag represents, and its recent delivery rate. */
  lanes: { sink: string; deadLetter: boolean; lagSeconds: number | null; recordsPerSecond: number | null }[]
  /** Requests of a `backpressure: pause` stream waiting now, body unread, to be admitted. */
  held: number
  /** Held requests whose client closed the connection before they were admitted or refused (since start). */
  abandoned: number
}

/**
 * The connection of a request that may be held, watched while it is: `watch` calls `gone` once when the
 * client closes the connection or its sending side (then it sends nothing more: holding it cannot slow it
 * down), at once if it already has, and returns a function that stops watching.
 */
export interface HeldClient {
  watch(gone: () => void): () => void
}

export interface AdmissionDeps {
  logger: Logger
  /** Counts a refused request. */
  refused?(stream: string, reason: AdmissionReason): void
  /** Counts a held request whose client closed the connection before it was admitted or refused. */
  abandoned?(stream: string): void
  /** Samples on this timer (tests pass false and call sample() themselves). */
  timer?: boolean
}

/** What admission reads of a stream. */
export interface AdmittedStream {
  id: string
  config: { durability: 'spool' | 'none'; backpressure?: 'refuse' | 'pause' }
}

/** A refusal before it is counted: the reason, and the problem answered. */
interface Verdict {
  reason: AdmissionReason
  problem: ProblemError
}

/** A request of a `backpressure: pause` stream waiting to be admitted. */
interface Held {
  stream: AdmittedStream
  done(refusal: ProblemError | undefined): void
  timer: NodeJS.Timeout
  /** Stops watching the client. */
  unwatch: (() => void) | undefined
}

/**
 * The admission state of the gateway: the spool's marks (one state for all streams, as the spool is shared)
 * and each lane's lag budget. `check` costs a sum over the open stream logs and a map lookup.
 */
export class Admission {
  private readonly spoolMark = new Hysteresis(0, 0)
  private readonly budgets = new WeakMap<LaneReading, LaneBudget>()
  /** Streams with at least one lane over its budget, with those lanes' sink names. */
  private readonly overBudget = new Map<string, Set<string>>()
  private readonly timer: NodeJS.Timeout | undefined
  /** Requests of `backpressure: pause` streams waiting (a Set keeps arrival order). */
  private readonly held = new Set<Held>()
  /** Held requests abandoned by their client, per stream. */
  private readonly abandonedCounts = new Map<string, number>()
  readonly turns = new IngestTurns(INGEST_TURN_BUDGET_MS, INGEST_TURN_SMALL_BUDGET_MS)

  constructor(
    private readonly source: AdmissionSource,
    private readonly deps: AdmissionDeps,
  ) {
    if (deps.timer !== false) {
      this.timer = setInterval(() => this.sample(performance.now()), ADMISSION_SAMPLE_MS)
      this.timer.unref()
    }
  }

  get marks(): WaterMarks {
    return waterMarks(this.source.spoolConfig())
  }

  /** The refusal for a new request of the stream, or undefined to admit it (counted as refused). */
  check(stream: AdmittedStream): ProblemError | undefined {
    const verdict = this.verdict(stream)
    if (!verdict) return undefined
    this.deps.refused?.(stream.id, verdict.reason)
    return verdict.problem
  }

  /**
   * Like `check`, but a stream with `backpressure: pause` is not refused at once: the answer is a promise that
   * settles with undefined (admitted) as soon as a sample finds the stream admissible again, or with the
   * refusal once `spool.maxPauseMs` has passed. A promise only while pausing; otherwise the answer of `check`.
   * When `client` goes away while the request is held, it is let go at once, counted as abandoned (not as
   * refused): the promise settles with the refusal it would get now (a client that only half-closed reads it;
   * one that is gone does not), or undefined if it would be admitted now.
   */
  admit(
    stream: AdmittedStream,
    client?: HeldClient,
  ): ProblemError | undefined | Promise<ProblemError | undefined> {
    if (stream.config.backpressure !== 'pause') return this.check(stream)
    const verdict = this.verdict(stream)
    if (!verdict) return undefined
    const bound = this.maxPauseMs()
    if (bound <= 0) {
      this.deps.refused?.(stream.id, verdict.reason)
      return verdict.problem
    }
    return new Promise((resolve) => {
      const held: Held = {
        stream,
        done: resolve,
        timer: setTimeout(() => {
          this.letGo(held)
          // Judged once more at the bound: admitted if a sample would have let it in by now.
          resolve(this.check(stream))
        }, bound),
        unwatch: undefined,
      }
      this.held.add(held)
      const unwatch = client?.watch(() => {
        if (!this.held.has(held)) return
        this.letGo(held)
        this.countAbandoned(stream.id)
        resolve(this.verdict(stream)?.problem)
      })
      // `gone` may have run already (the client had gone before it was held).
      if (this.held.has(held)) held.unwatch = unwatch
      else unwatch?.()
    })
  }

  /** Takes a held request out of `held`: its timer and its watch of the client go with it. */
  private letGo(held: Held): void {
    this.held.delete(held)
    clearTimeout(held.timer)
    held.unwatch?.()
  }

  private countAbandoned(stream: string): void {
    this.abandonedCounts.set(stream, (this.abandonedCounts.get(stream) ?? 0) + 1)
    this.deps.abandoned?.(stream)
  }

  /** Requests of `backpressure: pause` streams waiting to be admitted (all streams, or one). */
  heldCount(stream?: string): number {
    if (stream === undefined) return this.held.size
    let n = 0
    for (const h of this.held) if (h.stream.id === stream) n++
    return n
  }

  /** The refusal a request of the stream would get now, not counted; undefined to admit it. */
  private verdict(stream: AdmittedStream): Verdict | undefined {
    // A `durability: none` stream does not store its records: the spool and its lanes do not limit it.
    if (stream.config.durability === 'none') return undefined
    this.updateSpoolMark()
    if (this.spoolMark.on) {
      const { highBytes, lowBytes } = this.marks
      return verdict(
        'high-water',
        `the spool is above its high-water mark (spool.highWaterBytes, ${highBytes} bytes); new requests are refused until delivery brings it under ${lowBytes} bytes (spool.lowWaterBytes)`,
        HIGH_WATER_RETRY_AFTER_S,
      )
    }
    const sinks = this.overBudget.get(stream.id)
    if (sinks && sinks.size > 0) {
      const maxLag = this.lagBudget()
      // The smallest budget of the lanes over theirs (lanes of holding sinks have a larger one).
      let budget = Infinity
      let wait = 1
      for (const { stream: id, lanes } of this.source.lanes())
        if (id === stream.id)
          for (const lane of lanes) {
            const b = this.budgets.get(lane)
            if (!b?.over.on) continue
            budget = Math.min(budget, b.budgetSeconds)
            wait = Math.max(wait, b.lagSeconds - b.budgetSeconds * LAG_RESUME_RATIO)
          }
      if (budget === Infinity) budget = maxLag
      const held = budget > maxLag ? ` plus the sink's lingerMs` : ''
      return verdict(
        'lag-budget',
        `delivery to ${[...sinks].join(', ')} is more than ${round(budget)} s behind (spool.maxLagSeconds${held}); new requests are refused until it is back under ${round(budget * LAG_RESUME_RATIO)} s`,
        Math.min(LAG_RETRY_AFTER_MAX_S, Math.ceil(wait)),
      )
    }
    return undefined
  }

  /** Samples every lane's delivery and re-checks the spool's marks. */
  sample(now: number): void {
    this.updateSpoolMark()
    const budget = this.lagBudget()
    const seen = new Set<string>()
    for (const { stream, paused, lanes } of this.source.lanes()) {
      seen.add(stream)
      for (const lane of lanes) {
        let b = this.budgets.get(lane)
        if (!b) {
          b = new LaneBudget()
          this.budgets.set(lane, b)
        }
        const changed = b.sample(
          now,
          lane.lag,
          lane.delivered,
          laneBudgetSeconds(budget, lane.lingerMs),
          paused,
          lane.lingerMs,
        )
        const sinks = this.overBudget.get(stream) ?? new Set<string>()
        if (b.over.on) sinks.add(lane.sinkName)
        else sinks.delete(lane.sinkName)
        if (sinks.size > 0) this.overBudget.set(stream, sinks)
        else this.overBudget.delete(stream)
        if (changed) this.logLane(stream, lane, b, budget)
      }
    }
    for (const stream of [...this.overBudget.keys()]) if (!seen.has(stream)) this.overBudget.delete(stream)
    this.release()
  }

  /** Lets the held requests in whose stream is admissible again, in arrival order. */
  private release(): void {
    for (const held of this.held) {
      if (this.verdict(held.stream)) continue
      this.letGo(held)
      held.done(undefined)
    }
  }

  /** The stream's admission state, for the management API. */
  view(stream: string): AdmissionView {
    const reasons: AdmissionView['reasons'] = []
    if (this.spoolMark.on)
      reasons.push({
        reason: 'high-water',
        message: `the spool is above its high-water mark (${this.marks.highBytes} bytes)`,
      })
    const lanes: AdmissionView['lanes'] = []
    for (const entry of this.source.lanes()) {
      if (entry.stream !== stream) continue
      for (const lane of entry.lanes) {
        const b = this.budgets.get(lane)
        const deadLetter = lane.laneName !== lane.sinkName
        lanes.push({
          sink: lane.sinkName,
          deadLetter,
          lagSeconds: b && Number.isFinite(b.lagSeconds) ? round(b.lagSeconds) : null,
          recordsPerSecond: b?.rate !== undefined ? Math.round(b.rate) : null,
        })
        if (b?.over.on)
          reasons.push({
            reason: 'lag-budget',
            sink: lane.sinkName,
            message: `${deadLetter ? 'dead-letter sink' : 'sink'} ${lane.sinkName} is ${round(b.lagSeconds)} s behind (budget ${round(b.budgetSeconds)} s)`,
          })
      }
    }
    return {
      state: reasons.length > 0 ? 'refusing' : 'accepting',
      reasons,
      lanes,
      held: this.heldCount(stream),
      abandoned: this.abandonedCounts.get(stream) ?? 0,
    }
  }

  /** What /metrics shows. */
  figures(): AdmissionFigures {
    const { highBytes, lowBytes } = this.marks
    const streams: AdmissionFigures['streams'] = []
    const lanes: AdmissionFigures['lanes'] = []
    for (const entry of this.source.lanes()) {
      const refusing: AdmissionReason[] = []
      if (this.spoolMark.on) refusing.push('high-water')
      if ((this.overBudget.get(entry.stream)?.size ?? 0) > 0) refusing.push('lag-budget')
      streams.push({ stream: entry.stream, refusing, held: this.heldCount(entry.stream) })
      for (const lane of entry.lanes) {
        const b = this.budgets.get(lane)
        if (b && Number.isFinite(b.lagSeconds))
          lanes.push({ stream: entry.stream, sink: lane.sinkName, lagSeconds: b.lagSeconds })
      }
    }
    return { highWaterBytes: highBytes, lowWaterBytes: lowBytes, streams, lanes }
  }

  /** Stops sampling; held requests get their refusal now (the gateway is closing). */
  close(): void {
    clearInterval(this.timer)
    for (const held of [...this.held]) {
      this.letGo(held)
      held.done(this.check(held.stream))
    }
  }

  private maxPauseMs(): number {
    return this.source.spoolConfig().maxPauseMs ?? DEFAULT_MAX_PAUSE_MS
  }

  private lagBudget(): number {
    return this.source.spoolConfig().maxLagSeconds ?? DEFAULT_MAX_LAG_SECONDS
  }

  private updateSpoolMark(): void {
    const { highBytes, lowBytes } = this.marks
    this.spoolMark.high = highBytes
    this.spoolMark.low = lowBytes
    const used = this.source.usedBytes()
    if (!this.spoolMark.update(used)) return
    if (this.spoolMark.on)
      this.deps.logger.warn(
        { usedBytes: used, highWaterBytes: highBytes, lowWaterBytes: lowBytes },
        'spool above its high-water mark: new ingest requests are refused (503) until it is under the low-water mark',
      )
    else
      this.deps.logger.info(
        { usedBytes: used, lowWaterBytes: lowBytes },
        'spool under its low-water mark: ingest requests are accepted again',
      )
  }

  private logLane(stream: string, lane: LaneReading, b: LaneBudget, budget: number): void {
    const fields = {
      stream,
      sink: lane.sinkName,
      lag: lane.lag,
      lagSeconds: Number.isFinite(b.lagSeconds) ? round(b.lagSeconds) : null,
      recordsPerSecond: b.rate !== undefined ? Math.round(b.rate) : null,
      maxLagSeconds: budget,
      budgetSeconds: round(b.budgetSeconds),
    }
    if (b.over.on)
      this.deps.logger.warn(
        fields,
        "lane over its lag budget: the stream's new ingest requests are refused (503) until it catches up",
      )
    else this.deps.logger.info(fields, "lane within its lag budget: the stream's requests are accepted again")
  }
}

function verdict(reason: AdmissionReason, detail: string, retryAfterS: number): Verdict {
  return {
    reason,
    problem: problem('spool-full', detail, {
      headers: { 'retry-after': String(retryAfterS) },
      extra: { reason },
    }),
  }
}

function round(n: number): number {
  return Math.round(n * 10) / 10
}

/**
 * Room for one large body (IngestTurns.roomToRead): `read()` once it is read, `handedOff()` once its records
 * are checked and handed off, `done()` when its request ends.
 */
export interface ReadTicket {
  read(): void
  handedOff(): void
  done(): void
}

/** A large body a request under way holds (IngestTurns.roomToRead), and since when it is in its phase. */
interface HeldBody {
  since: number
  phase: 'reading' | 'read' | 'handed-off'
}

/** What sliced ingest work (StreamRuntime.processSliced) asks of its scheduler, IngestTurns. */
export interface IngestSlice {
  /** True once the work done in this turn of the event loop is over its budget. */
  spent(): boolean
  /** Resolves in a later turn, before work that has not started yet. */
  next(): Promise<void>
}

/**
 * Bounds the synchronous ingest work done per turn of the event loop to about `budgetMs`: once a turn's
 * budget is spent, further work waits (in arrival order) for the next turn, after node has run the I/O
 * callbacks that were ready, among them the delivery lanes' reads and writes. Without this, 32 connections
 * completing their bodies in one poll phase each frame and validate 2,000 records before a lane's one
 * callback runs, and delivery collapses (issue 17). Always on: with no contention nobody waits.
 */
export class IngestTurns {
  private spentMs = 0
  /** Waiting work, in arrival order, with the budget it may start under. */
  private readonly waiting: { go: () => void; budgetMs: number }[] = []
  /** A waiter was let go and has not started its work yet: newcomers queue behind it. */
  private handing = false
  private turnScheduled = false
  /**
   * The large bodies requests under way hold (see roomToRead), each with the time its current phase began:
   * being read, read (waiting for or in its turn), or handed off.
   */
  private readonly bodies = new Set<HeldBody>()
  /** Requests waiting for room to read a large body, in arrival order. */
  private readonly readers: ((ticket: ReadTicket) => void)[] = []
  private readerTimer: NodeJS.Timeout | undefined

  /**
   * `smallBudgetMs`: the budget of work run with `small` (default: the same). `maxBodies`: large bodies
   * requests under way may hold before new ones wait to be read (roomToRead).
   */
  constructor(
    private readonly budgetMs: number,
    private readonly smallBudgetMs = budgetMs,
    private readonly maxBodies = INGEST_LARGE_BODIES,
  ) {}

  /** Requests waiting for a later turn. */
  get queued(): number {
    return this.waiting.length
  }

  /** Requests waiting for room to read their large body. */
  get waitingToRead(): number {
    return this.readers.length
  }

  /**
   * Call before reading a large body: a ticket at once while requests under way hold fewer than
   * `maxBodies` large bodies (being read, waiting for their turn, being framed and validated, waiting for
   * their spool write); otherwise the request waits, its body unread — node stops reading the socket, TCP's
   * window fills and the sender waits too — until one of them is done. The turns take large bodies one at
   * a time: 16 connections of 2.5 MB bodies read all 16 and held them, for no more speed (bench/RESULTS.md,
   * 2026-12-04 seventh session). A body still being read, or still handed off (its sinks' answer, for
   * `durability: none`), LARGE_BODY_SLOW_MS after that began stops counting: a slow sender or sink never
   * holds the others back for longer. Readers are let go in arrival order.
   */
  roomToRead(): ReadTicket | Promise<ReadTicket> {
    if (this.readers.length === 0 && this.hasRoom()) return this.ticket()
    return new Promise<ReadTicket>((go) => {
      this.readers.push(go)
      this.readerTimer ??= setInterval(() => this.letReadersGo(), READ_AHEAD_CHECK_MS).unref()
    })
  }

  /** Large bodies held by requests under way (slow senders' not counted). */
  get bodiesHeld(): number {
    return this.bodies.size
  }

  private hasRoom(): boolean {
    if (this.bodies.size < this.maxBodies) return true
    const slow = performance.now() - LARGE_BODY_SLOW_MS
    for (const b of this.bodies) if (b.phase !== 'read' && b.since < slow) this.bodies.delete(b)
    return this.bodies.size < this.maxBodies
  }

  private ticket(): ReadTicket {
    const body: HeldBody = { since: performance.now(), phase: 'reading' }
    this.bodies.add(body)
    const enter = (phase: HeldBody['phase']): void => {
      body.phase = phase
      body.since = performance.now()
    }
    return {
      read: () => enter('read'),
      handedOff: () => enter('handed-off'),
      done: () => {
        if (this.bodies.delete(body)) this.letReadersGo()
      },
    }
  }

  private letReadersGo(): void {
    while (this.readers.length > 0 && this.hasRoom()) this.readers.shift()!(this.ticket())
    if (this.readers.length === 0 && this.readerTimer) {
      clearInterval(this.readerTimer)
      this.readerTimer = undefined
    }
  }

  /** Runs `work` in this turn if its budget allows, else in a later one; `small` work has smallBudgetMs. */
  async run<T>(work: () => T, small = false): Promise<T> {
    const budgetMs = small ? this.smallBudgetMs : this.budgetMs
    if (this.mustWait(budgetMs)) await this.later(budgetMs)
    const started = performance.now()
    try {
      return work()
    } finally {
      this.done(started)
    }
  }

  /**
   * Runs `work` that may go on in later turns (StreamRuntime.processSliced): once this turn's budget is spent
   * (`slice.spent()`), `slice.next()` waits for a later turn ahead of work that has not started, so a started
   * body finishes first and its records are not kept alive longer than they must.
   */
  async runSliced<T>(work: (slice: IngestSlice) => Promise<T>): Promise<T> {
    const budgetMs = this.budgetMs
    if (this.mustWait(budgetMs)) await this.later(budgetMs)
    // Until this work is done, or waits for a later turn, newcomers queue behind it.
    this.handing = true
    let started = performance.now()
    const slice: IngestSlice = {
      spent: () => this.spentMs + (performance.now() - started) >= budgetMs,
      next: async () => {
        this.spentMs += performance.now() - started
        this.handing = false
        await this.later(budgetMs, true)
        started = performance.now()
      },
    }
    try {
      return await work(slice)
    } finally {
      this.done(started)
    }
  }

  private mustWait(budgetMs: number): boolean {
    return this.handing || this.waiting.length > 0 || this.spentMs >= budgetMs
  }

  /** Resolves in a later turn: in arrival order, or ahead of every waiter (`first`: work already started). */
  private later(budgetMs: number, first = false): Promise<void> {
    return new Promise<void>((go) => {
      if (first) this.waiting.unshift({ go, budgetMs })
      else this.waiting.push({ go, budgetMs })
      this.scheduleTurn()
    })
  }

  /** Work that started at `started` (or resumed then) is done: the next waiter may go if the budget allows. */
  private done(started: number): void {
    this.spentMs += performance.now() - started
    this.handing = false
    this.scheduleTurn()
    this.next()
  }

  /** Lets the next waiter go if its budget allows; at the start of a turn (`fresh`), always. */
  private next(fresh = false): void {
    const head = this.waiting[0]
    if (!head || (!fresh && this.spentMs >= head.budgetMs)) return
    this.handing = true
    this.waiting.shift()!.go()
  }

  private scheduleTurn(): void {
    if (this.turnScheduled) return
    this.turnScheduled = true
    setImmediate(() => {
      this.turnScheduled = false
      this.spentMs = 0
      if (!this.handing) this.next(true)
    })
  }
}
