import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { HttpClient } from './http-client.js'
import { ClientCredentialsToken, type ClientCredentials } from './oauth.js'

interface Seen {
  method: string
  url: string
  headers: IncomingMessage['headers']
  body: string
}

describe('ClientCredentialsToken', () => {
  let server: Server
  let base: string
  const seen: Seen[] = []
  let reply: { status: number; body: unknown; delayMs?: number } = { status: 200, body: {} }
  let issued = 0
  const http = new HttpClient({ timeoutMs: 2000 })

  beforeAll(async () => {
    server = createServer((req, res) => {
      let body = ''
      req.on('data', (c: Buffer) => (body += c.toString()))
      req.on('end', () => {
        seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body })
        const send = (): void => {
          const doc =
            reply.status === 200
              ? { access_token: `token-${++issued}`, expires_in: 100, ...(reply.body as object) }
              : reply.body
          res.writeHead(reply.status, { 'content-type': 'application/json' })
          res.end(JSON.stringify(doc))
        }
        if (reply.delayMs) setTimeout(send, reply.delayMs)
        else send()
      })
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  })
  afterAll(async () => {
    await http.close()
    await new Promise((r) => server.close(r))
  })
  beforeEach(() => {
    seen.length = 0
    reply = { status: 200, body: {} }
  })

  const make = (
    style: 'form' | 'basic',
    now: () => number = Date.now,
    extra: Partial<ClientCredentials> = {},
  ) =>
    new ClientCredentialsToken(
      {
        tokenUrl: `${base}/token`,
        clientId: 'cid',
        clientSecret: 's3cr3t',
        scopes: ['a', 'b'],
        style,
        ...extra,
      },
      http,
      2000,
      now,
    )
  const signal = (): AbortSignal => AbortSignal.timeout(5000)

  it('form style: POSTs the credentials as a form (Adobe IMS), scopes comma-separated', async () => {
    const token = await make('form').token(signal())
    expect(token).toMatch(/^token-/)
    expect(seen).toHaveLength(1)
    expect(seen[0]!.method).toBe('POST')
    expect(seen[0]!.headers['content-type']).toBe('application/x-www-form-urlencoded')
    expect(Object.fromEntries(new URLSearchParams(seen[0]!.body))).toEqual({
      grant_type: 'client_credentials',
      client_id: 'cid',
      client_secret: 's3cr3t',
      scope: 'a,b',
    })
  })

  it('basic style: HTTP Basic, grant and scope in the query (Domo), GET unless told POST', async () => {
    await make('basic').token(signal())
    await make('basic', Date.now, { method: 'POST', scopes: ['data'] }).token(signal())
    expect(seen.map((s) => s.method)).toEqual(['GET', 'POST'])
    expect(seen[0]!.url).toBe('/token?grant_type=client_credentials&scope=a+b')
    expect(seen[1]!.url).toBe('/token?grant_type=client_credentials&scope=data')
    expect(seen[0]!.headers.authorization).toBe(`Basic ${Buffer.from('cid:s3cr3t').toString('base64')}`)
    expect(seen[0]!.body).toBe('')
  })

  it('caches the token until shortly before expires_in, then fetches a new one', async () => {
    let now = 1_000_000
    const source = make('form', () => now)
    const first = await source.token(signal())
    now += 50_000
    expect(await source.token(signal())).toBe(first)
    expect(seen).toHaveLength(1)
    // expires_in 100 s: renewed 10 s (a tenth of its life) before the end.
    now = 1_000_000 + 90_001
    expect(await source.token(signal())).not.toBe(first)
    expect(seen).toHaveLength(2)
  })

  it('concurrent callers share one token request', async () => {
    reply = { status: 200, body: {}, delayMs: 50 }
    const source = make('form')
    const tokens = await Promise.all([1, 2, 3, 4].map(() => source.token(signal())))
    expect(new Set(tokens).size).toBe(1)
    expect(seen).toHaveLength(1)
  })

  it('invalidate drops only the token that was refused', async () => {
    const source = make('form')
    const first = await source.token(signal())
    source.invalidate('some-older-token')
    expect(await source.token(signal())).toBe(first)
    source.invalidate(first)
    const second = await source.token(signal())
    expect(second).not.toBe(first)
    expect(seen).toHaveLength(2)
  })

  it('refused credentials are an "auth" failure (held, not dead-lettered); 5xx and answers without a token are transient', async () => {
    reply = { status: 401, body: { error: 'invalid_client' } }
    const refused = await make('form')
      .token(signal())
      .catch((e: unknown) => e)
    expect(refused).toMatchObject({ retriable: true, reason: 'auth' })
    expect((refused as Error).message).toMatch(/^auth failed: /)
    expect((refused as Error).message).toContain('invalid_client')
    expect((refused as Error).message).not.toContain('s3cr3t')
    reply = { status: 400, body: { error: 'invalid_scope' } }
    await expect(make('form').token(signal())).rejects.toMatchObject({ retriable: true, reason: 'auth' })
    reply = { status: 503, body: {} }
    await expect(make('form').token(signal())).rejects.toMatchObject({ retriable: true, reason: 'oauth-503' })
    reply = { status: 200, body: { access_token: '' } }
    await expect(make('form').token(signal())).rejects.toMatchObject({
      retriable: true,
      reason: 'oauth-bad-answer',
    })
  })

  it('a caller giving up does not fail the shared request for the others', async () => {
    reply = { status: 200, body: {}, delayMs: 100 }
    const source = make('form')
    const controller = new AbortController()
    const quitter = source.token(controller.signal)
    const stayer = source.token(signal())
    controller.abort(new Error('gave up'))
    await expect(quitter).rejects.toThrow('gave up')
    expect(await stayer).toMatch(/^token-/)
  })
})
