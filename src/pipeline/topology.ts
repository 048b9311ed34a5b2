import { dirname, join, resolve } from 'node:path'
import type {
  FileSinkConfig,
  GatewayConfig,
  RetryConfig,
  SinkConfig,
  StreamConfig,
  StreamStatusId,
} from '../config/types.js'
import { ConfigError } from '../config/load.js'
import type { SinkError } from '../errors.js'
import type { SinkRecord } from '../records/record.js'
import { createSink } from '../sinks/registry.js'
import type { Sink, SinkContext } from '../sinks/sink.js'
import { FrameKind } from '../spool/format.js'
import { DEAD_LETTER_LANE, type Spool, type StreamSpool } from '../spool/spool.js'
import type { Logger } from '../telemetry/logger.js'
import type { Metrics } from '../telemetry/metrics.js'
import { Validators } from '../validate/validators.js'
import { CircuitBreaker } from './circuit.js'
import { componentIssue } from './config-check.js'
import { DeliveryLane } from './lane.js'
import { StreamRuntime, type StreamRuntimeOptions } from './stream.js'

// The running topology built from the config: compiled streams (StreamRuntime: framing, validation, auth,
// rate limit), live sinks with one circuit breaker each, and one delivery lane per (stream, sink) plus one
// dead-letter lane per stream, each reading the stream's spool log from its own cursor. `apply` changes it
// to a new config without a restart. Read-only from outside: lookups, never the maps.

/** Streams without `deadLetter` use the sink of this name; unless configured, a file sink under ./data. */
export const DEFAULT_DEAD_LETTER_SINK = 'dead-letter'

export const DEFAULT_RETRY: RetryConfig = { initialMs: 200, maxMs: 30_000, maxAttempts: 0 }

/** How long a stopping lane may finish its delivery in progress when a config change replaces it. */
const APPLY_GRACE_MS = 5_000

/** What the topology tells the rest of the gateway (stream states, spool upkeep) as it changes. */
export interface TopologyHooks {
  /** A stream is configured (Pending until its lanes start). */
  streamAdded(id: string): void
  /** Its lanes run: Pending becomes the configured status. */
  streamStarted(id: string, configured: StreamStatusId): void
  streamRemoved(id: string): void
  /** Only its status changed (1 Running / 2 Paused). */
  statusChanged(id: string, status: 1 | 2): void
  isPaused(id: string): boolean
  /** A sink refused the stream's records for good. */
  sinkFailed(stream: string, sink: string, error: SinkError): void
  /** A lane moved its cursor: delivered segments may be deleted. */
  laneAdvanced(stream: string): void
  /** Records a sink rejected permanently, to the stream's dead-letter lane. */
  deadLetter(stream: string, sink: string, records: SinkRecord[], error: SinkError): Promise<void>
  /** Before the stream's lanes start: rebuild its dedupe window from the snapshot and the spool. */
  restoreDedupe(runtime: StreamRuntime, spooled: StreamSpool): Promise<void>
}

export interface TopologyDeps {
  logger: Logger
  metrics: Metrics
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

function deadLetterNameOf(stream: { deadLetter?: string }): string {
  return stream.deadLetter ?? DEFAULT_DEAD_LETTER_SINK
}

/** The configured sinks plus the implicit default dead-letter file sink when a stream relies on it. */
export function sinkConfigsOf(config: GatewayConfig): Record<string, SinkConfig> {
  const sinks: Record<string, SinkConfig> = { ...config.sinks }
  const needsDefault = Object.values(config.streams).some((s) => s.deadLetter === undefined)
  if (needsDefault && !Object.hasOwn(sinks, DEFAULT_DEAD_LETTER_SINK)) {
    const fileDefaults: FileSinkConfig = {
      type: 'file',
      dir: resolve(dirname(resolve(config.spool.dir)), 'dead-letter'),
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

export class Topology {
  private current: GatewayConfig
  private readonly runtimes = new Map<string, StreamRuntime>()
  private readonly liveSinks = new Map<string, Sink>()
  /** One circuit breaker per sink, shared by all its lanes; replaced with the sink on a config change. */
  private readonly circuits = new Map<string, CircuitBreaker>()
  private readonly streamLanes = new Map<string, DeliveryLane[]>()
  private readonly streamLaneNames = new Map<string, string[]>()
  private readonly spooled = new Map<string, StreamSpool>()
  private applying: Promise<void> = Promise.resolve()
  readonly validators = new Validators()

  /**
   * Builds sinks and streams (nothing runs yet: `startAll`). The config was checked
   * (src/pipeline/config-check.ts); should a component refuse it anyway, the refusal is a config error at
   * its path, never a stack trace.
   */
  constructor(
    config: GatewayConfig,
    private readonly spool: Spool,
    private readonly hooks: TopologyHooks,
    private readonly deps: TopologyDeps,
  ) {
    this.current = config
    for (const [name, sinkConfig] of Object.entries(sinkConfigsOf(config))) {
      const sink = asConfigError(`sinks.${name}`, () => createSink(name, sinkConfig, this.sinkContext(name)))
      this.liveSinks.set(name, sink)
      this.circuits.set(name, this.newCircuit(name, sinkConfig))
    }
    for (const [id, streamConfig] of Object.entries(config.streams)) {
      const runtime = asConfigError(
        `streams.${id}`,
        () => new StreamRuntime(id, streamConfig, this.validators, this.runtimeOptions(id)),
      )
      this.runtimes.set(id, runtime)
      hooks.streamAdded(id)
    }
  }

  /** The config the topology runs now. */
  get config(): GatewayConfig {
    return this.current
  }

  /** Opens every stream's spool log and starts its lanes. */
  async startAll(): Promise<void> {
    for (const id of this.runtimes.keys()) await this.startLanes(id)
  }

  stream(id: string): StreamRuntime | undefined {
    return this.runtimes.get(id)
  }

  streams(): IterableIterator<StreamRuntime> {
    return this.runtimes.values()
  }

  streamIds(): string[] {
    return [...this.runtimes.keys()]
  }

  sink(name: string): Sink | undefined {
    return this.liveSinks.get(name)
  }

  sinks(): IterableIterator<Sink> {
    return this.liveSinks.values()
  }

  circuit(name: string): CircuitBreaker | undefined {
    return this.circuits.get(name)
  }

  retry(name: string): RetryConfig {
    return this.current.sinks[name]?.retry ?? DEFAULT_RETRY
  }

  lingerMs(sink: string): number {
    return this.liveSinks.get(sink)?.limits.lingerMs ?? 0
  }

  /** The stream's lanes, its sinks' first and the dead-letter lane last; none before they start. */
  lanesOf(stream: string): readonly DeliveryLane[] {
    return this.streamLanes.get(stream) ?? []
  }

  /** Every running stream's lanes. */
  *lanes(): IterableIterator<readonly [string, readonly DeliveryLane[]]> {
    yield* this.streamLanes
  }

  laneNames(stream: string): readonly string[] {
    return this.streamLaneNames.get(stream) ?? []
  }

  spoolOf(stream: string): StreamSpool | undefined {
    return this.spooled.get(stream)
  }

  deadLetterSinkOf(stream: StreamRuntime): Sink {
    return this.liveSinks.get(deadLetterNameOf(stream.config))!
  }

  /** Records of the stream still waiting in the spool for any of its lanes. */
  pendingRecords(stream: string): number {
    return this.lanesOf(stream).reduce((sum, lane) => sum + lane.lag, 0)
  }

  private async startLanes(id: string): Promise<void> {
    const stream = this.runtimes.get(id)!
    const spooled = await this.spool.stream(id)
    this.spooled.set(id, spooled)
    await this.hooks.restoreDedupe(stream, spooled)
    const r = spooled.log.recovery
    this.deps.metrics.spoolRecovered(id, r.corruptFrames, r.truncatedBytes)
    const lanes: DeliveryLane[] = []
    const laneNames: string[] = []
    for (const sinkName of stream.config.sinks) {
      const sink = this.liveSinks.get(sinkName)!
      laneNames.push(sinkName)
      lanes.push(
        this.newLane(id, sinkName, FrameKind.Records, sink, (records, error) =>
          this.hooks.deadLetter(id, sinkName, records, error),
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
    this.streamLanes.set(id, lanes)
    this.streamLaneNames.set(id, laneNames)
    this.hooks.streamStarted(id, stream.config.status)
    for (const lane of lanes) lane.start()
  }

  /** A sink's state (the S3 sink's record of uploads in progress) lives beside the spool, under its lock. */
  private sinkContext(name: string): SinkContext {
    return {
      logger: this.deps.logger.child({ sink: name }),
      stateDir: join(this.current.spool.dir, 'sinks', encodeURIComponent(name)),
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
      retry: this.retry(sink.name),
      spool: this.spooled.get(stream)!,
      metrics: this.deps.metrics,
      logger: this.deps.logger,
      isPaused: () => this.hooks.isPaused(stream),
      circuit: this.circuits.get(sink.name),
      deadLetter,
      onError: (error) => {
        if (!error.retriable) this.hooks.sinkFailed(stream, sink.name, error)
      },
      onAdvance: () => this.hooks.laneAdvanced(stream),
    })
  }

  /** Records found drifting are counted in streamgate_schema_drift_records_total. */
  private runtimeOptions(id: string): StreamRuntimeOptions {
    return { driftCounter: (unknown, missing) => this.deps.metrics.schemaDrift(id, unknown, missing) }
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

  private async applyNow(next: GatewayConfig): Promise<void> {
    const prev = this.current
    this.current = next
    const nextSinks = sinkConfigsOf(next)
    const prevSinkJson = new Map(Object.entries(sinkConfigsOf(prev)).map(([k, v]) => [k, JSON.stringify(v)]))
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
        await this.stopLanes(id, APPLY_GRACE_MS)
        this.runtimes.delete(id)
        this.hooks.streamRemoved(id)
        continue
      }
      const usesChanged = [...b.sinks, deadLetterNameOf(b)].some(
        (n) => changedSinks.has(n) || removedSinks.includes(n),
      )
      const sameStream =
        a !== undefined && JSON.stringify(withoutStatus(a)) === JSON.stringify(withoutStatus(b))
      if (sameStream && !usesChanged) {
        if (a.status !== b.status) this.hooks.statusChanged(id, b.status === 2 ? 2 : 1)
        continue
      }
      if (a) await this.stopLanes(id, APPLY_GRACE_MS)
      restart.push(id)
    }
    // Sinks: build new and changed ones, close replaced and removed ones (their lanes are stopped).
    const closing: Sink[] = []
    for (const name of [...changedSinks, ...removedSinks]) {
      const old = this.liveSinks.get(name)
      if (old) closing.push(old)
      this.liveSinks.delete(name)
      this.circuits.delete(name)
    }
    for (const name of changedSinks) {
      this.liveSinks.set(name, createSink(name, nextSinks[name]!, this.sinkContext(name)))
      this.circuits.set(name, this.newCircuit(name, nextSinks[name]!))
    }
    // Lanes of unchanged streams that used a replaced sink were restarted above; the rest keep theirs.
    for (const id of restart) {
      const runtime = new StreamRuntime(id, next.streams[id]!, this.validators, this.runtimeOptions(id))
      const old = this.runtimes.get(id)
      if (old) {
        runtime.adoptDedupe(old)
        runtime.adoptDrift(old)
      }
      this.runtimes.set(id, runtime)
      this.hooks.streamAdded(id)
      await this.startLanes(id)
    }
    await Promise.allSettled(closing.map((s) => s.close()))
  }

  private async stopLanes(id: string, graceMs: number): Promise<void> {
    const lanes = this.streamLanes.get(id) ?? []
    this.streamLanes.delete(id)
    await Promise.all(lanes.map((l) => l.stop(graceMs)))
  }

  /** Stops every lane (deliveries in progress may finish within `graceMs`), then closes every sink. */
  async close(graceMs: number): Promise<void> {
    await Promise.all([...this.streamLanes.values()].flat().map((lane) => lane.stop(graceMs)))
    const results = await Promise.allSettled([...this.liveSinks.values()].map((s) => s.close()))
    for (const r of results)
      if (r.status === 'rejected')
        this.deps.logger.error({ err: (r.reason as Error).message }, 'sink close failed')
  }
}
