// The plumbing shared by the fakes of the vendors' management APIs (emnify-api.ts, azion-api.ts,
// adobe-flow-service.ts): a loopback server that records every request (method, path, headers, parsed
// body) and lets a test make the next calls of a method answer an error instead.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'

export interface RecordedCall {
  method: string
  path: string
  headers: IncomingMessage['headers']
  /** The parsed JSON body; undefined when there is none or it is not JSON. */
  body: unknown
  raw: string
  status: number
}

export interface Injected {
  /** Only calls of this method (default: any). */
  method?: string
  status: number
  body?: unknown
}

export type Reply = (status: number, body?: unknown, headers?: Record<string, string>) => void

export abstract class VendorApiFake {
  readonly calls: RecordedCall[] = []
  url = ''
  private server: Server | undefined
  private readonly sockets = new Set<Socket>()
  private readonly injected: Injected[] = []

  protected abstract handle(call: RecordedCall, req: IncomingMessage, reply: Reply): void

  /** The JSON error body this vendor answers an injected status with (when the test gives none). */
  protected abstract errorBody(status: number): unknown

  async listen(): Promise<this> {
    this.server = createServer((req, res) => void this.receive(req, res))
    this.server.on('connection', (socket) => {
      this.sockets.add(socket)
      socket.on('close', () => this.sockets.delete(socket))
    })
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve))
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`
    return this
  }

  /** The next call (of `method`, if given) answers `status` with `body` (default: the vendor's error shape). */
  failNext(failure: Injected): void {
    this.injected.push(failure)
  }

  /** Calls that change something (anything but GET). */
  writes(): RecordedCall[] {
    return this.calls.filter((c) => c.method !== 'GET')
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy()
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()))
  }

  private async receive(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = []
    for await (const chunk of req) chunks.push(chunk as Buffer)
    const raw = Buffer.concat(chunks).toString('utf8')
    let body: unknown
    try {
      body = raw === '' ? undefined : JSON.parse(raw)
    } catch {
      body = undefined
    }
    const call: RecordedCall = {
      method: req.method ?? '',
      path: req.url ?? '/',
      headers: req.headers,
      body,
      raw,
      status: 0,
    }
    this.calls.push(call)
    const reply: Reply = (status, doc, headers = {}) => {
      call.status = status
      if (doc === undefined) {
        res.writeHead(status, headers)
        res.end()
        return
      }
      res.writeHead(status, { 'content-type': 'application/json', ...headers })
      res.end(JSON.stringify(doc))
    }
    const i = this.injected.findIndex((f) => f.method === undefined || f.method === call.method)
    if (i >= 0) {
      const [failure] = this.injected.splice(i, 1)
      return reply(failure!.status, failure!.body ?? this.errorBody(failure!.status))
    }
    try {
      this.handle(call, req, reply)
    } catch (err) {
      reply(500, { message: `fake failed: ${(err as Error).message}` })
    }
  }
}

export function isJsonRequest(req: IncomingMessage): boolean {
  return /^application\/json\b/i.test(req.headers['content-type'] ?? '')
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}
