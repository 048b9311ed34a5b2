import type { Context } from 'hono'
import type { GatewayConfig, SinkConfig, StreamConfig } from '../config/types.js'
import {
  DEFAULT_DEAD_LETTER_SINK,
  type Gateway,
  type StreamCounts,
  type StreamHealth,
} from '../pipeline/gateway.js'
import type { AdmissionView } from '../pipeline/admission.js'
import type { DeliveryLane } from '../pipeline/lane.js'
import { DEAD_LETTER_LANE } from '../spool/spool.js'
import { driftSummary, type DriftSummary } from './drift.js'
import { statusObject, type Lookup } from './lookups.js'
import { masked } from './secrets.js'

// What the management API answers: the stored object (secrets masked) plus live figures. Stream status is
// rendered as emnify does: {"id": 1, "description": "Running"}.

export interface LaneFigures {
  sink: string
  /** true for the stream's dead-letter lane. */
  deadLetter: boolean
  /** Records delivered since the lane started (process start or the last change of the stream or sink). */
  delivered: number
  /** Records in the spool this lane has not delivered yet. */
  lag: number
  lastError: { message: string; reason: string; at: string } | null
  /**
   * Present only while the sink's circuit breaker is not closed: the lane waits instead of writing until
   * `retryAt` (open), or until the one probe attempt succeeds (half-open).
   */
  circuit?: { state: 'open' | 'half-open'; failures: number; retryAt?: string }
}

/** The lane's figures; `circuit` only while the breaker is open or half-open (keys stay stable otherwise). */
function laneFigures(lane: DeliveryLane): LaneFigures {
  const figures: LaneFigures = {
    sink: lane.sinkName,
    deadLetter: lane.laneName === DEAD_LETTER_LANE,
    delivered: lane.delivered,
    lag: lane.lag,
    lastError: lane.lastError ? { ...lane.lastError } : null,
  }
  const circuit = circuitFigures(lane)
  if (circuit) figures.circuit = circuit
  return figures
}

/** The sink's circuit breaker (shared by its lanes) while it is open or half-open; undefined when closed. */
function circuitFigures(lane: DeliveryLane): LaneFigures['circuit'] {
  const c = lane.circuit
  if (c.state === 'closed') return undefined
  return {
    state: c.state,
    failures: c.failures,
    ...(c.retryAt !== undefined ? { retryAt: new Date(c.retryAt).toISOString() } : {}),
  }
}

export type StreamView = { id: string } & Omit<StreamConfig, 'status'> & {
    status: Lookup<number>
    inletUrl: string
    figures: StreamCounts
    delivery: LaneFigures[]
    lastError: { sink: string; reason: string; message: string; at: string } | null
    /** Apart from the status: "degraded" while a sink's circuit is open or a lane keeps falling behind. */
    health: StreamHealth
    drift: DriftSummary
    /** Admission control: whether new requests are refused before their body is read, and why. */
    admission: AdmissionView
  }

export type SinkView = { name: string } & SinkConfig & {
    /** `circuit` only while the sink's breaker is open or half-open. */
    figures: { delivered: number; lag: number; circuit?: LaneFigures['circuit'] }
    lastError: { stream: string; message: string; reason: string; at: string } | null
    usedBy: string[]
  }

/** `config` is the config the answer is about (a write's result; a later write may have changed it since). */
export function streamView(
  gateway: Gateway,
  config: GatewayConfig,
  id: string,
  inletBase: string,
): StreamView {
  const stream = config.streams[id]!
  const state = gateway.states.get(id)
  const { status, ...rest } = masked(stream)
  return {
    id,
    ...rest,
    status: statusObject(state?.status ?? status),
    inletUrl: `${inletBase}/ingest/${encodeURIComponent(id)}`,
    figures: { ...(state?.counts ?? { received: 0, accepted: 0, rejected: 0, filtered: 0, duplicates: 0 }) },
    delivery: gateway.topology.lanesOf(id).map(laneFigures),
    lastError: state?.lastError ? { ...state.lastError } : null,
    health: gateway.states.health(id),
    drift: driftSummary(gateway.topology.stream(id)),
    admission: gateway.admission.view(id),
  }
}

export function sinkView(gateway: Gateway, config: GatewayConfig, name: string): SinkView {
  const sink = config.sinks[name]!
  let delivered = 0
  let lag = 0
  let lastError: SinkView['lastError'] = null
  let circuit: LaneFigures['circuit']
  for (const [stream, lanes] of gateway.topology.lanes())
    for (const lane of lanes) {
      if (lane.sinkName !== name) continue
      circuit ??= circuitFigures(lane)
      delivered += lane.delivered
      lag += lane.lag
      if (lane.lastError && (!lastError || lane.lastError.at > lastError.at))
        lastError = { stream, ...lane.lastError }
    }
  return {
    name,
    ...masked(sink),
    figures: circuit ? { delivered, lag, circuit } : { delivered, lag },
    lastError,
    usedBy: streamsUsing(config, name),
  }
}

/** Streams that deliver to the sink or use it as their dead-letter sink (by default, "dead-letter"). */
export function streamsUsing(config: GatewayConfig, sink: string): string[] {
  return Object.entries(config.streams)
    .filter(([, s]) => s.sinks.includes(sink) || (s.deadLetter ?? DEFAULT_DEAD_LETTER_SINK) === sink)
    .map(([id]) => id)
}

/**
 * The base URL vendors reach this gateway at: server.publicUrl, else what the request came in on
 * (X-Forwarded-Proto / X-Forwarded-Host behind a proxy, else Host). When the API has a listener of its own
 * (admin.listen, `ingestPort` given), the request says only the host name: the scheme and port are the
 * ingest listener's (server.tls, its port).
 */
export function inletBase(c: Context, server: GatewayConfig['server'], ingestPort?: number): string {
  if (server.publicUrl) return server.publicUrl.replace(/\/+$/, '')
  const first = (name: string): string | undefined => c.req.header(name)?.split(',')[0]?.trim()
  const forwardedProto = first('x-forwarded-proto')?.toLowerCase()
  const ownScheme = server.tls ? 'https' : 'http'
  const host = [first('x-forwarded-host'), c.req.header('host')].find(
    (h): h is string => h !== undefined && /^[A-Za-z0-9.:[\]-]+$/.test(h),
  )
  if (ingestPort !== undefined) {
    const name = host === undefined ? 'localhost' : (/^(\[[^\]]*\]|[^:]*)/.exec(host)?.[1] ?? 'localhost')
    return `${ownScheme}://${name}:${ingestPort}`
  }
  const proto = forwardedProto === 'http' || forwardedProto === 'https' ? forwardedProto : ownScheme
  return `${proto}://${host ?? `localhost:${server.port}`}`
}
