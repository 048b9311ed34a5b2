import { pino, type Logger, type LoggerOptions } from 'pino'

export type { Logger }

/**
 * Structured JSON logs. Secrets never reach a log line: request headers are never logged, and sink configs
 * are logged only through `redactConfig`. `redact` is a second net for the usual field names.
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
  }
  return destination ? pino(options, destination) : pino(options)
}

/** What a masked secret reads as in logs and management-API answers. */
export const SECRET_MASK = '***'

const SECRET_KEYS = /(secret|password|passwd|authorization|apikey|api_key|credentials)/i

/**
 * Keys whose values are secrets, masked wholesale (every string below them): passwords, client secrets,
 * tokens (`token`, `sessionToken`, but not `tokenUrl`), API keys, AWS `credentials`, and every `headers` map
 * (stream auth headers and sink request headers carry credentials).
 */
export function isSecretKey(key: string): boolean {
  return SECRET_KEYS.test(key) || /token$/i.test(key) || key === 'headers'
}

/** A copy of a config object with every secret-looking value masked, for logs and API answers. */
export function redactConfig(value: unknown): unknown {
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
