import { maskUrlCredentials } from './telemetry/url-credentials.js'

// Errors know what they are: whether a retry can help (`retriable`), and, at the HTTP edge, which status
// and problem type they answer with. One place (toProblem) maps errors to HTTP answers.

export const PROBLEM_BASE = 'https://streamgate.dev/problems/'

export interface ProblemFieldError {
  /** Index of the record in the request body (0-based). */
  index?: number
  /** JSON pointer inside the record. */
  pointer?: string
  message: string
}

export interface ProblemBody {
  type: string
  title: string
  status: number
  detail: string
  instance?: string
  errors?: ProblemFieldError[]
  [extra: string]: unknown
}

/** An error that answers an HTTP request with application/problem+json. */
export class ProblemError extends Error {
  readonly status: number
  readonly slug: string
  readonly title: string
  readonly errors?: ProblemFieldError[]
  readonly headers: Record<string, string>
  readonly extra: Record<string, unknown>

  constructor(status: number, slug: string, title: string, detail: string, options: ProblemOptions = {}) {
    super(detail, { cause: options.cause })
    this.name = 'ProblemError'
    this.status = status
    this.slug = slug
    this.title = title
    if (options.errors) this.errors = options.errors
    this.headers = options.headers ?? {}
    this.extra = options.extra ?? {}
  }

  toBody(instance?: string): ProblemBody {
    const body: ProblemBody = {
      type: PROBLEM_BASE + this.slug,
      title: this.title,
      status: this.status,
      detail: this.message,
      ...this.extra,
    }
    if (instance !== undefined) body.instance = instance
    if (this.errors) body.errors = this.errors
    return body
  }
}

/** What a problem answer carries besides its kind and detail. */
export interface ProblemOptions {
  errors?: ProblemFieldError[]
  headers?: Record<string, string>
  extra?: Record<string, unknown>
  cause?: unknown
}

interface ProblemKindSpec {
  status: number
  title: string
  /** The problem type's short name when it is not the kind itself. */
  slug?: string
}

/**
 * Every refusal the gateway answers with, and its HTTP status and title: the one place statuses are chosen
 * (SPEC's status table). Code below the HTTP layer throws a kind (`problem('spool-full', …)`), never a status.
 */
export const PROBLEM_KINDS = {
  // ingest (SPEC section 2, in the order the checks run)
  'unknown-stream': { status: 404, title: 'Unknown stream' },
  'method-not-allowed': { status: 405, title: 'Method not allowed' },
  'forbidden-source': { status: 403, title: 'Forbidden' },
  unauthorized: { status: 401, title: 'Unauthorized' },
  'body-too-large': { status: 413, title: 'Body too large' },
  'body-timeout': { status: 408, title: 'Request timeout' },
  'unsupported-media-type': { status: 415, title: 'Unsupported Content-Type' },
  'unsupported-encoding': { status: 415, title: 'Unsupported Content-Encoding' },
  'corrupt-encoding': { status: 400, title: 'Corrupt body encoding' },
  'invalid-utf8': { status: 400, title: 'Invalid UTF-8' },
  'invalid-body': { status: 400, title: 'Body cannot be framed' },
  'invalid-json': { status: 400, title: 'Body cannot be framed' },
  'invalid-records': { status: 422, title: 'Records failed validation' },
  'rate-limited': { status: 429, title: 'Rate limit exceeded' },
  aborted: { status: 400, title: 'Request aborted' },
  overloaded: { status: 503, title: 'Too many requests in flight' },
  'shutting-down': { status: 503, title: 'Shutting down' },
  'spool-full': { status: 503, title: 'Spool full' },
  'spool-unavailable': { status: 503, title: 'Spool unavailable' },
  'sink-unavailable': { status: 503, title: 'Records could not be delivered' },
  // the listener (before any route)
  'invalid-request': { status: 400, title: 'Bad request' },
  'malformed-request': { status: 400, title: 'Malformed HTTP request', slug: 'bad-request' },
  'request-timeout': { status: 408, title: 'Request timeout' },
  'headers-timeout': { status: 408, title: 'Request timeout' },
  'headers-too-large': { status: 431, title: 'Request headers too large' },
  'chunk-extensions-too-large': { status: 413, title: 'Chunk extensions too large' },
  'not-found': { status: 404, title: 'Not found' },
  'not-ready': { status: 503, title: 'Not ready' },
  internal: { status: 500, title: 'Internal error' },
  // the management API
  'bad-request': { status: 400, title: 'Bad request' },
  'payload-too-large': { status: 413, title: 'Payload too large' },
  'too-many-failed-logins': { status: 429, title: 'Too many failed logins' },
  'unknown-sink': { status: 404, title: 'Unknown sink' },
  'unknown-template': { status: 404, title: 'Unknown template' },
  'stream-exists': { status: 409, title: 'Already exists' },
  'sink-exists': { status: 409, title: 'Already exists' },
  'stream-has-records': { status: 409, title: 'Records still waiting' },
  'sink-in-use': { status: 409, title: 'Sink in use' },
  'not-saved': { status: 503, title: 'Change not saved' },
  'apply-failed': { status: 500, title: 'Change not applied' },
  'vendor-error': { status: 502, title: 'The vendor refused' },
  // workers (server.workers: src/cluster/)
  'leader-unavailable': { status: 503, title: 'Management API restarting' },
  'metrics-unavailable': { status: 503, title: 'Metrics unavailable' },
} as const satisfies Record<string, ProblemKindSpec>

export type ProblemKind = keyof typeof PROBLEM_KINDS

/** A problem of a kind from PROBLEM_KINDS: its status and title come from the table. */
export function problem(kind: ProblemKind, detail: string, options: ProblemOptions = {}): ProblemError {
  const spec: ProblemKindSpec = PROBLEM_KINDS[kind]
  return new ProblemError(spec.status, spec.slug ?? kind, spec.title, detail, options)
}

/**
 * A sink's failure. `retriable` decides between backoff-and-retry and the dead-letter sink; `reason` is a
 * short, stable label for metrics and dead-letter envelopes (never a payload or a secret). The message
 * reaches logs, the API's lastError, /ui and dead-letter envelopes, so URL credentials in it are masked here.
 */
export class SinkError extends Error {
  readonly retriable: boolean
  readonly reason: string
  /** Server-suggested delay before the next attempt (Retry-After), when the remote gave one. */
  readonly retryAfterMs?: number

  constructor(
    message: string,
    options: { retriable: boolean; reason: string; cause?: unknown; retryAfterMs?: number },
  ) {
    super(maskUrlCredentials(message), { cause: options.cause })
    this.name = 'SinkError'
    this.retriable = options.retriable
    this.reason = options.reason
    if (options.retryAfterMs !== undefined) this.retryAfterMs = options.retryAfterMs
  }
}

export function transientError(
  message: string,
  reason: string,
  cause?: unknown,
  retryAfterMs?: number,
): SinkError {
  return new SinkError(message, {
    retriable: true,
    reason,
    cause,
    ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
  })
}

export function permanentError(message: string, reason: string, cause?: unknown): SinkError {
  return new SinkError(message, { retriable: false, reason, cause })
}

/** The `reason` of a sink whose credentials the destination refuses (see `authError`). */
export const AUTH_FAILED = 'auth'

/**
 * The destination refused the sink's credentials (401/403, or the token endpoint refused the client): no
 * record is at fault, so none is dead-lettered. The error is retriable: the lane keeps its records in the
 * spool and retries with backoff (retry.maxAttempts does not apply), the failures open the circuit, and
 * the sink's last error reads "auth failed: …" until the credentials are fixed or the token is renewed.
 */
export function authError(message: string, cause?: unknown): SinkError {
  return new SinkError(`auth failed: ${message}`, { retriable: true, reason: AUTH_FAILED, cause })
}

/** The `reason` of a sink that is not wired to its vendor yet (see `notConnectedError`). */
export const NOT_CONNECTED = 'not-connected'

/**
 * The sink waits for `streamgate connect` (an adobe sink without inletUrl, a domo sink without streamId or
 * create): like an auth failure, no record is at fault, so the lane holds its records in the spool and
 * retries with backoff (retry.maxAttempts does not apply) until the connect writes the missing key.
 */
export function notConnectedError(type: string, sink: string): SinkError {
  return new SinkError(`not connected: run streamgate connect ${type} ${sink}`, {
    retriable: true,
    reason: NOT_CONNECTED,
  })
}

/** Failures that hold a sink's records (retried without limit) instead of counting towards dead letters. */
export function holdsRecords(error: SinkError | undefined): boolean {
  return error?.reason === AUTH_FAILED || error?.reason === NOT_CONNECTED
}

/**
 * Programming errors (TypeError, RangeError, …) are never retried: retrying a bug only hides it. Anything
 * else that is not a SinkError (network errors from a client library) is treated as transient.
 */
export function isProgrammingError(err: unknown): boolean {
  return (
    err instanceof TypeError ||
    err instanceof RangeError ||
    err instanceof SyntaxError ||
    err instanceof ReferenceError
  )
}

export function asSinkError(err: unknown, reason = 'error'): SinkError {
  if (err instanceof SinkError) return err
  if (isProgrammingError(err))
    return permanentError(`internal error: ${(err as Error).message}`, 'internal', err)
  const message = err instanceof Error ? err.message : String(err)
  return transientError(message, reason, err)
}
