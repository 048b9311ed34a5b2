import { pino, type LogFn, type Logger, type LoggerOptions } from 'pino'
import { maskUrlCredentials, SECRET_MASK } from './url-credentials.js'

export { SECRET_MASK }

export type { Logger }

/**
 * Structured JSON logs. Secrets never reach a log line: request headers are never logged, and sink configs
 * are logged only through `redactConfig`. `redact` is a second net for the usual field names, and every
 * string logged (the message, fields, error messages, stacks and causes) has the credentials of the URLs
 * in it masked: client libraries (undici, the AWS SDK, kafkajs) put the URL they failed on in their errors.
 */
export function createLogger(
  level: LoggerOptions['level'] = 'info',
  destination?: pino.DestinationStream,
): Logger {
  const options: LoggerOptions = {
    level,
    base: { service: 'streamgate' },
    redact: {
      paths: [
        'headers',
        'req.headers',
        '*.password',
        '*.secret',
        '*.token',
        '*.clientSecret',
        '*.secretAccessKey',
        'config.auth',
      ],
      censor: '[redacted]',
    },
    hooks: {
      logMethod(args, method) {
        method.apply(this, args.map((arg) => maskLogValue(arg, 0)) as Parameters<LogFn>)
      },
    },
  }
  return destination ? pino(options, destination) : pino(options)
}

/** Log values are copied this deep at most (a log line never needs more; cycles stop here too). */
const MAX_LOG_DEPTH = 8

/** A copy of a log argument with the URL credentials in its strings masked. Only runs for emitted lines. */
function maskLogValue(value: unknown, depth: number): unknown {
  if (typeof value === 'string') return maskUrlCredentials(value)
  if (value === null || typeof value !== 'object' || depth > MAX_LOG_DEPTH) return value
  if (Array.isArray(value)) return value.map((item) => maskLogValue(item, depth + 1))
  const proto = Object.getPrototypeOf(value) as unknown
  // An Error stays an Error of its own class (pino's err serializer reads its type), with masked fields.
  const isError = value instanceof Error
  if (!isError && proto !== Object.prototype && proto !== null) return value // Buffer, Date, Map…
  const out = Object.create(isError ? (proto as object) : Object.prototype) as Record<string, unknown>
  for (const key of isError ? Object.getOwnPropertyNames(value) : Object.keys(value)) {
    const descriptor = Object.getOwnPropertyDescriptor(value, key)!
    Object.defineProperty(out, key, {
      value: maskLogValue((value as Record<string, unknown>)[key], depth + 1),
      enumerable: descriptor.enumerable ?? true,
      writable: true,
      configurable: true,
    })
  }
  return out
}

const SECRET_KEYS = /(secret|password|passwd|authorization|apikey|api_key|credentials)/i

/**
 * Keys whose values are secrets, masked wholesale (every string below them): passwords, client secrets,
 * tokens (`token`, `sessionToken`, but not `tokenUrl`), API keys, AWS `credentials`, and every `headers` map
 * (stream auth headers and sink request headers carry credentials).
 */
export function isSecretKey(key: string): boolean {
  return SECRET_KEYS.test(key) || /token$/i.test(key) || key === 'headers'
}

/**
 * A copy of a config object with every secret-looking value masked, for logs and API answers: the values of
 * secret keys wholesale, and the credentials of URLs in any other string (`https://user:***@host/?key=***`).
 */
export function redactConfig(value: unknown): unknown {
  if (typeof value === 'string') return maskUrlCredentials(value)
  if (Array.isArray(value)) return value.map(redactConfig)
  if (value === null || typeof value !== 'object') return value
  const out: Record<string, unknown> = {}
  for (const [key, item] of Object.entries(value)) {
    const masked = isSecretKey(key) ? maskAll(item) : redactConfig(item)
    Object.defineProperty(out, key, { value: masked, enumerable: true, writable: true, configurable: true })
  }
  return out
}

function maskAll(value: unknown): unknown {
  if (typeof value === 'string') return SECRET_MASK
  if (Array.isArray(value)) return value.map(maskAll)
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(value))
      Object.defineProperty(out, k, {
        value: maskAll(v),
        enumerable: true,
        writable: true,
        configurable: true,
      })
    return out
  }
  return value
}

/** One refused request (an answer of 400 or more, or a connection closed unanswered) as the log shows it. */
export interface Refusal {
  /** The stream id asked for (as requested, cut to 128 characters), when the path named one. */
  stream?: string
  /** The status answered; absent when the connection was closed without an answer (connection limit). */
  status?: number
  /** The problem type's short name (`unknown-stream`, `unauthorized`, `body-timeout`, `max-connections`…). */
  reason: string
  remoteAddress?: string
  /** The client's X-Request-Id, when it sent a plain one (letters, digits, `._:-`, up to 128). */
  requestId?: string
  /** The client had closed the connection before the answer could be sent. */
  clientClosed?: boolean
}

const REFUSALS_PER_WINDOW = 20
const REFUSAL_WINDOW_MS = 10_000
const MAX_LOGGED_ID = 128

/**
 * One structured line per refused request, so an operator sees who is refused and why (never a header
 * value or a payload: the reason is the problem type, not its detail). At most `maxLines` lines per
 * `windowMs`: past that, refusals are counted and one line per window says how many were left out, so a
 * flood of bad requests cannot fill a disk. 4xx lines are `info`, 5xx and dropped connections `warn`.
 */
export class RefusalLog {
  private windowStart = -Infinity
  private lines = 0
  private suppressed = 0
  private timer?: NodeJS.Timeout

  constructor(
    private readonly logger: Logger,
    private readonly maxLines = REFUSALS_PER_WINDOW,
    private readonly windowMs = REFUSAL_WINDOW_MS,
  ) {}

  refused(refusal: Refusal): void {
    const now = Date.now()
    if (now >= this.windowStart + this.windowMs) {
      this.summarise()
      this.windowStart = now
      this.lines = 0
    }
    if (this.lines < this.maxLines) {
      this.lines++
      const line = { ...refusal, ...(refusal.stream !== undefined ? { stream: cut(refusal.stream) } : {}) }
      if (refusal.status === undefined || refusal.status >= 500) this.logger.warn(line, 'request refused')
      else this.logger.info(line, 'request refused')
      return
    }
    this.suppressed++
    if (this.timer === undefined) {
      this.timer = setTimeout(() => this.summarise(), this.windowStart + this.windowMs - now)
      this.timer.unref()
    }
  }

  /** Writes the summary of the current window now, if refusals were left out (at shutdown). */
  close(): void {
    this.summarise()
  }

  private summarise(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer)
      this.timer = undefined
    }
    if (this.suppressed === 0) return
    const suppressed = this.suppressed
    this.suppressed = 0
    this.logger.warn(
      { suppressed, windowMs: this.windowMs },
      `suppressed ${suppressed} refused-request lines`,
    )
  }
}

/** One request as the access log (`log.access: true`) shows it. */
export interface AccessEntry {
  method: string
  /** The path without its query string (queries may carry tokens). */
  path: string
  /** The status sent; `aborted` when the connection closed before the answer was complete. */
  status: number
  aborted?: true
  /** Bytes received and sent for this request on the connection, headers included. */
  bytesIn: number
  bytesOut: number
  durationMs: number
  remoteAddress?: string
  requestId?: string
}

/** The access log line (info). */
export function logAccess(logger: Logger, entry: AccessEntry): void {
  logger.info(entry, 'request')
}

const PLAIN_ID = /^[A-Za-z0-9._:-]{1,128}$/

/** The client's X-Request-Id when it is a plain token; anything else is not logged. */
export function requestIdOf(headers: Record<string, string | string[] | undefined>): string | undefined {
  const id = headers['x-request-id']
  return typeof id === 'string' && PLAIN_ID.test(id) ? id : undefined
}

function cut(text: string): string {
  return text.length > MAX_LOGGED_ID ? `${text.slice(0, MAX_LOGGED_ID)}…` : text
}
