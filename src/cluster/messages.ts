import type { Registry } from 'prom-client'
import type { GatewayConfig } from '../config/types.js'
import type { WorkerFigures } from './figures.js'

// The messages between a cluster's primary and its workers (node:cluster IPC, JSON). Every message of
// ours carries `sg`.

/** One metric of prom-client's `Registry.getMetricsAsJSON()`, what `AggregatorRegistry.aggregate` takes. */
export type MetricJson = Awaited<ReturnType<Registry['getMetricsAsJSON']>>[number]

/** An HTTP request or answer as it crosses the IPC channel (bodies base64). */
export interface WireRequest {
  method: string
  url: string
  headers: [string, string][]
  body?: string
  remoteAddress: string
}

export interface WireResponse {
  status: number
  headers: [string, string][]
  body: string
}

export type ToPrimary =
  /** The worker listens; `port` is the ingest port. */
  | { sg: 'ready'; port: number }
  /** A worker other than the leader asks the leader to answer a management request. */
  | { sg: 'forward'; id: number; request: WireRequest }
  /** The leader's answer to a forwarded request (`id` is the primary's). */
  | { sg: 'forwarded'; id: number; response: WireResponse }
  /** /metrics: every worker's metrics, aggregated by the primary. */
  | { sg: 'metrics'; id: number }
  /** The leader applied a management write; every other worker applies it too. */
  | { sg: 'broadcast'; change: Change }
  /** The leader asks for the other workers' live figures (src/cluster/figures.ts). */
  | { sg: 'figures'; id: number }
  /** A worker's answer to the primary's `figures` question. */
  | { sg: 'figures-reply'; id: number; figures: WorkerFigures }
  /** A worker's answer to the primary's `metrics-ask`: its registry as prom-client's JSON. */
  | { sg: 'metrics-reply'; id: number; metrics: MetricJson[] }

export type ToWorker =
  | { sg: 'forward'; id: number; request: WireRequest }
  | { sg: 'forwarded'; id: number; response: WireResponse }
  | { sg: 'metrics'; id: number; contentType: string; body: string; error?: string }
  | { sg: 'apply'; change: Change }
  /** The primary asks a worker for its figures (answer: figures-reply with the same id). */
  | { sg: 'figures-ask'; id: number }
  /** The other workers' figures, for the leader. */
  | { sg: 'figures'; id: number; figures: WorkerFigures[] }
  /** The primary asks a ready worker for its metrics (answer: metrics-reply with the same id). */
  | { sg: 'metrics-ask'; id: number }

/** What the leader's management API changed: a new config, or a stream's live status. */
export type Change = { config: GatewayConfig } | { stream: string; status: 1 | 2 }

export function isOurs(message: unknown): message is { sg: string } {
  return (
    typeof message === 'object' && message !== null && typeof (message as { sg?: unknown }).sg === 'string'
  )
}

export async function toWire(request: Request, remoteAddress: string): Promise<WireRequest> {
  const body = request.body ? Buffer.from(await request.arrayBuffer()) : undefined
  return {
    method: request.method,
    url: request.url,
    headers: [...request.headers.entries()],
    ...(body ? { body: body.toString('base64') } : {}),
    remoteAddress,
  }
}

export function fromWire(request: WireRequest): Request {
  return new Request(request.url, {
    method: request.method,
    headers: request.headers,
    ...(request.body !== undefined ? { body: Buffer.from(request.body, 'base64') } : {}),
  })
}

export async function responseToWire(response: Response): Promise<WireResponse> {
  return {
    status: response.status,
    headers: [...response.headers.entries()],
    body: Buffer.from(await response.arrayBuffer()).toString('base64'),
  }
}

export function responseFromWire(response: WireResponse): Response {
  const nullBody = response.status === 204 || response.status === 304
  return new Response(nullBody ? null : Buffer.from(response.body, 'base64'), {
    status: response.status,
    headers: response.headers,
  })
}
