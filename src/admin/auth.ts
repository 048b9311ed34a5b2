import { createHash, timingSafeEqual } from 'node:crypto'
import type { Context, MiddlewareHandler } from 'hono'
import { problem, ProblemError } from '../errors.js'
import type { Logger } from '../telemetry/logger.js'
import type { LoginThrottle } from './login-throttle.js'

// Bearer tokens (RFC 6750): `Authorization: Bearer <token>` for the management API (admin.token) and, when
// set, /metrics (metrics.token). Without an admin.token in the config every protected endpoint answers
// 401: the API is off until a token is set.
//
// A wrong token is a failed login: logged at warn (source address, method, path; never the token) and
// counted per source address by the LoginThrottle, which answers 429 + Retry-After once the address used
// up its allowance; while refused, an address's tokens are not even compared. A request without a bearer
// token (or with another scheme) cannot guess anything: it gets 401 and is neither counted nor logged
// at warn, so browsers, scanners and health probes do not fill the log or lock anyone out.

export interface TokenCheck {
  /** The expected token, read at every request; undefined: nothing is accepted. */
  token: () => string | undefined
  /** What the token guards, for the log and the challenge: "admin" or "metrics". */
  what: string
  /** Detail of the 401 while no token is configured. */
  disabledDetail?: string
  throttle?: LoginThrottle
  logger?: Logger
}

export function requireToken(check: TokenCheck): MiddlewareHandler {
  const realm = `Bearer realm="streamgate${check.what === 'admin' ? '' : `-${check.what}`}"`
  return async (c, next) => {
    const expected = check.token()
    if (expected === undefined)
      throw unauthorized(check.disabledDetail ?? `set ${check.what}.token in the config file`, realm)
    const address = remoteAddress(c)
    const wait = check.throttle?.retryAfterSeconds(address) ?? 0
    if (wait > 0)
      throw problem(
        'too-many-failed-logins',
        `too many wrong ${check.what} tokens from this address; try again in ${wait} s`,
        { headers: { 'retry-after': String(wait) } },
      )
    const header = c.req.header('authorization')
    const match = header === undefined ? null : /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header)
    if (!match) throw unauthorized(`send the ${check.what} token as "Authorization: Bearer <token>"`, realm)
    if (!sameSecret(match[1]!, expected)) {
      const { failures, throttled } = check.throttle?.fail(address) ?? { failures: 0, throttled: false }
      check.logger?.warn(
        { remoteAddress: address ?? 'unknown', method: c.req.method, path: c.req.path, failures, throttled },
        `${check.what} login failed: wrong bearer token`,
      )
      throw unauthorized('the bearer token is not valid', `${realm}, error="invalid_token"`)
    }
    await next()
  }
}

/** The TCP peer of the request (@hono/node-server's bindings); undefined under app.request(). */
export function remoteAddress(c: Context): string | undefined {
  const env = c.env as { incoming?: { socket?: { remoteAddress?: string } } } | undefined
  return env?.incoming?.socket?.remoteAddress
}

/** Constant-time comparison that does not leak the token's length either. */
function sameSecret(given: string, expected: string): boolean {
  const digest = (s: string): Buffer => createHash('sha256').update(s).digest()
  return timingSafeEqual(digest(given), digest(expected))
}

function unauthorized(detail: string, challenge: string): ProblemError {
  return problem('unauthorized', detail, {
    headers: { 'www-authenticate': challenge },
  })
}
