// A faithful mock of Domo's Streams API, written from /work/shared/vendor-formats.md §4 (sources DOMO-QS,
// DOMO-REF, DOMO-PAR, DOMO-CSV, DOMO-AUTH, DOMO-PY, DOMO-NODE) because no Domo server can run here:
//   GET|POST /oauth/token?grant_type=client_credentials&scope=…   HTTP Basic client_id:client_secret →
//            {"access_token","customer","expires_in","jti","role","scope","token_type":"bearer","userId"}
//            (the docs and the Node SDK use GET, the Python SDK POST: both are accepted)
//   API calls need `Authorization: bearer <token>`, else 401
//   GET  /v1/streams/{id}                                         the stream (404 when unknown)
//   POST /v1/streams/{id}/executions                              201 {id, startedAt, currentState:"ACTIVE", …}
//   PUT  /v1/streams/{id}/executions/{exec}/part/{n}             header-less CSV, plain (text/csv), or gzip as
//            `Content-Type: text/csv` + `Content-Encoding: gzip` (Python SDK) or `Content-Type:
//            application/gzip` (Node SDK); rows must have the stream's column count (400 otherwise)
//   PUT  /v1/streams/{id}/executions/{exec}/commit               rows of all parts (by part number) become
//            the dataset's rows; 200 {…, currentState:"SUCCESS"}
//   PUT  /v1/streams/{id}/executions/{exec}/abort                200 {…, currentState:"ABORTED"}; its parts
//            are dropped
//   PUT  /v1/streams/{id}/executions/abort                       204, aborts the stream's active execution
// CSV is parsed as DOMO-CSV specifies: an unquoted empty field is null, `""` is the empty string.
// Not documented, so invented here: error bodies, execution ids. Failure injection: part uploads, commits
// and token requests answering an error status, per-part delays; every request is recorded.

import { randomUUID } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { gunzipSync } from 'node:zlib'

export type CsvRow = (string | null)[]

export interface RecordedDomoRequest {
  method: string
  path: string
  headers: IncomingMessage['headers']
  raw: Buffer
  status: number
}

export interface Execution {
  id: number
  streamId: string
  state: 'ACTIVE' | 'SUCCESS' | 'ABORTED'
  parts: Map<number, { csv: string; contentType: string; contentEncoding: string }>
}

export interface DomoApiOptions {
  clientId: string
  clientSecret: string
  /** Streams that exist, with their dataset's column count. */
  streams: Record<string, { columns: number }>
  /** `expires_in` of issued tokens, seconds. */
  tokenLifetimeS?: number
}

export class DomoApiMock {
  readonly requests: RecordedDomoRequest[] = []
  readonly executions = new Map<number, Execution>()
  tokenRequests = 0
  /** Most part uploads seen in flight at once. */
  maxConcurrentParts = 0
  /** Most ACTIVE executions seen on one stream at once (Domo asks for one). */
  maxActiveExecutions = 0
  private readonly committedRows = new Map<string, CsvRow[]>()
  private readonly committedTexts = new Map<string, string[]>()
  private readonly validTokens = new Set<string>()
  private readonly sockets = new Set<Socket>()
  private partsInFlight = 0
  private nextExecution = 1
  private partFailures: number[] = []
  private commitFailures: number[] = []
  private tokenFailures: number[] = []
  private partFailForever: number | undefined
  private partDelayMs = 0

  private constructor(
    private readonly server: Server,
    readonly url: string,
    private readonly options: DomoApiOptions,
  ) {}

  static async start(options: DomoApiOptions): Promise<DomoApiMock> {
    const server = createServer((req, res) => {
      void mock.handle(req, res)
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const { port } = server.address() as AddressInfo
    const mock = new DomoApiMock(server, `http://127.0.0.1:${port}`, options)
    server.on('connection', (socket) => {
      mock.sockets.add(socket)
      socket.on('close', () => mock.sockets.delete(socket))
    })
    return mock
  }

  get tokenUrl(): string {
    return `${this.url}/oauth/token`
  }

  /** Rows committed to a stream's dataset, in commit order. */
  rows(streamId: string | number): CsvRow[] {
    return this.committedRows.get(String(streamId)) ?? []
  }

  /** The CSV text of each committed execution (its parts concatenated in part order). */
  committedCsv(streamId: string | number): string[] {
    return this.committedTexts.get(String(streamId)) ?? []
  }

  failNextParts(count: number, status = 500): void {
    for (let i = 0; i < count; i++) this.partFailures.push(status)
  }

  /** Every part upload answers `status` until `heal()`. */
  failPartsAlways(status = 503): void {
    this.partFailForever = status
  }

  heal(): void {
    this.partFailForever = undefined
    this.partFailures = []
    this.commitFailures = []
    this.tokenFailures = []
  }

  failNextCommits(count: number, status = 503): void {
    for (let i = 0; i < count; i++) this.commitFailures.push(status)
  }

  failNextTokens(count: number, status = 401): void {
    for (let i = 0; i < count; i++) this.tokenFailures.push(status)
  }

  /** Each part upload is answered after `ms`. */
  delayParts(ms: number): void {
    this.partDelayMs = ms
  }

  /** Every token issued so far stops working (API calls with it get 401). */
  expireTokens(): void {
    this.validTokens.clear()
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = []
    for await (const chunk of req) chunks.push(chunk as Buffer)
    const raw = Buffer.concat(chunks)
    const url = new URL(req.url ?? '/', this.url)
    const recorded: RecordedDomoRequest = {
      method: req.method ?? '',
      path: url.pathname + url.search,
      headers: req.headers,
      raw,
      status: 0,
    }
    this.requests.push(recorded)
    const answer = (status: number, doc?: unknown): void => {
      recorded.status = status
      if (doc === undefined) {
        res.writeHead(status)
        res.end()
        return
      }
      const text = JSON.stringify(doc)
      res.writeHead(status, { 'content-type': 'application/json;charset=UTF-8' })
      res.end(text)
    }

    if (url.pathname === '/oauth/token') return this.token(req, url, answer)

    const token = /^bearer (.+)$/i.exec(req.headers.authorization ?? '')?.[1]
    if (!token || !this.validTokens.has(token))
      return answer(401, {
        status: 401,
        statusReason: 'Unauthorized',
        message: 'Full authentication is required',
      })

    const m =
      /^\/v1\/streams\/([^/]+)(?:\/executions(?:\/([^/]+)(?:\/(part|commit|abort)(?:\/(\d+))?)?)?)?$/.exec(
        url.pathname,
      )
    if (!m) return answer(404, { status: 404, message: 'Not Found' })
    const [, streamId, execText, action, partText] = m as unknown as [
      string,
      string,
      string?,
      string?,
      string?,
    ]
    const stream = this.options.streams[streamId]
    if (!stream) return answer(404, { status: 404, message: `stream ${streamId} not found` })
    const inExecutions = url.pathname.includes('/executions')

    if (!inExecutions) {
      if (req.method !== 'GET') return answer(405, { status: 405, message: 'Method Not Allowed' })
      return answer(200, {
        id: Number(streamId),
        dataSet: { id: randomUUID(), columns: stream.columns },
        updateMethod: 'APPEND',
      })
    }
    if (execText === undefined) {
      if (req.method !== 'POST') return answer(405, { status: 405, message: 'Method Not Allowed' })
      const exec: Execution = { id: this.nextExecution++, streamId, state: 'ACTIVE', parts: new Map() }
      this.executions.set(exec.id, exec)
      const active = [...this.executions.values()].filter(
        (e) => e.streamId === streamId && e.state === 'ACTIVE',
      )
      this.maxActiveExecutions = Math.max(this.maxActiveExecutions, active.length)
      return answer(201, executionDoc(exec))
    }
    if (execText === 'abort' && action === undefined) {
      if (req.method !== 'PUT') return answer(405, { status: 405, message: 'Method Not Allowed' })
      for (const e of this.executions.values())
        if (e.streamId === streamId && e.state === 'ACTIVE') e.state = 'ABORTED'
      return answer(204)
    }
    const exec = this.executions.get(Number(execText))
    if (!exec || exec.streamId !== streamId)
      return answer(404, { status: 404, message: 'execution not found' })
    if (req.method !== 'PUT') return answer(405, { status: 405, message: 'Method Not Allowed' })

    if (action === 'part' && partText !== undefined) {
      this.partsInFlight++
      this.maxConcurrentParts = Math.max(this.maxConcurrentParts, this.partsInFlight)
      try {
        if (this.partDelayMs > 0) await new Promise((r) => setTimeout(r, this.partDelayMs))
        const failure = this.partFailures.shift() ?? this.partFailForever
        if (failure) return answer(failure, { status: failure, message: 'injected part failure' })
        if (exec.state !== 'ACTIVE')
          return answer(400, { status: 400, message: `execution is ${exec.state}` })
        const contentType = String(req.headers['content-type'] ?? '')
        const contentEncoding = String(req.headers['content-encoding'] ?? '')
        let csv: string
        try {
          const gz =
            contentEncoding.toLowerCase() === 'gzip' ||
            contentType.toLowerCase().startsWith('application/gzip')
          csv = (gz ? gunzipSync(raw) : raw).toString('utf8')
        } catch {
          return answer(400, { status: 400, message: 'part is not valid gzip' })
        }
        let rows: CsvRow[]
        try {
          rows = parseCsv(csv)
        } catch (err) {
          return answer(400, { status: 400, message: (err as Error).message })
        }
        const bad = rows.findIndex((r) => r.length !== stream.columns)
        if (bad >= 0)
          return answer(400, {
            status: 400,
            message: `row ${bad + 1} has ${rows[bad]!.length} columns, not ${stream.columns}`,
          })
        exec.parts.set(Number(partText), { csv, contentType, contentEncoding })
        return answer(200, executionDoc(exec))
      } finally {
        this.partsInFlight--
      }
    }
    if (action === 'commit') {
      const failure = this.commitFailures.shift()
      if (failure) return answer(failure, { status: failure, message: 'injected commit failure' })
      if (exec.state !== 'ACTIVE') return answer(400, { status: 400, message: `execution is ${exec.state}` })
      exec.state = 'SUCCESS'
      const text = [...exec.parts.entries()]
        .sort((a, b) => a[0] - b[0])
        .map(([, p]) => p.csv)
        .join('')
      const rows = this.committedRows.get(streamId) ?? []
      rows.push(...parseCsv(text))
      this.committedRows.set(streamId, rows)
      const texts = this.committedTexts.get(streamId) ?? []
      texts.push(text)
      this.committedTexts.set(streamId, texts)
      return answer(200, executionDoc(exec))
    }
    if (action === 'abort') {
      if (exec.state === 'ACTIVE') {
        exec.state = 'ABORTED'
        exec.parts.clear()
      }
      return answer(200, executionDoc(exec))
    }
    return answer(404, { status: 404, message: 'Not Found' })
  }

  private token(req: IncomingMessage, url: URL, answer: (s: number, d?: unknown) => void): void {
    this.tokenRequests++
    const failure = this.tokenFailures.shift()
    if (failure) return answer(failure, { status: failure, message: 'injected token failure' })
    if (url.searchParams.get('grant_type') !== 'client_credentials')
      return answer(400, { error: 'unsupported_grant_type' })
    const basic = /^Basic (.+)$/i.exec(req.headers.authorization ?? '')?.[1]
    const expected = Buffer.from(`${this.options.clientId}:${this.options.clientSecret}`).toString('base64')
    if (basic !== expected)
      return answer(401, { error: 'unauthorized', error_description: 'Bad credentials' })
    const token = randomUUID()
    this.validTokens.add(token)
    answer(200, {
      access_token: token,
      customer: 'acmecompany',
      expires_in: this.options.tokenLifetimeS ?? 3599,
      jti: randomUUID(),
      role: 'Admin',
      scope: url.searchParams.get('scope') ?? 'data',
      token_type: 'bearer',
      userId: 964382593,
    })
  }
}

function executionDoc(exec: Execution): Record<string, unknown> {
  const now = new Date().toISOString()
  return { id: exec.id, startedAt: now, currentState: exec.state, createdAt: now, modifiedAt: now }
}

/**
 * RFC 4180 as DOMO-CSV extends it: rows end with LF or CRLF (the last one optionally), fields in `"`
 * with `""` for a quote; an unquoted empty field is null, `""` the empty string.
 */
export function parseCsv(text: string): CsvRow[] {
  const rows: CsvRow[] = []
  let row: CsvRow = []
  let i = 0
  const n = text.length
  if (n === 0) return rows
  for (;;) {
    let field: string | null
    if (text[i] === '"') {
      let value = ''
      i++
      for (;;) {
        const q = text.indexOf('"', i)
        if (q < 0) throw new Error('unterminated quoted field')
        value += text.slice(i, q)
        if (text[q + 1] === '"') {
          value += '"'
          i = q + 2
        } else {
          i = q + 1
          break
        }
      }
      field = value
      if (i < n && text[i] !== ',' && text[i] !== '\n' && text[i] !== '\r')
        throw new Error(`a quote inside a quoted field must be doubled (offset ${i})`)
    } else {
      let end = i
      while (end < n && text[end] !== ',' && text[end] !== '\n' && text[end] !== '\r') end++
      const value = text.slice(i, end)
      if (value.includes('"')) throw new Error(`quote in an unquoted field (offset ${i})`)
      field = value === '' ? null : value
      i = end
    }
    row.push(field)
    if (i >= n) {
      rows.push(row)
      return rows
    }
    if (text[i] === ',') {
      i++
      continue
    }
    if (text[i] === '\r') i++
    i++ // LF
    rows.push(row)
    row = []
    if (i >= n) return rows
  }
}
