import type { GatewayConfig } from '../config/types.js'
import type { SpoolLock } from '../spool/lock.js'
import { Spool } from '../spool/spool.js'
import type { Logger } from '../telemetry/logger.js'
import type { Metrics } from '../telemetry/metrics.js'
import { Admission } from './admission.js'
import type { HandOff } from './hand-off.js'
import { IngestEntry, type StreamCounts } from './ingest-entry.js'
import { DirectHandOff, DurabilityHandOff, SpoolHandOff } from './spool-hand-off.js'
import { SpoolUpkeep } from './spool-upkeep.js'
import { StreamStates, type StreamHealth, type StreamState } from './stream-states.js'
import { Topology } from './topology.js'

// The gateway is its parts, wired here once:
//   topology   (src/pipeline/topology.ts)       streams, sinks, circuits, lanes from the config; apply(next)
//   states     (src/pipeline/stream-states.ts)  per-stream status, last error, counts, health
//   handOff    (src/pipeline/hand-off.ts)       where a request's outcome goes before the 200: the spool,
//                                               or direct delivery for `durability: none`
//   upkeep     (src/pipeline/spool-upkeep.ts)   dead letters, dedupe snapshots, deleting delivered segments
//   admission  (src/pipeline/admission.ts)      refusals before the body is read; ingest turns
//   entry      (src/pipeline/ingest-entry.ts)   the one way in for a request's records
// Callers use the parts; this class only builds, starts and closes them, and keeps the draining flag.

export type { StreamCounts, StreamHealth, StreamState }
export type { HealthReason } from './stream-states.js'
export { STREAM_STATUSES } from './stream-states.js'
export { DEFAULT_DEAD_LETTER_SINK } from './topology.js'
export { DIRECT_DELIVERY_TIMEOUT_MS } from './spool-hand-off.js'

export interface GatewayDeps {
  logger: Logger
  metrics: Metrics
  /** Ownership of the spool directory, when the caller took it already; the spool takes it over. */
  spoolLock?: SpoolLock
  /**
   * Replaces the whole hand-off, for every stream whatever its `durability` (a role that writes requests to
   * another durable log: `--role ingest`, src/roles/ingest.ts). Default: the spool, or direct delivery for
   * `durability: none` streams.
   */
  handOff?: (spool: Spool) => HandOff
}

export class Gateway {
  readonly topology: Topology
  readonly states: StreamStates
  readonly upkeep: SpoolUpkeep
  readonly handOff: HandOff
  /** Admission control and fair scheduling between ingest and delivery (src/pipeline/admission.ts). */
  readonly admission: Admission
  /** The pipeline's one way in for a request's records (src/pipeline/ingest-entry.ts). */
  readonly entry: IngestEntry
  private readonly sampler: NodeJS.Timeout
  private draining = false

  private constructor(
    config: GatewayConfig,
    readonly spool: Spool,
    deps: GatewayDeps,
  ) {
    // The parts refer to each other through narrow interfaces; `topology` is assigned before any of these
    // closures runs (they run once lanes exist).
    // eslint-disable-next-line prefer-const
    let topology: Topology
    const states = new StreamStates(
      {
        lanes: () => topology.lanes(),
        lanesOf: (id) => topology.lanesOf(id),
        lingerMs: (sink) => topology.lingerMs(sink),
      },
      () => topology.config.health.lagWindowMs,
    )
    const upkeep = new SpoolUpkeep(
      spool,
      {
        stream: (id) => topology.stream(id),
        streams: () => topology.streams(),
        spoolOf: (id) => topology.spoolOf(id),
        laneNames: (id) => topology.laneNames(id),
      },
      deps,
    )
    topology = new Topology(
      config,
      spool,
      {
        streamAdded: (id) => states.add(id),
        streamStarted: (id, status) => states.started(id, status),
        streamRemoved: (id) => states.remove(id),
        statusChanged: (id, status) => states.setStatus(id, status),
        isPaused: (id) => states.isPaused(id),
        sinkFailed: (stream, sink, error) => states.markError(stream, sink, error),
        laneAdvanced: (stream) => upkeep.scheduleGc(stream),
        deadLetter: (stream, sink, records, error) => upkeep.deadLetter(stream, sink, records, error),
        restoreDedupe: (runtime, spooled) => upkeep.restoreDedupe(runtime, spooled),
      },
      deps,
    )
    this.topology = topology
    this.states = states
    this.upkeep = upkeep
    this.handOff =
      deps.handOff?.(spool) ??
      new DurabilityHandOff(
        new SpoolHandOff(spool, deps),
        new DirectHandOff(
          {
            sink: (name) => topology.sink(name),
            circuit: (name) => topology.circuit(name),
            retry: (name) => topology.retry(name),
            deadLetter: (stream, sink, records, error) => upkeep.deadLetter(stream, sink, records, error),
            spoolDeadLetters: (stream, letters) => spool.appendDeadLetters(stream, letters),
            sinkFailed: (stream, sink, error) => states.markError(stream, sink, error),
          },
          deps,
        ),
      )
    this.sampler = setInterval(() => states.sampleLags(performance.now()), config.health.sampleIntervalMs)
    this.sampler.unref()
    this.admission = new Admission(
      {
        spoolConfig: () => topology.config.spool,
        usedBytes: () => spool.usedBytes(),
        lanes: () =>
          [...topology.lanes()].map(([stream, lanes]) => ({
            stream,
            paused: states.isPaused(stream),
            lanes: [...lanes],
          })),
      },
      {
        logger: deps.logger,
        refused: (stream, reason) => deps.metrics.admissionRefused(stream, reason),
        abandoned: (stream) => deps.metrics.admissionAbandoned(stream),
      },
    )
    this.entry = new IngestEntry({
      stream: (id) => topology.stream(id),
      admission: this.admission,
      handOff: this.handOff,
      count: (stream, counts) => states.count(stream, counts),
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
    const { topology, states } = gateway
    await topology.startAll()
    const stored = await spool.storedStreams()
    for (const id of stored)
      if (!topology.stream(id))
        deps.logger.warn(
          { stream: id },
          'the spool holds records of a stream that is not configured; they wait until it is',
        )
    gateway.upkeep.start()
    deps.metrics.observeSpool(() => ({
      bytes: spool.usedBytes(),
      capacityBytes: config.spool.maxBytes,
      lanes: [...topology.lanes()].flatMap(([stream, lanes]) =>
        lanes.map((lane) => ({ stream, sink: lane.sinkName, lag: lane.lag })),
      ),
    }))
    deps.metrics.observeAdmission(() => gateway.admission.figures())
    deps.metrics.observeHealth(() =>
      topology.streamIds().map((stream) => ({
        stream,
        degraded: states.health(stream).state === 'degraded',
      })),
    )
    return gateway
  }

  /** The config the gateway runs now. */
  get config(): GatewayConfig {
    return this.topology.config
  }

  get isDraining(): boolean {
    return this.draining
  }

  /** The stream's status, last error and counts (undefined: not configured). */
  state(stream: string): StreamState | undefined {
    return this.states.get(stream)
  }

  health(stream: string): StreamHealth {
    return this.states.health(stream)
  }

  /** Records of the stream still waiting in the spool for any of its lanes. */
  pendingRecords(stream: string): number {
    return this.topology.pendingRecords(stream)
  }

  /** A new validated config, without a restart (Topology.apply). A method, so workers can wrap it. */
  apply(next: GatewayConfig): Promise<void> {
    return this.topology.apply(next)
  }

  /** Running (1) or Paused (2); a restart (Error → Running) also clears the last error. */
  setStatus(stream: string, status: 1 | 2): void {
    this.states.setStatus(stream, status)
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
    await this.topology.close(graceMs)
    // Timers stopped and the last dedupe snapshots taken while the spool (and its lock) is still ours.
    await this.upkeep.close()
    await this.spool.close()
  }
}
