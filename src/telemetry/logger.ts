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
