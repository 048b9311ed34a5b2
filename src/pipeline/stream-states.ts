import type { StreamStatusId } from '../config/types.js'
import type { SinkError } from '../errors.js'
import { DEAD_LETTER_LANE } from '../spool/spool.js'
import type { StreamCounts } from './ingest-entry.js'
import { LagTrend } from './lag-trend.js'
import type { DeliveryLane } from './lane.js'

// Per-stream state: status (emnify's 1–4), last sink error, live counts, and health from the lanes' lag
// trends. Read by the management API, the status page, metrics and workers' figures.

/** emnify's data-stream statuses [EM-STATUS]. */
export const STREAM_STATUSES: Readonly<Record<StreamStatusId, string>> = {
  1: 'Running',
  2: 'Paused',
  3: 'Error',
  4: 'Pending',
}

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

/** What health reads of the running topology. */
export interface LaneSource {
  /** Every stream's delivery lanes (the dead-letter lane last). */
  lanes(): Iterable<readonly [string, readonly DeliveryLane[]]>
  lanesOf(stream: string): readonly DeliveryLane[]
  /** The sink's linger (a lane's lag may grow by that much without falling behind). */
  lingerMs(sink: string): number
}

function seconds(ms: number): number {
  return Math.round(ms / 100) / 10
}

export function zeroCounts(): StreamCounts {
  return { received: 0, accepted: 0, rejected: 0, filtered: 0, duplicates: 0 }
}

export class StreamStates {
  private readonly states = new Map<string, StreamState>()
  /** Each lane's lag samples (a replaced lane starts a new history). */
  private readonly trends = new WeakMap<DeliveryLane, LagTrend>()

  constructor(
    private readonly topology: LaneSource,
    /** The health window (config `health.lagWindowMs`), read at each new lane. */
    private readonly lagWindowMs: () => number,
  ) {}

  /** A stream is configured: Pending (4) until its lanes start; an existing state (counts) is kept. */
  add(stream: string): void {
    if (!this.states.has(stream)) this.states.set(stream, { status: 4, counts: zeroCounts() })
  }

  /** Its lanes started: Pending becomes the configured status (Running unless Paused). */
  started(stream: string, configured: StreamStatusId): void {
    const state = this.states.get(stream)
    if (state?.status === 4) state.status = configured === 4 ? 1 : configured
  }

  remove(stream: string): void {
    this.states.delete(stream)
  }

  get(stream: string): StreamState | undefined {
    return this.states.get(stream)
  }

  isPaused(stream: string): boolean {
    return this.states.get(stream)?.status === 2
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

  /** A sink refused the stream's records for good: its last error, and Running becomes Error (3). */
  markError(stream: string, sink: string, error: SinkError): void {
    const state = this.states.get(stream)
    if (!state) return
    state.lastError = { sink, reason: error.reason, message: error.message, at: new Date().toISOString() }
    if (state.status === 1) state.status = 3
  }

  /** Samples every lane's lag for the trend check; a paused stream's lanes start over when resumed. */
  sampleLags(now: number): void {
    for (const [stream, lanes] of this.topology.lanes()) {
      const paused = this.isPaused(stream)
      for (const lane of lanes) {
        let trend = this.trends.get(lane)
        if (!trend) {
          trend = new LagTrend(this.lagWindowMs() + this.topology.lingerMs(lane.sinkName))
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
    for (const lane of this.topology.lanesOf(stream)) {
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
}
