import { createRequire } from 'node:module'
import type * as SmithyHttp from '@smithy/node-http-handler'
import type { AwsCredentialsConfig } from '../config/types.js'
import { SinkError, isProgrammingError, permanentError, transientError } from '../errors.js'

// What the kinesis and s3 sinks share about the AWS SDK v3: the client settings every streamgate AWS client
// uses, and how an error thrown by an SDK call maps to a SinkError (retry or not).

// Loaded with the first AWS sink, not at start-up (CommonJS, so `require` loads it synchronously).
const requireModule = createRequire(import.meta.url)
let smithyHttp: typeof SmithyHttp | undefined
const httpHandler = (): typeof SmithyHttp =>
  (smithyHttp ??= requireModule('@smithy/node-http-handler') as typeof SmithyHttp)

export interface AwsClientSettings {
  maxAttempts: number
  requestHandler: SmithyHttp.NodeHttpHandler
  endpoint?: string
  credentials?: AwsCredentialsConfig
}

/**
 * Retries belong to the delivery layer, so the client makes exactly one attempt (`maxAttempts: 1`). The
 * HTTP/1.1 handler with keep-alive times out connects and idle sockets after `timeoutMs`. Credentials from
 * the config when given, else the SDK's default provider chain.
 */
export function awsClientSettings(config: {
  timeoutMs: number
  endpoint?: string
  credentials?: AwsCredentialsConfig
}): AwsClientSettings {
  const settings: AwsClientSettings = {
    maxAttempts: 1,
    requestHandler: new (httpHandler().NodeHttpHandler)({
      connectionTimeout: config.timeoutMs,
      socketTimeout: config.timeoutMs,
    }),
  }
  if (config.endpoint !== undefined) settings.endpoint = config.endpoint
  if (config.credentials !== undefined) {
    const { accessKeyId, secretAccessKey, sessionToken } = config.credentials
    settings.credentials = {
      accessKeyId,
      secretAccessKey,
      ...(sessionToken !== undefined ? { sessionToken } : {}),
    }
  }
  return settings
}

export type KnownAwsErrors = Readonly<Record<string, { retriable: boolean; reason: string }>>

/** Network-level failures (no answer from the service): always worth another attempt. */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ENETUNREACH',
  'EHOSTUNREACH',
])

export interface AwsErrorRules {
  /** Prefix of the message: "kinesis", "s3". */
  service: string
  /** Error names (the SDK's exception names / S3 error codes) with their verdict. */
  known: KnownAwsErrors
  /** True for the service's own exceptions (an answer from the service, with an HTTP status). */
  isServiceException(err: unknown): boolean
  /** Statuses whose verdict differs from the general rule below, checked first. */
  statuses?: Readonly<Record<number, { retriable: boolean; reason: string }>>
}

/**
 * Maps an error thrown by an SDK call to a SinkError that says whether a retry can help: known names first,
 * then the socket's code, timeouts and aborts, then the service's HTTP status (429 and 5xx transient,
 * 401/403 and other 4xx permanent); anything else (socket hang up, a proxy's garbage …) is transient.
 */
export function classifyAwsError(err: unknown, rules: AwsErrorRules): SinkError {
  if (err instanceof SinkError) return err
  if (isProgrammingError(err))
    return permanentError(`internal error: ${(err as Error).message}`, 'internal', err)
  const e = err as { name?: string; code?: string; message?: string; $metadata?: { httpStatusCode?: number } }
  const message = `${rules.service}: ${e.name ?? 'Error'}: ${e.message ?? String(err)}`
  const known = e.name !== undefined ? rules.known[e.name] : undefined
  if (known) return new SinkError(message, { ...known, cause: err })
  // The socket's code first: the SDK reports a reset connection as a TimeoutError with code ECONNRESET.
  if (e.code !== undefined && NETWORK_CODES.has(e.code)) return transientError(message, 'network', err)
  if (e.name === 'TimeoutError') return transientError(message, 'timeout', err)
  if (e.name === 'AbortError') return transientError(message, 'aborted', err)
  const status = e.$metadata?.httpStatusCode
  if (status !== undefined && rules.isServiceException(err)) {
    const special = rules.statuses?.[status]
    if (special) return new SinkError(message, { ...special, cause: err })
    if (status === 429) return transientError(message, 'throttled', err)
    if (status >= 500) return transientError(message, 'server-error', err)
    if (status === 401 || status === 403) return permanentError(message, 'unauthorized', err)
    if (status >= 400) return permanentError(message, 'rejected', err)
  }
  return transientError(message, 'network', err)
}
