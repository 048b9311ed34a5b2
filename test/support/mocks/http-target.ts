// A plain HTTP inlet for the http sink's tests: takes any request, records it (method, headers, raw and
// decoded body, which connection it came on) and answers 200, unless told otherwise. Failure injection:
// scripted answers for the next requests (any status, headers such as Retry-After), delays, connection
// resets, and 413 for bodies over a limit (like a server with a body-size cap).

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { gunzipSync } from 'node:zlib'

export interface TargetRequest {
  method: string
  path: string
  headers: IncomingMessage['headers']
  raw: Buffer
  /** The body after Content-Encoding (gzip) was undone. */
  body: Buffer
  /** Which connection carried it (1, 2, …): keep-alive reuse shows as repeated numbers. */
  connection: number
  status: number
}

export interface ScriptedAnswer {
  status: number
  headers?: Record<string, string>
  body?: string
}

export class HttpTargetMock {
  readonly requests: TargetRequest[] = []
  private readonly sockets = new Map<Socket, number>()
  private connections = 0
  private script: ScriptedAnswer[] = []
  private always: ScriptedAnswer | undefined
  private delays: number[] = []
  private resets = 0
  /** Bodies (decoded) larger than this get 413. */
  maxBodyBytes = Infinity

  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  static async start(): Promise<HttpTargetMock> {
    const server = createServer((req, res) => {
      void mock.handle(req, res)
    })
    server.keepAliveTimeout = 30_000
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const { port } = server.address() as AddressInfo
    const mock = new HttpTargetMock(server, `http://127.0.0.1:${port}`)
    server.on('connection', (socket) => {
      mock.sockets.set(socket, ++mock.connections)
      socket.on('close', () => mock.sockets.delete(socket))
    })
    return mock
  }

  /** The next requests get these answers, in order. */
  answerNext(...answers: ScriptedAnswer[]): void {
    this.script.push(...answers)
  }

  /** Every request gets this answer until `heal()`. */
  answerAlways(answer: ScriptedAnswer): void {
    this.always = answer
  }

  heal(): void {
    this.always = undefined
    this.script = []
  }

  delayNext(ms: number, count = 1): void {
    for (let i = 0; i < count; i++) this.delays.push(ms)
  }

  resetNext(count = 1): void {
    this.resets += count
  }

  /** Decoded bodies of the requests answered 2xx. */
  delivered(): Buffer[] {
    return this.requests.filter((r) => r.status >= 200 && r.status <= 299).map((r) => r.body)
  }

  /** NDJSON lines of the requests answered 2xx. */
  deliveredLines(): string[] {
    return this.delivered().flatMap((b) =>
      b
        .toString('utf8')
        .split('\n')
        .filter((l) => l !== ''),
    )
  }

  async close(): Promise<void> {
    for (const socket of this.sockets.keys()) socket.destroy()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = []
    for await (const chunk of req) chunks.push(chunk as Buffer)
    const raw = Buffer.concat(chunks)
    let body = raw
    if (String(req.headers['content-encoding'] ?? '').toLowerCase() === 'gzip') body = gunzipSync(raw)
    const recorded: TargetRequest = {
      method: req.method ?? '',
      path: req.url ?? '/',
      headers: req.headers,
      raw,
      body,
      connection: this.sockets.get(req.socket) ?? 0,
      status: 0,
    }
    this.requests.push(recorded)
    if (this.resets > 0) {
      this.resets--
      req.socket.destroy()
      return
    }
    const delay = this.delays.shift()
    if (delay) await new Promise((r) => setTimeout(r, delay))
    if (res.destroyed) return
    let answer = this.script.shift() ?? this.always ?? { status: 200, body: '{"ok":true}' }
    if (body.length > this.maxBodyBytes && answer.status < 300)
      answer = { status: 413, body: '{"title":"Payload Too Large"}' }
    recorded.status = answer.status
    res.writeHead(answer.status, { 'content-type': 'application/json', ...answer.headers })
    res.end(req.method === 'HEAD' ? undefined : (answer.body ?? ''))
  }
}
