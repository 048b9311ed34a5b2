import { request } from 'node:http'
import { connect, type Socket } from 'node:net'
import { describe, expect, it } from 'vitest'
import { readNdjsonLines, startGateway, waitFor } from '../support/gateway.js'
import { send, type Answer } from '../support/http.js'

// `backpressure: pause` over a real loopback socket (src/pipeline/admission.ts): while admission control would
// refuse, a request of the stream waits with its body unread — the server stops reading the socket, so the
// sender's writes block — and is ingested once the spool is under its low-water mark, or refused 503 as with
// `backpressure: refuse` after spool.maxPauseMs.

const lines = (n: number, prefix: string): string =>
  Array.from({ length: n }, (_, i) => `{"k":"${prefix}-${i}","pad":"${'x'.repeat(40)}"}`).join('\n')

/** Whether the promise settled within `ms`. */
async function settledWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let settled = false
  void p.then(
    () => (settled = true),
    () => (settled = true),
  )
  await new Promise((r) => setTimeout(r, ms))
  return settled
}

describe('backpressure: pause', () => {
  it('holds a request above the high-water mark, body unread, and ingests it once delivery drains the spool', async () => {
    const gw = await startGateway({
      spool: {
        maxBytes: 1_000_000,
        highWaterBytes: 4000,
        lowWaterBytes: 1000,
        segmentBytes: 4096,
        maxPauseMs: 20_000,
      },
      sinks: { out: { type: 'file', dir: '{dir}/out' } },
      streams: { s: { source: 'ndjson', status: 2, backpressure: 'pause', sinks: ['out'] } },
    })
    try {
      const first = lines(100, 'first')
      expect((await send(`${gw.url}/ingest/s`, { body: first })).status).toBe(200)
      expect(gw.gateway.spool.usedBytes()).toBeGreaterThan(4000)

      const second = lines(5, 'second')
      const held = send(`${gw.url}/ingest/s`, { body: second })
      // Held, not refused: no answer, and the body not read (nothing of it counted).
      expect(await settledWithin(held, 700)).toBe(false)
      expect(gw.gateway.admission.heldCount('s')).toBe(1)
      expect(gw.gateway.state('s')!.counts.received).toBe(100)
      expect((await send(`${gw.url}/metrics`, { method: 'GET' })).text).toMatch(
        /streamgate_admission_held_requests\{stream="s"\} 1/,
      )

      // The stream delivers again: the spool drains under the low mark and the held request is let in.
      gw.gateway.setStatus('s', 1)
      const answer: Answer = await held
      expect(answer.status).toBe(200)
      expect(answer.json()).toMatchObject({ accepted: 5 })
      expect(gw.gateway.admission.heldCount()).toBe(0)
      const expected = [...first.split('\n'), ...second.split('\n')]
      await waitFor(() => readNdjsonLines(`${gw.dir}/out`).length === expected.length, 10_000, 'delivery')
      expect(readNdjsonLines(`${gw.dir}/out`)).toEqual(expected)
      expect(
        (await send(`${gw.url}/metrics`, { method: 'GET' })).text.match(
          /streamgate_admission_refused_total\{stream="s"[^}]*\} [1-9]/,
        ),
      ).toBeNull()
    } finally {
      await gw.close()
    }
  })

  it('stops reading a held sender (TCP backpressure) and refuses it 503 after spool.maxPauseMs', async () => {
    const gw = await startGateway({
      spool: { maxBytes: 1_000_000, highWaterBytes: 1, lowWaterBytes: 0, maxPauseMs: 4000 },
      sinks: { out: { type: 'file', dir: '{dir}/out' } },
      streams: { s: { source: 'ndjson', status: 2, backpressure: 'pause', sinks: ['out'] } },
    })
    try {
      expect((await send(`${gw.url}/ingest/s`, { body: lines(1, 'first') })).status).toBe(200)
      // 32 MiB declared and offered: far more than loopback's socket buffers hold, so while the server does
      // not read, the client cannot finish writing it.
      const size = 32 * 1024 * 1024
      const started = performance.now()
      let written = false
      const answered = new Promise<{ status: number; body: string; headers: Record<string, unknown> }>(
        (resolve, reject) => {
          const req = request(
            `${gw.url}/ingest/s`,
            { method: 'POST', headers: { 'content-length': String(size) } },
            (res) => {
              const chunks: Buffer[] = []
              res.on('data', (c: Buffer) => chunks.push(c))
              res.on('end', () =>
                resolve({
                  status: res.statusCode ?? 0,
                  body: Buffer.concat(chunks).toString(),
                  headers: res.headers,
                }),
              )
            },
          )
          req.on('error', reject)
          req.end(Buffer.alloc(size, 0x20), () => (written = true))
        },
      )
      await waitFor(() => gw.gateway.admission.heldCount('s') === 1, 5_000, 'the request to be held')
      await new Promise((r) => setTimeout(r, 300))
      expect(written).toBe(false)
      expect(gw.gateway.admission.heldCount('s')).toBe(1)

      const answer = await answered
      const elapsed = performance.now() - started
      expect(answer.status).toBe(503)
      expect(JSON.parse(answer.body)).toMatchObject({ status: 503, reason: 'high-water' })
      expect(Number(answer.headers['retry-after'])).toBeGreaterThan(0)
      expect(elapsed).toBeGreaterThanOrEqual(3900)
      expect(written).toBe(false)
      expect(gw.gateway.admission.heldCount()).toBe(0)
      expect(gw.gateway.state('s')!.counts.received).toBe(1)
      expect((await send(`${gw.url}/metrics`, { method: 'GET' })).text).toMatch(
        /streamgate_admission_refused_total\{stream="s",reason="high-water"\} 1/,
      )
    } finally {
      await gw.close()
    }
  })
  it('lets a held request go at once when its client goes away (FIN or RST): slot freed, nothing stored', async () => {
    const gw = await startGateway({
      server: { maxInFlightRequests: 1 },
      spool: { maxBytes: 1_000_000, highWaterBytes: 1, lowWaterBytes: 0, maxPauseMs: 20_000 },
      sinks: { out: { type: 'file', dir: '{dir}/out' } },
      streams: { s: { source: 'ndjson', status: 2, backpressure: 'pause', sinks: ['out'] } },
      admin: { token: 'bp-token' },
    })
    const metricsText = async (): Promise<string> => (await send(`${gw.url}/metrics`, { method: 'GET' })).text
    try {
      expect((await send(`${gw.url}/ingest/s`, { body: lines(1, 'first') })).status).toBe(200)
      const usedBefore = gw.gateway.spool.usedBytes()

      for (const [n, close] of [
        [1, (s: Socket) => s.destroy()], // FIN
        [2, (s: Socket) => s.resetAndDestroy()], // RST
      ] as const) {
        // A raw socket sends a whole small request (it fits the socket buffers) and is held, unanswered.
        const body = lines(5, `gone${n}`)
        const socket = connect(gw.port, '127.0.0.1')
        const replies: Buffer[] = []
        socket.on('data', (c: Buffer) => replies.push(c))
        socket.on('error', () => undefined)
        await new Promise<void>((resolve) => socket.once('connect', resolve))
        socket.write(
          `POST /ingest/s HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/x-ndjson\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
        )
        await waitFor(() => gw.gateway.admission.heldCount('s') === 1, 5_000, 'the request to be held')
        // It holds the one in-flight slot: another request is refused as overloaded.
        const overloaded = await send(`${gw.url}/ingest/s`, { body: lines(1, 'other') })
        expect(overloaded.status).toBe(503)
        expect(String(overloaded.json().type)).toMatch(/overloaded$/)

        const closedAt = performance.now()
        close(socket)
        await waitFor(() => gw.gateway.admission.heldCount() === 0, 5_000, 'the held request to be let go')
        // Let go at the close, not at spool.maxPauseMs (20 s).
        expect(performance.now() - closedAt).toBeLessThan(2_000)
        expect(replies).toEqual([])
        const text = await metricsText()
        expect(text).toMatch(
          new RegExp(`streamgate_admission_abandoned_requests_total\\{stream="s"\\} ${n}\\n`),
        )
        expect(text).toMatch(/streamgate_admission_held_requests\{stream="s"\} 0/)
        expect(text.match(/streamgate_admission_refused_total\{stream="s"[^}]*\} [1-9]/)).toBeNull()
        const view = (
          await send(`${gw.url}/api/v1/streams/s`, {
            method: 'GET',
            headers: { authorization: 'Bearer bp-token' },
          })
        ).json<{ admission: { held: number; abandoned: number } }>().admission
        expect(view).toMatchObject({ held: 0, abandoned: n })
        // Nothing of it was read or stored.
        expect(gw.gateway.state('s')!.counts.received).toBe(1)
        expect(gw.gateway.spool.usedBytes()).toBe(usedBefore)
      }

      // The slot is free again: the next request is held (not refused as overloaded) and gets in once the
      // stream delivers.
      const next = send(`${gw.url}/ingest/s`, { body: lines(2, 'next') })
      await waitFor(() => gw.gateway.admission.heldCount('s') === 1, 5_000, 'the next request to be held')
      gw.gateway.setStatus('s', 1)
      expect((await next).status).toBe(200)
      await waitFor(() => readNdjsonLines(`${gw.dir}/out`).length === 3, 10_000, 'delivery')
      expect(readNdjsonLines(`${gw.dir}/out`).some((l) => l.includes('gone'))).toBe(false)
    } finally {
      await gw.close()
    }
  })
})
