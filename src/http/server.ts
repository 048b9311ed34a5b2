import { readFileSync } from 'node:fs'
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { getRequestListener } from '@hono/node-server'
import type { ServerConfig } from '../config/types.js'
import type { Metrics } from '../telemetry/metrics.js'
import type { IngestHandler } from './ingest.js'

// The listener. /ingest/* goes straight from node:http to the ingest handler: hono's Request/Response
// conversion costs 25–35 % on small requests (SPEC section 10), and ingest is the hot path. Everything else
// (health, metrics, the management API, the status page) goes through the hono app.

export interface RunningServer {
  server: Server
  port: number
  /** Stops accepting, lets in-flight requests finish (up to `timeoutMs`), then closes remaining sockets. */
  close(timeoutMs: number): Promise<void>
}

const INGEST_PREFIX = '/ingest/'

export function createListener(
  app: { fetch: (request: Request, env: never) => Response | Promise<Response> },
  ingest: IngestHandler,
  metrics: Metrics,
): (req: IncomingMessage, res: ServerResponse) => void {
  const honoListener = getRequestListener(app.fetch as Parameters<typeof getRequestListener>[0])
  return (req, res) => {
    const url = req.url ?? '/'
    if (url.startsWith(INGEST_PREFIX)) {
      handleIngest(req, res, url, ingest, metrics)
      return
    }
    void honoListener(req, res)
  }
}

/** The admin and metrics listeners (admin.listen, metrics.listen): no ingest path, all through the app. */
export function createAppListener(app: {
  fetch: (request: Request, env: never) => Response | Promise<Response>
}): (req: IncomingMessage, res: ServerResponse) => void {
  const honoListener = getRequestListener(app.fetch as Parameters<typeof getRequestListener>[0])
  return (req, res) => void honoListener(req, res)
}

function handleIngest(
  req: IncomingMessage,
  res: ServerResponse,
  url: string,
  ingest: IngestHandler,
  metrics: Metrics,
): void {
  const q = url.indexOf('?')
  const rawId = url.slice(INGEST_PREFIX.length, q < 0 ? undefined : q)
  let streamId: string
  try {
    streamId = decodeURIComponent(rawId)
  } catch {
    streamId = rawId
  }
  if (streamId.includes('/')) streamId = '\u0000' // never a configured id: answers 404
  ingest
    .handle({
      streamId,
      method: req.method ?? 'GET',
      headers: req.headers,
      remoteAddress: req.socket.remoteAddress,
      body: req,
    })
    .then(
      (answer) => {
        if (!answer.aborted) metrics.httpAnswered('ingest', answer.status)
        if (res.destroyed) return
        res.writeHead(answer.status, { ...answer.headers, 'content-length': Buffer.byteLength(answer.body) })
        res.end(answer.body)
        // A body left unread (413 on Content-Length, 401 before reading) must not be parsed as the next request.
        if (!req.complete) req.resume()
      },
      (err: unknown) => {
        // handle() maps every error to an answer; reaching this is a bug. Do not leave the client hanging.
        metrics.httpAnswered('ingest', 500)
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/problem+json' })
        res.end(
          JSON.stringify({ type: 'about:blank', title: 'Internal error', status: 500, detail: String(err) }),
        )
      },
    )
}

export async function startServer(
  config: ServerConfig,
  listener: (req: IncomingMessage, res: ServerResponse) => void,
  portOverride?: number,
): Promise<RunningServer> {
  const options = {
    requestTimeout: config.requestTimeoutMs,
    keepAliveTimeout: config.keepAliveTimeoutMs,
    headersTimeout: Math.min(config.requestTimeoutMs, 60_000),
  }
  const server: Server = config.tls
    ? createHttpsServer(
        { ...options, cert: readFileSync(config.tls.certFile), key: readFileSync(config.tls.keyFile) },
        listener,
      )
    : createHttpServer(options, listener)
  server.keepAliveTimeout = config.keepAliveTimeoutMs
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(portOverride ?? config.port, config.host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const port = (server.address() as AddressInfo).port
  return {
    server,
    port,
    close: (timeoutMs) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.closeAllConnections()
        }, timeoutMs)
        timer.unref()
        server.close(() => {
          clearTimeout(timer)
          resolve()
        })
        // Idle keep-alive sockets would hold close() open until they time out.
        server.closeIdleConnections()
      }),
  }
}
