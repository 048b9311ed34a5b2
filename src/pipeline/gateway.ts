import { dirname, join, resolve } from 'node:path'
import type {
  StreamConfig,
  FileSinkConfig,
  GatewayConfig,
  RetryConfig,
  SinkConfig,
  StreamStatusId,
} from '../config/types.js'
import { ConfigError } from '../config/load.js'
import { problem, type SinkError } from '../errors.js'
import { deadLetterRecord } from '../records/dead-letter.js'
import type { SinkRecord } from '../records/record.js'
import { createSink } from '../sinks/registry.js'
import type { Sink, SinkContext } from '../sinks/sink.js'
import { FrameKind } from '../spool/format.js'
import type { SpoolLock } from '../spool/lock.js'
import { DEAD_LETTER_LANE, Spool, SpoolFullError, type StreamSpool } from '../spool/spool.js'
import { writeFileAtomic } from '../spool/stream-log.js'
import type { Logger } from '../telemetry/logger.js'
import type { Metrics } from '../telemetry/metrics.js'
import { Validators } from '../validate/validators.js'
import { Admission } from './admission.js'
import { CircuitBreaker } from './circuit.js'
import { componentIssue } from './config-check.js'
import {
  DEDUPE_SNAPSHOT_FILE,
  loadDedupeSnapshot,
  replayDedupeKeys,
  snapshotText,
  type DedupeWindow,
} from './dedupe.js'
import { deliver } from './delivery.js'
import type { HandOff } from './hand-off.js'
import { IngestEntry, type StreamCounts } from './ingest-entry.js'
import { LagTrend } from './lag-trend.js'
import { DeliveryLane } from './lane.js'
import { StreamRuntime, type ProcessOutcome, type StreamRuntimeOptions } from './stream.js'

/** Streams without `deadLetter` use the sink of this name; unless configured, a file sink under ./data. */
export const DEFAULT_DEAD_LETTER_SINK = 'dead-letter'

/** How long a `durability: none` request may wait for its sinks: under Azion's 20 s give-up [AZ-REF]. */
export const DIRECT_DELIVERY_TIMEOUT_MS = 15_000

const DEFAULT_RETRY: RetryConfig = { initialMs: 200, maxMs: 30_000, maxAttempts: 0 }

/**
 * Dedupe snapshots (pipeline/dedupe.ts): at most one per stream this often while delivered segments wait to
 * be deleted (a segment goes only once a snapshot holds its keys, so this also delays clean-up that much)…
 */
const DEDUPE_SNAPSHOT_MIN_INTERVAL_MS = 5_000
/** …and one this often for a window that changed (covers `durability: none` streams, which spool nothing). */
const DEDUPE_SNAPSHOT_INTERVAL_MS = 30_000

/** What the last dedupe snapshot of a window holds: every key remembered before `version`. */
interface DedupeSaved {
  version: number
  /** Frames before this seq had been delivered (so their keys remembered) when the snapshot was taken. */
  bound: number | undefined
  atMs: number
}

/** emnify's data-stream statuses [EM-STATUS]. */
export const STREAM_STATUSES: Readonly<Record<StreamStatusId, string>> = {
  1: 'Running',
  2: 'Paused',
  3: 'Error',
  4: 'Pending',
}

function seconds(ms: number): number {
  return Math.round(ms / 100) / 10
}

function zeroCounts(): StreamCounts {
  return { received: 0, accepted: 0, rejected: 0, filtered: 0, duplicates: 0 }
}

function asConfigError<T>(at: string, build: () => T): T {
  try {
    return build()
  } catch (err) {
    throw new ConfigError([componentIssue(at, err)])
  }
}

function withoutStatus(stream: StreamConfig): Omit<StreamConfig, 'status'> {
  const { status: _status, ...rest } = stream
  return rest
}

export interface GatewayDeps {
  logger: Logger
  metrics: Metrics
  /** Ownership of the spool directory, when the caller took it already; the spool takes it over. */
  spoolLock?: SpoolLock
}

export type { StreamCounts }

/**
 * Whether a stream delivers as it should, apart from its status (1–4 stay emnify's): a stream whose sink's
 * circuit is open, or whose lane is stalled or keeps falling behind (src/pipeline/lag-trend.ts), is degraded.
 */
export interface StreamHealth {
  state: 'ok' | 'degraded'
  reasons: HealthReason[]
}

export interface HealthReason {
  code: 'circuit-open' | 'lane-stalled' | 'lag-growing'
  sink: string
  /** true for the stream's dead-letter lane. */
  deadLetter: boolean
  message: string
}

export interface StreamState {
  status: StreamStatusId
  lastError?: { sink: string; reason: string; message: string; at: string }
  /** Totals since the process started (survive config changes, not restarts; Prometheus has the rest). */
  counts: StreamCounts
}

/**
 * The running topology: compiled streams, live sinks, the spool and one delivery lane per (stream, sink)
 * plus one dead-letter lane per stream. Ingest calls `accept`, which resolves only once every accepted
 * record is durable in the spool (or, for `durability: none`, acknowledged by every sink).
 */
export class Gateway implements HandOff {
  readonly streams = new Map<string, StreamRuntime>()
  readonly sinks = new Map<string, Sink>()
  readonly validators = new Validators()
  readonly lanes = new Map<string, DeliveryLane[]>()
  /** One circuit breaker per sink, shared by all its lanes; replaced with the sink on a config change. */
  readonly circuits = new Map<string, CircuitBreaker>()
  private readonly states = new Map<string, StreamState>()
  /** Pending segment clean-ups per stream; cleared by close() (they must never outlive the spool). */
  private readonly gcTimers = new Map<string, NodeJS.Timeout>()
  /** Each lane's lag samples (a replaced lane starts a new history). */
  private readonly trends = new WeakMap<DeliveryLane, LagTrend>()
  private readonly sampler: NodeJS.Timeout
  /** Admission control and fair scheduling between ingest and delivery (src/pipeline/admission.ts). */
  readonly admission: Admission
  /** The pipeline's one way in for a request's records (src/pipeline/ingest-entry.ts). */
  readonly entry: IngestEntry
  private draining = false
  /** Dedupe windows restored at start (or adopted): only these may be snapshotted over the old file. */
  private readonly dedupeReady = new WeakSet<DedupeWindow>()
  private readonly dedupeSaved = new WeakMap<DedupeWindow, DedupeSaved>()
  /** One snapshot write at a time per stream (they share the temp file). */
  private readonly dedupeWrites = new Map<string, Promise<unknown>>()
  private dedupeTimer: NodeJS.Timeout | undefined

  private constructor(
    public config: GatewayConfig,
    readonly spool: Spool,
    private readonly deps: GatewayDeps,
  ) {
    // The config was checked (src/pipeline/config-check.ts); should a component refuse it anyway, the
    // refusal is a config error at its path, never a stack trace.
    for (const [name, sinkConfig] of Object.entries(this.sinkConfigs())) {
      const sink = asConfigError(`sinks.${name}`, () => createSink(name, sinkConfig, this.sinkContext(name)))
      this.sinks.set(name, sink)
      this.circuits.set(name, this.newCircuit(name, sinkConfig))
    }
    for (const [id, streamConfig] of Object.entries(config.streams)) {
      const runtime = asConfigError(
        `streams.${id}`,
        () => new StreamRuntime(id, streamConfig, this.validators, this.runtimeOptions(id)),
      )
      this.streams.set(id, runtime)
      this.states.set(id, { status: 4, counts: zeroCounts() })
    }
    this.sampler = setInterval(() => this.sampleLags(performance.now()), config.health.sampleIntervalMs)
    this.sampler.unref()
    this.admission = new Admission(
      {
        spoolConfig: () => this.config.spool,
        usedBytes: () => this.spool.usedBytes(),
        lanes: () =>
          [...this.lanes].map(([stream, lanes]) => ({
            stream,
            paused: this.states.get(stream)?.status === 2,
            lanes,
          })),
      },
      { logger: deps.logger, refused: (stream, reason) => deps.metrics.admissionRefused(stream, reason) },
    )
    this.entry = new IngestEntry({
      stream: (id) => this.streams.get(id),
      admission: this.admission,
      handOff: this,
      count: (stream, counts) => this.count(stream, counts),
      isDraining: () => this.draining,
      metrics: deps.metrics,
    })
  }

  static async create(config: GatewayConfig, deps: GatewayDeps): Promise<Gateway> {
    const spool = await Spool.open(config.spool, deps.logger, deps.spoolLock)
    let gateway: Gateway
    try {
      gateway = new Gateway(config, spool, deps)
    } catch (err) {
      await spool.close()
      throw err
    }
    for (const id of gateway.streams.keys()) await gateway.startLanes(id)
    const stored = await spool.storedStreams()
    for (const id of stored)
      if (!gateway.streams.has(id))
        deps.logger.warn(
          { stream: id },
          'the spool holds records of a stream that is not configured; they wait until it is',
        )
    gateway.dedupeTimer = setInterval(() => {
      for (const runtime of gateway.streams.values())
        if (runtime.dedupeWindow)
          gateway.checkpointDedupe(runtime, true).catch((err: unknown) => {
            deps.logger.warn({ err, stream: runtime.id }, 'dedupe snapshot failed')
          })
    }, DEDUPE_SNAPSHOT_INTERVAL_MS)
    gateway.dedupeTimer.unref()
    deps.metrics.observeSpool(() => ({
      bytes: spool.usedBytes(),
      capacityBytes: config.spool.maxBytes,
      lanes: [...gateway.lanes.entries()].flatMap(([stream, lanes]) =>
        lanes.map((lane) => ({ stream, sink: lane.sinkName, lag: lane.lag })),
      ),
    }))
    deps.metrics.observeAdmission(() => gateway.admission.figures())
    deps.metrics.observeHealth(() =>
      [...gateway.streams.keys()].map((stream) => ({
        stream,
        degraded: gateway.health(stream).state === 'degraded',
      })),
    )
    return gateway
  }

  private async startLanes(id: string): Promise<void> {
    const stream = this.streams.get(id)!
    const spooled = await this.spool.stream(id)
    this.spooledStreams.set(id, spooled)
    await this.restoreDedupe(stream, spooled)
    const r = spooled.log.recovery
    this.deps.metrics.spoolRecovered(id, r.corruptFrames, r.truncatedBytes)
    const lanes: DeliveryLane[] = []
    const laneNames: string[] = []
    for (const sinkName of stream.config.sinks) {
      const sink = this.sinks.get(sinkName)!
      laneNames.push(sinkName)
      lanes.push(
        this.newLane(id, sinkName, FrameKind.Records, sink, (records, error) =>
          this.spoolDeadLetters(id, sinkName, records, error),
        ),
      )
    }
    const deadLetterSink = this.deadLetterSinkOf(stream)
    laneNames.push(DEAD_LETTER_LANE)
    lanes.push(
      this.newLane(id, DEAD_LETTER_LANE, FrameKind.DeadLetters, deadLetterSink, async (lost, error) => {
        // The dead-letter sink itself refused them: nowhere left to put them. Log loudly (no payloads).
        this.deps.logger.error(
          {
            stream: id,
            sink: deadLetterSink.name,
            records: lost.length,
            reason: error.reason,
            err: error.message,
          },
          'dead-letter sink rejected records; they are dropped',
        )
        this.deps.metrics.sinkFailed(deadLetterSink.name, `dropped-${error.reason}`, lost.length)
      }),
    )
    // Lanes of sinks no longer configured for the stream give up their cursors.
    for (const lane of spooled.cursors.lanes()) if (!laneNames.includes(lane)) spooled.cursors.delete(lane)
    this.lanes.set(id, lanes)
    this.laneNames.set(id, laneNames)
    const state = this.states.get(id)!
    if (state.status === 4) state.status = stream.config.status === 4 ? 1 : stream.config.status
    for (const lane of lanes) lane.start()
  }

  private readonly laneNames = new Map<string, string[]>()

  /** A sink's state (the S3 sink's record of uploads in progress) lives beside the spool, under its lock. */
  private sinkContext(name: string): SinkContext {
    return {
      logger: this.deps.logger.child({ sink: name }),
      stateDir: join(this.config.spool.dir, 'sinks', encodeURIComponent(name)),
    }
  }

  private newCircuit(name: string, config: SinkConfig): CircuitBreaker {
    this.deps.metrics.sinkCircuit(name, 'closed')
    return new CircuitBreaker(config.circuit, {
      onChange: (state, { failures, openMs }) => {
        this.deps.metrics.sinkCircuit(name, state)
        if (state === 'open')
          this.deps.logger.warn(
            { sink: name, failures, openMs },
            'sink circuit opened; its lanes wait before the next attempt',
          )
        else if (state === 'closed') this.deps.logger.info({ sink: name }, 'sink circuit closed')
      },
    })
  }

  private newLane(
    stream: string,
    lane: string,
    kind: FrameKind,
    sink: Sink,
    deadLetter: (records: SinkRecord[], error: SinkError) => Promise<void>,
  ): DeliveryLane {
    return new DeliveryLane({
      stream,
      lane,
      kind,
      sink,
      retry: this.config.sinks[sink.name]?.retry ?? DEFAULT_RETRY,
      spool: this.spoolOf(stream),
      metrics: this.deps.metrics,
      logger: this.deps.logger,
      isPaused: () => this.states.get(stream)?.status === 2,
      circuit: this.circuits.get(sink.name),
      deadLetter,
      onError: (error) => {
        if (!error.retriable) this.markError(stream, sink.name, error)
      },
      onAdvance: () => this.scheduleGc(stream),
    })
  }

  private readonly spooledStreams = new Map<string, StreamSpool>()

  private spoolOf(stream: string): StreamSpool {
    return this.spooledStreams.get(stream)!
  }

  /** The configured sinks plus the implicit default dead-letter file sink when a stream relies on it. */
  private sinkConfigs(): Record<string, SinkConfig> {
    const sinks: Record<string, SinkConfig> = { ...this.config.sinks }
    const needsDefault = Object.values(this.config.streams).some((s) => s.deadLetter === undefined)
    if (needsDefault && !Object.hasOwn(sinks, DEFAULT_DEAD_LETTER_SINK)) {
      const fileDefaults: FileSinkConfig = {
        type: 'file',
        dir: resolve(dirname(resolve(this.config.spool.dir)), 'dead-letter'),
        prefix: 'dead-letter',
        maxFileBytes: 100 * 1024 * 1024,
        maxFileAgeMs: 3_600_000,
        fsync: true,
        retry: DEFAULT_RETRY,
      }
      sinks[DEFAULT_DEAD_LETTER_SINK] = fileDefaults
    }
    return sinks
  }

  get isDraining(): boolean {
    return this.draining
  }

  deadLetterSinkOf(stream: StreamRuntime): Sink {
    return this.sinks.get(stream.config.deadLetter ?? DEFAULT_DEAD_LETTER_SINK)!
  }

  state(stream: string): StreamState | undefined {
    return this.states.get(stream)
  }

  /** Samples every lane's lag for the trend check; a paused stream's lanes start over when resumed. */
  sampleLags(now: number): void {
    for (const [stream, lanes] of this.lanes) {
      const paused = this.states.get(stream)?.status === 2
      for (const lane of lanes) {
        let trend = this.trends.get(lane)
        if (!trend) {
          const lingerMs = this.sinks.get(lane.sinkName)?.limits.lingerMs ?? 0
          trend = new LagTrend(this.config.health.lagWindowMs + lingerMs)
          this.trends.set(lane, trend)
        }
        if (paused) trend.reset()
        else trend.add(now, lane.lag, lane.delivered)
      }
    }
  }

  /**
   * Degraded while a sink's circuit is not closed, or a lane is stalled or falls behind over the window
   * (src/pipeline/lag-trend.ts). One reason per lane: an open circuit explains the lag it causes.
   */
  health(stream: string): StreamHealth {
    const reasons: HealthReason[] = []
    for (const lane of this.lanes.get(stream) ?? []) {
      const deadLetter = lane.laneName === DEAD_LETTER_LANE
      const sink = lane.sinkName
      const what = `${deadLetter ? 'dead-letter sink' : 'sink'} ${sink}`
      const circuit = lane.circuit
      if (circuit.state !== 'closed') {
        reasons.push({
          code: 'circuit-open',
          sink,
          deadLetter,
          message: `${what}: circuit ${circuit.state} after ${circuit.failures} failed attempt${circuit.failures === 1 ? '' : 's'}; records wait in the spool`,
        })
        continue
      }
      const trouble = this.trends.get(lane)?.verdict()
      if (trouble?.kind === 'stalled')
        reasons.push({
          code: 'lane-stalled',
          sink,
          deadLetter,
          message: `${what}: nothing delivered for ${seconds(trouble.overMs)} s with ${trouble.lag} records waiting`,
        })
      else if (trouble?.kind === 'growing')
        reasons.push({
          code: 'lag-growing',
          sink,
          deadLetter,
          message: `${what}: lag grew from ${trouble.from} to ${trouble.to} records at every sample over ${seconds(trouble.overMs)} s`,
        })
    }
    return { state: reasons.length > 0 ? 'degraded' : 'ok', reasons }
  }

  /** Adds a request's outcome to the stream's live figures. */
  count(stream: string, counts: StreamCounts): void {
    const c = this.states.get(stream)?.counts
    if (!c) return
    c.received += counts.received
    c.accepted += counts.accepted
    c.rejected += counts.rejected
    c.filtered += counts.filtered
    c.duplicates += counts.duplicates
  }

  /** Running (1) or Paused (2); a restart (Error → Running) also clears the last error. */
  setStatus(stream: string, status: 1 | 2): void {
    const state = this.states.get(stream)
    if (!state) return
    state.status = status
    if (status === 1) delete state.lastError
  }

  private markError(stream: string, sink: string, error: SinkError): void {
    const state = this.states.get(stream)
    if (!state) return
    state.lastError = { sink, reason: error.reason, message: error.message, at: new Date().toISOString() }
    if (state.status === 1) state.status = 3
  }

  /** Resolves once every accepted and dead-lettered record of the request is safe; else a 503 problem. */
  async accept(stream: StreamRuntime, outcome: ProcessOutcome): Promise<void> {
    // No draining check here: a request that began before SIGTERM is in flight and must finish.
    if (stream.config.durability === 'none') return this.acceptDirect(stream, outcome)
    try {
      await this.spool.append(stream.id, outcome.records, outcome.deadLetters, Date.now())
    } catch (err) {
      if (err instanceof SpoolFullError) {
        this.deps.metrics.spoolRefused(stream.id)
        throw problem('spool-full', 'the spool is full; records are being delivered, retry shortly', {
          headers: { 'retry-after': '30' },
        })
      }
      this.deps.logger.error({ err, stream: stream.id }, 'spool append failed')
      throw problem('spool-unavailable', 'records could not be stored durably; retry shortly', {
        headers: { 'retry-after': '10' },
        cause: err,
      })
    }
    if (outcome.deadLetters.length > 0)
      this.deps.metrics.deadLetter(stream.id, 'invalid', outcome.deadLetters.length)
  }

  /** `durability: none`: answer only once every sink acknowledged (within DIRECT_DELIVERY_TIMEOUT_MS). */
  private async acceptDirect(stream: StreamRuntime, outcome: ProcessOutcome): Promise<void> {
    // A sink whose circuit is open would only make the request wait out the timeout: answer 503 now.
    const open = stream.config.sinks.map((n) => this.circuits.get(n)).filter((c) => c?.state === 'open')
    if (outcome.records.length > 0 && open.length > 0) {
      const retryAfter = Math.max(1, Math.ceil(Math.max(...open.map((c) => c!.remainingMs)) / 1000))
      throw problem(
        'sink-unavailable',
        `stream ${stream.id} delivers synchronously (durability: none) and a sink's circuit breaker is open`,
        { headers: { 'retry-after': String(retryAfter) } },
      )
    }
    const signal = AbortSignal.timeout(DIRECT_DELIVERY_TIMEOUT_MS)
    const work: Promise<void>[] = []
    if (outcome.records.length > 0)
      for (const name of stream.config.sinks) {
        const sink = this.sinks.get(name)!
        work.push(
          deliver(sink, outcome.records, {
            retry: this.config.sinks[name]?.retry ?? DEFAULT_RETRY,
            signal,
            circuit: this.circuits.get(name),
            metrics: this.deps.metrics,
            logger: this.deps.logger,
            deadLetter: (failed, error) => this.spoolDeadLetters(stream.id, name, failed, error),
            onError: (error) => {
              if (!error.retriable) this.markError(stream.id, name, error)
            },
          }),
        )
      }
    // Dead letters go through the spool even here: the dead-letter sink must not hold up the answer.
    if (outcome.deadLetters.length > 0)
      work.push(this.spool.appendDeadLetters(stream.id, outcome.deadLetters))
    const results = await Promise.allSettled(work)
    const failed = results.find((r) => r.status === 'rejected')
    if (failed) {
      this.deps.logger.warn(
        { stream: stream.id, err: (failed.reason as Error).message },
        'direct delivery did not complete in time',
      )
      throw problem(
        'sink-unavailable',
        `stream ${stream.id} delivers synchronously (durability: none) and a sink did not acknowledge within ${DIRECT_DELIVERY_TIMEOUT_MS / 1000} s`,
        { headers: { 'retry-after': '10' } },
      )
    }
    if (outcome.deadLetters.length > 0)
      this.deps.metrics.deadLetter(stream.id, 'invalid', outcome.deadLetters.length)
  }

  /** Records a sink rejected permanently: wrapped with the reason and spooled for the dead-letter lane. */
  private async spoolDeadLetters(
    stream: string,
    sinkName: string,
    records: SinkRecord[],
    error: SinkError,
  ): Promise<void> {
    const now = Date.now()
    const letters = records.map((r) =>
      deadLetterRecord(
        stream,
        r.payload,
        { reason: error.reason, sink: sinkName, errors: [{ message: error.message }] },
        r.receivedAtMs,
        now,
      ),
    )
    await this.spool.appendDeadLetters(stream, letters)
    this.deps.metrics.deadLetter(stream, error.reason, letters.length)
  }

  /** Deletes fully consumed segments, at most once a second per stream. */
  private scheduleGc(stream: string): void {
    if (this.gcTimers.has(stream)) return
    const timer = setTimeout(() => {
      this.gcTimers.delete(stream)
      this.collectSegments(stream).catch((err: unknown) => {
        this.deps.logger.warn({ err, stream }, 'spool segment cleanup failed')
      })
    }, 1000)
    timer.unref()
    this.gcTimers.set(stream, timer)
  }

  private async collectSegments(stream: string): Promise<void> {
    const runtime = this.streams.get(stream)
    // With dedupe, only frames whose keys a durable snapshot holds may be deleted (pipeline/dedupe.ts).
    const limit = runtime?.dedupeWindow ? await this.checkpointDedupe(runtime, false) : undefined
    await this.spool.collect(stream, this.laneNames.get(stream) ?? [], limit)
  }

  /**
   * Rebuilds a stream's dedupe window after a start (or a config change that replaced it): the snapshot's
   * keys plus the keys of the record frames still in the spool (those accepted after the snapshot).
   */
  private async restoreDedupe(stream: StreamRuntime, spooled: StreamSpool): Promise<void> {
    const window = stream.dedupeWindow
    if (!window || this.dedupeReady.has(window)) return
    const now = Date.now()
    let saved: [string, number][] | undefined
    try {
      saved = await loadDedupeSnapshot(join(spooled.log.dir, DEDUPE_SNAPSHOT_FILE), stream.dedupeConfig!.key)
    } catch (err) {
      this.deps.logger.warn(
        { stream: stream.id, err: (err as Error).message },
        'the dedupe snapshot cannot be read; the window is rebuilt from the spool alone',
      )
    }
    const replayed = await replayDedupeKeys(
      spooled.log,
      (record) => stream.dedupeKeyOf(record),
      now - window.windowMs,
    )
    window.restore(saved ? saved.concat(replayed) : replayed, now)
    this.dedupeReady.add(window)
    if (window.size > 0)
      this.deps.logger.info(
        { stream: stream.id, keys: window.size, snapshot: saved?.length ?? 0, spool: replayed.length },
        'dedupe window restored',
      )
  }

  /**
   * Saves the stream's dedupe window when it changed (`force`: whenever it changed; else at most every
   * DEDUPE_SNAPSHOT_MIN_INTERVAL_MS) and returns the seq below which spool frames may be deleted: frames
   * every lane had passed when the last snapshot was taken. A record is remembered before any lane can read
   * it (StreamRuntime.commit runs as soon as the spool append resolves), so their keys are in that snapshot.
   */
  private checkpointDedupe(runtime: StreamRuntime, force: boolean): Promise<number> {
    const previous = this.dedupeWrites.get(runtime.id) ?? Promise.resolve()
    const run = previous.then(() => this.checkpointDedupeNow(runtime, force))
    const tail = run.catch(() => undefined)
    this.dedupeWrites.set(runtime.id, tail)
    void tail.then(() => {
      if (this.dedupeWrites.get(runtime.id) === tail) this.dedupeWrites.delete(runtime.id)
    })
    return run
  }

  private async checkpointDedupeNow(runtime: StreamRuntime, force: boolean): Promise<number> {
    const window = runtime.dedupeWindow!
    const spooled = this.spooledStreams.get(runtime.id)
    // Not restored yet (its old snapshot would be overwritten with less), or no log: delete nothing.
    if (!spooled || !this.dedupeReady.has(window)) return 0
    const bound = spooled.cursors.minSeq(this.laneNames.get(runtime.id) ?? [])
    const saved = this.dedupeSaved.get(window)
    if (saved && saved.version === window.version) {
      // Nothing remembered since: every frame delivered by now has its key in that snapshot.
      saved.bound = bound
      return bound ?? 0
    }
    const now = Date.now()
    if (!force && saved && now - saved.atMs < DEDUPE_SNAPSHOT_MIN_INTERVAL_MS) return saved.bound ?? 0
    const version = window.version
    // Taken synchronously with `bound`: exactly the keys remembered so far.
    const text = snapshotText(runtime.dedupeConfig!.key, window, now)
    await writeFileAtomic(join(spooled.log.dir, DEDUPE_SNAPSHOT_FILE), text, true)
    this.dedupeSaved.set(window, { version, bound, atMs: now })
    return bound ?? 0
  }

  /** Records of the stream still waiting in the spool for any of its lanes. */
  pendingRecords(stream: string): number {
    return (this.lanes.get(stream) ?? []).reduce((sum, lane) => sum + lane.lag, 0)
  }

  /**
   * Applies a new validated config without a restart: sinks and streams that changed are rebuilt, their
   * lanes restarted from their cursors (nothing is re-read or skipped); in-flight requests finish on the
   * runtime they started with. Serialised: one apply at a time.
   */
  apply(next: GatewayConfig): Promise<void> {
    const run = this.applying.then(() => this.applyNow(next))
    this.applying = run.catch(() => undefined)
    return run
  }

  private applying: Promise<void> = Promise.resolve()

  private async applyNow(next: GatewayConfig): Promise<void> {
    const prev = this.config
    const graceMs = 5_000
    this.config = next
    const nextSinks = this.sinkConfigs()
    const prevSinkJson = new Map(
      Object.entries(this.sinkConfigsOf(prev)).map(([k, v]) => [k, JSON.stringify(v)]),
    )
    const changedSinks = new Set<string>()
    for (const [name, cfg] of Object.entries(nextSinks))
      if (prevSinkJson.get(name) !== JSON.stringify(cfg)) changedSinks.add(name)
    const removedSinks = [...prevSinkJson.keys()].filter((n) => !Object.hasOwn(nextSinks, n))
    const streamIds = new Set([...Object.keys(prev.streams), ...Object.keys(next.streams)])
    const restart: string[] = []
    for (const id of streamIds) {
      const a = prev.streams[id]
      const b = next.streams[id]
      if (!b) {
        await this.stopLanes(id, graceMs)
        this.streams.delete(id)
        this.states.delete(id)
        continue
      }
      const usesChanged = [...b.sinks, this.deadLetterNameOf(b)].some(
        (n) => changedSinks.has(n) || removedSinks.includes(n),
      )
      const sameStream =
        a !== undefined && JSON.stringify(withoutStatus(a)) === JSON.stringify(withoutStatus(b))
      if (sameStream && !usesChanged) {
        if (a.status !== b.status) this.setStatus(id, b.status === 2 ? 2 : 1)
        continue
      }
      if (a) await this.stopLanes(id, graceMs)
      restart.push(id)
    }
    // Sinks: build new and changed ones, close replaced and removed ones (their lanes are stopped).
    const closing: Sink[] = []
    for (const name of [...changedSinks, ...removedSinks]) {
      const old = this.sinks.get(name)
      if (old) closing.push(old)
      this.sinks.delete(name)
      this.circuits.delete(name)
    }
    for (const name of changedSinks) {
      this.sinks.set(name, createSink(name, nextSinks[name]!, this.sinkContext(name)))
      this.circuits.set(name, this.newCircuit(name, nextSinks[name]!))
    }
    // Lanes of unchanged streams that used a replaced sink were restarted above; the rest keep theirs.
    for (const id of restart) {
      const runtime = new StreamRuntime(id, next.streams[id]!, this.validators, this.runtimeOptions(id))
      const old = this.streams.get(id)
      if (old) {
        runtime.adoptDedupe(old)
        runtime.adoptDrift(old)
      }
      this.streams.set(id, runtime)
      const state = this.states.get(id) ?? { status: 4 as StreamStatusId, counts: zeroCounts() }
      this.states.set(id, state)
      await this.startLanes(id)
    }
    await Promise.allSettled(closing.map((s) => s.close()))
  }

  /** Records found drifting are counted in streamgate_schema_drift_records_total. */
  private runtimeOptions(id: string): StreamRuntimeOptions {
    return { driftCounter: (unknown, missing) => this.deps.metrics.schemaDrift(id, unknown, missing) }
  }

  private deadLetterNameOf(stream: { deadLetter?: string }): string {
    return stream.deadLetter ?? DEFAULT_DEAD_LETTER_SINK
  }

  private sinkConfigsOf(config: GatewayConfig): Record<string, SinkConfig> {
    const saved = this.config
    this.config = config
    try {
      return this.sinkConfigs()
    } finally {
      this.config = saved
    }
  }

  private async stopLanes(id: string, graceMs: number): Promise<void> {
    const lanes = this.lanes.get(id) ?? []
    this.lanes.delete(id)
    await Promise.all(lanes.map((l) => l.stop(graceMs)))
  }

  /** Stop accepting: readyz answers 503 and new ingest requests get 503 with Retry-After. */
  startDraining(): void {
    this.draining = true
  }

  /** Stops lanes (deliveries in progress may finish within `graceMs`), closes sinks, closes the spool. */
  async close(graceMs = 10_000): Promise<void> {
    this.draining = true
    clearInterval(this.sampler)
    this.admission.close()
    await Promise.all([...this.lanes.values()].flat().map((lane) => lane.stop(graceMs)))
    const results = await Promise.allSettled([...this.sinks.values()].map((s) => s.close()))
    for (const r of results)
      if (r.status === 'rejected')
        this.deps.logger.error({ err: (r.reason as Error).message }, 'sink close failed')
    // A clean-up firing after close would delete segments of a spool whose lock is released, and replace
    // the newest one with an empty file: records another process (replay-dead-letter, the next gateway)
    // wrote there meanwhile would be lost.
    for (const timer of this.gcTimers.values()) clearTimeout(timer)
    this.gcTimers.clear()
    // The last dedupe snapshots, while the spool (and its lock) is still ours.
    clearInterval(this.dedupeTimer)
    await Promise.allSettled(
      [...this.streams.values()]
        .filter((runtime) => runtime.dedupeWindow)
        .map((runtime) =>
          this.checkpointDedupe(runtime, true).catch((err: unknown) => {
            this.deps.logger.error({ err, stream: runtime.id }, 'dedupe snapshot failed at shutdown')
          }),
        ),
    )
    await this.spool.close()
  }
}
