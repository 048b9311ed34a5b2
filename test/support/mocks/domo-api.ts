// A faithful mock of Domo's Streams APIs, because no Domo server can run here. Two APIs over one store:
//
// The public API, from /work/shared/vendor-formats.md §4 (DOMO-QS, DOMO-REF, DOMO-PAR, DOMO-CSV, DOMO-AUTH,
// DOMO-PY, DOMO-NODE):
//   GET|POST /oauth/token?grant_type=client_credentials&scope=…   HTTP Basic client_id:client_secret →
//            {"access_token","customer","expires_in","jti","role","scope","token_type":"bearer","userId"}
//            (the docs and the Node SDK use GET, the Python SDK POST: both are accepted)
//   API calls need `Authorization: bearer <token>`, else 401
//   POST /v1/streams                                               {"dataSet":{name, description, schema:
//            {columns:[{type,name}]}}, "updateMethod"} → 201 {id, dataSet:{…}, updateMethod, …} [DOMO-QS]
//   GET  /v1/streams/search?q=dataSource.name:<name>|dataSource.id:<id>   [streams] (names match as in the
//            instance API below)
//   GET  /v1/streams/{id}                                         the stream (404 when unknown)
//   DELETE /v1/streams/{id}                                       204; the dataset is kept [DOMO-PY]
//   POST /v1/streams/{id}/executions                              optional body {"updateMethod": APPEND|REPLACE}
//            (overrides the stream's [DOMO-PY]) → 201 {id, startedAt, currentState:"ACTIVE", …}
//   GET  /v1/streams/{id}/executions/{exec}                       the execution
//   PUT  /v1/streams/{id}/executions/{exec}/part/{n}             header-less CSV, plain (text/csv), or gzip as
//            `Content-Type: text/csv` + `Content-Encoding: gzip` (Python SDK) or `Content-Type:
//            application/gzip` (Node SDK); rows must fit the dataset's schema (400 otherwise, nothing stored)
//   PUT  /v1/streams/{id}/executions/{exec}/commit               rows of all parts (by part number) are
//            appended to the dataset, or replace it (REPLACE); 200 {…, currentState:"SUCCESS"}
//   PUT  /v1/streams/{id}/executions/{exec}/abort                200 {…, currentState:"ABORTED"}; its parts
//            are dropped
//   PUT  /v1/streams/{id}/executions/abort                       204, aborts the stream's active execution
//
// The instance API, from /work/shared/vendor-docs/002 (its endpoint table and JSON examples), under
// /api/data/v1/streams, every call with `X-DOMO-Developer-Token: <token>` (the header Domo's API reference
// gives for these endpoints; 002 does not name it), else 401:
//   POST   /api/data/v1/streams                  create; the body as 002's example: {"transport":{"type"},
//          "dataSource":{"name","description"},"account":{"id"}} (transport.type and dataSource.name needed)
//   GET    /api/data/v1/streams/{id}             002's retrieval example shape (id, valid, transport,
//          account, dataSource{id,name,description}, executions, …) plus updateMethod
//   PUT    /api/data/v1/streams/{id}             update: only dataSource, account, streamConfiguration,
//          schemaDefinition (002); schemaDefinition {"columns":[{type,name}]} sets the dataset schema
//   DELETE /api/data/v1/streams/{id}             delete
//   POST   /api/data/v1/streams/{id}/executions  create an execution; body {"updateMethod":"REPLACE"} overrides
//          the stream's method (002: "You can override this behavior by passing this information into the body")
//   GET    /api/data/v1/streams/{id}/executions[/{id}]   list / retrieve
//   DELETE /api/data/v1/streams/{id}/executions/{id}     delete (aborts it; its parts are dropped)
//   PUT    /api/data/v1/streams/{id}/data/{dataId}/parts/{partId}   upload a part (dataId = execution id)
//   PUT    /api/data/v1/streams/{id}/data/{dataId}/{action}         finalize: action "commit"
//   GET    /api/data/v1/streams/search?q={query}   one of account.configurations.value, dataSource.id,
//          dataSource.name, dataSource.owner.id, transport.type; dataSource.name "uses wildcards": read as a
//          case-insensitive substring match in which `*` matches anything
//
// CSV is parsed as DOMO-CSV specifies: an unquoted empty field is null, `""` is the empty string. Values are
// checked against the column types (LONG, DECIMAL, DOUBLE, DATE, DATETIME; STRING takes anything).
// Not documented, so invented here: error bodies, ids, status codes of the instance API's answers (2xx),
// and — only with `refusalEndsExecution` — a Domo whose refused part fails the whole execution (state
// FAILED), and — only with `retrieveExecutions: false` — one that cannot show an execution's state, and —
// only with `wrapSearch` — search answers wrapped as {"streams": […]}. Failure injection: part uploads, commits and token requests answering an error status, per-part
// delays; every request is recorded.

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
  state: 'ACTIVE' | 'SUCCESS' | 'ABORTED' | 'FAILED'
  updateMethod: 'APPEND' | 'REPLACE'
  parts: Map<number, { csv: string; contentType: string; contentEncoding: string }>
}

export interface DomoColumn {
  type: string
  name: string
}

export interface MockStreamOptions {
  /** The dataset's column count (any values), or its schema (values checked against the types). */
  columns: number | DomoColumn[]
  /** Dataset name (searchable). */
  name?: string
  /** The stream's own update method (default APPEND). */
  updateMethod?: 'APPEND' | 'REPLACE'
}

export interface DomoApiOptions {
  clientId: string
  clientSecret: string
  /** The instance API's developer token. */
  developerToken?: string
  /** Streams that exist. */
  streams: Record<string, MockStreamOptions>
  /** `expires_in` of issued tokens, seconds. */
  tokenLifetimeS?: number
  /** A refused part fails its execution (FAILED: later parts and the commit are refused). */
  refusalEndsExecution?: boolean
  /** false: retrieving an execution (GET …/executions/{id}) answers 404, so its state cannot be read. */
  retrieveExecutions?: boolean
  /** Search answers {"streams": […]} instead of the documented list. */
  wrapSearch?: boolean
}

interface StreamState {
  id: number
  name: string
  description: string
  /** Column count only, or the schema; null until an instance-API stream gets its schemaDefinition. */
  columns: number | DomoColumn[] | null
  updateMethod: 'APPEND' | 'REPLACE'
  transport: string
  datasetId: string
  rows: CsvRow[]
  texts: string[]
}

const isUpdateMethod = (value: unknown): value is 'APPEND' | 'REPLACE' =>
  value === 'APPEND' || value === 'REPLACE'
/** 002: the fields PUT /api/data/v1/streams/{id} may update. */
const INSTANCE_UPDATABLE = new Set(['dataSource', 'account', 'streamConfiguration', 'schemaDefinition'])
const INSTANCE_PREFIX = '/api/data/v1/streams'
const PUBLIC_PREFIX = '/v1/streams'

type Answer = (status: number, doc?: unknown) => void

export class DomoApiMock {
  readonly requests: RecordedDomoRequest[] = []
  readonly executions = new Map<number, Execution>()
  tokenRequests = 0
  /** Most part uploads seen in flight at once. */
  maxConcurrentParts = 0
  /** Most ACTIVE executions seen on one stream at once (Domo asks for one). */
  maxActiveExecutions = 0
  private readonly streams = new Map<string, StreamState>()
  private readonly validTokens = new Set<string>()
  private readonly sockets = new Set<Socket>()
  private developerToken: string | undefined
  private partsInFlight = 0
  private nextExecution = 1
  private nextStream = 1000
  private partFailures: number[] = []
  private commitFailures: number[] = []
  private tokenFailures: number[] = []
  private partFailForever: number | undefined
  private partDelayMs = 0
  private apiFailures: { status: number; method: string | undefined }[] = []

  private constructor(
    private readonly server: Server,
    readonly url: string,
    private readonly options: DomoApiOptions,
  ) {
    this.developerToken = options.developerToken
    for (const [id, s] of Object.entries(options.streams))
      this.streams.set(id, {
        id: Number(id),
        name: s.name ?? `dataset ${id}`,
        description: '',
        columns: s.columns,
        updateMethod: s.updateMethod ?? 'APPEND',
        transport: 'API',
        datasetId: randomUUID(),
        rows: [],
        texts: [],
      })
  }

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

  /** Rows committed to a stream's dataset (after REPLACE: only the last execution's). */
  rows(streamId: string | number): CsvRow[] {
    return this.streams.get(String(streamId))?.rows ?? []
  }

  /** The CSV text of each committed execution (its parts concatenated in part order). */
  committedCsv(streamId: string | number): string[] {
    return this.streams.get(String(streamId))?.texts ?? []
  }

  /** A stream as stored (tests look at created streams). */
  stream(id: string | number): Readonly<StreamState> | undefined {
    return this.streams.get(String(id))
  }

  /** Ids of the streams whose dataset has this name. */
  streamsNamed(name: string): number[] {
    return [...this.streams.values()].filter((s) => s.name === name).map((s) => s.id)
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

  /** The next stream-API call (of `method`, if given; token requests excepted) answers `status`. */
  failNextApiCall(status: number, method?: string): void {
    this.apiFailures.push({ status, method })
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

  /** The instance API accepts this developer token from now on (undefined: none). */
  setDeveloperToken(token: string | undefined): void {
    this.developerToken = token
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
    const answer: Answer = (status, doc) => {
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
    const injected = this.apiFailures.findIndex((f) => f.method === undefined || f.method === req.method)
    if (injected >= 0) {
      const [failure] = this.apiFailures.splice(injected, 1)
      return answer(failure!.status, {
        status: failure!.status,
        message: `injected failure ${failure!.status}`,
      })
    }
    const unauthorized = (): void =>
      answer(401, { status: 401, statusReason: 'Unauthorized', message: 'Full authentication is required' })

    if (url.pathname === INSTANCE_PREFIX || url.pathname.startsWith(`${INSTANCE_PREFIX}/`)) {
      const token = req.headers['x-domo-developer-token']
      if (this.developerToken === undefined || token !== this.developerToken) return unauthorized()
      return this.instance(req, url, url.pathname.slice(INSTANCE_PREFIX.length), raw, answer)
    }
    if (url.pathname === PUBLIC_PREFIX || url.pathname.startsWith(`${PUBLIC_PREFIX}/`)) {
      const token = /^bearer (.+)$/i.exec(req.headers.authorization ?? '')?.[1]
      if (!token || !this.validTokens.has(token)) return unauthorized()
      return this.public(req, url, url.pathname.slice(PUBLIC_PREFIX.length), raw, answer)
    }
    answer(404, { status: 404, message: 'Not Found' })
  }

  /** /v1/streams… */
  private async public(
    req: IncomingMessage,
    url: URL,
    path: string,
    raw: Buffer,
    answer: Answer,
  ): Promise<void> {
    const method = req.method ?? ''
    if (path === '' || path === '/') {
      if (method !== 'POST') return answer(405, { status: 405, message: 'Method Not Allowed' })
      const body = json(raw) as {
        dataSet?: { name?: unknown; description?: unknown; schema?: { columns?: unknown } }
        updateMethod?: unknown
      }
      const columns = schemaColumns(body?.dataSet?.schema?.columns)
      if (typeof body?.dataSet?.name !== 'string' || !columns)
        return answer(400, { status: 400, message: 'dataSet.name and dataSet.schema.columns are required' })
      if (body.updateMethod !== undefined && !isUpdateMethod(body.updateMethod))
        return answer(400, {
          status: 400,
          message: `unknown updateMethod ${JSON.stringify(body.updateMethod)}`,
        })
      const stream = this.addStream(
        body.dataSet.name,
        typeof body.dataSet.description === 'string' ? body.dataSet.description : '',
        columns,
        body.updateMethod ?? 'APPEND',
        'API',
      )
      return answer(201, publicStreamDoc(stream))
    }
    if (path === '/search') {
      if (method !== 'GET') return answer(405, { status: 405, message: 'Method Not Allowed' })
      const found = this.search(url.searchParams.get('q'))
      if (!found) return answer(400, { status: 400, message: 'unsupported search query' })
      return answer(200, this.searchAnswer(found.map(publicStreamDoc)))
    }
    const m = /^\/([^/]+)(?:\/executions(?:\/([^/]+)(?:\/(part|commit|abort)(?:\/(\d+))?)?)?)?$/.exec(path)
    if (!m) return answer(404, { status: 404, message: 'Not Found' })
    const [, streamId, execText, action, partText] = m as unknown as [
      string,
      string,
      string?,
      string?,
      string?,
    ]
    const stream = this.streams.get(streamId)
    if (!stream) return answer(404, { status: 404, message: `stream ${streamId} not found` })
    if (!path.includes('/executions')) {
      if (method === 'DELETE') {
        this.streams.delete(streamId)
        return answer(204)
      }
      if (method !== 'GET') return answer(405, { status: 405, message: 'Method Not Allowed' })
      return answer(200, publicStreamDoc(stream))
    }
    if (execText === undefined) {
      if (method !== 'POST') return answer(405, { status: 405, message: 'Method Not Allowed' })
      return this.createExecution(stream, req, raw, answer)
    }
    if (execText === 'abort' && action === undefined) {
      if (method !== 'PUT') return answer(405, { status: 405, message: 'Method Not Allowed' })
      for (const e of this.executions.values())
        if (e.streamId === streamId && e.state === 'ACTIVE') e.state = 'ABORTED'
      return answer(204)
    }
    const exec = this.executions.get(Number(execText))
    if (!exec || exec.streamId !== streamId)
      return answer(404, { status: 404, message: 'execution not found' })
    if (action === undefined) {
      if (method !== 'GET') return answer(405, { status: 405, message: 'Method Not Allowed' })
      return this.retrieve(exec, answer)
    }
    if (method !== 'PUT') return answer(405, { status: 405, message: 'Method Not Allowed' })
    if (action === 'part' && partText !== undefined)
      return this.uploadPart(stream, exec, Number(partText), req, raw, answer)
    if (action === 'commit') return this.commit(stream, exec, answer)
    if (action === 'abort') return this.abort(exec, answer)
    return answer(404, { status: 404, message: 'Not Found' })
  }

  /** /api/data/v1/streams… (vendor-docs/002). */
  private async instance(
    req: IncomingMessage,
    url: URL,
    path: string,
    raw: Buffer,
    answer: Answer,
  ): Promise<void> {
    const method = req.method ?? ''
    const notAllowed = (): void => answer(405, { status: 405, message: 'Method Not Allowed' })
    if (path === '' || path === '/') {
      if (method !== 'POST') return notAllowed()
      if (!isJson(req)) return answer(415, { status: 415, message: 'Content-Type must be application/json' })
      const body = json(raw) as {
        transport?: { type?: unknown }
        dataSource?: { name?: unknown; description?: unknown }
      }
      if (typeof body?.transport?.type !== 'string' || typeof body.dataSource?.name !== 'string')
        return answer(400, { status: 400, message: 'transport.type and dataSource.name are required' })
      const stream = this.addStream(
        body.dataSource.name,
        typeof body.dataSource.description === 'string' ? body.dataSource.description : '',
        null,
        'APPEND',
        body.transport.type,
      )
      return answer(201, instanceStreamDoc(stream))
    }
    if (path === '/search') {
      if (method !== 'GET') return notAllowed()
      const found = this.search(url.searchParams.get('q'))
      if (!found) return answer(400, { status: 400, message: 'unsupported search query' })
      return answer(200, this.searchAnswer(found.map(instanceStreamDoc)))
    }
    const m = /^\/([^/]+)(?:\/(executions)(?:\/([^/]+))?|\/data\/([^/]+)\/(?:parts\/([^/]+)|([^/]+)))?$/.exec(
      path,
    )
    if (!m) return answer(404, { status: 404, message: 'Not Found' })
    const [, streamId, executions, execText, dataId, partText, action] = m as unknown as (
      string | undefined
    )[]
    const stream = this.streams.get(streamId!)
    if (!stream) return answer(404, { status: 404, message: `stream ${streamId} not found` })

    if (!executions && dataId === undefined) {
      if (method === 'GET') return answer(200, instanceStreamDoc(stream))
      if (method === 'DELETE') {
        this.streams.delete(streamId!)
        return answer(204)
      }
      if (method !== 'PUT') return notAllowed()
      if (!isJson(req)) return answer(415, { status: 415, message: 'Content-Type must be application/json' })
      const body = json(raw) as Record<string, unknown> | undefined
      const fields = Object.keys(body ?? {})
      const refused = fields.filter((f) => !INSTANCE_UPDATABLE.has(f))
      if (!body || refused.length > 0)
        return answer(400, { status: 400, message: `cannot update ${refused.join(', ') || 'nothing'}` })
      if (body.schemaDefinition !== undefined) {
        const columns = schemaColumns((body.schemaDefinition as { columns?: unknown }).columns)
        if (!columns) return answer(400, { status: 400, message: 'schemaDefinition.columns is invalid' })
        stream.columns = columns
      }
      const source = body.dataSource as { name?: unknown; description?: unknown } | undefined
      if (typeof source?.name === 'string') stream.name = source.name
      if (typeof source?.description === 'string') stream.description = source.description
      return answer(200, instanceStreamDoc(stream))
    }
    if (executions) {
      if (execText === undefined) {
        if (method === 'GET')
          return answer(
            200,
            [...this.executions.values()].filter((e) => e.streamId === streamId).map(executionDoc),
          )
        if (method !== 'POST') return notAllowed()
        return this.createExecution(stream, req, raw, answer)
      }
      const exec = this.executions.get(Number(execText))
      if (!exec || exec.streamId !== streamId)
        return answer(404, { status: 404, message: 'execution not found' })
      if (method === 'GET') return this.retrieve(exec, answer)
      if (method === 'DELETE') return this.abort(exec, answer)
      if (method === 'PUT') return answer(200, executionDoc(exec))
      return notAllowed()
    }
    const exec = this.executions.get(Number(dataId))
    if (!exec || exec.streamId !== streamId) return answer(404, { status: 404, message: 'data not found' })
    if (method !== 'PUT') return notAllowed()
    if (partText !== undefined) {
      if (!/^\d+$/.test(partText)) return answer(400, { status: 400, message: 'partId must be a number' })
      return this.uploadPart(stream, exec, Number(partText), req, raw, answer)
    }
    if (action === 'commit') return this.commit(stream, exec, answer)
    return answer(400, { status: 400, message: `unknown action ${action}` })
  }

  private addStream(
    name: string,
    description: string,
    columns: DomoColumn[] | null,
    updateMethod: 'APPEND' | 'REPLACE',
    transport: string,
  ): StreamState {
    const stream: StreamState = {
      id: this.nextStream++,
      name,
      description,
      columns,
      updateMethod,
      transport,
      datasetId: randomUUID(),
      rows: [],
      texts: [],
    }
    this.streams.set(String(stream.id), stream)
    return stream
  }

  /** One search qualifier `property:value` (dataSource.name takes * wildcards); undefined when unsupported. */
  private search(q: string | null): StreamState[] | undefined {
    const colon = q?.indexOf(':') ?? -1
    if (!q || colon < 0) return undefined
    const property = q.slice(0, colon)
    const value = q.slice(colon + 1)
    const all = [...this.streams.values()]
    if (property === 'dataSource.name') {
      // "uses wildcards" (002): read here as a case-insensitive substring match where `*` matches anything.
      const pattern = new RegExp(
        value
          .split('*')
          .map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
          .join('.*'),
        'i',
      )
      return all.filter((s) => pattern.test(s.name))
    }
    if (property === 'dataSource.id') return all.filter((s) => s.datasetId === value)
    if (property === 'transport.type') return all.filter((s) => s.transport === value)
    if (property === 'dataSource.owner.id' || property === 'account.configurations.value') return []
    return undefined
  }

  private searchAnswer(streams: Record<string, unknown>[]): unknown {
    return this.options.wrapSearch ? { streams } : streams
  }

  private createExecution(stream: StreamState, req: IncomingMessage, raw: Buffer, answer: Answer): void {
    let updateMethod = stream.updateMethod
    if (raw.length > 0) {
      if (!isJson(req)) return answer(415, { status: 415, message: 'Content-Type must be application/json' })
      const body = json(raw) as { updateMethod?: unknown } | undefined
      if (!body || typeof body !== 'object') return answer(400, { status: 400, message: 'invalid JSON body' })
      if (body.updateMethod !== undefined && body.updateMethod !== null) {
        if (!isUpdateMethod(body.updateMethod))
          return answer(400, {
            status: 400,
            message: `unknown updateMethod ${JSON.stringify(body.updateMethod)}`,
          })
        updateMethod = body.updateMethod
      }
    }
    const exec: Execution = {
      id: this.nextExecution++,
      streamId: String(stream.id),
      state: 'ACTIVE',
      updateMethod,
      parts: new Map(),
    }
    this.executions.set(exec.id, exec)
    const active = [...this.executions.values()].filter(
      (e) => e.streamId === exec.streamId && e.state === 'ACTIVE',
    )
    this.maxActiveExecutions = Math.max(this.maxActiveExecutions, active.length)
    answer(201, executionDoc(exec))
  }

  private async uploadPart(
    stream: StreamState,
    exec: Execution,
    part: number,
    req: IncomingMessage,
    raw: Buffer,
    answer: Answer,
  ): Promise<void> {
    this.partsInFlight++
    this.maxConcurrentParts = Math.max(this.maxConcurrentParts, this.partsInFlight)
    try {
      if (this.partDelayMs > 0) await new Promise((r) => setTimeout(r, this.partDelayMs))
      const failure = this.partFailures.shift() ?? this.partFailForever
      if (failure) return answer(failure, { status: failure, message: 'injected part failure' })
      if (exec.state !== 'ACTIVE') return answer(400, { status: 400, message: `execution is ${exec.state}` })
      const refuse = (message: string): void => {
        if (this.options.refusalEndsExecution) exec.state = 'FAILED'
        answer(400, { status: 400, message })
      }
      const contentType = String(req.headers['content-type'] ?? '')
      const contentEncoding = String(req.headers['content-encoding'] ?? '')
      let csv: string
      try {
        const gz =
          contentEncoding.toLowerCase() === 'gzip' || contentType.toLowerCase().startsWith('application/gzip')
        csv = (gz ? gunzipSync(raw) : raw).toString('utf8')
      } catch {
        return refuse('part is not valid gzip')
      }
      let rows: CsvRow[]
      try {
        rows = parseCsv(csv)
      } catch (err) {
        return refuse((err as Error).message)
      }
      if (stream.columns === null) return refuse('the stream has no schema')
      const problem = rowProblem(rows, stream.columns)
      if (problem) return refuse(problem)
      exec.parts.set(part, { csv, contentType, contentEncoding })
      return answer(200, executionDoc(exec))
    } finally {
      this.partsInFlight--
    }
  }

  private commit(stream: StreamState, exec: Execution, answer: Answer): void {
    const failure = this.commitFailures.shift()
    if (failure) return answer(failure, { status: failure, message: 'injected commit failure' })
    if (exec.state !== 'ACTIVE') return answer(400, { status: 400, message: `execution is ${exec.state}` })
    exec.state = 'SUCCESS'
    const text = [...exec.parts.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([, p]) => p.csv)
      .join('')
    if (exec.updateMethod === 'REPLACE') {
      stream.rows = []
      stream.texts = []
    }
    stream.rows.push(...parseCsv(text))
    stream.texts.push(text)
    answer(200, executionDoc(exec))
  }

  private retrieve(exec: Execution, answer: Answer): void {
    if (this.options.retrieveExecutions === false) return answer(404, { status: 404, message: 'Not Found' })
    answer(200, executionDoc(exec))
  }

  private abort(exec: Execution, answer: Answer): void {
    if (exec.state === 'ACTIVE' || exec.state === 'FAILED') {
      exec.state = 'ABORTED'
      exec.parts.clear()
    }
    answer(200, executionDoc(exec))
  }

  private token(req: IncomingMessage, url: URL, answer: Answer): void {
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

function isJson(req: IncomingMessage): boolean {
  return /^application\/json\b/i.test(req.headers['content-type'] ?? '')
}

function json(raw: Buffer): unknown {
  try {
    return JSON.parse(raw.toString('utf8'))
  } catch {
    return undefined
  }
}

const COLUMN_TYPES = new Set(['STRING', 'DECIMAL', 'LONG', 'DOUBLE', 'DATE', 'DATETIME'])

function schemaColumns(value: unknown): DomoColumn[] | undefined {
  if (!Array.isArray(value) || value.length === 0) return undefined
  const columns: DomoColumn[] = []
  for (const c of value as { type?: unknown; name?: unknown }[]) {
    if (typeof c?.name !== 'string' || typeof c.type !== 'string' || !COLUMN_TYPES.has(c.type))
      return undefined
    columns.push({ type: c.type, name: c.name })
  }
  return columns
}

/** Why the rows do not fit the schema (column count; the values of typed columns), or undefined. */
function rowProblem(rows: CsvRow[], columns: number | DomoColumn[]): string | undefined {
  const count = typeof columns === 'number' ? columns : columns.length
  for (let r = 0; r < rows.length; r++) {
    const row = rows[r]!
    if (row.length !== count) return `row ${r + 1} has ${row.length} columns, not ${count}`
    if (typeof columns === 'number') continue
    for (let c = 0; c < count; c++) {
      const value = row[c]
      const { type, name } = columns[c]!
      if (value === null || value === undefined || type === 'STRING') continue
      const ok =
        type === 'LONG'
          ? /^-?\d+$/.test(value)
          : type === 'DATE'
            ? /^\d{4}-\d{2}-\d{2}$/.test(value)
            : type === 'DATETIME'
              ? /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}/.test(value)
              : /^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(value)
      if (!ok) return `row ${r + 1}: "${value}" is not a ${type} (column ${name})`
    }
  }
  return undefined
}

function executionDoc(exec: Execution): Record<string, unknown> {
  const now = new Date().toISOString()
  return { id: exec.id, startedAt: now, currentState: exec.state, createdAt: now, modifiedAt: now }
}

/** The public API's stream object [DOMO-REF]. */
function publicStreamDoc(s: StreamState): Record<string, unknown> {
  const now = new Date().toISOString()
  return {
    id: s.id,
    dataSet: {
      id: s.datasetId,
      name: s.name,
      description: s.description,
      rows: s.rows.length,
      columns: typeof s.columns === 'number' ? s.columns : (s.columns?.length ?? 0),
      owner: { id: 27, name: 'DomoSupport' },
      createdAt: now,
      updatedAt: now,
      pdpEnabled: false,
    },
    updateMethod: s.updateMethod,
    createdAt: now,
    modifiedAt: now,
  }
}

/** 002's retrieval example, with this stream's values (and its updateMethod). */
function instanceStreamDoc(s: StreamState): Record<string, unknown> {
  return {
    id: s.id,
    valid: true,
    transport: { type: s.transport, version: '1', description: 'streamgate', configurations: [] },
    configuration: {},
    account: { id: 5, userId: 1125436, name: 'chad.maughan@domo.com', type: 'DATA', valid: true },
    dataProvider: { id: 1, key: 'api', name: 'API' },
    dataSource: { id: s.datasetId, name: s.name, description: s.description, dataProviderType: 'api' },
    schemaDefinition: Array.isArray(s.columns) ? { columns: s.columns } : null,
    updateMethod: s.updateMethod,
    playbookRegistryId: null,
    executions: [],
    changes: [],
    createdAt: '2015-03-31T16:56:57',
    createdBy: 1125436,
    modifiedAt: '2015-03-31T16:56:57',
    modifiedBy: 1125436,
  }
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
