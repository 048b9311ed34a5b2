import { connect, type Socket } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  capturingLogger,
  readNdjsonLines,
  startGateway,
  waitFor,
  type TestGateway,
} from '../support/gateway.js'
import { send } from '../support/http.js'

// Slow and abusive clients (timeouts answered 408 problem+json close to the configured time, a connection
// limit, a client that half-closes), routing edges (trailing slash, what a 404 names) and the logs an
// operator reads (refused requests, rate-limited; the opt-in access log). Raw sockets: the tests control
// every byte and its timing.

interface RawConnection {
  socket: Socket
  /** Everything the server sent, once it closed the connection (or `ms` passed), and when it first answered. */
  received(ms?: number): Promise<{ text: string; firstByteAt: number; closed: boolean }>
}

function openRaw(port: number, allowHalfOpen = false): Promise<RawConnection> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, allowHalfOpen })
    const chunks: Buffer[] = []
    let firstByteAt = 0
    let closed = false
    const done: (() => void)[] = []
    socket.on('data', (c: Buffer) => {
      firstByteAt ||= performance.now()
      chunks.push(c)
    })
    socket.on('error', () => undefined) // a reset is an answer too: `closed`
    socket.on('close', () => {
      closed = true
      for (const d of done) d()
    })
    socket.once('connect', () =>
      resolve({
        socket,
        received: (ms = 10_000) =>
          new Promise((res) => {
            const finish = (): void =>
              res({ text: Buffer.concat(chunks).toString('utf8'), firstByteAt, closed })
            if (closed) return finish()
            done.push(finish)
            setTimeout(finish, ms).unref()
          }),
      }),
    )
    socket.once('error', reject)
  })
}

function statusOf(text: string): number {
  return Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0)
}

function problemOf(text: string): Record<string, unknown> {
  const [head, body] = text.split('\r\n\r\n', 2)
  expect(head).toMatch(/content-type: application\/problem\+json/i)
  return JSON.parse(body!) as Record<string, unknown>
}

const tick = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

describe('slow clients get a 408 problem+json close to the configured time', () => {
  let gw: TestGateway
  const { logger, lines } = capturingLogger()

  beforeAll(async () => {
    gw = await startGateway(
      {
        server: { headersTimeoutMs: 1000, bodyTimeoutMs: 800, requestTimeoutMs: 2500 },
        sinks: { out: { type: 'file', dir: '{dir}/out' } },
        streams: { s: { source: 'ndjson', sinks: ['out'] } },
      },
      {},
      { logger },
    )
  })
  afterAll(async () => {
    await gw?.close()
  })

  it('headers trickled byte by byte: 408 after headersTimeoutMs', async () => {
    const conn = await openRaw(gw.port)
    const started = performance.now()
    const head = 'POST /ingest/s HTTP/1.1\r\nHost: x\r\nX-Slow: '
    conn.socket.write(head)
    const trickle = setInterval(() => {
      if (!conn.socket.destroyed) conn.socket.write('a')
    }, 100)
    const answer = await conn.received(5000)
    clearInterval(trickle)
    const elapsed = answer.firstByteAt - started
    expect(statusOf(answer.text)).toBe(408)
    expect(problemOf(answer.text)).toMatchObject({
      status: 408,
      type: 'https://streamgate.dev/problems/headers-timeout',
      detail: expect.stringContaining('1000 ms') as string,
    })
    expect(elapsed).toBeGreaterThanOrEqual(950)
    expect(elapsed).toBeLessThan(2000)
    expect(answer.closed).toBe(true)
    const line = await waitFor(() => lines.find((l) => l.reason === 'headers-timeout'))
    expect(line).toMatchObject({ msg: 'request refused', status: 408, remoteAddress: '127.0.0.1' })
  })

  it('a body that stalls mid-way: 408 after bodyTimeoutMs of silence, and nothing accepted', async () => {
    const conn = await openRaw(gw.port)
    const record = '{"stalled":1}\n'
    conn.socket.write(
      `POST /ingest/s HTTP/1.1\r\nHost: x\r\nContent-Length: ${record.length + 20}\r\nX-Request-Id: r-42\r\n\r\n`,
    )
    conn.socket.write(record)
    const started = performance.now()
    const answer = await conn.received(5000)
    const elapsed = answer.firstByteAt - started
    expect(statusOf(answer.text)).toBe(408)
    expect(problemOf(answer.text)).toMatchObject({
      status: 408,
      type: 'https://streamgate.dev/problems/body-timeout',
      instance: '/ingest/s',
    })
    expect(elapsed).toBeGreaterThanOrEqual(750)
    expect(elapsed).toBeLessThan(1800)
    expect(answer.closed).toBe(true)
    expect(await waitFor(() => lines.find((l) => l.reason === 'body-timeout'))).toMatchObject({
      stream: 's',
      status: 408,
      remoteAddress: '127.0.0.1',
      requestId: 'r-42',
    })
    // The gateway is fine and the stalled record was not accepted.
    expect((await send(`${gw.url}/ingest/s`, { body: '{"after":1}\n' })).status).toBe(200)
    await waitFor(() => readNdjsonLines(`${gw.dir}/out`).includes('{"after":1}'))
    expect(readNdjsonLines(`${gw.dir}/out`)).not.toContain('{"stalled":1}')
  })

  it('a body that keeps trickling within bodyTimeoutMs: 408 at requestTimeoutMs', async () => {
    const conn = await openRaw(gw.port)
    const started = performance.now()
    conn.socket.write('POST /ingest/s HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n')
    const trickle = setInterval(() => {
      if (!conn.socket.destroyed) conn.socket.write(' ')
    }, 200)
    const answer = await conn.received(6000)
    clearInterval(trickle)
    const elapsed = answer.firstByteAt - started
    expect(statusOf(answer.text)).toBe(408)
    expect(problemOf(answer.text)).toMatchObject({
      type: 'https://streamgate.dev/problems/request-timeout',
      detail: expect.stringContaining('2500 ms') as string,
    })
    expect(elapsed).toBeGreaterThanOrEqual(2450)
    expect(elapsed).toBeLessThan(3500)
    expect(answer.closed).toBe(true)
    // Logged once, by the server (the ingest path that then sees the aborted body does not log it again).
    await waitFor(() => lines.some((l) => l.reason === 'request-timeout'))
    await tick(200)
    expect(lines.filter((l) => l.reason === 'request-timeout' || l.reason === 'aborted')).toHaveLength(1)
    expect(lines.find((l) => l.reason === 'request-timeout')).toMatchObject({ stream: 's', status: 408 })
  })

  it('a body that arrives in slow pieces within bodyTimeoutMs is accepted', async () => {
    const res = await new Promise<string>((resolve, reject) => {
      void openRaw(gw.port).then(async (conn) => {
        const body = '{"slow":1}\n{"slow":2}\n'
        conn.socket.write(
          `POST /ingest/s HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: ${body.length}\r\n\r\n`,
        )
        for (const piece of [body.slice(0, 8), body.slice(8, 16), body.slice(16)]) {
          await tick(400)
          conn.socket.write(piece)
        }
        const answer = await conn.received(3000)
        conn.socket.destroy()
        resolve(answer.text)
      }, reject)
    })
    expect(statusOf(res)).toBe(200)
    expect(res).toContain('"accepted":2')
  })

  it('malformed HTTP gets a 400 problem+json', async () => {
    const conn = await openRaw(gw.port)
    conn.socket.write('POST /ingest/s HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n')
    const answer = await conn.received(3000)
    expect(statusOf(answer.text)).toBe(400)
    expect(problemOf(answer.text)).toMatchObject({ type: 'https://streamgate.dev/problems/bad-request' })
  })
})

describe('connections', () => {
  it('connections past server.maxConnections are closed at once; the others are served', async () => {
    const { logger, lines } = capturingLogger()
    const gw = await startGateway(
      {
        server: { maxConnections: 3 },
        sinks: { out: { type: 'file', dir: '{dir}/out' } },
        streams: { s: { source: 'ndjson', sinks: ['out'] } },
      },
      {},
      { logger },
    )
    const open: RawConnection[] = []
    try {
      for (let i = 0; i < 3; i++) open.push(await openRaw(gw.port))
      const counted = (): Promise<number> =>
        new Promise((r) => gw.server.server.getConnections((_, n) => r(n)))
      await waitFor(async () => (await counted()) === 3, 5000, 'three connections')
      const extra = await openRaw(gw.port)
      extra.socket.write('POST /ingest/s HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\n{"x":1}\n')
      const refused = await extra.received(3000)
      expect(refused.closed).toBe(true)
      expect(refused.text).toBe('')
      expect(await waitFor(() => lines.find((l) => l.reason === 'max-connections'))).toMatchObject({
        level: 40,
        remoteAddress: '127.0.0.1',
      })
      // The three admitted connections are served.
      const first = open[0]!
      first.socket.write(
        'POST /ingest/s HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 8\r\n\r\n{"x":2}\n',
      )
      expect(statusOf((await first.received(3000)).text)).toBe(200)
      // A connection freed makes room for a new one.
      await waitFor(async () => (await counted()) === 2, 5000, 'a freed connection')
      expect((await send(`${gw.url}/ingest/s`, { body: '{"x":3}\n' })).status).toBe(200)
    } finally {
      for (const c of open) c.socket.destroy()
      await gw.close()
    }
  })

  it('a failed accept (EMFILE) after start is logged; the listener keeps serving', async () => {
    const { logger, lines } = capturingLogger()
    const gw = await startGateway(
      {
        sinks: { out: { type: 'file', dir: '{dir}/out' } },
        streams: { s: { source: 'ndjson', sinks: ['out'] } },
      },
      {},
      { logger },
    )
    try {
      // What node's net server emits when accept() fails; unhandled, it would crash the process.
      const err = Object.assign(new Error('accept EMFILE'), { code: 'EMFILE', syscall: 'accept' })
      gw.server.server.emit('error', err)
      expect(await waitFor(() => lines.find((l) => l.reason === 'accept-failed-EMFILE'))).toMatchObject({
        level: 40,
      })
      expect((await send(`${gw.url}/ingest/s`, { body: '{"x":1}\n' })).status).toBe(200)
    } finally {
      await gw.close()
    }
  })

  it('a client that half-closes after sending its request still gets the 200', async () => {
    const gw = await startGateway({
      sinks: { out: { type: 'file', dir: '{dir}/out' } },
      streams: { s: { source: 'ndjson', sinks: ['out'] } },
    })
    try {
      for (const keepAlive of [true, false]) {
        const conn = await openRaw(gw.port, true)
        const body = `{"half":${keepAlive}}\n`
        conn.socket.end(
          `POST /ingest/s HTTP/1.1\r\nHost: x\r\n${keepAlive ? '' : 'Connection: close\r\n'}Content-Length: ${body.length}\r\n\r\n${body}`,
        )
        const answer = await conn.received(5000)
        expect(statusOf(answer.text), `keep-alive ${keepAlive}`).toBe(200)
        expect(answer.text).toContain('"accepted":1')
        expect(answer.closed).toBe(true)
      }
    } finally {
      await gw.close()
    }
  })
})

describe('routing and messages', () => {
  let gw: TestGateway
  beforeAll(async () => {
    gw = await startGateway({
      sinks: { out: { type: 'file', dir: '{dir}/out' } },
      streams: { s: { source: 'ndjson', sinks: ['out'] } },
    })
  })
  afterAll(async () => {
    await gw?.close()
  })

  it('/ingest/<id>/ is the same stream, with or without a query string', async () => {
    for (const path of ['/ingest/s/', '/ingest/s/?from=vendor', '/ingest/s?from=vendor', '/ingest/%73/']) {
      const res = await send(`${gw.url}${path}`, { body: '{"a":1}\n' })
      expect(res.status, path).toBe(200)
      expect(res.json(), path).toMatchObject({ accepted: 1 })
    }
  })

  it('a 404 names the stream id that was asked for, decoded and quoted', async () => {
    const cases: [string, string][] = [
      ['/ingest/nope', 'no stream "nope" is configured'],
      ['/ingest/nope/', 'no stream "nope" is configured'],
      ['/ingest/a/b', 'no stream "a/b" is configured'],
      ['/ingest/s/extra/', 'no stream "s/extra" is configured'],
      ['/ingest/a%2Fb', 'no stream "a/b" is configured'],
      ['/ingest/s//', 'no stream "s/" is configured'],
      ['/ingest/x%00y', 'no stream "x\\u0000y" is configured'],
      ['/ingest/%22quoted%22', 'no stream "\\"quoted\\"" is configured'],
      ['/ingest/bad%E0%A4', 'no stream "bad%E0%A4" is configured'],
      ['/ingest/', 'the path names no stream; POST to /ingest/<stream-id>'],
      [`/ingest/${'x'.repeat(300)}`, `no stream "${'x'.repeat(128)}…" is configured`],
    ]
    for (const [path, detail] of cases) {
      const res = await send(`${gw.url}${path}`, { body: '{}' })
      expect(res.status, path).toBe(404)
      expect(res.json(), path).toMatchObject({ status: 404, title: 'Unknown stream', detail })
    }
    expect((await send(`${gw.url}/ingest/a%2Fb`, { body: '{}' })).json()).toMatchObject({
      instance: '/ingest/a%2Fb',
    })
  })
})

describe('logs', () => {
  it('one line per refused request: stream, status, reason, address; never header values or payloads', async () => {
    const { logger, lines } = capturingLogger()
    const gw = await startGateway(
      {
        server: { maxBodyBytes: 1024 },
        sinks: { out: { type: 'file', dir: '{dir}/out' } },
        streams: {
          s: { source: 'ndjson', auth: { headers: { 'X-Key': 'sekrit-key-value' } }, sinks: ['out'] },
          strict: {
            source: 'ndjson',
            schema: 'test/fixtures/needs-n.schema.json',
            validation: 'reject',
            sinks: ['out'],
          },
        },
      },
      {},
      { logger },
    )
    try {
      const ok = await send(`${gw.url}/ingest/s`, {
        headers: { 'x-key': 'sekrit-key-value' },
        body: '{"a":1}\n',
      })
      expect(ok.status).toBe(200)
      await send(`${gw.url}/ingest/s`, {
        headers: { 'x-key': 'wrong-key-guess', 'x-request-id': 'abc-1' },
        body: '{"payload-secret":1}\n',
      })
      await send(`${gw.url}/ingest/nope`, { body: '{}' })
      await send(`${gw.url}/ingest/s`, { headers: { 'x-key': 'sekrit-key-value' }, body: 'x'.repeat(2000) })
      await send(`${gw.url}/ingest/s`, {
        headers: { 'x-key': 'sekrit-key-value' },
        body: '{"payload-secret":\n',
      })
      await send(`${gw.url}/ingest/strict`, { body: '{"payload-secret":2}\n' })
      const refused = await waitFor(() => {
        const found = lines.filter((l) => l.msg === 'request refused')
        return found.length === 5 && found
      })
      expect(refused.map((l) => [l.stream, l.status, l.reason])).toEqual([
        ['s', 401, 'unauthorized'],
        ['nope', 404, 'unknown-stream'],
        ['s', 413, 'body-too-large'],
        ['s', 400, 'invalid-json'],
        ['strict', 422, 'invalid-records'],
      ])
      for (const l of refused) expect(l).toMatchObject({ level: 30, remoteAddress: '127.0.0.1' })
      expect(refused[0]).toMatchObject({ requestId: 'abc-1' })
      const text = JSON.stringify(lines)
      for (const secret of ['sekrit-key-value', 'wrong-key-guess', 'payload-secret'])
        expect(text).not.toContain(secret)
      // Nothing at info for the accepted request.
      expect(lines.filter((l) => l.msg === 'request')).toEqual([])
    } finally {
      await gw.close()
    }
  })

  it('a flood of refusals is cut to 20 lines per 10 s, then one summary line with the count', async () => {
    const { logger, lines } = capturingLogger()
    const gw = await startGateway(
      {
        sinks: { out: { type: 'file', dir: '{dir}/out' } },
        streams: { s: { source: 'ndjson', sinks: ['out'] } },
      },
      {},
      { logger },
    )
    for (let i = 0; i < 50; i++)
      expect((await send(`${gw.url}/ingest/nope-${i}`, { body: '{}' })).status).toBe(404)
    expect(lines.filter((l) => l.msg === 'request refused')).toHaveLength(20)
    await gw.close() // the summary of the current window is written at shutdown (or when the window ends)
    expect(lines.filter((l) => l.msg === 'suppressed 30 refused-request lines')).toEqual([
      expect.objectContaining({ level: 40, suppressed: 30 }),
    ])
  })

  it('log.access: one line per request on every route; off by default', async () => {
    const { logger, lines } = capturingLogger()
    const gw = await startGateway(
      {
        log: { access: true },
        sinks: { out: { type: 'file', dir: '{dir}/out' } },
        streams: { s: { source: 'ndjson', sinks: ['out'] } },
      },
      {},
      { logger },
    )
    try {
      const body = '{"a":1}\n{"a":2}\n'
      expect((await send(`${gw.url}/ingest/s?token=query-secret`, { body })).status).toBe(200)
      expect((await send(`${gw.url}/healthz`, { method: 'GET' })).status).toBe(200)
      expect((await send(`${gw.url}/ingest/nope`, { body: '{}' })).status).toBe(404)
      expect((await send(`${gw.url}/api/v1/streams`, { method: 'GET' })).status).toBe(401)
      const access = await waitFor(() => {
        const found = lines.filter((l) => l.msg === 'request')
        return found.length === 4 && found
      })
      expect(access.map((l) => [l.method, l.path, l.status])).toEqual([
        ['POST', '/ingest/s', 200],
        ['GET', '/healthz', 200],
        ['POST', '/ingest/nope', 404],
        ['GET', '/api/v1/streams', 401],
      ])
      for (const l of access) {
        expect(l).toMatchObject({ level: 30, remoteAddress: '127.0.0.1' })
        expect(l.bytesIn).toBeGreaterThan(0)
        expect(l.bytesOut).toBeGreaterThan(0)
        expect(typeof l.durationMs).toBe('number')
      }
      expect(access[0]!.bytesIn).toBeGreaterThan(body.length) // headers included
      expect(JSON.stringify(lines)).not.toContain('query-secret')
    } finally {
      await gw.close()
    }
  })

  it('log.access covers the admin and metrics listeners too', async () => {
    const { logger, lines } = capturingLogger()
    const gw = await startGateway(
      {
        log: { access: true },
        admin: { token: 'admin-token-for-the-test', listen: { host: '127.0.0.1', port: 0 } },
        metrics: { listen: { host: '127.0.0.1', port: 0 } },
        sinks: { out: { type: 'file', dir: '{dir}/out' } },
        streams: { s: { source: 'ndjson', sinks: ['out'] } },
      },
      {},
      { logger },
    )
    try {
      expect((await send(`${gw.adminUrl!}/api/v1/streams`, { method: 'GET' })).status).toBe(401)
      expect((await send(`${gw.metricsUrl!}/metrics`, { method: 'GET' })).status).toBe(200)
      const access = await waitFor(() => {
        const found = lines.filter((l) => l.msg === 'request')
        return found.length === 2 && found
      })
      expect(access.map((l) => [l.path, l.status])).toEqual([
        ['/api/v1/streams', 401],
        ['/metrics', 200],
      ])
    } finally {
      await gw.close()
    }
  })
})
