import { STATUS_CODES } from 'node:http'
import { SinkError } from '../errors.js'
import { answerDetail, HttpClient, NEVER, type HttpAnswer, type HttpMethod } from '../sinks/http-client.js'
import { maskUrlCredentials, SECRET_MASK } from '../telemetry/url-credentials.js'

// The one way `streamgate connect` talks to a vendor's management API: every request is recorded (headers
// and body with their secrets masked) so that --dry-run and the API can show exactly what was, or would be,
// sent; in a dry run only reads (GET) go out. A refusal becomes a VendorError that says which call, which
// status, what the vendor said and what to do about it (issue 16, item 5). Nothing is retried here: connect
// is idempotent, so running it again is the retry.

export type Vendor = 'emnify' | 'azion' | 'adobe' | 'domo'

export const VENDORS: readonly Vendor[] = ['emnify', 'azion', 'adobe', 'domo']

/** What a vendor is called in messages, and where its credentials and API base come from (for hints). */
export interface VendorProfile {
  vendor: Vendor
  label: string
  /** Where the credentials come from, e.g. "EMNIFY_API_TOKEN (an emnify API token, a JWT)". */
  credentials: string
  /** Where the API base comes from, e.g. "EMNIFY_API_URL". */
  base: string
  /** What a 403 usually means at this vendor. */
  permission: string
}

/** Management API calls are small; a vendor that takes longer than this is reported as not answering. */
export const VENDOR_TIMEOUT_MS = 30_000

export interface VendorRequest {
  method: HttpMethod
  url: URL
  headers: Record<string, string>
  /** A JSON body. */
  body?: unknown
  /** The body as shown in transcripts, its secrets replaced by the mask (default: `body`). */
  shownBody?: unknown
}

/** One request as shown to the operator: secrets masked; `sent: false` in a dry run. */
export interface RequestRecord {
  method: string
  url: string
  headers: Record<string, string>
  body?: unknown
  sent: boolean
  status?: number
}

export interface VendorAnswer {
  status: number
  headers: HttpAnswer['headers']
  json: unknown
  text: string
}

/** A vendor refused a call, or could not be reached (`status` undefined). */
export class VendorError extends Error {
  constructor(
    readonly vendor: Vendor,
    /** e.g. "POST /api/v2/data_stream". */
    readonly call: string,
    readonly status: number | undefined,
    /** What the vendor said (its error message, or the start of its answer). */
    readonly vendorMessage: string,
    /** What to do about it. */
    readonly hint: string,
    label: string,
    options?: { cause?: unknown },
  ) {
    const what =
      status === undefined
        ? `${label} ${call} failed`
        : `${label} ${call} answered ${status}${STATUS_CODES[status] ? ` ${STATUS_CODES[status]}` : ''}`
    super(`${what}${vendorMessage ? `: ${vendorMessage}` : ''}. ${hint}`, options)
    this.name = 'VendorError'
  }
}

/**
 * The stream or sink cannot be connected as configured (a missing token, a key the vendor needs, auth the
 * vendor cannot send): nothing was sent. `status` is the management API's answer.
 */
export class ConnectProblem extends Error {
  constructor(
    message: string,
    readonly status: 400 | 404 | 409 | 422 = 422,
    readonly slug = 'cannot-connect',
  ) {
    super(message)
    this.name = 'ConnectProblem'
  }
}

/** The hint for a vendor's status: what it usually means and what to do. */
export function hintFor(profile: VendorProfile, status: number | undefined, origin: string): string {
  const { label, vendor } = profile
  if (status === undefined) return `Could not reach ${origin}: check ${profile.base} and the network.`
  if (status === 401)
    return `${label} refused the credentials: check ${profile.credentials} (missing, wrong or expired).`
  if (status === 403) return `The credentials lack a permission for this call: ${profile.permission}.`
  if (status === 404)
    return `Not found: the object is gone at ${label}, or ${profile.base} does not point at its API.`
  if (status === 409)
    return `A conflicting object exists at ${label} (a duplicate name or destination): see \`streamgate connections ${vendor}\`, remove or rename the other one, then run again.`
  if (status === 400 || status === 422)
    return `${label} refused the request's content: the message names the field; fix the config it comes from (see the request with --dry-run) and run again.`
  if (status === 429) return `${label} is rate limiting: wait a moment and run again (connect is idempotent).`
  if (status >= 500)
    return `${label} failed on its side and nothing further was changed: run again later (connect is idempotent).`
  return `Unexpected answer from ${label}: see the message, and the requests with --dry-run.`
}

/** Header names whose values are credentials in every vendor call. */
const SECRET_HEADERS = new Set(['authorization', 'x-api-key', 'x-domo-developer-token'])

export class VendorHttp {
  /** Every request made (or, in a dry run, planned), in order. */
  readonly requests: RequestRecord[] = []
  private readonly http: HttpClient
  private readonly secrets: string[]

  constructor(
    readonly profile: VendorProfile,
    readonly dryRun: boolean,
    /** Secret values that must never appear in a transcript (tokens, header values). */
    secrets: readonly (string | undefined)[] = [],
    http?: HttpClient,
  ) {
    this.http = http ?? new HttpClient({ timeoutMs: VENDOR_TIMEOUT_MS, connections: 2 })
    // Longest first, so that a secret containing another is masked whole; very short values would mask
    // unrelated text and are left to the structural masking.
    this.secrets = [...new Set(secrets.filter((s): s is string => !!s && s.length >= 4))].sort(
      (a, b) => b.length - a.length,
    )
  }

  /** A call that changes nothing at the vendor: sent in a dry run too. Statuses in `accept` are returned. */
  async read(req: VendorRequest, accept: readonly number[] = []): Promise<VendorAnswer> {
    return (await this.send(req, accept, true))!
  }

  /** A change: sent, or in a dry run only recorded (then undefined). */
  write(req: VendorRequest, accept: readonly number[] = []): Promise<VendorAnswer | undefined> {
    return this.send(req, accept, !this.dryRun)
  }

  /** Records a call made elsewhere (an OAuth token request made by the sink's token source). */
  record(method: string, url: URL, headers: Record<string, string>, status?: number): void {
    this.requests.push(this.shown({ method: method as HttpMethod, url, headers }, true, status))
  }

  close(): Promise<void> {
    return this.http.close()
  }

  /** The VendorError for an answer (used by callers that accepted a status and then decide it is one). */
  refusal(req: VendorRequest, answer: VendorAnswer): VendorError {
    return this.error(req, answer.status, answerDetail(Buffer.from(answer.text)))
  }

  private async send(
    req: VendorRequest,
    accept: readonly number[],
    really: boolean,
  ): Promise<VendorAnswer | undefined> {
    const record = this.shown(req, really)
    this.requests.push(record)
    if (!really) return undefined
    const headers: Record<string, string> = { accept: 'application/json', ...req.headers }
    if (req.body !== undefined) headers['content-type'] ??= 'application/json'
    let answer: HttpAnswer
    try {
      answer = await this.http.request({
        url: req.url,
        method: req.method,
        headers,
        ...(req.body !== undefined ? { body: JSON.stringify(req.body) } : {}),
        signal: NEVER,
      })
    } catch (err) {
      throw this.error(req, undefined, err instanceof SinkError ? err.message : String(err), err)
    }
    record.status = answer.status
    const text = answer.body.toString('utf8')
    let json: unknown
    try {
      json = text === '' ? undefined : JSON.parse(text)
    } catch {
      json = undefined
    }
    const result = { status: answer.status, headers: answer.headers, json, text }
    if ((answer.status >= 200 && answer.status <= 299) || accept.includes(answer.status)) return result
    throw this.error(req, answer.status, answerDetail(answer.body))
  }

  private error(req: VendorRequest, status: number | undefined, said: string, cause?: unknown): VendorError {
    const call = `${req.method} ${req.url.pathname}`
    return new VendorError(
      this.profile.vendor,
      call,
      status,
      this.mask(said),
      hintFor(this.profile, status, req.url.origin),
      this.profile.label,
      { cause },
    )
  }

  private shown(req: VendorRequest, sent: boolean, status?: number): RequestRecord {
    const headers: Record<string, string> = { accept: 'application/json' }
    for (const [name, value] of Object.entries(req.headers)) {
      const lower = name.toLowerCase()
      if (lower === 'authorization') {
        const space = value.indexOf(' ')
        headers[lower] = space > 0 ? `${value.slice(0, space)} ${SECRET_MASK}` : SECRET_MASK
      } else headers[lower] = SECRET_HEADERS.has(lower) ? SECRET_MASK : this.mask(value)
    }
    if (req.body !== undefined) headers['content-type'] ??= 'application/json'
    const record: RequestRecord = { method: req.method, url: this.mask(req.url.href), headers, sent }
    const body = req.shownBody ?? req.body
    if (body !== undefined) record.body = this.maskDeep(body)
    if (status !== undefined) record.status = status
    return record
  }

  /** Masks URL credentials and every known secret value inside a text. */
  mask(text: string): string {
    let out = maskUrlCredentials(text)
    for (const secret of this.secrets) out = out.split(secret).join(SECRET_MASK)
    return out
  }

  private maskDeep(value: unknown): unknown {
    if (typeof value === 'string') return this.mask(value)
    if (Array.isArray(value)) return value.map((v) => this.maskDeep(v))
    if (value !== null && typeof value === 'object') {
      const out: Record<string, unknown> = {}
      for (const [k, v] of Object.entries(value))
        Object.defineProperty(out, k, {
          value: this.maskDeep(v),
          enumerable: true,
          writable: true,
          configurable: true,
        })
      return out
    }
    return value
  }
}

/** `base` (an environment value or default) with `path` appended, unless the base already ends with it. */
export function apiUrl(base: string, prefix: string, path: string, envName: string): URL {
  let url: URL
  try {
    url = new URL(base)
  } catch {
    throw new ConnectProblem(`${envName} is not a URL: "${maskUrlCredentials(base)}"`)
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:')
    throw new ConnectProblem(`${envName} must be an http(s) URL, got "${maskUrlCredentials(base)}"`)
  const own = url.pathname.replace(/\/+$/, '')
  url.pathname = (own.endsWith(prefix) ? own : own + prefix) + path
  url.search = ''
  url.hash = ''
  return url
}

/** The list inside an answer: the answer itself when it is one, else the first list among its values. */
export function listIn(doc: unknown): unknown[] {
  if (Array.isArray(doc)) return doc
  if (doc !== null && typeof doc === 'object')
    return (Object.values(doc).find(Array.isArray) as unknown[] | undefined) ?? []
  return []
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

/** An id as text (vendors use numbers or strings). */
export function idText(value: unknown): string | undefined {
  if (typeof value === 'number' && Number.isFinite(value)) return String(value)
  if (typeof value === 'string' && value !== '') return value
  return undefined
}
