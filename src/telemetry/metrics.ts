import { readFileSync } from 'node:fs'
import {
  Counter,
  Gauge,
  Histogram,
  Registry,
  collectDefaultMetrics,
  type CounterConfiguration,
} from 'prom-client'

/** Why admission control refuses a stream's requests (src/pipeline/admission.ts). */
export type AdmissionReason = 'high-water' | 'lag-budget'

/** What admission control shows in /metrics, read at scrape time. */
export interface AdmissionFigures {
  highWaterBytes: number
  lowWaterBytes: number
  /** `held`: requests of a `backpressure: pause` stream waiting, body unread, to be admitted. */
  streams: { stream: string; refusing: AdmissionReason[]; held: number }[]
  lanes: { stream: string; sink: string; lagSeconds: number }[]
}

export interface SpoolFigures {
  bytes: number
  /** spool.maxBytes: ingest answers 503 once `bytes` reaches it. */
  capacityBytes: number
  lanes: { stream: string; sink: string; lag: number }[]
}

/** The version in package.json (two levels up from src/telemetry and from dist/telemetry alike). */
const VERSION = ((): string => {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
      version?: unknown
    }
    return typeof pkg.version === 'string' ? pkg.version : 'unknown'
  } catch {
    return 'unknown'
  }
})()

/** One child of a BoundCounter: its labels and what it counted since prom-client last collected. */
interface CounterChild {
  readonly labels: Record<string, string | number>
  pending: number
}

/**
 * A labelled counter whose children are bound once per label values (a stream, a sink, a stream and a
 * status): inc() adds to the child's own number, and prom-client receives the sums when it collects (each
 * scrape, each `get()`), so a request costs no label hashing. prom-client's own `labels()` binds only the
 * label object: each of its inc() calls still hashes and validates the labels.
 */
class BoundCounter {
  readonly counter: Counter
  private readonly children = new Map<string, Map<string | number, CounterChild>>()
  private readonly names: readonly string[]

  constructor(config: Omit<CounterConfiguration<string>, 'collect'>) {
    this.names = config.labelNames ?? []
    this.counter = new Counter({ ...config, collect: () => this.flush() })
  }

  /** The child of these label values (in labelNames order), created on first use. */
  child(a: string, b: string | number = ''): CounterChild {
    let inner = this.children.get(a)
    if (!inner) {
      inner = new Map()
      this.children.set(a, inner)
    }
    let child = inner.get(b)
    if (!child) {
      const labels: Record<string, string | number> = { [this.names[0]!]: a }
      if (this.names.length > 1) labels[this.names[1]!] = b
      child = { labels, pending: 0 }
      inner.set(b, child)
    }
    return child
  }

  inc(a: string, b?: string | number, n = 1): void {
    this.child(a, b).pending += n
  }

  private flush(): void {
    for (const inner of this.children.values())
      for (const child of inner.values())
        if (child.pending !== 0) {
          this.counter.inc(child.labels, child.pending)
          child.pending = 0
        }
  }
}

/** One child of a BoundHistogram: what it observed since prom-client last collected. */
interface HistogramChild {
  readonly labels: Record<string, string>
  /** Observations per bucket (index of the first upper bound ≥ the value; past the last bound: not kept). */
  readonly buckets: Float64Array
  sum: number
  count: number
  /** prom-client's own entry for these labels, found once (see fold). */
  entry: HistogramEntry | undefined
}

/** prom-client 15's per-labels histogram state (lib/histogram.js createBaseValues). */
interface HistogramEntry {
  labels: Record<string, string>
  bucketValues: Record<number, number>
  sum: number
  count: number
}

/**
 * A histogram with one label whose observe() is a bucket search over a few numbers and three additions:
 * prom-client's own observe() validates and hashes the labels and searches the buckets on every call. The
 * counts are folded into prom-client's histogram when it collects (each scrape, each `get()`), so /metrics
 * shows the same series and values (a test compares the exposition with observing directly; the sum may
 * differ in its last digit, being added in another order).
 *
 * prom-client has no call that adds pre-counted buckets: the fold writes into the entry prom-client keeps
 * per label values, created by its public `zero(labels)` and found by the labels object it was given.
 */
class BoundHistogram {
  readonly histogram: Histogram
  private readonly children = new Map<string, HistogramChild>()
  private readonly label: string
  private readonly bounds: Float64Array

  constructor(config: {
    name: string
    help: string
    labelNames: [string]
    buckets: number[]
    registers: Registry[]
  }) {
    this.label = config.labelNames[0]
    this.bounds = Float64Array.from(config.buckets)
    this.histogram = new Histogram({ ...config, collect: () => this.fold() })
  }

  observe(labelValue: string, value: number): void {
    let child = this.children.get(labelValue)
    if (!child) {
      child = {
        labels: { [this.label]: labelValue },
        buckets: new Float64Array(this.bounds.length),
        sum: 0,
        count: 0,
        entry: undefined,
      }
      this.children.set(labelValue, child)
    }
    const bounds = this.bounds
    let i = 0
    while (i < bounds.length && value > bounds[i]!) i++
    if (i < bounds.length) child.buckets[i]!++
    child.sum += value
    child.count++
  }

  private fold(): void {
    const bounds = this.bounds
    for (const child of this.children.values()) {
      if (child.count === 0) continue
      const entry = child.entry ?? this.entryOf(child.labels)
      for (let i = 0; i < bounds.length; i++) {
        const n = child.buckets[i]!
        if (n !== 0) {
          entry.bucketValues[bounds[i]!]! += n
          child.buckets[i] = 0
        }
      }
      entry.sum += child.sum
      entry.count += child.count
      child.sum = 0
      child.count = 0
    }
  }

  private entryOf(labels: Record<string, string>): HistogramEntry {
    const map = (this.histogram as unknown as { hashMap: Record<string, HistogramEntry> }).hashMap
    this.histogram.zero(labels)
    for (const key in map) {
      const entry = map[key]!
      if (entry.labels !== labels) continue
      this.children.get(labels[this.label]!)!.entry = entry
      return entry
    }
    throw new Error(`prom-client kept no histogram entry for ${JSON.stringify(labels)}`)
  }
}

/**
 * Every metric of the gateway, behind named functions so that counting happens in one place. One Metrics
 * per process (tests make their own, so registries never collide). Label values are stream and sink names
 * from the config — never request data, so an attacker cannot grow the label space.
 *
 * Naming follows the Prometheus conventions: the gateway's own metrics start with `streamgate_`, counters
 * end in `_total` and nothing else does, units are in the name (`_bytes`, `_seconds`). The process and
 * Node.js metrics are prom-client's defaults under their standard names (`process_cpu_seconds_total`,
 * `nodejs_heap_size_used_bytes`, …), minus prom-client's three gauges that end in `_total`
 * (`nodejs_active_handles_total`, `…_requests_total`, `…_resources_total`): they are the sums of
 * `nodejs_active_handles`, `nodejs_active_requests` and `nodejs_active_resources` by type, which stay.
 */
export class Metrics {
  readonly registry = new Registry()

  private readonly received = new BoundCounter({
    name: 'streamgate_records_received_total',
    help: 'Records framed from ingest requests.',
    labelNames: ['stream'],
    registers: [this.registry],
  })
  private readonly accepted = new BoundCounter({
    name: 'streamgate_records_accepted_total',
    help: 'Records accepted for delivery.',
    labelNames: ['stream'],
    registers: [this.registry],
  })
  private readonly rejected = new BoundCounter({
    name: 'streamgate_records_rejected_total',
    help: 'Records not accepted, by reason (invalid, dropped, …).',
    labelNames: ['stream', 'reason'],
    registers: [this.registry],
  })
  private readonly filtered = new BoundCounter({
    name: 'streamgate_records_filtered_total',
    help: 'Records removed by stream filters.',
    labelNames: ['stream'],
    registers: [this.registry],
  })
  private readonly duplicates = new BoundCounter({
    name: 'streamgate_records_duplicate_total',
    help: 'Records dropped as duplicates by stream dedupe.',
    labelNames: ['stream'],
    registers: [this.registry],
  })
  private readonly requests = new BoundCounter({
    name: 'streamgate_ingest_requests_total',
    help: 'Ingest requests by stream and status code.',
    labelNames: ['stream', 'status'],
    registers: [this.registry],
  })
  private readonly clientAborts = new Counter({
    name: 'streamgate_ingest_client_aborts_total',
    help: 'Ingest requests the client closed before its body was complete (not answered, not counted in streamgate_ingest_requests_total).',
    labelNames: ['stream'],
    registers: [this.registry],
  })
  private readonly latency = new BoundHistogram({
    name: 'streamgate_ingest_request_duration_seconds',
    help: 'Ingest request latency, from the first byte read to the answer.',
    labelNames: ['stream'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20],
    registers: [this.registry],
  })
  private readonly httpResponses = new BoundCounter({
    name: 'streamgate_http_responses_total',
    help: 'HTTP answers by route group and status code.',
    labelNames: ['route', 'status'],
    registers: [this.registry],
  })
  /** Ingest requests being processed: a plain number per request, handed to prom-client when it collects. */
  private inFlightNow = 0
  private readonly inFlight = new Gauge({
    name: 'streamgate_ingest_in_flight_requests',
    help: 'Ingest requests being processed.',
    registers: [this.registry],
    collect: () => {
      this.inFlight.set(this.inFlightNow)
    },
  })
  private readonly delivered = new BoundCounter({
    name: 'streamgate_sink_records_delivered_total',
    help: 'Records a sink acknowledged.',
    labelNames: ['sink'],
    registers: [this.registry],
  })
  private readonly failed = new Counter({
    name: 'streamgate_sink_records_failed_total',
    help: 'Records a sink rejected permanently (sent to the dead-letter sink), by reason.',
    labelNames: ['sink', 'reason'],
    registers: [this.registry],
  })
  private readonly retried = new Counter({
    name: 'streamgate_sink_records_retried_total',
    help: 'Records sent again after a transient failure, by reason.',
    labelNames: ['sink', 'reason'],
    registers: [this.registry],
  })
  private readonly deadLettered = new Counter({
    name: 'streamgate_dead_letter_records_total',
    help: 'Records written to a dead-letter sink, by stream and reason.',
    labelNames: ['stream', 'reason'],
    registers: [this.registry],
  })
  private readonly sinkWrite = new BoundHistogram({
    name: 'streamgate_sink_write_duration_seconds',
    help: 'Duration of one sink write call.',
    labelNames: ['sink'],
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  })
  /** Read at scrape time from the spool (see `observeSpool`). */
  private spoolProvider: (() => SpoolFigures) | undefined
  private readonly spoolBytes = new Gauge({
    name: 'streamgate_spool_bytes',
    help: 'Bytes in the spool (all streams).',
    registers: [this.registry],
    collect: () => {
      const figures = this.spoolProvider?.()
      if (figures) this.spoolBytes.set(figures.bytes)
    },
  })
  private readonly spoolCapacity = new Gauge({
    name: 'streamgate_spool_capacity_bytes',
    help: 'Bytes the spool may hold (spool.maxBytes); ingest answers 503 when streamgate_spool_bytes reaches it.',
    registers: [this.registry],
    collect: () => {
      const figures = this.spoolProvider?.()
      if (figures) this.spoolCapacity.set(figures.capacityBytes)
    },
  })
  private readonly laneLag = new Gauge({
    name: 'streamgate_sink_lag_records',
    help: 'Records in the spool not yet delivered, per stream and sink (lane).',
    labelNames: ['stream', 'sink'],
    registers: [this.registry],
    collect: () => {
      const figures = this.spoolProvider?.()
      if (!figures) return
      this.laneLag.reset()
      for (const l of figures.lanes) this.laneLag.set({ stream: l.stream, sink: l.sink }, l.lag)
    },
  })
  private readonly corruptFrames = new Counter({
    name: 'streamgate_spool_corrupt_frames_total',
    help: 'Spool frames skipped at recovery or read because their checksum failed.',
    labelNames: ['stream'],
    registers: [this.registry],
  })
  private readonly truncatedBytes = new Counter({
    name: 'streamgate_spool_truncated_bytes_total',
    help: 'Bytes cut from a torn spool tail at recovery.',
    labelNames: ['stream'],
    registers: [this.registry],
  })
  private readonly spoolFull = new Counter({
    name: 'streamgate_spool_full_total',
    help: 'Ingest requests refused because the spool was full: at maxBytes, or refused by admission control (see streamgate_admission_refused_total).',
    labelNames: ['stream'],
    registers: [this.registry],
  })
  /** 1/0 per sink, set per delivery as a plain number and handed to prom-client when it collects. */
  private readonly sinkUpNow = new Map<string, number>()
  readonly sinkUp = new Gauge({
    name: 'streamgate_sink_up',
    help: '1 when the last delivery attempt of the sink succeeded, 0 when it is failing.',
    labelNames: ['sink'],
    registers: [this.registry],
    aggregator: 'min', // workers (src/cluster/): 0 when any worker's delivery fails
    collect: () => {
      for (const [sink, up] of this.sinkUpNow) this.sinkUp.set({ sink }, up)
    },
  })

  private readonly circuitOpen = new Gauge({
    name: 'streamgate_sink_circuit_open',
    help: "1 while the sink's circuit breaker is open or half-open (its lanes wait instead of writing), else 0.",
    labelNames: ['sink'],
    registers: [this.registry],
    aggregator: 'max',
  })
  private readonly circuitOpened = new Counter({
    name: 'streamgate_sink_circuit_opened_total',
    help: "Times the sink's circuit breaker opened (after consecutive failures, or a failed half-open probe).",
    labelNames: ['sink'],
    registers: [this.registry],
  })
  private readonly rebalances = new Counter({
    name: 'streamgate_cluster_rebalances_total',
    help: "Deliver role: times this node joined a sink's consumer group with a new assignment (a rebalance: a node came, went or was restarted).",
    labelNames: ['group'],
    registers: [this.registry],
  })
  private readonly authFailures = new Counter({
    name: 'streamgate_sink_auth_failures_total',
    help: 'Sink writes the destination refused for its credentials (401/403, token refused); the records are kept and retried, never dead-lettered.',
    labelNames: ['sink'],
    registers: [this.registry],
  })

  /** Read at scrape time from the gateway (see `observeHealth`). */
  private healthProvider: (() => { stream: string; degraded: boolean }[]) | undefined
  private readonly streamDegraded = new Gauge({
    name: 'streamgate_stream_degraded',
    help: "1 while a stream is degraded (a sink's circuit open, a lane stalled or falling behind; see its health in the API), else 0.",
    labelNames: ['stream'],
    registers: [this.registry],
    aggregator: 'max',
    collect: () => {
      const streams = this.healthProvider?.()
      if (!streams) return
      this.streamDegraded.reset()
      for (const s of streams) this.streamDegraded.set({ stream: s.stream }, s.degraded ? 1 : 0)
    },
  })

  /** Read at scrape time from the gateway's admission control (see `observeAdmission`). */
  private admissionProvider: (() => AdmissionFigures) | undefined
  private readonly admissionRefusing = new Gauge({
    name: 'streamgate_admission_refusing',
    help: 'Admission control: 1 while new ingest requests of the stream are refused (503) before their body is read, by reason (high-water: the spool is above spool.highWaterBytes until under spool.lowWaterBytes; lag-budget: a lane is over spool.maxLagSeconds), else 0.',
    labelNames: ['stream', 'reason'],
    registers: [this.registry],
    collect: () => {
      const figures = this.admissionProvider?.()
      if (!figures) return
      this.admissionRefusing.reset()
      for (const s of figures.streams)
        for (const reason of ['high-water', 'lag-budget'] as const)
          this.admissionRefusing.set({ stream: s.stream, reason }, s.refusing.includes(reason) ? 1 : 0)
    },
  })
  private readonly admissionHeld = new Gauge({
    name: 'streamgate_admission_held_requests',
    help: 'Ingest requests of a backpressure: pause stream waiting, body unread, for admission control to let them in (at most spool.maxPauseMs, then refused).',
    labelNames: ['stream'],
    registers: [this.registry],
    collect: () => {
      const figures = this.admissionProvider?.()
      if (!figures) return
      this.admissionHeld.reset()
      for (const s of figures.streams) this.admissionHeld.set({ stream: s.stream }, s.held)
    },
  })
  private readonly admissionRefusals = new Counter({
    name: 'streamgate_admission_refused_total',
    help: 'Ingest requests refused by admission control (503 before the body is read), by reason.',
    labelNames: ['stream', 'reason'],
    registers: [this.registry],
  })
  private readonly abandonedHeld = new BoundCounter({
    name: 'streamgate_admission_abandoned_requests_total',
    help: 'Ingest requests of a backpressure: pause stream let go while held because their client closed the connection (never admitted nor refused).',
    labelNames: ['stream'],
    registers: [this.registry],
  })
  private readonly spoolHighWater = new Gauge({
    name: 'streamgate_spool_high_water_bytes',
    help: 'Admission control: above this many spool bytes new ingest requests are refused (spool.highWaterBytes).',
    registers: [this.registry],
    collect: () => {
      const figures = this.admissionProvider?.()
      if (figures) this.spoolHighWater.set(figures.highWaterBytes)
    },
  })
  private readonly spoolLowWater = new Gauge({
    name: 'streamgate_spool_low_water_bytes',
    help: 'Admission control: once refusing, requests are accepted again at or below this many spool bytes (spool.lowWaterBytes).',
    registers: [this.registry],
    collect: () => {
      const figures = this.admissionProvider?.()
      if (figures) this.spoolLowWater.set(figures.lowWaterBytes)
    },
  })
  private readonly laneLagSeconds = new Gauge({
    name: 'streamgate_sink_lag_seconds',
    help: "A lane's lag in seconds of its recent delivery rate (what spool.maxLagSeconds limits), per stream and sink; absent while the lane has no measured rate.",
    labelNames: ['stream', 'sink'],
    registers: [this.registry],
    collect: () => {
      const figures = this.admissionProvider?.()
      if (!figures) return
      this.laneLagSeconds.reset()
      for (const l of figures.lanes)
        this.laneLagSeconds.set({ stream: l.stream, sink: l.sink }, Math.round(l.lagSeconds * 1000) / 1000)
    },
  })

  private readonly buildInfo = new Gauge({
    name: 'streamgate_build_info',
    help: 'Always 1; the labels say which streamgate version runs on which Node.js.',
    labelNames: ['version', 'node'],
    registers: [this.registry],
    aggregator: 'first',
  })

  private readonly schemaDriftRecords = new Counter({
    name: 'streamgate_schema_drift_records_total',
    help: "Records carrying fields the stream's schema or template does not know (kind unknown), or lacking fields it expects (kind missing); estimated from a sample once a stream's drift is learnt (GET /api/v1/streams/{id}/drift).",
    labelNames: ['stream', 'kind'],
    registers: [this.registry],
  })

  constructor(options: { defaultMetrics?: boolean } = {}) {
    this.buildInfo.set({ version: VERSION, node: process.version }, 1)
    if (options.defaultMetrics !== false) {
      collectDefaultMetrics({ register: this.registry })
      for (const metric of this.registry.getMetricsAsArray())
        if (metric instanceof Gauge && metric.name.endsWith('_total'))
          this.registry.removeSingleMetric(metric.name)
    }
  }

  ingestCounts(
    stream: string,
    counts: {
      received: number
      accepted: number
      filtered: number
      duplicates: number
      rejected: Record<string, number>
    },
  ): void {
    if (counts.received) this.received.inc(stream, undefined, counts.received)
    if (counts.accepted) this.accepted.inc(stream, undefined, counts.accepted)
    if (counts.filtered) this.filtered.inc(stream, undefined, counts.filtered)
    if (counts.duplicates) this.duplicates.inc(stream, undefined, counts.duplicates)
    for (const reason in counts.rejected) {
      const n = counts.rejected[reason]
      if (n) this.rejected.inc(stream, reason, n)
    }
  }

  ingestAnswered(stream: string, status: number, seconds: number): void {
    this.requests.inc(stream, status)
    this.latency.observe(stream, seconds)
  }

  httpAnswered(route: string, status: number): void {
    this.httpResponses.inc(route, status)
  }

  /** The client closed the connection before its body was complete: nobody receives an answer. */
  ingestAborted(stream: string): void {
    this.clientAborts.inc({ stream })
  }

  inFlightChanged(delta: number): void {
    this.inFlightNow += delta
  }

  sinkDelivered(sink: string, records: number, seconds: number): void {
    if (records) this.delivered.inc(sink, undefined, records)
    this.sinkWrite.observe(sink, seconds)
    this.sinkUpNow.set(sink, 1)
  }

  sinkFailed(sink: string, reason: string, records: number): void {
    this.failed.inc({ sink, reason }, records)
  }

  sinkRetried(sink: string, reason: string, records: number): void {
    this.retried.inc({ sink, reason }, records)
    this.sinkUpNow.set(sink, 0)
  }

  sinkAuthFailed(sink: string): void {
    this.authFailures.inc({ sink })
  }

  sinkCircuit(sink: string, state: 'closed' | 'open' | 'half-open'): void {
    this.circuitOpen.set({ sink }, state === 'closed' ? 0 : 1)
    if (state === 'open') this.circuitOpened.inc({ sink })
  }

  /** Deliver role (src/roles/deliver.ts): a consumer group of this node rebalanced. */
  clusterRebalanced(group: string): void {
    this.rebalances.inc({ group })
  }

  deadLetter(stream: string, reason: string, records: number): void {
    if (records) this.deadLettered.inc({ stream, reason }, records)
  }

  /** Field names never become labels: the drift report names them (bounded cardinality). */
  schemaDrift(stream: string, unknownRecords: number, missingRecords: number): void {
    if (unknownRecords) this.schemaDriftRecords.inc({ stream, kind: 'unknown' }, unknownRecords)
    if (missingRecords) this.schemaDriftRecords.inc({ stream, kind: 'missing' }, missingRecords)
  }

  observeSpool(provider: () => SpoolFigures): void {
    this.spoolProvider = provider
  }

  observeAdmission(provider: () => AdmissionFigures): void {
    this.admissionProvider = provider
  }

  /** An admission refusal is a spool-full answer too: counted in both. */
  admissionRefused(stream: string, reason: AdmissionReason): void {
    this.admissionRefusals.inc({ stream, reason })
    this.spoolFull.inc({ stream })
  }

  /** A held request whose client closed the connection (src/pipeline/admission.ts). */
  admissionAbandoned(stream: string): void {
    this.abandonedHeld.inc(stream)
  }

  observeHealth(provider: () => { stream: string; degraded: boolean }[]): void {
    this.healthProvider = provider
  }

  spoolRecovered(stream: string, corruptFrames: number, truncatedBytes: number): void {
    if (corruptFrames) this.corruptFrames.inc({ stream }, corruptFrames)
    if (truncatedBytes) this.truncatedBytes.inc({ stream }, truncatedBytes)
  }

  spoolRefused(stream: string): void {
    this.spoolFull.inc({ stream })
  }

  /** What /metrics answers: this registry, or the cluster's sum (renderWith, src/cluster/worker.ts). */
  async render(): Promise<{ contentType: string; body: string }> {
    if (this.renderer) return this.renderer()
    return { contentType: this.registry.contentType, body: await this.registry.metrics() }
  }

  private renderer: (() => Promise<{ contentType: string; body: string }>) | undefined

  /** A cluster worker answers /metrics with every worker's metrics aggregated by the primary. */
  renderWith(renderer: () => Promise<{ contentType: string; body: string }>): void {
    this.renderer = renderer
  }
}
