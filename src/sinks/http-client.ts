import { createRequire } from 'node:module'
import { promisify } from 'node:util'
import { gzip as gzipCallback } from 'node:zlib'
import type { Agent } from 'undici'
import type * as Undici from 'undici'
import { permanentError, SinkError, transientError } from '../errors.js'

// The HTTP plumbing shared by the http, adobe and domo sinks: one undici Agent per sink (a keep-alive
// connection pool per origin), answers read in full (bounded), network failures turned into transient
// SinkErrors, Retry-After parsed, and the one status → SinkError mapping:
//   408, 429, 5xx          transient (Retry-After, when given, becomes retryAfterMs)
//   any other non-2xx      permanent
// Sinks handle their own special statuses (401/403, 413, Adobe's 207) before falling back to this mapping.
// Error messages name the origin and path only: a URL's query may carry a credential.

/** How long an idle keep-alive connection is kept when the server sends no Keep-Alive hint. */
const KEEP_ALIVE_TIMEOUT_MS = 30_000
/** Upper bound for a server's Keep-Alive timeout hint. */
const KEEP_ALIVE_MAX_TIMEOUT_MS = 120_000
/** Answers are small JSON documents; anything beyond this is read and discarded. */
const MAX_RESPONSE_BYTES = 4 * 1024 * 1024
/** A server asking for a longer pause than this gets this: a typo'd Retry-After must not stall a lane for days. */
export const MAX_RETRY_AFTER_MS = 5 * 60_000
/** Vendor error text copied into SinkError messages (and so into dead-letter envelopes) is cut here. */
const MAX_DETAIL_CHARS = 300

export type HttpMethod = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'

export interface HttpRequest {
  url: URL
  method: HttpMethod
  headers?: Record<string, string>
  body?: Buffer | string
  /** The caller's signal (delivery shutdown); its abort reason is rethrown as is. */
  signal: AbortSignal
  /** Whole-request budget; overrun is a transient `timeout`. Defaults to the client's. */
  timeoutMs?: number
}

export interface HttpAnswer {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: Buffer
}

export interface HttpClientOptions {
  timeoutMs: number
  /** Connections per origin (undici's pool size). */
  connections?: number
}

// undici is loaded when the first http, adobe or domo sink is built, not at start-up: ~240 ms and ~19 MB of
// RSS a gateway without such a sink never needs. It is CommonJS, so `require` loads it synchronously.
const requireModule = createRequire(import.meta.url)
let undiciModule: typeof Undici | undefined
const undici = (): typeof Undici => (undiciModule ??= requireModule('undici') as typeof Undici)

export class HttpClient {
  private readonly agent: Agent

  constructor(private readonly options: HttpClientOptions) {
    this.agent = new (undici().Agent)({
      connections: options.connections ?? 16,
      keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
      keepAliveMaxTimeout: KEEP_ALIVE_MAX_TIMEOUT_MS,
      pipelining: 1,
    })
  }

  /**
   * Sends one request and reads the whole answer, whatever its status. Throws only when there is no answer:
   * the caller's abort reason, or a transient SinkError (`network`, `timeout`).
   */
  async request(req: HttpRequest): Promise<HttpAnswer> {
    const timeoutMs = req.timeoutMs ?? this.options.timeoutMs
    if (req.signal.aborted) throw req.signal.reason
    // A plain timer and listener rather than AbortSignal.any([signal, AbortSignal.timeout()]): on Node 20
    // the timeout signal inside any() can be garbage-collected before it fires (the abort never comes).
    const controller = new AbortController()
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      controller.abort(new Error(`timed out after ${timeoutMs} ms`))
    }, timeoutMs)
    const onAbort = (): void => controller.abort(req.signal.reason)
    req.signal.addEventListener('abort', onAbort, { once: true })
    try {
      const res = await this.agent.request({
        origin: req.url.origin,
        path: req.url.pathname + req.url.search,
        method: req.method,
        headers: req.headers,
        body: req.body,
        signal: controller.signal,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      })
      const chunks: Buffer[] = []
      let size = 0
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        if (size < MAX_RESPONSE_BYTES) chunks.push(chunk)
        size += chunk.length
      }
      return { status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }
    } catch (err) {
      if (req.signal.aborted) throw req.signal.reason
      throw networkError(err, describe(req), timedOut, timeoutMs)
    } finally {
      clearTimeout(timer)
      req.signal.removeEventListener('abort', onAbort)
    }
  }

  close(): Promise<void> {
    return this.agent.close()
  }
}

function networkError(err: unknown, target: string, timedOut: boolean, timeoutMs: number): SinkError {
  const code = (err as { code?: string }).code ?? ''
  if (timedOut || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT')
    return transientError(`${target}: no answer within ${timeoutMs} ms`, 'timeout', err)
  if (code === 'UND_ERR_CONNECT_TIMEOUT')
    return transientError(`${target}: connect timed out`, 'timeout', err)
  // undici validates options synchronously; such an error is a configuration mistake no retry fixes.
  if (code === 'UND_ERR_INVALID_ARG' || code === 'ERR_INVALID_URL')
    return permanentError(`${target}: ${(err as Error).message}`, 'config', err)
  const detail = err instanceof Error ? err.message || code || err.name : String(err)
  return transientError(`${target}: ${detail}`, 'network', err)
}

/** Method and URL without query or credentials, for messages and logs. */
export function describe(req: { method: string; url: URL }): string {
  return `${req.method} ${req.url.origin}${req.url.pathname}`
}

/**
 * Retry-After is either delay-seconds or an HTTP-date (RFC 9110 §10.2.3). Returns milliseconds from now,
 * capped at MAX_RETRY_AFTER_MS, or undefined when absent or unreadable.
 */
export function parseRetryAfter(
  value: string | string[] | undefined,
  nowMs: number = Date.now(),
): number | undefined {
  const text = (Array.isArray(value) ? value[0] : value)?.trim()
  if (!text) return undefined
  if (/^\d+$/.test(text)) return Math.min(Number(text) * 1000, MAX_RETRY_AFTER_MS)
  // All three HTTP-date forms start with a day name; Date.parse alone would also take "-3" or "2".
  if (!/^[A-Za-z]{3}/.test(text)) return undefined
  const at = Date.parse(text)
  if (Number.isNaN(at)) return undefined
  return Math.min(Math.max(0, at - nowMs), MAX_RETRY_AFTER_MS)
}

/** True for the statuses a retry can help with: 408, 429 and every 5xx. */
export function isTransientStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500
}

/** The default mapping of a non-2xx answer to a SinkError; reason `<prefix>-<status>`, e.g. `http-503`. */
export function statusError(answer: HttpAnswer, prefix: string, what: string): SinkError {
  const detail = answerDetail(answer.body)
  const message = `${what} answered ${answer.status}${detail ? `: ${detail}` : ''}`
  const reason = `${prefix}-${answer.status}`
  if (isTransientStatus(answer.status))
    return transientError(message, reason, undefined, parseRetryAfter(answer.headers['retry-after']))
  return permanentError(message, reason)
}

/**
 * A short human-readable explanation from an error answer: the `message`, `detail`, `title` or
 * `report.message` of a JSON (problem) body, else the first characters of the text.
 */
export function answerDetail(body: Buffer): string {
  if (body.length === 0) return ''
  const text = body.toString('utf8', 0, Math.min(body.length, 64 * 1024))
  let detail = text
  try {
    const doc = JSON.parse(text) as Record<string, unknown>
    const report = doc.report as Record<string, unknown> | undefined
    const pick = [doc.message, doc.detail, report?.message, doc.title, doc.error_description, doc.error].find(
      (v) => typeof v === 'string' && v !== '',
    )
    if (typeof pick === 'string') detail = pick
  } catch {
    // not JSON: the text itself
  }
  detail = detail.replace(/\s+/g, ' ').trim()
  return detail.length > MAX_DETAIL_CHARS ? `${detail.slice(0, MAX_DETAIL_CHARS)}…` : detail
}

/** Parses a JSON answer body; undefined when it is not JSON. */
export function answerJson<T>(answer: HttpAnswer): T | undefined {
  try {
    return JSON.parse(answer.body.toString('utf8')) as T
  } catch {
    return undefined
  }
}

export const gzip: (data: Buffer | string) => Promise<Buffer> = promisify(gzipCallback)

/**
 * Runs `fn` over `items` with at most `limit` calls in flight. After the first failure no new item is
 * started; the calls already running are awaited, then the first error is thrown.
 */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length)
  let next = 0
  let failure: { error: unknown } | undefined
  const worker = async (): Promise<void> => {
    while (!failure && next < items.length) {
      const i = next++
      try {
        results[i] = await fn(items[i]!, i)
      } catch (error) {
        failure ??= { error }
      }
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker))
  if (failure) throw failure.error
  return results
}

/** A signal that never aborts, for calls bounded by their own timeout only. */
export const NEVER: AbortSignal = new AbortController().signal

/** One failed entry of a write, by its index in the batch. */
export interface IndexedFailure {
  index: number
  error: SinkError
}

/**
 * Turns a write's failures into its outcome. When every record failed and a retry can help (or they all
 * share one error), the write rejects with one error — the delivery layer then reports and backs off
 * once for the batch, honouring the longest Retry-After. Otherwise failures are reported by index.
 */
export function writeOutcome(failed: IndexedFailure[], total: number): { failed: IndexedFailure[] } {
  if (failed.length === 0) return { failed: [] }
  if (failed.length === total) {
    const first = failed[0]!.error
    if (failed.every((f) => f.error === first)) throw first
    if (failed.every((f) => f.error.retriable)) {
      let slowest = first
      for (const f of failed) if ((f.error.retryAfterMs ?? 0) > (slowest.retryAfterMs ?? 0)) slowest = f.error
      throw slowest
    }
  }
  failed.sort((a, b) => a.index - b.index)
  return { failed }
}
