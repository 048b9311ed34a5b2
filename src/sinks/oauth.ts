import { abortable } from './abortable.js'
import { authError, transientError } from '../errors.js'
import {
  answerDetail,
  answerJson,
  describe,
  isTransientStatus,
  NEVER,
  type HttpClient,
} from './http-client.js'

// OAuth 2.0 client-credentials tokens (RFC 6749 §4.4), cached and shared by every request of one sink.
// Two token-request styles:
//   form   Adobe IMS "OAuth Server-to-Server": POST application/x-www-form-urlencoded with grant_type,
//          client_id, client_secret and scope (comma-separated, as IMS writes scopes).
//   basic  Domo: HTTP Basic client_id:client_secret, grant_type and scope in the query [DOMO-AUTH]. The
//          docs and the Node SDK use GET (DOMO-NODE Transport.ts `renewAccessToken`); the Python SDK POSTs.
// The token is refreshed shortly before `expires_in` runs out, and after the API refused it (`invalidate`).
// Concurrent callers share one token request. Tokens and secrets never appear in errors or logs.

/** A token is renewed this long before it expires (or after 90% of its life, when that is shorter). */
const REFRESH_MARGIN_MS = 60_000
/** Lifetime assumed when the token answer has no `expires_in`. */
const DEFAULT_LIFETIME_S = 3600

export interface ClientCredentials {
  tokenUrl: string
  clientId: string
  clientSecret: string
  scopes?: readonly string[]
  style: 'form' | 'basic'
  /** `basic` style only: GET (the default, as Domo's docs) or POST (as the Python SDK). */
  method?: 'GET' | 'POST'
}

interface TokenAnswer {
  access_token?: unknown
  expires_in?: unknown
}

export class ClientCredentialsToken {
  private current: { token: string; refreshAt: number } | undefined
  private pending: Promise<string> | undefined
  /** Token requests made (for tests and diagnostics). */
  requests = 0

  constructor(
    private readonly credentials: ClientCredentials,
    private readonly http: HttpClient,
    private readonly timeoutMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** A valid token: the cached one, or a fresh one when it is missing, refused or about to expire. */
  token(signal: AbortSignal): Promise<string> {
    if (this.current && this.now() < this.current.refreshAt) return Promise.resolve(this.current.token)
    // One shared request, not tied to any caller's signal (one caller giving up must not fail the others).
    this.pending ??= this.fetch().finally(() => {
      this.pending = undefined
    })
    return abortable(this.pending, signal)
  }

  /** The API refused `token` (401/403): forget it, unless a newer token already replaced it. */
  invalidate(token: string): void {
    if (this.current?.token === token) this.current = undefined
  }

  private async fetch(): Promise<string> {
    const { credentials: c } = this
    const url = new URL(c.tokenUrl)
    const headers: Record<string, string> = { accept: 'application/json' }
    let body: string | undefined
    let method: 'GET' | 'POST'
    if (c.style === 'basic') {
      method = c.method ?? 'GET'
      if (!url.searchParams.has('grant_type')) url.searchParams.set('grant_type', 'client_credentials')
      if (c.scopes?.length && !url.searchParams.has('scope'))
        url.searchParams.set('scope', c.scopes.join(' '))
      headers.authorization = `Basic ${Buffer.from(`${c.clientId}:${c.clientSecret}`).toString('base64')}`
    } else {
      method = 'POST'
      const form = new URLSearchParams({
        grant_type: 'client_credentials',
        client_id: c.clientId,
        client_secret: c.clientSecret,
      })
      if (c.scopes?.length) form.set('scope', c.scopes.join(','))
      body = form.toString()
      headers['content-type'] = 'application/x-www-form-urlencoded'
    }
    this.requests++
    const what = `token endpoint ${describe({ method, url })}`
    const answer = await this.http.request({
      url,
      method,
      headers,
      ...(body !== undefined ? { body } : {}),
      signal: NEVER,
      timeoutMs: this.timeoutMs,
    })
    if (answer.status < 200 || answer.status > 299) {
      const detail = answerDetail(answer.body)
      const message = `${what} answered ${answer.status}${detail ? `: ${detail}` : ''}`
      if (isTransientStatus(answer.status)) throw transientError(message, `oauth-${answer.status}`)
      // 400 invalid_client, 401, 403: the credentials are wrong. No record is at fault: the sink holds its
      // records (retried with backoff, circuit open) until the credentials are fixed (errors.ts authError).
      throw authError(message)
    }
    const doc = answerJson<TokenAnswer>(answer)
    if (typeof doc?.access_token !== 'string' || doc.access_token === '')
      throw transientError(`${what} answered without an access_token`, 'oauth-bad-answer')
    const expiresIn = Number(doc.expires_in)
    const lifetimeMs = (Number.isFinite(expiresIn) && expiresIn > 0 ? expiresIn : DEFAULT_LIFETIME_S) * 1000
    const margin = Math.min(REFRESH_MARGIN_MS, lifetimeMs / 10)
    this.current = { token: doc.access_token, refreshAt: this.now() + lifetimeMs - margin }
    return doc.access_token
  }
}
