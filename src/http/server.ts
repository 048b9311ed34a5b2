import { readFileSync } from 'node:fs'
import {
  createServer as createHttpServer,
  STATUS_CODES,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { AddressInfo, Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { getRequestListener, RequestError } from '@hono/node-server'
import type { ServerConfig } from '../config/types.js'
import { problem, ProblemError } from '../errors.js'
import { logAccess, requestIdOf, type Logger, type RefusalLog } from '../telemetry/logger.js'
import type { Metrics } from '../telemetry/metrics.js'
import { problemAnswer, type HttpAnswer, type IngestHandler } from './ingest.js'

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

/** What the listener logs besides errors. */
export interface ListenerLogs {
  /** Refused ingest requests, one rate-limited line each. */
  refusals?: RefusalLog
  /** With `log.access: true`: one line per request on every route. */
  access?: Logger
}

export function createListener(
  app: { fetch: (request: Request, env: never) => Response | Promise<Response> },
  ingest: IngestHandler,
  metrics: Metrics,
  logs: ListenerLogs = {},
  options: { maxConnections?: number } = {},
): (req: IncomingMessage, res: ServerResponse) => void {
  const lingering: Lingering = { count: 0, max: lingerLimit(options.maxConnections ?? 1024) }
  const honoListener = getRequestListener(app.fetch as Parameters<typeof getRequestListener>[0], {
    errorHandler: adapterErrorAnswer,
  })
  const route = (req: IncomingMessage, res: ServerResponse): void => {
    const url = req.url ?? '/'
    if (url.startsWith(INGEST_PREFIX)) {
      handleIngest(req, res, url, ingest, metrics, logs.refusals, lingering)
      return
    }
    continueNow(req, res)
    void honoListener(req, res)
  }
  return logs.access ? withAccessLog(route, logs.access) : route
}

/**
 * The stream id of an ingest path: `/ingest/<id>` and `/ingest/<id>/` are the same stream, the query
 * string is ignored, percent-escapes are decoded. Anything else after the id (`/ingest/a/b`) stays in it,
 * so the 404 names exactly what was asked for.
 */
export function ingestStreamId(url: string): string {
  const q = url.indexOf('?')
  let rawId = url.slice(INGEST_PREFIX.length, q < 0 ? undefined : q)
  if (rawId.endsWith('/')) rawId = rawId.slice(0, -1)
  // Nothing to decode without a percent sign (the common case: one indexOf instead of a decode per request).
  if (!rawId.includes('%')) return rawId
  try {
    return decodeURIComponent(rawId)
  } catch {
    return rawId
  }
}

/** Sockets whose request the server itself answered (a 408 of `requestTimeoutMs`): not logged twice. */
const answeredByServer = new WeakSet<Duplex>()

/** The admin and metrics listeners (admin.listen, metrics.listen): no ingest path, all through the app. */
export function createAppListener(
  app: { fetch: (request: Request, env: never) => Response | Promise<Response> },
  logs: Pick<ListenerLogs, 'access'> = {},
): (req: IncomingMessage, res: ServerResponse) => void {
  const honoListener = getRequestListener(app.fetch as Parameters<typeof getRequestListener>[0], {
    errorHandler: adapterErrorAnswer,
  })
  const route = (req: IncomingMessage, res: ServerResponse): void => {
    continueNow(req, res)
    void honoListener(req, res)
  }
  return logs.access ? withAccessLog(route, logs.access) : route
}

/**
 * Requests that asked for `100 Continue` (`Expect: 100-continue`) and have not had it yet. The server hands
 * them to the listener itself ('checkContinue'), so node does not send `100 Continue` on its own: an ingest
 * request gets it only once admission, auth, the declared length and the content type let it in
 * (IngestInput.beforeBody), and is refused before its body is sent otherwise (then the connection closes,
 * as for any answer given before the body was read). Other routes get it at once, as node would send it.
 */
const awaitingContinue = new WeakSet<IncomingMessage>()

function continueNow(req: IncomingMessage, res: ServerResponse): void {
  if (!awaitingContinue.delete(req)) return
  res.writeContinue()
}

/**
 * The hono adapter's own failures, before the app runs: a request target or Host header that no URL can be
 * built from (`OPTIONS *`, a bad Host) is a RequestError. Without this the adapter answers a bare 400 (or
 * 500) with no body; every error answer is problem+json (README, ingest contract).
 */
function adapterErrorAnswer(err: unknown): Response {
  const answer =
    err instanceof RequestError
      ? problemAnswer(problem('invalid-request', `the request cannot be routed: ${err.message}`))
      : problemAnswer(problem('internal', 'the request could not be processed'))
  return new Response(answer.body, { status: answer.status, headers: answer.headers })
}

function handleIngest(
  req: IncomingMessage,
  res: ServerResponse,
  url: string,
  ingest: IngestHandler,
  metrics: Metrics,
  refusals: RefusalLog | undefined,
  lingering: Lingering,
): void {
  const streamId = ingestStreamId(url)
  const socket = req.socket // a destroyed request lets go of it
  ingest
    .handle({
      streamId,
      method: req.method ?? 'GET',
      headers: req.headers,
      remoteAddress: socket.remoteAddress,
      body: req,
      client: { watch: (gone) => watchClient(socket, res, gone) },
      ...(awaitingContinue.has(req) ? { beforeBody: () => continueNow(req, res) } : {}),
    })
    .then(
      (answer) => {
        if (!answer.aborted) metrics.httpAnswered('ingest', answer.status)
        // The server answered this connection itself (requestTimeoutMs): it is closing, and that refusal is
        // logged already.
        if (answeredByServer.has(socket)) return
        if (answer.status >= 400 && refusals)
          refusals.refused({
            stream: streamId,
            status: answer.status,
            reason: answer.reason ?? 'error',
            remoteAddress: socket.remoteAddress,
            ...withRequestId(req),
            ...(answer.aborted || res.destroyed ? { clientClosed: true } : {}),
          })
        if (res.destroyed) return
        // A body left unread (404, 405, 401 or 413 before reading) is not parsed after the answer: the
        // connection closes. Draining it for keep-alive let node:http's parser meet a broken rest (bad
        // chunking) and send a second, unsolicited bare 400 on a request already answered, which a
        // pipelining client takes as the answer to its next request.
        const unread = !req.complete && answer.drainBody !== true
        res.writeHead(answer.status, answerHeaders(answer, unread))
        if (unread) {
          closeUnread(socket, lingering)
          res.end(answer.body)
          return
        }
        res.end(answer.body)
        // Drained (a small admission refusal of declared length, src/http/ingest.ts): the body is discarded
        // and the connection stays.
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

/** How long a connection whose answer left its body unread stays open, unread, before it is destroyed. */
export const UNREAD_LINGER_MS = 100

/** Connections lingering after an unread answer (closeUnread), and how many may at once. */
interface Lingering {
  count: number
  readonly max: number
}

/**
 * At most a quarter of `server.maxConnections` linger at once: refusals at a few thousand a second would
 * otherwise keep hundreds of connections open and leave new senders dropped at the connection limit.
 */
export function lingerLimit(maxConnections: number): number {
  return Math.max(1, Math.floor(maxConnections / 4))
}

/**
 * A connection whose answer leaves the request's body unread (a refusal before reading: admission, auth,
 * 413…) reads no more of it: it stops reading now, the answer goes out with `Connection: close`, then the
 * gateway half-closes and destroys the socket UNREAD_LINGER_MS later.
 *
 * Node's own close read on: its dump of the unread request resumed the socket, and it went on reading until
 * the end of the answer was written, ~200 KB of each refused 0.9 MB body under overload, copied into new
 * buffers whose external memory set off a major GC every ~100 ms (bench/RESULTS.md, eighth session). The
 * linger, without reading, gives the sender time to read the answer before the reset that closing a socket
 * with unread bytes sends (destroyed at once, a few refused senders in ten thousand saw the reset first).
 *
 * Two of node's own socket fields, as its HTTP server uses them: `_paused` (set when the server pauses a
 * socket; the request's dump does not resume such a socket) and `destroySoon` (how the server closes a
 * `Connection: close` socket once the answer is written). test/http/admission.test.ts checks that the socket
 * reads nothing more while it lingers, so a node that changes either fails there. With `lingering.max`
 * connections lingering already, this one closes as soon as its answer is written (still unread).
 */
function closeUnread(socket: Socket, lingering: Lingering): void {
  const held = socket as Socket & { _paused?: boolean; destroySoon?: () => void }
  held._paused = true
  socket.pause()
  if (lingering.count >= lingering.max) return
  lingering.count++
  socket.once('close', () => lingering.count--)
  held.destroySoon = () => {
    socket.end()
    setTimeout(() => socket.destroy(), UNREAD_LINGER_MS).unref()
  }
}

/** The answer's headers as node's flat [name, value, …] list: no object spreads per request. */
function answerHeaders(answer: HttpAnswer, close: boolean): string[] {
  const list: string[] = []
  for (const name in answer.headers) list.push(name, answer.headers[name]!)
  list.push('content-length', String(Buffer.byteLength(answer.body)))
  if (close && answer.headers.connection === undefined) list.push('connection', 'close')
  return list
}

/** Server-level options: where connection-level refusals (timeouts, bad HTTP, connection limit) are logged. */
export interface ServerOptions {
  refusals?: RefusalLog
}

export async function startServer(
  config: ServerConfig,
  listener: (req: IncomingMessage, res: ServerResponse) => void,
  portOverride?: number,
  serverOptions: ServerOptions = {},
): Promise<RunningServer> {
  const headersTimeoutMs = Math.min(config.headersTimeoutMs, config.requestTimeoutMs)
  const options = {
    requestTimeout: config.requestTimeoutMs,
    keepAliveTimeout: config.keepAliveTimeoutMs,
    headersTimeout: headersTimeoutMs,
    // node checks both timeouts on this interval (default 30 s, which would let a 10 s header timeout run to
    // 40 s): a tenth of the shorter one keeps the 408 within 10 % of the configured time.
    connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(headersTimeoutMs / 10))),
  }
  const server: Server = config.tls
    ? createHttpsServer(
        { ...options, cert: readFileSync(config.tls.certFile), key: readFileSync(config.tls.keyFile) },
        listener,
      )
    : createHttpServer(options, listener)
  server.keepAliveTimeout = config.keepAliveTimeoutMs
  // `Expect: 100-continue`: the listener decides when (and whether) to send `100 Continue` (awaitingContinue).
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    awaitingContinue.add(req)
    listener(req, res)
  })
  // Connections past the limit are closed as soon as they are accepted ('drop').
  server.maxConnections = config.maxConnections
  // A client that sends its whole request and then half-closes (shutdown(SHUT_WR), `socket.end()`) still
  // gets its answer: by default node ends the connection at the client's FIN, and the answer of a request
  // still in the spool's fsync is lost. With this, node answers and then closes.
  ;(server as Server & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    answerClientError(err, socket, config, serverOptions.refusals)
  })
  server.on('drop', (data?: { remoteAddress?: string }) => {
    serverOptions.refusals?.refused({
      reason: 'max-connections',
      ...(data?.remoteAddress !== undefined ? { remoteAddress: data.remoteAddress } : {}),
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(portOverride ?? config.port, config.host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  // After start, a server error is an accept() that failed (EMFILE when the process runs out of file
  // descriptors, ENFILE, ENOMEM): node emits it on the server, and without a listener it would crash the
  // process and lose in-flight requests. The listener keeps running; the failure is logged (rate-limited).
  server.on('error', (err: NodeJS.ErrnoException) => {
    serverOptions.refusals?.refused({ reason: `accept-failed${err.code ? `-${err.code}` : ''}` })
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
        // Idle keep-alive connections would hold close() open until they time out.
        server.closeIdleConnections()
      }),
  }
}

/**
 * Errors node's HTTP parser and timers raise before (or instead of) a request reaching the listener:
 * headers not complete within headersTimeoutMs, a request not complete within requestTimeoutMs, malformed
 * HTTP, headers too large. Node would answer a bare status line; this answers problem+json like every
 * other refusal, logs it, and closes the connection. Nothing is written once an answer has started.
 */
function answerClientError(
  err: NodeJS.ErrnoException,
  socket: Duplex,
  config: ServerConfig,
  refusals: RefusalLog | undefined,
): void {
  // The answer node is writing on this socket, if a request got that far (node's own field, which its own
  // clientError handling reads the same way).
  const res = (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage ?? undefined
  if (err.code === 'ECONNRESET' || err.code === 'EPIPE' || !socket.writable || res?.headersSent === true) {
    socket.destroy()
    return
  }
  const problem = clientProblem(err, config, res !== undefined)
  const body = JSON.stringify(problem.toBody())
  answeredByServer.add(socket)
  socket.end(
    `HTTP/1.1 ${problem.status} ${STATUS_CODES[problem.status]}\r\n` +
      'Content-Type: application/problem+json\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      'Connection: close\r\n\r\n' +
      body,
    () => socket.destroy(),
  )
  const path = res?.req.url
  const remoteAddress = (socket as Socket).remoteAddress
  refusals?.refused({
    ...(path?.startsWith(INGEST_PREFIX) ? { stream: ingestStreamId(path) } : {}),
    status: problem.status,
    reason: problem.slug,
    ...(remoteAddress !== undefined ? { remoteAddress } : {}),
    ...(res ? withRequestId(res.req) : {}),
  })
}

function clientProblem(
  err: NodeJS.ErrnoException,
  config: ServerConfig,
  headersReceived: boolean,
): ProblemError {
  switch (err.code) {
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return headersReceived
        ? problem(
            'request-timeout',
            `the request was not received completely within ${config.requestTimeoutMs} ms (server.requestTimeoutMs)`,
          )
        : problem(
            'headers-timeout',
            `the request headers were not received completely within ${Math.min(config.headersTimeoutMs, config.requestTimeoutMs)} ms (server.headersTimeoutMs)`,
          )
    case 'HPE_HEADER_OVERFLOW':
      return problem('headers-too-large', 'the request headers are larger than the server accepts')
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return problem(
        'chunk-extensions-too-large',
        'the chunked body carries more chunk-extension data than the server accepts',
      )
    default:
      return problem('malformed-request', `the request is not valid HTTP/1.1 (${err.code ?? 'parse error'})`)
  }
}

function withRequestId(req: IncomingMessage): { requestId?: string } {
  const id = requestIdOf(req.headers)
  return id === undefined ? {} : { requestId: id }
}

/** Bytes read and written on a connection when its previous request ended (for per-request deltas). */
const connectionBytes = new WeakMap<Socket, { read: number; written: number }>()

/**
 * Calls `gone` once when the client of a held request (src/pipeline/admission.ts) closes the connection or
 * its sending side (FIN: with httpAllowHalfOpen node keeps the socket, but nothing more will come). Seen only
 * while node reads the socket: a sender blocked mid-body, whose unread bytes fill the buffers, is seen when
 * the socket is read again.
 */
function watchClient(socket: Socket, res: ServerResponse, gone: () => void): () => void {
  if (socket.readableEnded || socket.destroyed || res.closed) {
    gone()
    return () => undefined
  }
  let called = false
  const once = (): void => {
    if (called) return
    called = true
    unwatch()
    gone()
  }
  const unwatch = (): void => {
    socket.off('end', once)
    res.off('close', once)
  }
  socket.once('end', once)
  res.once('close', once)
  return unwatch
}

/** `log.access`: one line per request, written when its answer is sent (or the connection closes first). */
function withAccessLog(
  route: (req: IncomingMessage, res: ServerResponse) => void,
  logger: Logger,
): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const started = performance.now()
    const socket = req.socket
    res.once('close', () => {
      const before = connectionBytes.get(socket) ?? { read: 0, written: 0 }
      const now = { read: socket.bytesRead, written: socket.bytesWritten }
      connectionBytes.set(socket, now)
      const url = req.url ?? '/'
      const q = url.indexOf('?')
      logAccess(logger, {
        method: req.method ?? '',
        path: q < 0 ? url : url.slice(0, q),
        status: res.statusCode,
        ...(res.writableFinished ? {} : { aborted: true }),
        bytesIn: now.read - before.read,
        bytesOut: now.written - before.written,
        durationMs: Math.round((performance.now() - started) * 10) / 10,
        ...(socket.remoteAddress !== undefined ? { remoteAddress: socket.remoteAddress } : {}),
        ...withRequestId(req),
      })
    })
    route(req, res)
  }
}
