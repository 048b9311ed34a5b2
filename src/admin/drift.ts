import type { Hono } from 'hono'
import { problem } from '../errors.js'
import type { Gateway } from '../pipeline/gateway.js'
import type { DriftReport } from '../pipeline/drift.js'
import type { StreamRuntime } from '../pipeline/stream.js'

// GET /api/v1/streams/{id}/drift and POST /api/v1/streams/{id}/drift/reset: the stream's schema drift report
// (src/pipeline/drift.ts). Registered by managementRoutes behind its bearer token.

export type DriftView = { stream: string } & DriftReport

/** The stream list's one-line summary (also what the status page shows). */
export interface DriftSummary {
  tracking: boolean
  unknownFields: number
  missingFields: number
  unknownRecords: number
  missingRecords: number
}

export const DRIFT_PATHS = {
  '/streams/:id/drift': 'GET',
  '/streams/:id/drift/reset': 'POST',
} as const

export function driftRoutes(app: Hono, gateway: Gateway): void {
  app.get('/streams/:id/drift', (c) => {
    const id = c.req.param('id')
    return c.json(driftView(id, runtimeOf(gateway, id)))
  })
  app.post('/streams/:id/drift/reset', (c) => {
    const id = c.req.param('id')
    const runtime = runtimeOf(gateway, id)
    runtime.drift.reset(Date.now())
    return c.json(driftView(id, runtime))
  })
}

export function driftSummary(runtime: StreamRuntime | undefined): DriftSummary {
  if (!runtime)
    return { tracking: false, unknownFields: 0, missingFields: 0, unknownRecords: 0, missingRecords: 0 }
  const report = runtime.drift.report()
  return {
    tracking: report.tracking,
    unknownFields: report.fields.filter((f) => f.kind === 'unknown').length,
    missingFields: report.fields.filter((f) => f.kind === 'missing').length,
    unknownRecords: report.unknownRecords,
    missingRecords: report.missingRecords,
  }
}

function driftView(id: string, runtime: StreamRuntime): DriftView {
  return { stream: id, ...runtime.drift.report() }
}

function runtimeOf(gateway: Gateway, id: string): StreamRuntime {
  const runtime = Object.hasOwn(gateway.config.streams, id) ? gateway.topology.stream(id) : undefined
  if (!runtime) throw problem('unknown-stream', `no stream ${JSON.stringify(id)} is configured`)
  return runtime
}
