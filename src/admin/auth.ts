import { createHash, timingSafeEqual } from 'node:crypto'
import type { MiddlewareHandler } from 'hono'
import { ProblemError } from '../errors.js'

// Bearer token of the management API (RFC 6750): `Authorization: Bearer <admin.token>`. Without an
// admin.token in the config every protected endpoint answers 401: the API is off until a token is set.

const REALM = 'Bearer realm="streamgate"'

export function requireToken(token: () => string | undefined): MiddlewareHandler {
  return async (c, next) => {
    const expected = token()
    if (expected === undefined)
      throw unauthorized('the management API is disabled: set admin.token in the config file', REALM)
    const header = c.req.header('authorization')
    const match = header === undefined ? null : /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header)
    if (!match) throw unauthorized('send the admin token as "Authorization: Bearer <token>"', REALM)
    if (!sameSecret(match[1]!, expected))
      throw unauthorized('the bearer token is not valid', `${REALM}, error="invalid_token"`)
    await next()
  }
}

/** Constant-time comparison that does not leak the token's length either. */
function sameSecret(given: string, expected: string): boolean {
  const digest = (s: string): Buffer => createHash('sha256').update(s).digest()
  return timingSafeEqual(digest(given), digest(expected))
}

function unauthorized(detail: string, challenge: string): ProblemError {
  return new ProblemError(401, 'unauthorized', 'Unauthorized', detail, {
    headers: { 'www-authenticate': challenge },
  })
}
