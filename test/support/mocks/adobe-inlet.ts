// A faithful mock of an Adobe Experience Platform streaming inlet (Data Collection Core Service), written
// from /work/shared/vendor-formats.md §3 (sources AEP-HTTP, AEP-MULTI, AEP-RECORD, AEP-VALID, AEP-TROUBLE)
// because no Adobe server can run here. What it does, and where the docs say so:
//   POST /collection/<inletId>                single message → 200 {inletId, xactionId, receivedTimeMs} with
//                                             "syncValidation":{"skipped":true}, or with ?syncValidation=true
//                                             {"status":"pass"} / a 400 problem (AEP-VALID) / 501 where sync
//                                             validation is unsupported; raw data with x-adobe-flow-id (header
//                                             or query) is taken as is (AEP-HTTP)
//   POST /collection/batch/<inletId>          {"messages":[…]} → ALWAYS 207, one entry per message in request
//                                             order: {"xactionId": batchId + ":" + index} or
//                                             {"statusCode": 400, "message": "inletId: […] imsOrgId: […] …"}
//                                             (AEP-MULTI, AEP-TROUBLE); ?syncValidation is refused there
//                                             with a 400 (AEP-VALID: not available on the batch endpoint)
//   413 when the request payload is over 1 MB (AEP-MULTI; read as 1,000,000 bytes)
//   400 "Message has unknown xdm format" for a message without `body`; "absent or wrong ims org" when the
//   header's imsOrgId is not the inlet's (AEP-MULTI)
//   authenticated inlets: 401 problem+json with "status":"401" as a STRING when the token is missing
//   (AEP-HTTP), 403 for an invalid or expired token (AEP-MULTI status table; its body is not documented,
//   the 401 shape is reused)
//   POST /ims/token/v3                        an IMS-style OAuth client-credentials token endpoint
// Not documented, so invented here: the 403/413/429/5xx bodies, the xactionId format of single messages.
// Failure injection for fault tests: whole-request statuses (429 with or without Retry-After, 500, 503),
// per-message statuses by index or by content, delays and connection resets. Every request is recorded
// (headers, parsed body, raw bytes).

import { randomBytes, randomUUID } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { splitTopLevel } from '../../../src/records/json-scan.js'
import { rawJsonAt } from '../../../src/sinks/record-json.js'

/** AEP-MULTI: "413 when the total request payload is over 1 MB". */
const ADOBE_DOCUMENTED_MAX_REQUEST_BYTES = 1_000_000

export interface RecordedRequest {
  method: string
  path: string
  query: URLSearchParams
  headers: IncomingMessage['headers']
  raw: Buffer
  /** The parsed JSON body (undefined when it is not JSON). */
  body: unknown
  status: number
}

export interface AcceptedMessage {
  endpoint: 'batch' | 'single' | 'raw'
  /** The message's exact text as sent. */
  raw: string
  /** The exact text of body.xdmEntity (XDM messages). */
  entity?: string
  parsed: unknown
}

export interface AdobeInletOptions {
  inletId?: string
  /** The inlet's IMS org: messages whose header names another org are refused. */
  imsOrgId?: string
  /** An authenticated inlet: every request needs `Authorization: Bearer <valid token>`. */
  authenticated?: boolean
  /** Client credentials the token endpoint accepts. */
  clientId?: string
  clientSecret?: string
  /** `expires_in` of issued tokens, seconds. */
  tokenLifetimeS?: number
  /** Lower than the documented 1 MB to exercise 413 handling. */
  maxRequestBytes?: number
  /** false: ?syncValidation=true answers 501 (regions other than VA7, AEP-VALID). */
  syncValidationSupported?: boolean
}

interface Injected {
  status: number
  retryAfter?: string
}

interface MessageFailure {
  statusCode: number
  message: string
}

export class AdobeInletMock {
  readonly requests: RecordedRequest[] = []
  readonly accepted: AcceptedMessage[] = []
  tokenRequests = 0
  readonly inletId: string
  private readonly validTokens = new Set<string>()
  private readonly sockets = new Set<Socket>()
  private statusQueue: Injected[] = []
  private failForever: Injected | undefined
  private delays: number[] = []
  private resets = 0
  private indexFailures: { byIndex: Map<number, MessageFailure>; times: number } | undefined
  private readonly contentFailures: { text: string; failure: MessageFailure; times: number }[] = []
  private batchCounter = 0
  private tokenFailures: number[] = []
  private constructor(
    private readonly server: Server,
    readonly url: string,
    private readonly options: AdobeInletOptions,
  ) {
    this.inletId = options.inletId ?? randomBytes(16).toString('hex')
  }

  static async start(options: AdobeInletOptions = {}): Promise<AdobeInletMock> {
    const server = createServer((req, res) => {
      void mock.handle(req, res)
    })
    server.keepAliveTimeout = 30_000
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const { port } = server.address() as AddressInfo
    const mock = new AdobeInletMock(server, `http://127.0.0.1:${port}`, options)
    server.on('connection', (socket) => {
      mock.sockets.add(socket)
      socket.on('close', () => mock.sockets.delete(socket))
    })
    return mock
  }

  get inletUrl(): string {
    return `${this.url}/collection/${this.inletId}`
  }

  get batchUrl(): string {
    return `${this.url}/collection/batch/${this.inletId}`
  }

  get tokenUrl(): string {
    return `${this.url}/ims/token/v3`
  }

  /** A token the inlet accepts (for static-token tests). */
  issueToken(): string {
    const token = `tok-${randomUUID()}`
    this.validTokens.add(token)
    return token
  }

  /** The inlet accepts this token (again): an operator renewed the static token it was configured with. */
  acceptToken(token: string): void {
    this.validTokens.add(token)
  }

  /** Every token issued so far becomes invalid (expired): requests with it get 403. */
  expireTokens(): void {
    this.validTokens.clear()
  }

  /** The next `count` token requests answer `status` (401: the IMS refuses the client). */
  failNextTokens(count: number, status = 401): void {
    for (let i = 0; i < count; i++) this.tokenFailures.push(status)
  }

  /** The next `count` requests (after auth) answer `status` (429 with an optional Retry-After, 500, 503 …). */
  failNext(count: number, status: number, retryAfter?: string): void {
    for (let i = 0; i < count; i++) this.statusQueue.push({ status, ...(retryAfter ? { retryAfter } : {}) })
  }

  /** Every request answers `status` until `heal()`. */
  failAlways(status: number): void {
    this.failForever = { status }
  }

  heal(): void {
    this.failForever = undefined
    this.statusQueue = []
  }

  /** In the next `times` batch requests, the messages at these indexes get a failed entry. */
  failMessagesAt(indexes: number[], statusCode: number, times = 1, message = 'Service Unavailable'): void {
    const byIndex = new Map(indexes.map((i) => [i, { statusCode, message: this.dccsMessage(message) }]))
    this.indexFailures = { byIndex, times }
  }

  /** Messages whose text contains `text` get a failed entry (`times` times; Infinity = always). */
  failMessagesContaining(text: string, statusCode: number, message: string, times = Infinity): void {
    this.contentFailures.push({ text, failure: { statusCode, message: this.dccsMessage(message) }, times })
  }

  /** The next `count` requests wait `ms` before being answered. */
  delayNext(ms: number, count = 1): void {
    for (let i = 0; i < count; i++) this.delays.push(ms)
  }

  /** The next `count` requests get their connection destroyed without an answer. */
  resetNext(count = 1): void {
    this.resets += count
  }

  /** The exact xdmEntity texts (or raw bodies) of every accepted message. */
  entities(): string[] {
    return this.accepted.map((m) => m.entity ?? m.raw)
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }

  private dccsMessage(text: string): string {
    return `inletId: [${this.inletId}] imsOrgId: [${this.options.imsOrgId ?? 'unknown'}] ${text}`
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = []
    for await (const chunk of req) chunks.push(chunk as Buffer)
    const raw = Buffer.concat(chunks)
    const url = new URL(req.url ?? '/', this.url)
    let body: unknown
    try {
      body = raw.length > 0 ? JSON.parse(raw.toString('utf8')) : undefined
    } catch {
      body = undefined
    }
    const recorded: RecordedRequest = {
      method: req.method ?? '',
      path: url.pathname,
      query: url.searchParams,
      headers: req.headers,
      raw,
      body,
      status: 0,
    }
    this.requests.push(recorded)
    const answer = (status: number, doc: unknown, headers: Record<string, string> = {}): void => {
      recorded.status = status
      const text = JSON.stringify(doc)
      const type = status >= 400 ? 'application/problem+json' : 'application/json'
      res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(text), ...headers })
      res.end(text)
    }

    if (url.pathname === '/ims/token/v3') return this.token(req, raw, answer)
    if (this.resets > 0) {
      this.resets--
      req.socket.destroy()
      return
    }
    const delay = this.delays.shift()
    if (delay) await new Promise((r) => setTimeout(r, delay))

    const single = url.pathname === `/collection/${this.inletId}`
    const batch = url.pathname === `/collection/batch/${this.inletId}`
    if (!single && !batch) return answer(404, problem(404, 'Not Found', `inlet not found: ${url.pathname}`))
    if (req.method !== 'POST')
      return answer(405, problem(405, 'Method Not Allowed', 'use POST'), { allow: 'POST' })

    if (this.options.authenticated) {
      const auth = req.headers.authorization ?? ''
      const token = /^Bearer (.+)$/i.exec(auth)?.[1]
      // AEP-HTTP: the 401 body, with "status" as a string.
      if (!token)
        return answer(401, {
          type: 'https://ns.adobe.com/adobecloud/problem/data-collection-service-authorization',
          status: '401',
          title: 'Authorization',
          report: { message: `[${randomUUID()}] Ims service token is empty` },
        })
      if (!this.validTokens.has(token))
        return answer(403, {
          type: 'https://ns.adobe.com/adobecloud/problem/data-collection-service-authorization',
          status: '403',
          title: 'Authorization',
          report: { message: `[${randomUUID()}] Ims service token is invalid or expired` },
        })
    }

    const maxBytes = this.options.maxRequestBytes ?? ADOBE_DOCUMENTED_MAX_REQUEST_BYTES
    if (raw.length > maxBytes)
      return answer(
        413,
        problem(
          413,
          'Payload Too Large',
          this.dccsMessage(`request payload of ${raw.length} bytes is over 1 MB`),
        ),
      )

    const injected = this.statusQueue.shift() ?? this.failForever
    if (injected)
      return answer(
        injected.status,
        problem(injected.status, injected.status === 429 ? 'Too Many Requests' : 'Service error', 'injected'),
        injected.retryAfter ? { 'retry-after': injected.retryAfter } : {},
      )

    if (body === undefined)
      return answer(400, problem(400, 'Invalid request', this.dccsMessage('request body is not valid JSON')))
    // AEP-VALID: synchronous validation is not available on the batch endpoint.
    if (batch && url.searchParams.has('syncValidation'))
      return answer(
        400,
        problem(
          400,
          'Invalid request',
          this.dccsMessage('syncValidation is not supported on the batch endpoint'),
        ),
      )
    if (batch) return this.batch(raw, body, answer)
    return this.single(req, url, raw, body, answer)
  }

  private batch(raw: Buffer, body: unknown, answer: (s: number, d: unknown) => void): void {
    const messages = (body as { messages?: unknown }).messages
    const arrayText = rawJsonAt(raw, ['messages'])
    if (!Array.isArray(messages) || arrayText === undefined)
      return answer(400, problem(400, 'Invalid request', this.dccsMessage('"messages" must be an array')))
    const arrayBuf = Buffer.from(arrayText)
    const spans = splitTopLevel(arrayBuf, 1, arrayBuf.length - 1, Buffer.from(','))
    const receivedTimeMs = Date.now()
    const batchId = `${receivedTimeMs}:${1000 + (this.batchCounter++ % 9000)}:${Math.floor(Math.random() * 300)}`
    const indexFailures = this.indexFailures
    if (indexFailures && --indexFailures.times <= 0) this.indexFailures = undefined
    const responses = messages.map((message, i) => {
      const text = arrayBuf.toString('utf8', spans[i]!.start, spans[i]!.end)
      const failure = this.messageFailure(message, text) ?? indexFailures?.byIndex.get(i)
      if (failure) return { statusCode: failure.statusCode, message: failure.message }
      const entity = rawJsonAt(Buffer.from(text), ['body', 'xdmEntity'])
      this.accepted.push({ endpoint: 'batch', raw: text, parsed: message, ...(entity ? { entity } : {}) })
      return { xactionId: `${batchId}:${i}` }
    })
    answer(207, { inletId: this.inletId, batchId, receivedTimeMs, responses })
  }

  /** Content checks of AEP-MULTI, then injected content failures. */
  private messageFailure(message: unknown, text: string): MessageFailure | undefined {
    if (message === null || typeof message !== 'object' || !('body' in message))
      return { statusCode: 400, message: this.dccsMessage('Message has unknown xdm format') }
    const org = (message as { header?: { imsOrgId?: unknown } }).header?.imsOrgId
    if (this.options.imsOrgId !== undefined && org !== undefined && org !== this.options.imsOrgId)
      return {
        statusCode: 400,
        message: this.dccsMessage('Message has an absent or wrong ims org in the header'),
      }
    for (const rule of this.contentFailures)
      if (rule.times > 0 && text.includes(rule.text)) {
        rule.times--
        return rule.failure
      }
    return undefined
  }

  private single(
    req: IncomingMessage,
    url: URL,
    raw: Buffer,
    body: unknown,
    answer: (s: number, d: unknown) => void,
  ): void {
    const receivedTimeMs = Date.now()
    const xactionId = `${receivedTimeMs}:${Math.floor(Math.random() * 9000) + 1000}:${this.accepted.length}`
    const text = raw.toString('utf8')
    const flowId = req.headers['x-adobe-flow-id'] ?? url.searchParams.get('x-adobe-flow-id')
    if (flowId) {
      this.accepted.push({ endpoint: 'raw', raw: text, parsed: body })
      return answer(200, { inletId: this.inletId, xactionId, receivedTimeMs })
    }
    const failure = this.messageFailure(body, text)
    if (failure)
      return answer(failure.statusCode, {
        type: 'http://ns.adobe.com/adobecloud/problem/data-collection-service/inlet',
        status: failure.statusCode,
        title: failure.statusCode === 400 ? 'Invalid XDM Message Format' : 'Service error',
        report: { message: failure.message },
      })
    const entity = rawJsonAt(raw, ['body', 'xdmEntity'])
    if (url.searchParams.get('syncValidation') === 'true') {
      if (this.options.syncValidationSupported === false)
        return answer(501, problem(501, 'Not Implemented', 'syncValidation is not supported in this region'))
      const xdmEntity = (body as { body?: { xdmEntity?: unknown } }).body?.xdmEntity
      if (xdmEntity === null || typeof xdmEntity !== 'object' || Array.isArray(xdmEntity))
        // AEP-VALID's sync-validation failure shape.
        return answer(400, {
          type: 'http://ns.adobe.com/adobecloud/problem/data-collection-service/inlet',
          status: 400,
          title: 'Invalid XDM Message Format',
          report: {
            message: this.dccsMessage('Message is invalid'),
            cause: {
              _streamingValidation: [
                {
                  schemaLocation: '#',
                  pointerToViolation: '#',
                  causingExceptions: [],
                  keyword: 'type',
                  message: 'expected type: JSONObject',
                },
              ],
            },
          },
        })
      this.accepted.push({ endpoint: 'single', raw: text, parsed: body, ...(entity ? { entity } : {}) })
      return answer(200, {
        inletId: this.inletId,
        xactionId,
        receivedTimeMs,
        syncValidation: { status: 'pass' },
      })
    }
    this.accepted.push({ endpoint: 'single', raw: text, parsed: body, ...(entity ? { entity } : {}) })
    answer(200, { inletId: this.inletId, xactionId, receivedTimeMs, syncValidation: { skipped: true } })
  }

  /** IMS-style client-credentials endpoint: form body grant_type, client_id, client_secret, scope. */
  private token(req: IncomingMessage, raw: Buffer, answer: (s: number, d: unknown) => void): void {
    this.tokenRequests++
    const failure = this.tokenFailures.shift()
    if (failure)
      return answer(failure, { error: 'invalid_client', error_description: 'injected token failure' })
    const form = new URLSearchParams(raw.toString('utf8'))
    if (req.method !== 'POST' || form.get('grant_type') !== 'client_credentials')
      return answer(400, { error: 'unsupported_grant_type' })
    if (
      form.get('client_id') !== this.options.clientId ||
      form.get('client_secret') !== this.options.clientSecret
    )
      return answer(401, { error: 'invalid_client', error_description: 'invalid client credentials' })
    answer(200, {
      access_token: this.issueToken(),
      token_type: 'bearer',
      expires_in: this.options.tokenLifetimeS ?? 86399,
    })
  }
}

function problem(status: number, title: string, message: string): Record<string, unknown> {
  return {
    type: 'http://ns.adobe.com/adobecloud/problem/data-collection-service/inlet',
    status,
    title,
    report: { message },
  }
}
