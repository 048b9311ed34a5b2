import type { DomoSinkConfig } from '../config/types.js'
import { permanentError, transientError, type SinkError } from '../errors.js'
import {
  ALL_WRITTEN,
  batchLimits,
  type Sink,
  type SinkContext,
  type SinkRecord,
  type WriteResult,
} from './sink.js'
import {
  abortable,
  answerDetail,
  answerJson,
  describe,
  gzip,
  HttpClient,
  mapLimit,
  NEVER,
  statusError,
  type HttpAnswer,
} from './http-client.js'
import { ClientCredentialsToken } from './oauth.js'
import { fieldJson } from './record-json.js'

// Domo Streams API (vendor-formats.md §4; sources DOMO-*). Every write is one stream execution:
//   POST /v1/streams/{id}/executions                          → {"id": <execution id>, …}
//   PUT  /v1/streams/{id}/executions/{exec}/part/{n}           gzip'd header-less CSV, n = 1, 2, …, at most
//                                                              `parallelParts` in flight [DOMO-PAR]
//   PUT  /v1/streams/{id}/executions/{exec}/commit
// and on any failure PUT …/{exec}/abort (best effort) and the write rejects: transient, except 400/401/403/
// 404 and other 4xx (bad credentials, unknown stream, rows the dataset refuses), which are permanent.
// Commit is not atomic [DOMO-PY]: a commit that succeeded but whose answer was lost is retried as a new
// execution, so rows can arrive twice (at-least-once). Executions of one sink never overlap ("do not create
// multiple executions on a single stream" [DOMO-PY]): concurrent writes wait for each other.
//
// Auth: OAuth client credentials, HTTP Basic client_id:client_secret to `tokenUrl`
// ?grant_type=client_credentials&scope=data [DOMO-AUTH]; API calls send `Authorization: bearer <token>`.
// The token is cached until shortly before `expires_in`; a 401 renews it and resends once, as the Node
// SDK does (DOMO-NODE Transport.ts `retryRequest`).
//
// Part encoding: the SDKs disagree (vendor-formats.md §4). We send `Content-Type: text/csv` +
// `Content-Encoding: gzip`, the Python SDK's form [DOMO-PY]: the part is CSV (the type both SDKs and the
// reference use for uncompressed parts) and gzip is its HTTP content coding (RFC 9110 §8.4), rather than
// the Node SDK's opaque `application/gzip` [DOMO-NODE StreamClient.ts `uploadCompressedPart`].
//
// CSV (RFC 4180 as Domo extends it [DOMO-CSV]): LF row ends (the last row too, as recommended), fields
// quoted with `"` when they hold `"`, `,`, CR or LF, embedded quotes doubled. `columns` are record field
// paths: a missing field or null is an empty field (Domo reads it as null), an empty string is `""`,
// numbers and booleans are written exactly as in the record (64-bit ids keep every digit), objects and
// arrays as their JSON text, quoted.
//
// Standard and Standard-Trial instances may push through the API at most once per hour [DOMO-IMPORT]:
// there, set lingerMs to 3600000 so each batch (= execution) waits that long.

/** Token scope for the Streams API [DOMO-AUTH]. */
const DOMO_SCOPE = 'data'
/** Parts are ~50 MB [DOMO-PY, DOMO-PAR]; give an upload time. */
const DOMO_TIMEOUT_MS = 120_000
/** How long an abort may take after a failure (it must not hold up the retry for long). */
const DOMO_ABORT_TIMEOUT_MS = 10_000

const DOMO_DEFAULTS = {
  maxBatchRecords: 100_000,
  maxBatchBytes: 64 * 1024 * 1024,
  lingerMs: 60_000,
  maxRecordBytes: 16 * 1024 * 1024,
}

export function createDomoSink(name: string, config: DomoSinkConfig, context: SinkContext): Sink {
  return new DomoSink(name, config, context)
}

class DomoSink implements Sink {
  readonly type = 'domo' as const
  readonly limits
  private readonly columns: { path: string[]; dotted: string }[]
  private readonly streamUrl: string
  private readonly http: HttpClient
  private readonly token: ClientCredentialsToken
  /** Settles when the execution in progress (if any) is over. */
  private queue: Promise<void> = Promise.resolve()
  private closed = false

  constructor(
    readonly name: string,
    private readonly config: DomoSinkConfig,
    private readonly context: SinkContext,
  ) {
    this.limits = batchLimits(config, DOMO_DEFAULTS)
    this.columns = config.columns.map((c) => ({ path: c.split('.'), dotted: c }))
    let base: URL
    try {
      base = new URL(config.apiBase)
    } catch {
      throw new Error(`sinks.${name}.apiBase: not a URL`)
    }
    this.streamUrl = `${base.origin}${base.pathname.replace(/\/+$/, '')}/v1/streams/${encodeURIComponent(String(config.streamId))}`
    this.http = new HttpClient({ timeoutMs: DOMO_TIMEOUT_MS, connections: Math.max(4, config.parallelParts) })
    this.token = new ClientCredentialsToken(
      {
        tokenUrl: config.tokenUrl,
        clientId: config.clientId,
        clientSecret: config.clientSecret,
        scopes: [DOMO_SCOPE],
        style: 'basic',
      },
      this.http,
      DOMO_TIMEOUT_MS,
    )
  }

  async write(batch: readonly SinkRecord[], signal: AbortSignal): Promise<WriteResult> {
    if (this.closed) throw transientError('domo sink is closed', 'closed')
    if (batch.length === 0) return ALL_WRITTEN
    const parts = csvParts(batch, this.columns, this.config.partBytes)
    await this.exclusive(signal, () => this.execute(parts, signal))
    return ALL_WRITTEN
  }

  /** Runs `fn` when no other execution of this sink is in progress. */
  private async exclusive(signal: AbortSignal, fn: () => Promise<void>): Promise<void> {
    const previous = this.queue
    let release!: () => void
    this.queue = new Promise<void>((resolve) => (release = resolve))
    try {
      await abortable(previous, signal)
      await fn()
    } finally {
      // Released only after the previous execution is over, even when this caller gave up waiting.
      void previous.then(release)
    }
  }

  private async execute(parts: Buffer[], signal: AbortSignal): Promise<void> {
    const created = await this.call('POST', '/executions', signal)
    const id = answerJson<{ id?: unknown }>(created)?.id
    if (typeof id !== 'number' && typeof id !== 'string')
      throw transientError('Domo created an execution without an id', 'domo-bad-answer')
    const exec = `/executions/${encodeURIComponent(String(id))}`
    try {
      await mapLimit(parts, this.config.parallelParts, async (csv, i) => {
        const body = await gzip(csv)
        await this.call('PUT', `${exec}/part/${i + 1}`, signal, body, {
          'content-type': 'text/csv',
          'content-encoding': 'gzip',
        })
      })
      await this.call('PUT', `${exec}/commit`, signal)
    } catch (err) {
      await this.abortExecution(exec)
      throw err
    }
  }

  private async abortExecution(exec: string): Promise<void> {
    try {
      await this.call('PUT', `${exec}/abort`, NEVER, undefined, {}, DOMO_ABORT_TIMEOUT_MS)
    } catch (err) {
      // Not fatal: the write is retried as a new execution, and the uncommitted one holds no rows.
      this.context.logger.warn(
        { sink: this.name, execution: exec, err: (err as Error).message },
        'could not abort the failed Domo stream execution',
      )
    }
  }

  /** One API call with the cached token; a 401 renews the token and resends once. Non-2xx throws. */
  private async call(
    method: 'GET' | 'POST' | 'PUT',
    path: string,
    signal: AbortSignal,
    body?: Buffer,
    headers: Record<string, string> = {},
    timeoutMs = DOMO_TIMEOUT_MS,
  ): Promise<HttpAnswer> {
    const url = new URL(this.streamUrl + path)
    const send = async (token: string): Promise<HttpAnswer> =>
      this.http.request({
        url,
        method,
        headers: { accept: 'application/json', ...headers, authorization: `bearer ${token}` },
        ...(body ? { body } : {}),
        signal,
        timeoutMs,
      })
    let token = await this.token.token(signal)
    let answer = await send(token)
    if (answer.status === 401) {
      this.token.invalidate(token)
      token = await this.token.token(signal)
      answer = await send(token)
    }
    if (answer.status >= 200 && answer.status <= 299) return answer
    throw this.answerError(answer, `Domo ${describe({ method, url })}`)
  }

  private answerError(answer: HttpAnswer, what: string): SinkError {
    if (answer.status === 401 || answer.status === 403) {
      const detail = answerDetail(answer.body)
      const message = `${what} answered ${answer.status}${detail ? `: ${detail}` : ''}`
      this.context.logger.error({ sink: this.name, status: answer.status }, 'Domo refused the credentials')
      return permanentError(message, 'unauthorized')
    }
    return statusError(answer, 'domo', what)
  }

  /** Renews the token and reads the stream: the credentials and the stream id are both checked. */
  async healthcheck(signal: AbortSignal): Promise<void> {
    await this.call('GET', '', signal)
  }

  async close(): Promise<void> {
    this.closed = true
    await this.queue
    await this.http.close()
  }
}

/** Header-less CSV rows of the batch, cut into parts of at most `partBytes` (a part holds at least one row). */
export function csvParts(
  batch: readonly SinkRecord[],
  columns: readonly { path: string[]; dotted: string }[],
  partBytes: number,
): Buffer[] {
  const parts: Buffer[] = []
  let rows: string[] = []
  let size = 0
  for (const record of batch) {
    let row = ''
    for (let c = 0; c < columns.length; c++) {
      if (c > 0) row += ','
      row += csvField(fieldJson(record, columns[c]!.path, columns[c]!.dotted))
    }
    row += '\n'
    const rowBytes = Buffer.byteLength(row)
    if (rows.length > 0 && size + rowBytes > partBytes) {
      parts.push(Buffer.from(rows.join('')))
      rows = []
      size = 0
    }
    rows.push(row)
    size += rowBytes
  }
  if (rows.length > 0) parts.push(Buffer.from(rows.join('')))
  return parts
}

/** One CSV field from a value's JSON text (undefined = the field is missing). */
export function csvField(json: string | undefined): string {
  if (json === undefined || json === 'null') return ''
  const first = json.charCodeAt(0)
  if (first === 0x22 /* " */) {
    const text = json.includes('\\') ? (JSON.parse(json) as string) : json.slice(1, -1)
    if (text === '') return '""'
    return /[",\r\n]/.test(text) ? quote(text) : text
  }
  if (first === 0x7b /* { */ || first === 0x5b /* [ */) return quote(json)
  return json
}

function quote(text: string): string {
  return `"${text.replaceAll('"', '""')}"`
}
