import { describe, expect, it } from 'vitest'
import { freePort } from '../../scripts/backends/daemon.js'
import { startGateway, waitFor } from '../support/gateway.js'
import { send } from '../support/http.js'

// A sink whose circuit breaker opened shows it: in the stream's delivery figures and the sink's figures of
// the management API, and the lane keeps the records (lag) instead of hammering the dead sink.

const TOKEN = 'circuit-view-token'

interface Circuit {
  state: string
  failures: number
  retryAt?: string
}

describe('circuit breaker in the management API', () => {
  it('an unreachable sink opens its circuit; the stream and sink views show it, the records wait', async () => {
    const port = await freePort() // nothing listens there: every write fails with a connection error
    const gw = await startGateway({
      admin: { token: TOKEN },
      sinks: {
        dead: {
          type: 'http',
          url: `http://127.0.0.1:${port}/in`,
          retry: { initialMs: 10, maxMs: 20 },
          circuit: { failureThreshold: 2, openMs: 60_000 },
        },
      },
      streams: { s: { source: 'ndjson', sinks: ['dead'] } },
    })
    try {
      const res = await send(`${gw.url}/ingest/s`, { body: '{"n":1}\n{"n":2}\n' })
      expect(res.json()).toMatchObject({ accepted: 2 })
      const auth = { authorization: `Bearer ${TOKEN}` }
      const sink = await waitFor(
        async () => {
          const view = (await send(`${gw.url}/api/v1/sinks/dead`, { method: 'GET', headers: auth })).json<{
            figures: { lag: number; circuit?: Circuit }
          }>()
          return view.figures.circuit ? view : undefined
        },
        10_000,
        'the circuit to open',
      )
      expect(sink.figures.circuit).toMatchObject({ state: 'open' })
      expect(sink.figures.circuit!.failures).toBeGreaterThanOrEqual(2)
      expect(Date.parse(sink.figures.circuit!.retryAt!)).toBeGreaterThan(Date.now())
      expect(sink.figures.lag).toBe(2)
      const stream = (await send(`${gw.url}/api/v1/streams/s`, { method: 'GET', headers: auth })).json<{
        delivery: { sink: string; deadLetter: boolean; lag: number; circuit?: Circuit }[]
      }>()
      const lane = stream.delivery.find((d) => d.sink === 'dead' && !d.deadLetter)!
      expect(lane.circuit).toMatchObject({ state: 'open' })
      expect(lane.lag).toBe(2)
      const metrics = (await send(`${gw.url}/metrics`, { method: 'GET' })).text
      expect(metrics).toMatch(/streamgate_sink_circuit_open\{sink="dead"\} 1/)
    } finally {
      await gw.close()
    }
  })
})
