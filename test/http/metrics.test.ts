import { connect } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startGateway, waitFor, type TestGateway } from '../support/gateway.js'
import { send } from '../support/http.js'

// /metrics by the Prometheus conventions, scraped from a running gateway: standard process and Node.js
// names, no gauge ending in _total, build info, spool size and capacity, client aborts apart from 400s.

const SPOOL_MAX = 123_456_789

let gw: TestGateway

beforeAll(async () => {
  gw = await startGateway({
    spool: { maxBytes: SPOOL_MAX },
    sinks: { out: { type: 'file', dir: '{dir}/out' } },
    streams: { s: { source: 'ndjson', sinks: ['out'] } },
  })
})

afterAll(async () => {
  await gw?.close()
})

const scrape = async (): Promise<string> => (await send(`${gw.url}/metrics`, { method: 'GET' })).text

describe('/metrics', () => {
  it('follows the naming conventions', async () => {
    const text = await scrape()
    const types = [...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map(([, name, type]) => ({
      name: name!,
      type,
    }))
    expect(types.length).toBeGreaterThan(30)
    for (const { name, type } of types) {
      if (type === 'gauge') expect(name, `gauge ${name}`).not.toMatch(/_total$/)
      if (type === 'counter') expect(name, `counter ${name}`).toMatch(/_total$/)
    }
    expect(text).toMatch(/^process_cpu_seconds_total \d/m)
    expect(text).toMatch(/^process_resident_memory_bytes \d/m)
    expect(text).toMatch(/^nodejs_heap_size_used_bytes \d/m)
    expect(text).toMatch(/^nodejs_eventloop_lag_seconds \d/m)
    expect(text).not.toMatch(/^streamgate_(process|nodejs)_/m)
    expect(text).toMatch(/^streamgate_build_info\{version="[^"]+",node="v\d+\.\d+\.\d+"\} 1$/m)
    expect(text).toContain(`streamgate_spool_capacity_bytes ${SPOOL_MAX}`)
    expect(text).toMatch(/^streamgate_spool_bytes \d+$/m)
  })

  it('counts a client that closes before its body is complete as an abort, not as a 400', async () => {
    const ok = await send(`${gw.url}/ingest/s`, { body: '{"n":1}\n' })
    expect(ok.status).toBe(200)
    // Headers promise 100,000 bytes; 10 arrive, then the client goes away.
    const socket = connect(gw.port, '127.0.0.1')
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve)
      socket.once('error', reject)
    })
    socket.write(
      'POST /ingest/s HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/x-ndjson\r\n' +
        'content-length: 100000\r\n\r\n{"n":2,"x"',
    )
    // Let the gateway start reading the body before the connection goes.
    await waitFor(
      async () => /streamgate_ingest_in_flight_requests 1/.test(await scrape()),
      5_000,
      'in flight',
    )
    socket.destroy()
    const text = await waitFor(
      async () => {
        const t = await scrape()
        return /streamgate_ingest_client_aborts_total\{stream="s"\} 1/.test(t) ? t : undefined
      },
      10_000,
      'the abort to be counted',
    )
    expect(text).toMatch(/streamgate_ingest_requests_total\{stream="s",status="200"\} 1/)
    expect(text).not.toMatch(/streamgate_ingest_requests_total\{stream="s",status="400"\}/)
    expect(text).not.toMatch(/streamgate_http_responses_total\{route="ingest",status="400"\}/)
    // The latency histogram holds the answered request only.
    expect(text).toMatch(/streamgate_ingest_request_duration_seconds_count\{stream="s"\} 1/)
  })
})
