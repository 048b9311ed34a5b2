import type { Gateway, StreamCounts } from '../pipeline/gateway.js'
import { DEAD_LETTER_LANE } from '../spool/spool.js'

// The management API's live figures over every worker (src/cluster/worker.ts). The leader answers the API
// from its own gateway; for a GET of streams or sinks it adds the other workers' figures (gatewayFigures,
// gathered through the primary) to the answer's: a stream's counts, each lane's delivered and lag, a sink's
// delivered and lag. Last errors, health and drift stay the leader's.

export interface LaneFigures {
  sink: string
  deadLetter: boolean
  delivered: number
  lag: number
}

export interface WorkerFigures {
  streams: Record<string, { counts: StreamCounts; lanes: LaneFigures[] }>
}

export function gatewayFigures(gateway: Gateway): WorkerFigures {
  const streams: WorkerFigures['streams'] = {}
  for (const [id, lanes] of gateway.topology.lanes())
    streams[id] = {
      counts: { ...(gateway.states.get(id)?.counts ?? zero()) },
      lanes: lanes.map((lane) => ({
        sink: lane.sinkName,
        deadLetter: lane.laneName === DEAD_LETTER_LANE,
        delivered: lane.delivered,
        lag: lane.lag,
      })),
    }
  return { streams }
}

function zero(): StreamCounts {
  return { received: 0, accepted: 0, rejected: 0, filtered: 0, duplicates: 0 }
}

/** The API paths whose answers carry live figures: /api/v1/streams[/id], /api/v1/sinks[/name]. */
export function carriesFigures(method: string, path: string): boolean {
  return method === 'GET' && /^\/api\/v1\/(streams|sinks)(\/[^/]+)?\/?$/.test(path)
}

/** Adds the other workers' figures to a stream view, a sink view, or a list of either (in place). */
export function addFigures(body: unknown, peers: readonly WorkerFigures[]): unknown {
  if (Array.isArray(body)) {
    for (const item of body) addFigures(item, peers)
    return body
  }
  if (typeof body !== 'object' || body === null) return body
  const view = body as Record<string, unknown>
  const figures = view.figures as Record<string, number> | undefined
  if (typeof figures !== 'object' || figures === null) return body
  if (typeof view.id === 'string' && Array.isArray(view.delivery)) {
    const delivery = view.delivery as LaneFigures[]
    for (const peer of peers) {
      const stream = peer.streams[view.id]
      if (!stream) continue
      for (const key of Object.keys(stream.counts) as (keyof StreamCounts)[])
        if (typeof figures[key] === 'number') figures[key] += stream.counts[key]
      for (const lane of stream.lanes) {
        const same = delivery.find((d) => d.sink === lane.sink && d.deadLetter === lane.deadLetter)
        if (!same) continue
        same.delivered += lane.delivered
        same.lag += lane.lag
      }
    }
  } else if (typeof view.name === 'string' && Array.isArray(view.usedBy)) {
    for (const peer of peers)
      for (const stream of Object.values(peer.streams))
        for (const lane of stream.lanes) {
          if (lane.sink !== view.name) continue
          figures.delivered = (figures.delivered ?? 0) + lane.delivered
          figures.lag = (figures.lag ?? 0) + lane.lag
        }
  }
  return body
}
