import { AUTH_FAILED, SinkError } from '../errors.js'
import { NEVER } from '../sinks/http-client.js'
import type { ClientCredentialsToken } from '../sinks/oauth.js'
import { hintFor, VendorError, type VendorHttp } from './vendor-http.js'

/**
 * An OAuth client-credentials token from the sink's own token source (src/sinks/oauth.ts), with the token
 * request shown in the transcript (its credentials masked) and a refusal made plain as a VendorError.
 */
export async function oauthToken(
  http: VendorHttp,
  oauth: ClientCredentialsToken,
  tokenUrl: string,
  method: 'GET' | 'POST',
  /** Query parameters the token source adds (Domo's GET: grant_type and scope), for the transcript. */
  query: Record<string, string> = {},
): Promise<string> {
  const url = new URL(tokenUrl)
  for (const [name, value] of Object.entries(query))
    if (!url.searchParams.has(name)) url.searchParams.set(name, value)
  const headers: Record<string, string> =
    method === 'GET'
      ? { authorization: 'Basic (client id and secret)' }
      : { 'content-type': 'application/x-www-form-urlencoded' }
  try {
    const token = await oauth.token(NEVER)
    http.record(method, url, headers, 200)
    return token
  } catch (err) {
    if (!(err instanceof SinkError)) throw err
    http.record(method, url, headers)
    const unreachable = err.reason === 'network' || err.reason === 'timeout'
    throw new VendorError(
      http.profile.vendor,
      `token request ${method} ${url.pathname}`,
      undefined,
      http.mask(err.message),
      hintFor(http.profile, err.reason === AUTH_FAILED ? 401 : unreachable ? undefined : 503, url.origin),
      http.profile.label,
      { cause: err },
    )
  }
}
