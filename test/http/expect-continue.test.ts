import { connect } from 'node:net'
import { describe, expect, it } from 'vitest'
import { startGateway, type TestGateway } from '../support/gateway.js'
import { send } from '../support/http.js'

// `Expect: 100-continue` (curl sends it for bodies over 1 MiB, .NET's HttpClient by default): an ingest
// request gets `100 Continue` only once the checks that need no body let it in — admission, auth, the
// declared length, the content type — and is refused before it uploads otherwise. Other routes get it at
// once. Over a raw socket, so every interim answer is seen.

const TOKEN = 'continue-token'

interface Exchange {
  /** Status lines, in order (interim 1xx included). */
  statuses: number[]
  /** The final answer's head and body. */
  final: string
  closedByServer: boolean
}

/**
 * Sends the head; sends `body` only after a `100 Continue` (like curl), or never when `body` is undefined
 * or no 100 came; collects answers until a final one is complete (and, with `Connection: close`, the
 * server has closed), the server closes, or 3 s pass.
 */
function exchange(port: number, head: string, body?: Buffer): Promise<Exchange> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    let text = ''
    let closedByServer = false
    let sent = false
    const done = (): void => {
      clearTimeout(timer)
      socket.destroy()
      const statuses = [...text.matchAll(/^HTTP\/1\.1 (\d{3})/gm)].map((m) => Number(m[1]))
      const at = text.search(/^HTTP\/1\.1 [2-5]\d\d/m)
      resolve({ statuses, final: at < 0 ? '' : text.slice(at), closedByServer })
    }
    const timer = setTimeout(done, 3_000)
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1')
      if (!sent && body && /^HTTP\/1\.1 100 /m.test(text)) {
        sent = true
        socket.write(body)
      }
      const at = text.search(/^HTTP\/1\.1 [2-5]\d\d/m)
      if (at >= 0) {
        const final = text.slice(at)
        const end = final.indexOf('\r\n\r\n')
        const length = /content-length: (\d+)/i.exec(final)
        const complete = end >= 0 && length && final.length >= end + 4 + Number(length[1])
        // An answer that closes the connection: wait for the close too.
        if (complete && !/^connection: close/im.test(final.slice(0, end))) done()
      }
    })
    socket.on('end', () => ((closedByServer = true), done()))
    socket.on('error', () => ((closedByServer = true), done()))
    socket.write(head)
  })
}

function ingestHead(path: string, length: number, extra = ''): string {
  return (
    `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-ndjson\r\n` +
    `Content-Length: ${length}\r\nExpect: 100-continue\r\n${extra}\r\n`
  )
}

const lines = (n: number, prefix: string): string =>
  Array.from({ length: n }, (_, i) => `{"k":"${prefix}-${i}","pad":"${'x'.repeat(40)}"}`).join('\n')

async function withGateway(run: (gw: TestGateway, port: number) => Promise<void>): Promise<void> {
  const gw = await startGateway({
    admin: { token: TOKEN },
    spool: { maxBytes: 100_000, highWaterBytes: 4000, lowWaterBytes: 1000, segmentBytes: 4096 },
    sinks: { out: { type: 'file', dir: '{dir}/out' } },
    streams: {
      s: { source: 'ndjson', status: 2, sinks: ['out'], maxBodyBytes: 1_000_000 },
      keyed: { source: 'ndjson', sinks: ['out'], auth: { headers: { 'x-key': 'secret' } } },
    },
  })
  try {
    await run(gw, Number(new URL(gw.url).port))
  } finally {
    await gw.close()
  }
}

describe('Expect: 100-continue', () => {
  it('sends 100 Continue to an admitted ingest request, then takes its body', async () => {
    await withGateway(async (gw, port) => {
      const body = Buffer.from(lines(3, 'ok'))
      const x = await exchange(port, ingestHead('/ingest/s', body.length), body)
      expect(x.statuses).toEqual([100, 200])
      expect(x.final).toContain('"accepted":3')
      expect(gw.gateway.state('s')!.counts).toMatchObject({ accepted: 3 })
    })
  })

  it('refuses before the upload: no 100 Continue, the answer, and the connection closes', async () => {
    await withGateway(async (gw, port) => {
      // Fill the paused stream until admission refuses (spool above highWaterBytes).
      for (let i = 0; i < 200; i++)
        if ((await send(`${gw.url}/ingest/s`, { body: lines(5, `b${i}`) })).status !== 200) break
      const refused = await exchange(port, ingestHead('/ingest/s', 900_000))
      expect(refused.statuses).toEqual([503])
      expect(refused.final).toMatch(/content-type: application\/problem\+json/i)
      expect(refused.final).toMatch(/retry-after: \d+/i)
      expect(refused.final).toMatch(/connection: close/i)
      expect(refused.closedByServer).toBe(true)
    })
  })

  it('refuses a declared length over the limit, a missing auth header and an unknown stream before the upload', async () => {
    await withGateway(async (_gw, port) => {
      const tooLarge = await exchange(port, ingestHead('/ingest/s', 2_000_000))
      expect(tooLarge.statuses).toEqual([413])
      const noKey = await exchange(port, ingestHead('/ingest/keyed', 100))
      expect(noKey.statuses).toEqual([401])
      const unknown = await exchange(port, ingestHead('/ingest/nope', 100))
      expect(unknown.statuses).toEqual([404])
      // With its header the same request is let in.
      const body = Buffer.from(lines(2, 'k'))
      const keyed = await exchange(port, ingestHead('/ingest/keyed', body.length, 'x-key: secret\r\n'), body)
      expect(keyed.statuses).toEqual([100, 200])
    })
  })

  it('sends 100 Continue at once on the management API', async () => {
    await withGateway(async (gw, port) => {
      const patch = Buffer.from(JSON.stringify({ status: { id: 1 } }))
      const x = await exchange(
        port,
        `PATCH /api/v1/streams/s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${TOKEN}\r\n` +
          `Content-Type: application/merge-patch+json\r\nContent-Length: ${patch.length}\r\n` +
          `Expect: 100-continue\r\n\r\n`,
        patch,
      )
      expect(x.statuses).toEqual([100, 200])
      expect(gw.gateway.state('s')!.status).toBe(1)
    })
  })
})
