import type { AdobeSinkConfig } from '../../config/types.js'
import { AUTH_FAILED, authError, permanentError, SinkError, transientError } from '../../errors.js'
import { sleep } from '../../retry.js'
import {
  ALL_WRITTEN,
  batchLimits,
  type Sink,
  type SinkContext,
  type SinkRecord,
  type WriteResult,
} from '../sink.js'
import {
  answerDetail,
  answerJson,
  describe,
  HttpClient,
  mapLimit,
  statusError,
  writeOutcome,
  type HttpAnswer,
  type IndexedFailure,
} from '../http-client.js'
import { notConnectedSink } from '../not-connected.js'
import { ClientCredentialsToken } from '../oauth.js'
import { fieldJson, isJsonObject } from '../record-json.js'

// Adobe Experience Platform streaming ingestion (vendor-formats.md §3; sources AEP-*).
//
// Modes:
//   batch   POST <origin>/collection/batch/<inletId> with {"messages":[envelope, …]} [AEP-MULTI]; a write is
//           cut into requests of at most ADOBE_MAX_REQUEST_BYTES (the bytes actually sent).
//   single  POST <inletUrl> per message, with `?syncValidation=true` when configured [AEP-RECORD, AEP-VALID].
//   raw     POST <inletUrl> per record, the record as is, with header x-adobe-flow-id [AEP-HTTP].
// Envelope (XDM modes) [AEP-RECORD, AEP-MULTI, AEP-HTTP], keys in this order, unset ones left out:
//   {"header":{"schemaRef":{"id","contentType"},"imsOrgId","datasetId","flowId","source":{"name"},
//    "createdAt":<receivedAtMs>},"body":{"xdmMeta":{"schemaRef":{…}},"xdmEntity":<entity>}}
// The entity is the record's own bytes spliced into the text (never parsed and re-serialised: 64-bit ids
// would lose digits), or, with `mapping` (xdm path ← record field path), an object assembled from each
// field's exact JSON text. `createdAt` is when streamgate accepted the record, so a resend is identical.
//
// Answers: batch is always 207 with one entry per message in request order [AEP-MULTI, AEP-TROUBLE]:
// `xactionId` = done; `statusCode` 4xx = permanent for that message (reason `adobe-<status>`, Adobe's
// message kept); 429/5xx = transient for that message only. Whole-request 429/500/503 and network errors
// are transient (Adobe asks for at least 3 retries of a 503 with backoff; retry.maxAttempts 0 retries
// forever). 401 (no token) / 403 (invalid or expired token) [AEP-MULTI, AEP-HTTP appendix]: with OAuth the
// token is renewed and the request resent once. A refusal that remains (a static token that expired, a
// renewal the token endpoint refuses) is an auth failure, not a bad record: errors.ts `authError`, which
// the delivery layer retries with backoff without limit and never dead-letters (the circuit opens, the
// sink's last error reads "auth failed: …", streamgate_sink_auth_failures_total counts it); it is logged
// as an error once per outage. 413: the request is halved and resent; a single message → permanent
// `record-too-large`.
//
// URLs: the batch endpoint is built from the inlet's path alone: a query string on `inletUrl` (e.g.
// `?syncValidation=true`, `?x-adobe-flow-id=…`) belongs to the single-message endpoint, where AEP-VALID and
// AEP-HTTP document those parameters, and is kept on single and raw requests only. syncValidation is not
// available on the batch endpoint [AEP-VALID]: `syncValidation: true` with mode "batch" is a config error
// (src/sinks/adobe/check.ts).

/** A request's whole payload must not exceed 1 MB, else 413 [AEP-MULTI]; read as 10^6 bytes, the stricter reading. */
export const ADOBE_MAX_REQUEST_BYTES = 1_000_000
/** Documented inlet limits [AEP-OVERVIEW, AEP-GUARD]; the defaults of requestsPerSecond/messagesPerSecond. */
export const ADOBE_MAX_REQUESTS_PER_SECOND = 1000
export const ADOBE_MAX_MESSAGES_PER_SECOND = 10_000
/** syncValidation=true is limited to 60 requests per minute per connection [AEP-GUARD]. */
export const ADOBE_SYNC_VALIDATION_REQUESTS_PER_SECOND = 1
/** Adobe asks to retry a 503 at least this many times with exponential backoff [AEP-MULTI]. */
export const ADOBE_MIN_503_RETRIES = 3
/** Requests of one write in flight at once. */
const ADOBE_PARALLEL_REQUESTS = 4
const ADOBE_TIMEOUT_MS = 30_000
export const ADOBE_TOKEN_URL = 'https://ims-na1.adobelogin.com/ims/token/v3'

const BATCH_OPEN = Buffer.from('{"messages":[')
const BATCH_CLOSE = Buffer.from(']}')
const COMMA = Buffer.from(',')
const ENVELOPE_TAIL = Buffer.from('}}')
/** Digits of an epoch-milliseconds `createdAt` until the year 2286. */
const CREATED_AT_DIGITS = 13

/** lingerMs 0: batches grow with the load while requests are in flight (as the http sink). */
const ADOBE_BATCH_DEFAULTS = { maxBatchRecords: 1000, maxBatchBytes: 4 * 1024 * 1024, lingerMs: 0 }

export function createAdobeSink(name: string, config: AdobeSinkConfig, context: SinkContext): Sink {
  // No inletUrl yet: the sink waits for `streamgate connect adobe` (src/connect/adobe.ts), holding records.
  if (!config.inletUrl) return notConnectedSink(name, config)
  return new AdobeSink(name, config, context)
}

interface Message {
  index: number
  bytes: Buffer
}

class AdobeSink implements Sink {
  readonly type = 'adobe' as const
  readonly limits
  private readonly inletUrl: URL
  private readonly batchUrl: URL
  private readonly inletId: string
  private readonly envelope: EnvelopeBuilder | undefined
  private readonly http = new HttpClient({ timeoutMs: ADOBE_TIMEOUT_MS })
  private readonly oauth: ClientCredentialsToken | undefined
  private readonly staticToken: string | undefined
  private readonly fixedHeaders: Record<string, string>
  private readonly limiter: InletLimiter
  private closed = false
  private authFailing = false

  constructor(
    readonly name: string,
    private readonly config: AdobeSinkConfig,
    private readonly context: SinkContext,
  ) {
    const at = `sinks.${name}`
    const parsed = parseInletUrl(config.inletUrl!)
    if (!parsed)
      throw new Error(
        `${at}.inletUrl: expected https://<host>/collection/<inletId>, got "${config.inletUrl}"`,
      )
    ;({ inletUrl: this.inletUrl, batchUrl: this.batchUrl, inletId: this.inletId } = parsed)
    if (config.mode === 'batch' && config.syncValidation)
      throw new Error(`${at}.syncValidation: the batch endpoint does not support synchronous validation`)
    if (config.mode === 'batch' && this.inletUrl.search !== '')
      context.logger.warn(
        { sink: name, query: [...this.inletUrl.searchParams.keys()] },
        'inletUrl has a query string; the batch endpoint is sent none (it applies to single-message requests)',
      )
    if (config.mode === 'single' && config.syncValidation)
      this.inletUrl.searchParams.set('syncValidation', 'true')
    if (config.mode === 'raw') {
      if (!config.flowId) throw new Error(`${at}.flowId: required for mode "raw" (sent as x-adobe-flow-id)`)
    } else {
      if (!config.schemaRef) throw new Error(`${at}.schemaRef: required for mode "${config.mode}"`)
      this.envelope = new EnvelopeBuilder(config, at)
    }
    const overhead =
      config.mode === 'raw'
        ? 0
        : this.envelope!.overhead + (config.mode === 'batch' ? BATCH_OPEN.length + BATCH_CLOSE.length : 0)
    this.limits = batchLimits(config, {
      ...ADOBE_BATCH_DEFAULTS,
      maxRecordBytes: ADOBE_MAX_REQUEST_BYTES - overhead,
    })

    const headers: Record<string, string> = { 'content-type': 'application/json' }
    const auth = config.auth
    if (auth && 'token' in auth) this.staticToken = auth.token
    else if (auth)
      this.oauth = new ClientCredentialsToken(
        {
          tokenUrl: auth.tokenUrl ?? ADOBE_TOKEN_URL,
          clientId: auth.clientId,
          clientSecret: auth.clientSecret,
          ...(auth.scopes ? { scopes: auth.scopes } : {}),
          style: 'form',
        },
        this.http,
        ADOBE_TIMEOUT_MS,
      )
    // Authenticated inlets: Platform's usual headers besides the bearer token [AEP-HTTP, AEP-TROUBLE];
    // whether DCCS requires all of them is not documented, so all are sent (vendor-formats.md §3.4).
    if (auth && config.imsOrgId) headers['x-gw-ims-org-id'] = config.imsOrgId
    const apiKey = config.apiKey ?? (auth && 'clientId' in auth ? auth.clientId : undefined)
    if (apiKey) headers['x-api-key'] = apiKey
    if (config.sandboxName) headers['x-sandbox-name'] = config.sandboxName
    if (config.mode === 'raw') headers['x-adobe-flow-id'] = config.flowId!
    this.fixedHeaders = headers

    const requestsPerSecond =
      config.mode !== 'batch' && this.inletUrl.searchParams.get('syncValidation') === 'true'
        ? Math.min(config.requestsPerSecond, ADOBE_SYNC_VALIDATION_REQUESTS_PER_SECOND)
        : config.requestsPerSecond
    this.limiter = InletLimiter.acquire(
      `${this.batchUrl.origin}/${this.inletId}`,
      requestsPerSecond,
      config.messagesPerSecond,
    )
    const attempts = config.retry.maxAttempts
    if (attempts > 0 && attempts <= ADOBE_MIN_503_RETRIES)
      context.logger.warn(
        { sink: name, maxAttempts: attempts },
        `Adobe asks to retry 503 at least ${ADOBE_MIN_503_RETRIES} times; retry.maxAttempts allows fewer`,
      )
  }

  async write(batch: readonly SinkRecord[], signal: AbortSignal): Promise<WriteResult> {
    if (this.closed) throw transientError('adobe sink is closed', 'closed')
    if (batch.length === 0) return ALL_WRITTEN
    const failed: IndexedFailure[] = []
    const messages: Message[] = []
    for (let i = 0; i < batch.length; i++) {
      const prepared = this.prepare(batch[i]!)
      if (prepared instanceof SinkError) failed.push({ index: i, error: prepared })
      else messages.push({ index: i, bytes: prepared })
    }
    if (this.config.mode === 'batch')
      await mapLimit(groupByBytes(messages), ADOBE_PARALLEL_REQUESTS, (group) =>
        this.sendBatch(group, signal, failed),
      )
    else
      await mapLimit(messages, ADOBE_PARALLEL_REQUESTS, (message) => this.sendSingle(message, signal, failed))
    return failed.length === 0 ? ALL_WRITTEN : writeOutcome(failed, batch.length)
  }

  /** The bytes of one message: the XDM envelope, or the record itself in raw mode. */
  private prepare(record: SinkRecord): Buffer | SinkError {
    let bytes: Buffer
    if (this.envelope) {
      const built = this.envelope.build(record)
      if (built instanceof SinkError) return built
      bytes = built
    } else bytes = record.fields ? Buffer.from(JSON.stringify(record.fields)) : record.payload
    const wrapper = this.config.mode === 'batch' ? BATCH_OPEN.length + BATCH_CLOSE.length : 0
    if (bytes.length + wrapper > ADOBE_MAX_REQUEST_BYTES)
      return permanentError(
        `the Adobe message would be ${bytes.length + wrapper} bytes; an inlet request may hold ${ADOBE_MAX_REQUEST_BYTES}`,
        'record-too-large',
      )
    return bytes
  }

  private async sendBatch(group: Message[], signal: AbortSignal, failed: IndexedFailure[]): Promise<void> {
    const chunks: Buffer[] = [BATCH_OPEN]
    for (let i = 0; i < group.length; i++) {
      if (i > 0) chunks.push(COMMA)
      chunks.push(group[i]!.bytes)
    }
    chunks.push(BATCH_CLOSE)
    const answer = await this.post(this.batchUrl, Buffer.concat(chunks), group.length, signal, group, failed)
    if (!answer) return
    if (answer.status === 207 || answer.status === 200) {
      this.readMultiStatus(answer, group, failed)
      return
    }
    if (answer.status === 413 && group.length > 1) {
      // Sizes are counted before sending, so this means a lower limit than documented: halve and resend.
      const half = Math.ceil(group.length / 2)
      await this.sendBatch(group.slice(0, half), signal, failed)
      await this.sendBatch(group.slice(half), signal, failed)
      return
    }
    fail(failed, group, this.answerError(answer, this.batchUrl))
  }

  private async sendSingle(message: Message, signal: AbortSignal, failed: IndexedFailure[]): Promise<void> {
    const answer = await this.post(this.inletUrl, message.bytes, 1, signal, [message], failed)
    if (!answer) return
    if (answer.status >= 200 && answer.status <= 299) return
    fail(failed, [message], this.answerError(answer, this.inletUrl))
  }

  /**
   * Sends one request (after the rate limiter). With OAuth, a 401/403 renews the token and resends once.
   * Returns undefined when there was no answer (the messages are marked failed, transient).
   */
  private async post(
    url: URL,
    body: Buffer,
    messageCount: number,
    signal: AbortSignal,
    group: Message[],
    failed: IndexedFailure[],
  ): Promise<HttpAnswer | undefined> {
    try {
      let token = await this.token(signal)
      await this.limiter.take(messageCount, signal)
      let answer = await this.http.request({
        url,
        method: 'POST',
        headers: this.headers(token),
        body,
        signal,
      })
      if ((answer.status === 401 || answer.status === 403) && this.oauth && token) {
        this.oauth.invalidate(token)
        token = await this.token(signal)
        await this.limiter.take(messageCount, signal)
        answer = await this.http.request({ url, method: 'POST', headers: this.headers(token), body, signal })
      }
      if (answer.status !== 401 && answer.status !== 403 && this.authFailing) {
        this.authFailing = false
        this.context.logger.info({ sink: this.name }, 'Adobe inlet accepts the credentials again')
      }
      return answer
    } catch (err) {
      if (signal.aborted || !(err instanceof SinkError)) throw err
      // The token endpoint refused the client credentials (oauth.ts): the same hold as a refused token.
      if (err.reason === AUTH_FAILED) this.reportUnauthorized(err.message)
      fail(failed, group, err)
      return undefined
    }
  }

  private token(signal: AbortSignal): Promise<string | undefined> {
    if (this.oauth) return this.oauth.token(signal)
    return Promise.resolve(this.staticToken)
  }

  private headers(token: string | undefined): Record<string, string> {
    return token === undefined
      ? this.fixedHeaders
      : { ...this.fixedHeaders, authorization: `Bearer ${token}` }
  }

  /** A 207 names each message's fate in request order. */
  private readMultiStatus(answer: HttpAnswer, group: Message[], failed: IndexedFailure[]): void {
    const doc = answerJson<{ responses?: unknown }>(answer)
    const responses = Array.isArray(doc?.responses) ? (doc.responses as unknown[]) : undefined
    if (!responses) {
      if (answer.status === 200) return // a plain success answer carries no per-message list
      fail(
        failed,
        group,
        transientError('the Adobe inlet answered 207 without "responses"', 'adobe-bad-answer'),
      )
      return
    }
    for (let i = 0; i < group.length; i++) {
      const entry = responses[i] as
        { xactionId?: unknown; statusCode?: unknown; message?: unknown } | undefined
      const status = Number(entry?.statusCode)
      if (entry && entry.statusCode === undefined && typeof entry.xactionId === 'string') continue
      if (entry && status >= 200 && status <= 299) continue
      let error: SinkError
      if (!entry || !Number.isFinite(status))
        error = transientError(
          `the Adobe inlet gave no result for message ${i} of ${group.length}`,
          'adobe-bad-answer',
        )
      else {
        const message = `Adobe rejected the message (${status})${typeof entry.message === 'string' ? `: ${entry.message}` : ''}`
        error =
          status === 429 || status >= 500
            ? transientError(message, `adobe-${status}`)
            : permanentError(message, `adobe-${status}`)
      }
      failed.push({ index: group[i]!.index, error })
    }
  }

  private answerError(answer: HttpAnswer, url: URL): SinkError {
    const what = `Adobe inlet ${describe({ method: 'POST', url })}`
    if (answer.status === 401 || answer.status === 403) {
      const detail = answerDetail(answer.body)
      const message = `${what} answered ${answer.status} (${answer.status === 401 ? 'missing' : 'invalid or expired'} token)${detail ? `: ${detail}` : ''}`
      const error = authError(message)
      this.reportUnauthorized(error.message)
      return error
    }
    if (answer.status === 413)
      return permanentError(
        `${what} answered 413: the message is over the inlet's size limit`,
        'record-too-large',
      )
    if (answer.status === 501)
      return permanentError(
        `${what} answered 501: syncValidation is not supported in this region [AEP-VALID]`,
        'adobe-501',
      )
    return statusError(answer, 'adobe', what)
  }

  /** An auth failure holds every record of the sink: say so loudly, once per outage (no token in the log). */
  private reportUnauthorized(message: string): void {
    if (this.authFailing) return
    this.authFailing = true
    this.context.logger.error(
      { sink: this.name, inletId: this.inletId, err: message },
      'Adobe inlet refused the credentials; records stay in the spool and are retried until the credentials work',
    )
  }

  /** Renews the OAuth token when configured, then checks that the inlet's host answers at all. */
  async healthcheck(signal: AbortSignal): Promise<void> {
    if (this.oauth) await this.oauth.token(signal)
    const answer = await this.http.request({ url: this.inletUrl, method: 'HEAD', signal })
    if (answer.status >= 500) throw statusError(answer, 'adobe', `Adobe inlet HEAD ${this.inletUrl.origin}`)
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.limiter.release()
    await this.http.close()
  }
}

function fail(failed: IndexedFailure[], messages: readonly Message[], error: SinkError): void {
  for (const m of messages) failed.push({ index: m.index, error })
}

/** Greedy groups whose request body ({"messages":[…]}) stays within ADOBE_MAX_REQUEST_BYTES. */
export function groupByBytes(messages: readonly Message[], maxBytes = ADOBE_MAX_REQUEST_BYTES): Message[][] {
  const groups: Message[][] = []
  let current: Message[] = []
  let size = BATCH_OPEN.length + BATCH_CLOSE.length
  for (const m of messages) {
    const added = m.bytes.length + (current.length > 0 ? COMMA.length : 0)
    if (current.length > 0 && size + added > maxBytes) {
      groups.push(current)
      current = []
      size = BATCH_OPEN.length + BATCH_CLOSE.length
    }
    size += m.bytes.length + (current.length > 0 ? COMMA.length : 0)
    current.push(m)
  }
  if (current.length > 0) groups.push(current)
  return groups
}

/**
 * `https://host/collection/<inletId>` (or the batch form) → both endpoint URLs and the inlet id. The single
 * endpoint keeps the query string (syncValidation, x-adobe-flow-id [AEP-VALID, AEP-HTTP]); the batch
 * endpoint never gets one.
 */
export function parseInletUrl(text: string): { inletUrl: URL; batchUrl: URL; inletId: string } | undefined {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    return undefined
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return undefined
  const m = /^(.*)\/collection\/(?:batch\/)?([^/]+)\/?$/.exec(url.pathname)
  if (!m) return undefined
  const [, prefix, inletId] = m as unknown as [string, string, string]
  const inletUrl = new URL(url)
  inletUrl.pathname = `${prefix}/collection/${inletId}`
  inletUrl.hash = ''
  // The batch endpoint takes {"messages":[…]} and no query parameters [AEP-MULTI].
  const batchUrl = new URL(inletUrl)
  batchUrl.pathname = `${prefix}/collection/batch/${inletId}`
  batchUrl.search = ''
  return { inletUrl, batchUrl, inletId }
}

interface MapNode {
  key: string
  field?: { path: string[]; dotted: string }
  children?: MapNode[]
}

/**
 * Builds envelopes as bytes. Everything but `createdAt` and the entity is the same for every message of
 * the sink, so it is rendered once into a head (up to `"createdAt":`) and a middle (up to `"xdmEntity":`).
 */
export class EnvelopeBuilder {
  private readonly head: Buffer
  private readonly middle: Buffer
  private readonly mapping: MapNode[] | undefined
  /** Envelope bytes around the entity. */
  readonly overhead: number

  constructor(config: AdobeSinkConfig, at = 'adobe') {
    const schemaRef = JSON.stringify({ id: config.schemaRef, contentType: config.schemaContentType })
    let head = `{"header":{"schemaRef":${schemaRef}`
    if (config.imsOrgId !== undefined) head += `,"imsOrgId":${JSON.stringify(config.imsOrgId)}`
    if (config.datasetId !== undefined) head += `,"datasetId":${JSON.stringify(config.datasetId)}`
    if (config.flowId !== undefined) head += `,"flowId":${JSON.stringify(config.flowId)}`
    if (config.sourceName !== undefined) head += `,"source":${JSON.stringify({ name: config.sourceName })}`
    head += ',"createdAt":'
    this.head = Buffer.from(head)
    this.middle = Buffer.from(`},"body":{"xdmMeta":{"schemaRef":${schemaRef}},"xdmEntity":`)
    this.overhead = this.head.length + CREATED_AT_DIGITS + this.middle.length + ENVELOPE_TAIL.length
    this.mapping = config.mapping ? compileMapping(config.mapping, `${at}.mapping`) : undefined
  }

  build(record: SinkRecord): Buffer | SinkError {
    let entity: Buffer
    if (this.mapping) entity = Buffer.from(renderMapping(this.mapping, record) ?? '{}')
    else if (record.fields) entity = Buffer.from(JSON.stringify(record.fields))
    else if (isJsonObject(record.payload)) entity = record.payload
    else
      return permanentError(
        'the record is not a JSON object, so it cannot be an XDM entity (configure a mapping or mode "raw")',
        'not-json-object',
      )
    return Buffer.concat([
      this.head,
      Buffer.from(String(record.receivedAtMs)),
      this.middle,
      entity,
      ENVELOPE_TAIL,
    ])
  }
}

/** `{"_tenant.sim.iccid": "sim.iccid", …}` → a tree of XDM keys in the mapping's order. */
function compileMapping(mapping: Record<string, string>, at: string): MapNode[] {
  const root: MapNode[] = []
  for (const [xdmPath, fieldPath] of Object.entries(mapping)) {
    const keys = xdmPath.split('.')
    if (keys.some((k) => k === '') || fieldPath === '') throw new Error(`${at}: empty path in "${xdmPath}"`)
    let level = root
    keys.forEach((key, depth) => {
      let node = level.find((n) => n.key === key)
      const leaf = depth === keys.length - 1
      if (node && (leaf || node.field)) throw new Error(`${at}: "${xdmPath}" overlaps another mapped path`)
      if (!node) {
        node = leaf
          ? { key, field: { path: fieldPath.split('.'), dotted: fieldPath } }
          : { key, children: [] }
        level.push(node)
      }
      if (!leaf) level = node.children!
    })
  }
  return root
}

/** The entity's JSON text; fields the record lacks are left out (an empty object is left out too). */
function renderMapping(nodes: readonly MapNode[], record: SinkRecord): string | undefined {
  let out = ''
  for (const node of nodes) {
    const value = node.field
      ? fieldJson(record, node.field.path, node.field.dotted)
      : renderMapping(node.children!, record)
    if (value === undefined) continue
    out += `${out === '' ? '{' : ','}${JSON.stringify(node.key)}:${value}`
  }
  return out === '' ? undefined : `${out}}`
}

/**
 * A token bucket that waits: `take(n)` spends n tokens and, when that leaves a debt, sleeps until the debt
 * is paid at `perSecond`. Callers are served in arrival order; an aborted wait gives its tokens back.
 * The bucket holds at most one second's worth (`burst`).
 */
export class TokenBucket {
  private tokens: number
  private updatedAt: number

  constructor(
    readonly perSecond: number,
    readonly burst: number = Math.max(1, perSecond),
    private readonly now: () => number = () => performance.now(),
  ) {
    this.tokens = burst
    this.updatedAt = now()
  }

  async take(n: number, signal: AbortSignal): Promise<void> {
    const now = this.now()
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.updatedAt) / 1000) * this.perSecond)
    this.updatedAt = now
    this.tokens -= n
    if (this.tokens >= 0) return
    try {
      await sleep(Math.ceil((-this.tokens / this.perSecond) * 1000), signal)
    } catch (err) {
      this.tokens += n
      throw err
    }
  }
}

/** Both limits of one inlet, shared by every sink instance that writes to it. */
class InletLimiter {
  private static readonly byInlet = new Map<string, InletLimiter>()
  private refs = 0

  private constructor(
    private readonly key: string,
    private readonly requests: TokenBucket,
    private readonly messages: TokenBucket,
  ) {}

  static acquire(key: string, requestsPerSecond: number, messagesPerSecond: number): InletLimiter {
    let limiter = InletLimiter.byInlet.get(key)
    if (!limiter) {
      limiter = new InletLimiter(key, new TokenBucket(requestsPerSecond), new TokenBucket(messagesPerSecond))
      InletLimiter.byInlet.set(key, limiter)
    }
    limiter.refs++
    return limiter
  }

  async take(messages: number, signal: AbortSignal): Promise<void> {
    await this.requests.take(1, signal)
    await this.messages.take(messages, signal)
  }

  release(): void {
    if (--this.refs === 0) InletLimiter.byInlet.delete(this.key)
  }
}
