import { createServer, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { describe, expect, it } from 'vitest'
import { freePort } from '../../scripts/backends/daemon.js'
import { startGateway, waitFor, type TestGateway } from '../support/gateway.js'
import { send } from '../support/http.js'

// A stream whose sink's circuit is open, or whose lane is stalled or falls behind, is "degraded": its
// status stays emnify's 1 Running, and its `health` in the API, the streamgate_stream_degraded gauge (and
// /ui, test/http/ui.test.ts) say what is wrong.

const TOKEN = 'degraded-token'
const auth = { authorization: `Bearer ${TOKEN}` }

interface Health {
  state: 'ok' | 'degraded'
  reasons: { code: string; sink: string; deadLetter: boolean; message: string }[]
}

async function view(gw: TestGateway, id: string): Promise<{ status: { id: number }; health: Health }> {
  return (await send(`${gw.url}/api/v1/streams/${id}`, { method: 'GET', headers: auth })).json()
}

const metrics = async (gw: TestGateway): Promise<string> =>
  (await send(`${gw.url}/metrics`, { method: 'GET' })).text

describe('degraded streams', () => {
  it("a sink's open circuit: degraded in the API and the gauge, status still Running", async () => {
    const port = await freePort() // nothing listens there
    const gw = await startGateway({
      admin: { token: TOKEN },
      sinks: {
        out: { type: 'file', dir: '{dir}/out' },
        dead: {
          type: 'http',
          url: `http://127.0.0.1:${port}/in`,
          retry: { initialMs: 10, maxMs: 20 },
          circuit: { failureThreshold: 2, openMs: 60_000 },
        },
      },
      streams: {
        broken: { source: 'ndjson', sinks: ['out', 'dead'] },
        fine: { source: 'ndjson', sinks: ['out'] },
      },
    })
    try {
      expect((await view(gw, 'broken')).health).toEqual({ state: 'ok', reasons: [] })
      expect(await metrics(gw)).toMatch(/streamgate_stream_degraded\{stream="broken"\} 0/)
      await send(`${gw.url}/ingest/broken`, { body: '{"n":1}\n' })
      await send(`${gw.url}/ingest/fine`, { body: '{"n":1}\n' })
      const broken = await waitFor(
        async () => {
          const v = await view(gw, 'broken')
          return v.health.state === 'degraded' ? v : undefined
        },
        10_000,
        'the stream to turn degraded',
      )
      expect(broken.status.id).toBe(1)
      expect(broken.health.reasons).toEqual([
        {
          code: 'circuit-open',
          sink: 'dead',
          deadLetter: false,
          message: expect.stringMatching(
            /^sink dead: circuit (open|half-open) after \d+ failed attempts?/,
          ) as string,
        },
      ])
      const fine = await view(gw, 'fine')
      expect(fine.health).toEqual({ state: 'ok', reasons: [] })
      const text = await metrics(gw)
      expect(text).toMatch(/streamgate_stream_degraded\{stream="broken"\} 1/)
      expect(text).toMatch(/streamgate_stream_degraded\{stream="fine"\} 0/)
      // The list answers carry it too.
      const list = (await send(`${gw.url}/api/v1/streams`, { method: 'GET', headers: auth })).json<
        { id: string; health: Health }[]
      >()
      expect(list.find((s) => s.id === 'broken')!.health.state).toBe('degraded')
    } finally {
      await gw.close()
    }
  })

  it('a lane that falls behind, then stalls, is degraded; once it catches up it is fine again', async () => {
    // The sink's target: `slow` answers each POST after 300 ms, `hang` holds it, `fast` answers at once.
    let mode: 'slow' | 'hang' | 'fast' = 'slow'
    const held: ServerResponse[] = []
    const target: Server = createServer((req, res) => {
      req.resume()
      if (req.method !== 'POST') return void res.end()
      if (mode === 'fast') return void res.end()
      if (mode === 'hang') return void held.push(res)
      setTimeout(() => res.end(), 300)
    })
    await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve))
    const gw = await startGateway({
      admin: { token: TOKEN },
      // A held request would otherwise keep the shutdown waiting for its grace period.
      server: { shutdownTimeoutMs: 2_000 },
      health: { lagWindowMs: 1_000, sampleIntervalMs: 200 },
      // The lag budget off: this is about health's view of the lane. With it on, admission refuses the
      // poster once the lane is ~5 s of its 3 records/s behind, the lag stops growing at every sample, and
      // whether "lag-growing" is seen depends on how the two interleave on a loaded machine.
      spool: { maxLagSeconds: 0 },
      sinks: {
        out: { type: 'file', dir: '{dir}/out' },
        slow: {
          type: 'http',
          url: `http://127.0.0.1:${(target.address() as AddressInfo).port}/in`,
          maxBatchRecords: 1,
          timeoutMs: 120_000,
          circuit: { failureThreshold: 0 },
        },
      },
      streams: {
        behind: { source: 'ndjson', sinks: ['slow'] },
        fine: { source: 'ndjson', sinks: ['out'] },
      },
    })
    const reasonOf = async (): Promise<Health['reasons'][number] | undefined> =>
      (await view(gw, 'behind')).health.reasons[0]
    let posting = true
    const poster = (async () => {
      // Bounded: at most 30 s of small requests, ~20/s to each stream (the sink takes ~3 records/s).
      for (let i = 0; posting && i < 600; i++) {
        await send(`${gw.url}/ingest/behind`, { body: `{"n":${i}}\n` })
        await send(`${gw.url}/ingest/fine`, { body: `{"n":${i}}\n` })
        await new Promise((r) => setTimeout(r, 50))
      }
    })()
    try {
      const growing = await waitFor(
        async () => ((await reasonOf())?.code === 'lag-growing' ? await view(gw, 'behind') : undefined),
        20_000,
        'the lane to fall behind',
      )
      expect(growing.status.id).toBe(1)
      expect(growing.health.reasons).toEqual([
        {
          code: 'lag-growing',
          sink: 'slow',
          deadLetter: false,
          message: expect.stringMatching(
            /^sink slow: lag grew from \d+ to \d+ records at every sample over [\d.]+ s$/,
          ) as string,
        },
      ])
      expect(await metrics(gw)).toMatch(/streamgate_stream_degraded\{stream="behind"\} 1/)
      // The same load on a sink that keeps up is fine.
      expect((await view(gw, 'fine')).health).toEqual({ state: 'ok', reasons: [] })

      // The target stops answering and no new records come: the lane is stuck.
      mode = 'hang'
      posting = false
      await poster
      const stalled = await waitFor(
        async () => ((await reasonOf())?.code === 'lane-stalled' ? await reasonOf() : undefined),
        10_000,
        'the lane to count as stalled',
      )
      expect(stalled.message).toMatch(/^sink slow: nothing delivered for [\d.]+ s with \d+ records waiting$/)

      // The target is back: the lane catches up (lag 0) and the stream is fine again.
      mode = 'fast'
      for (const res of held.splice(0)) res.end()
      await waitFor(
        async () => (await view(gw, 'behind')).health.state === 'ok',
        20_000,
        'the lane to catch up',
      )
      expect(await metrics(gw)).toMatch(/streamgate_stream_degraded\{stream="behind"\} 0/)
    } finally {
      posting = false
      await poster
      await gw.close()
      target.closeAllConnections()
      await new Promise((r) => target.close(r))
    }
  }, 60_000)

  it('a paused stream is not degraded by the lag it is meant to build up', async () => {
    const gw = await startGateway({
      admin: { token: TOKEN },
      health: { lagWindowMs: 300, sampleIntervalMs: 50 },
      sinks: { out: { type: 'file', dir: '{dir}/out' } },
      streams: { p: { source: 'ndjson', status: 2, sinks: ['out'] } },
    })
    try {
      const until = Date.now() + 1_200
      for (let i = 0; Date.now() < until; i++) {
        await send(`${gw.url}/ingest/p`, { body: `{"n":${i}}\n` })
        await new Promise((r) => setTimeout(r, 50))
      }
      const v = await view(gw, 'p')
      expect(v.status.id).toBe(2)
      expect(v.health).toEqual({ state: 'ok', reasons: [] })
    } finally {
      await gw.close()
    }
  })
})
