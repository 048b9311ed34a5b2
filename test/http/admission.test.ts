import { createServer, type Server } from 'node:http'
import { connect, type AddressInfo, type Socket } from 'node:net'
import { describe, expect, it } from 'vitest'
import { readNdjsonLines, startGateway, waitFor, type TestGateway } from '../support/gateway.js'
import { send, type Answer } from '../support/http.js'
import { rawExchange } from '../support/raw-http.js'
import { lingerLimit, UNREAD_LINGER_MS } from '../../src/http/server.js'

// Admission control over a real socket (src/pipeline/admission.ts): above spool.highWaterBytes, or while a
// lane is over spool.maxLagSeconds, new requests get 503 spool-full + Retry-After before their body is read;
// accepted again below spool.lowWaterBytes / half the budget; nothing acknowledged is lost.

const TOKEN = 'admission-token'
const auth = { authorization: `Bearer ${TOKEN}` }

const lines = (n: number, prefix: string): string =>
  Array.from({ length: n }, (_, i) => `{"k":"${prefix}-${i}","pad":"${'x'.repeat(40)}"}`).join('\n')

interface AdmissionView {
  state: 'accepting' | 'refusing'
  reasons: { reason: string; sink?: string; message: string }[]
  lanes: { sink: string; lagSeconds: number | null; recordsPerSecond: number | null }[]
}

async function admissionOf(gw: TestGateway, id: string): Promise<AdmissionView> {
  const res = await send(`${gw.url}/api/v1/streams/${id}`, { method: 'GET', headers: auth })
  return res.json<{ admission: AdmissionView }>().admission
}

const metrics = async (gw: TestGateway): Promise<string> =>
  (await send(`${gw.url}/metrics`, { method: 'GET' })).text

/** Fills the paused stream's spool with 5-record batches until the first refusal; returns what was accepted. */
async function fillUntilRefused(gw: TestGateway): Promise<{ accepted: string[]; refusal: Answer }> {
  const accepted: string[] = []
  for (let i = 0; i < 200; i++) {
    const body = lines(5, `batch${i}`)
    const res = await send(`${gw.url}/ingest/s`, { body })
    if (res.status === 200) accepted.push(...body.split('\n'))
    else return { accepted, refusal: res }
  }
  throw new Error('the spool never refused')
}

function expectAdmissionRefusal(res: Answer, reason: string): void {
  expect(res.status).toBe(503)
  expect(res.headers['content-type']).toBe('application/problem+json')
  expect(Number(res.headers['retry-after'])).toBeGreaterThan(0)
  expect(res.json()).toMatchObject({ title: 'Spool full', status: 503, reason })
  expect(String(res.json().type)).toMatch(/spool-full$/)
}

/**
 * A gateway whose spool is over its high-water mark from the first spooled byte on: the first request to
 * stream `s` is accepted, every later one refused 503 before its body is read.
 */
function refusingGateway(server: Record<string, unknown> = {}): Promise<TestGateway> {
  return startGateway({
    server,
    spool: { maxBytes: 100_000, highWaterBytes: 1, lowWaterBytes: 0 },
    sinks: { out: { type: 'file', dir: '{dir}/out' } },
    streams: { s: { source: 'ndjson', status: 2, sinks: ['out'] } },
  })
}

/**
 * A raw sender that declares `declared` bytes and writes them as fast as loopback takes them, reading the
 * answer meanwhile: what it was answered, and how long the connection stayed open after the answer.
 */
function refusedUpload(port: number, declared: number): Promise<{ answer: string; lingeredMs: number }> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    const chunk = Buffer.alloc(64 * 1024, 0x20)
    let answer = ''
    let answeredAt = 0
    let sent = 0
    const pump = (): void => {
      while (!socket.destroyed && sent < declared) {
        sent += chunk.length
        if (!socket.write(chunk)) return void socket.once('drain', pump)
      }
    }
    socket.on('connect', () => {
      socket.write(`POST /ingest/s HTTP/1.1\r\nHost: x\r\nContent-Length: ${declared}\r\n\r\n`)
      pump()
    })
    socket.on('data', (d: Buffer) => {
      answer += d.toString()
      answeredAt ||= performance.now()
    })
    socket.on('error', () => undefined) // the reset after the linger
    socket.on('close', () => resolve({ answer, lingeredMs: performance.now() - answeredAt }))
  })
}

describe('admission control', () => {
  it('refuses above the high-water mark before reading the body, holds until the low mark, then accepts', async () => {
    const gw = await startGateway({
      admin: { token: TOKEN },
      spool: { maxBytes: 100_000, highWaterBytes: 4000, lowWaterBytes: 1000, segmentBytes: 4096 },
      sinks: { out: { type: 'file', dir: '{dir}/out' } },
      streams: { s: { source: 'ndjson', status: 2, sinks: ['out'] } },
    })
    try {
      const { accepted, refusal } = await fillUntilRefused(gw)
      expectAdmissionRefusal(refusal, 'high-water')
      expect(accepted.length).toBeGreaterThan(0)
      // Far under maxBytes: this is the mark, not the hard limit.
      expect(gw.gateway.spool.usedBytes()).toBeLessThan(10_000)

      // Not read, not parsed: an invalid body gets the same 503 (not 400), and no record is counted.
      const counted = { ...gw.gateway.state('s')!.counts }
      const invalid = await send(`${gw.url}/ingest/s`, { body: '{"this is": not json at all' })
      expectAdmissionRefusal(invalid, 'high-water')
      expect(gw.gateway.state('s')!.counts).toEqual(counted)

      // Still authenticated and routed first: an unknown stream is 404 whatever the spool holds.
      expect((await send(`${gw.url}/ingest/nope`, { body: '{}' })).status).toBe(404)

      const view = await admissionOf(gw, 's')
      expect(view.state).toBe('refusing')
      expect(view.reasons[0]).toMatchObject({ reason: 'high-water' })
      const text = await metrics(gw)
      expect(text).toMatch(/streamgate_admission_refusing\{stream="s",reason="high-water"\} 1/)
      expect(text).toMatch(/streamgate_admission_refused_total\{stream="s",reason="high-water"\} [2-9]/)
      expect(text).toMatch(/streamgate_spool_high_water_bytes 4000/)
      expect(text).toMatch(/streamgate_spool_low_water_bytes 1000/)

      // Hysteresis: with the high mark raised above what the spool holds (but the low one still under it),
      // requests are still refused.
      const used = gw.gateway.spool.usedBytes()
      await gw.gateway.apply({
        ...gw.gateway.config,
        spool: { ...gw.gateway.config.spool, highWaterBytes: used + 2000, lowWaterBytes: used - 500 },
      })
      expectAdmissionRefusal(await send(`${gw.url}/ingest/s`, { body: lines(1, 'between') }), 'high-water')

      // Delivery brings the spool under the low mark: accepted again.
      gw.gateway.setStatus('s', 1)
      const after = await waitFor(
        async () => {
          const res = await send(`${gw.url}/ingest/s`, { body: lines(5, 'after') })
          return res.status === 200 ? res : undefined
        },
        15_000,
        'the spool to accept again',
      )
      expect(after.json()).toMatchObject({ accepted: 5 })
      expect((await admissionOf(gw, 's')).state).toBe('accepting')
      expect(await metrics(gw)).toMatch(/streamgate_admission_refusing\{stream="s",reason="high-water"\} 0/)
      // Every acknowledged record reached the sink, in order.
      const expected = [...accepted, ...lines(5, 'after').split('\n')]
      await waitFor(() => readNdjsonLines(`${gw.dir}/out`).length === expected.length, 10_000, 'delivery')
      expect(readNdjsonLines(`${gw.dir}/out`)).toEqual(expected)
    } finally {
      await gw.close()
    }
  })

  it('keeps a keep-alive connection and pipelined requests going when it drains a small refused body', async () => {
    const gw = await refusingGateway()
    try {
      expect((await send(`${gw.url}/ingest/s`, { body: lines(1, 'first') })).status).toBe(200)
      const body = '{"k":1}\n'.repeat(2000)
      const post = Buffer.from(
        `POST /ingest/s HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
      )
      const probe = Buffer.from('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n')
      // Three requests in one write (pipelined): two refused POSTs with bodies, then a GET.
      const exchange = await rawExchange(
        gw.port,
        { pieces: [Buffer.concat([post, post, probe])], requests: 3 },
        10_000,
      )
      expect(exchange.malformed).toBeUndefined()
      expect(exchange.responses.map((r) => r.status)).toEqual([503, 503, 200])
      expect(exchange.responses[0]!.headers.connection).not.toMatch(/close/i)
      expect(exchange.responses[0]!.headers['retry-after']).toMatch(/^\d+$/)
      expect(JSON.parse(exchange.responses[2]!.body.toString())).toEqual({ status: 'ok' })
      expect(exchange.closedByServer).toBe(false)
      // Nothing of the refused bodies was framed.
      expect(gw.gateway.state('s')!.counts.received).toBe(1)
    } finally {
      await gw.close()
    }
  })

  it('closes the connection after refusing a chunked or large body it does not read (and the client still gets the 503)', async () => {
    const gw = await refusingGateway()
    try {
      expect((await send(`${gw.url}/ingest/s`, { body: lines(1, 'first') })).status).toBe(200)
      const chunk = '{"k":1}\n'.repeat(500)
      const head = Buffer.from(
        'POST /ingest/s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n' +
          `${chunk.length.toString(16)}\r\n${chunk}\r\n`,
      )
      const rest = Buffer.from(`${chunk.length.toString(16)}\r\n${chunk}\r\n0\r\n\r\n`)
      const exchange = await rawExchange(gw.port, { pieces: [head, rest], gapMs: 50, requests: 1 }, 10_000)
      expect(exchange.responses.map((r) => r.status)).toEqual([503])
      expect(exchange.responses[0]!.headers.connection).toMatch(/close/i)
      expect(exchange.closedByServer).toBe(true)
      // A body of declared length over ADMISSION_DRAIN_MAX_BYTES is not drained either: reading megabytes
      // to keep a connection costs more than the client's reconnect.
      const big = '{"k":1}\n'.repeat(20_000)
      const large = await rawExchange(
        gw.port,
        {
          pieces: [
            Buffer.from(`POST /ingest/s HTTP/1.1\r\nHost: x\r\nContent-Length: ${big.length}\r\n\r\n`),
            Buffer.from(big),
          ],
          gapMs: 50,
          requests: 1,
        },
        10_000,
      )
      expect(large.responses.map((r) => r.status)).toEqual([503])
      expect(large.responses[0]!.headers.connection).toMatch(/close/i)
      expect(large.closedByServer).toBe(true)
      expect(gw.gateway.state('s')!.counts.received).toBe(1)
    } finally {
      await gw.close()
    }
  })

  it('reads no more of a body it refused unread: answers, lingers without reading, then closes', async () => {
    const gw = await refusingGateway()
    try {
      expect((await send(`${gw.url}/ingest/s`, { body: lines(1, 'first') })).status).toBe(200)
      const bytesRead: number[] = []
      gw.server.server.on('connection', (s: Socket) => s.once('close', () => bytesRead.push(s.bytesRead)))
      // A sender that writes a 256 MiB body as fast as loopback takes it, reading the answer meanwhile.
      const seen = await refusedUpload(gw.port, 256 * 1024 * 1024)
      expect(seen.answer).toMatch(/^HTTP\/1\.1 503 /)
      expect(seen.answer).toMatch(/\r\nconnection: close\r\n/i)
      // The connection stayed open after the answer (the linger) …
      expect(seen.lingeredMs).toBeGreaterThanOrEqual(UNREAD_LINGER_MS * 0.8)
      // … and read nothing meanwhile: what the gateway took off the socket is its first reads, not the
      // hundreds of megabytes a reading socket takes from loopback in that time.
      await waitFor(() => bytesRead.length === 1)
      expect(bytesRead[0]).toBeGreaterThan(0)
      expect(bytesRead[0]).toBeLessThan(4 * 1024 * 1024)
    } finally {
      await gw.close()
    }
  })

  it('lets at most a quarter of server.maxConnections linger; a refusal beyond them closes at once', async () => {
    const gw = await refusingGateway({ maxConnections: 8 })
    try {
      expect(lingerLimit(8)).toBe(2)
      expect((await send(`${gw.url}/ingest/s`, { body: lines(1, 'first') })).status).toBe(200)
      const three = await Promise.all([1, 2, 3].map(() => refusedUpload(gw.port, 8 * 1024 * 1024)))
      for (const seen of three) expect(seen.answer).toMatch(/^HTTP\/1\.1 503 /)
      const lingered = three.map((seen) => seen.lingeredMs).sort((a, b) => a - b)
      expect(lingered[0]).toBeLessThan(UNREAD_LINGER_MS / 2)
      expect(lingered[1]).toBeGreaterThanOrEqual(UNREAD_LINGER_MS * 0.8)
      expect(lingered[2]).toBeGreaterThanOrEqual(UNREAD_LINGER_MS * 0.8)
    } finally {
      await gw.close()
    }
  })

  it('refuses a stream whose lane is over its lag budget, and accepts again once it catches up; nothing lost', async () => {
    // A slow http target: each batch of 10 records waits `delayMs` (about 100 records/s at 100 ms).
    let delayMs = 100
    const received: string[] = []
    const target: Server = createServer((req, res) => {
      const chunks: Buffer[] = []
      req.on('data', (c: Buffer) => chunks.push(c))
      req.on('end', () => {
        setTimeout(() => {
          received.push(
            ...Buffer.concat(chunks)
              .toString()
              .split('\n')
              .filter((l) => l !== ''),
          )
          res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
        }, delayMs)
      })
    })
    await new Promise<void>((r) => target.listen(0, '127.0.0.1', r))
    const port = (target.address() as AddressInfo).port
    const gw = await startGateway({
      admin: { token: TOKEN },
      spool: { maxLagSeconds: 1 },
      sinks: {
        slow: { type: 'http', url: `http://127.0.0.1:${port}/in`, maxBatchRecords: 10, lingerMs: 0 },
      },
      streams: { s: { source: 'ndjson', sinks: ['slow'] } },
    })
    try {
      const accepted: string[] = []
      const first = lines(1000, 'burst')
      expect((await send(`${gw.url}/ingest/s`, { body: first })).status).toBe(200)
      accepted.push(...first.split('\n'))
      // Once the lane's rate is measured, 1,000 records at ~100/s are ~10 s of lag: over the 1 s budget.
      const refusal = await waitFor(
        async () => {
          const body = lines(2, `probe${accepted.length}`)
          const res = await send(`${gw.url}/ingest/s`, { body })
          if (res.status === 200) accepted.push(...body.split('\n'))
          return res.status === 503 ? res : undefined
        },
        10_000,
        'a lag-budget refusal',
      )
      expectAdmissionRefusal(refusal, 'lag-budget')
      expect(refusal.json<{ detail: string }>().detail).toContain('slow')
      const view = await admissionOf(gw, 's')
      expect(view.state).toBe('refusing')
      expect(view.reasons).toEqual([expect.objectContaining({ reason: 'lag-budget', sink: 'slow' })])
      const lane = view.lanes.find((l) => l.sink === 'slow')!
      expect(lane.lagSeconds).toBeGreaterThan(1)
      expect(lane.recordsPerSecond).toBeGreaterThan(0)
      const text = await metrics(gw)
      expect(text).toMatch(/streamgate_admission_refusing\{stream="s",reason="lag-budget"\} 1/)
      expect(text).toMatch(/streamgate_sink_lag_seconds\{stream="s",sink="slow"\} \d/)
      // The sink speeds up: the lane catches up and the stream accepts again.
      delayMs = 0
      await waitFor(
        async () => {
          const body = lines(2, `again${accepted.length}`)
          const res = await send(`${gw.url}/ingest/s`, { body })
          if (res.status === 200) accepted.push(...body.split('\n'))
          return res.status === 200
        },
        20_000,
        'the stream to accept again',
      )
      expect((await admissionOf(gw, 's')).state).toBe('accepting')
      await waitFor(() => received.length >= accepted.length, 20_000, 'delivery of everything accepted')
      expect(new Set(received)).toEqual(new Set(accepted))
    } finally {
      await gw.close()
      await new Promise<void>((r) => target.close(() => r()))
    }
  })
})
