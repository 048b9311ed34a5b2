import { readFileSync } from 'node:fs'
import { Counter, Histogram, Registry } from 'prom-client'
import { describe, expect, it, vi } from 'vitest'
import { Metrics } from './metrics.js'

const VERSION = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
).version

async function types(m: Metrics): Promise<Map<string, string>> {
  const all = await m.registry.getMetricsAsJSON()
  return new Map(all.map((metric) => [metric.name, String(metric.type)]))
}

describe('Metrics naming', () => {
  it('no gauge ends in _total, every counter does', async () => {
    const byName = await types(new Metrics())
    expect(byName.size).toBeGreaterThan(30)
    for (const [name, type] of byName) {
      if (type === 'gauge') expect(name, `gauge ${name}`).not.toMatch(/_total$/)
      if (type === 'counter') expect(name, `counter ${name}`).toMatch(/_total$/)
    }
  })

  it('process and Node.js metrics under their standard names, without the streamgate_ prefix', async () => {
    const byName = await types(new Metrics())
    for (const name of [
      'process_cpu_seconds_total',
      'process_cpu_user_seconds_total',
      'process_start_time_seconds',
      'process_resident_memory_bytes',
      'nodejs_heap_size_used_bytes',
      'nodejs_heap_size_total_bytes',
      'nodejs_eventloop_lag_seconds',
      'nodejs_active_handles',
      'nodejs_version_info',
      'nodejs_gc_duration_seconds',
    ])
      expect(byName.has(name), name).toBe(true)
    for (const name of byName.keys()) expect(name).not.toMatch(/^streamgate_(process|nodejs)_/)
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total'])
      expect(byName.has(name), name).toBe(false)
  })
})

describe('Metrics figures', () => {
  it('streamgate_build_info carries the version and the Node.js version', async () => {
    const text = await new Metrics({ defaultMetrics: false }).registry.metrics()
    expect(text).toContain(`streamgate_build_info{version="${VERSION}",node="${process.version}"} 1`)
  })

  it('spool size and capacity, read at scrape time', async () => {
    const m = new Metrics({ defaultMetrics: false })
    let bytes = 10
    m.observeSpool(() => ({ bytes, capacityBytes: 4096, lanes: [{ stream: 's', sink: 'k', lag: 3 }] }))
    let text = await m.registry.metrics()
    expect(text).toContain('streamgate_spool_bytes 10')
    expect(text).toContain('streamgate_spool_capacity_bytes 4096')
    expect(text).toContain('streamgate_sink_lag_records{stream="s",sink="k"} 3')
    bytes = 20
    text = await m.registry.metrics()
    expect(text).toContain('streamgate_spool_bytes 20')
  })

  it('client aborts are counted apart from the ingest answers', async () => {
    const m = new Metrics({ defaultMetrics: false })
    m.ingestAborted('s')
    m.ingestAnswered('s', 400, 0.01)
    const text = await m.registry.metrics()
    expect(text).toContain('streamgate_ingest_client_aborts_total{stream="s"} 1')
    expect(text).toContain('streamgate_ingest_requests_total{stream="s",status="400"} 1')
  })

  it('streamgate_stream_degraded: 0/1 per configured stream, gone with the stream', async () => {
    const m = new Metrics({ defaultMetrics: false })
    let streams = [
      { stream: 'a', degraded: true },
      { stream: 'b', degraded: false },
    ]
    m.observeHealth(() => streams)
    let text = await m.registry.metrics()
    expect(text).toContain('streamgate_stream_degraded{stream="a"} 1')
    expect(text).toContain('streamgate_stream_degraded{stream="b"} 0')
    streams = [{ stream: 'b', degraded: true }]
    text = await m.registry.metrics()
    expect(text).not.toContain('streamgate_stream_degraded{stream="a"}')
    expect(text).toContain('streamgate_stream_degraded{stream="b"} 1')
  })
})

describe('Metrics per request', () => {
  const counts = (accepted: number, invalid = 0) => ({
    received: accepted + invalid,
    accepted,
    filtered: 0,
    duplicates: 0,
    rejected: { invalid },
  })

  it("counting a request hashes no labels: prom-client's counters are handed the sums at scrape time", async () => {
    // prom-client's constructor sets inc = incWithoutExemplar on each counter: spy on it before they exist.
    const inc = vi.spyOn(Counter.prototype, 'incWithoutExemplar' as keyof Counter)
    const m = new Metrics({ defaultMetrics: false })
    try {
      for (let i = 0; i < 1000; i++) {
        m.ingestCounts('a', counts(2))
        m.ingestCounts('b', counts(1, i % 2))
        m.ingestAnswered('a', 200, 0.001)
        m.httpAnswered('ingest', i % 10 === 0 ? 400 : 200)
        m.sinkDelivered('file', 3, 0.001)
      }
      expect(inc).not.toHaveBeenCalled()
      const text = await m.registry.metrics()
      // One call per series that counted something, not one per request.
      expect(inc.mock.calls.length).toBe(9)
      expect(text).toContain('streamgate_records_received_total{stream="a"} 2000')
      expect(text).toContain('streamgate_records_accepted_total{stream="a"} 2000')
      expect(text).toContain('streamgate_records_received_total{stream="b"} 1500')
      expect(text).toContain('streamgate_records_accepted_total{stream="b"} 1000')
      expect(text).toContain('streamgate_records_rejected_total{stream="b",reason="invalid"} 500')
      expect(text).not.toContain('streamgate_records_rejected_total{stream="a"')
      expect(text).not.toContain('streamgate_records_filtered_total{')
      expect(text).toContain('streamgate_ingest_requests_total{stream="a",status="200"} 1000')
      expect(text).toContain('streamgate_http_responses_total{route="ingest",status="200"} 900')
      expect(text).toContain('streamgate_http_responses_total{route="ingest",status="400"} 100')
      expect(text).toContain('streamgate_sink_records_delivered_total{sink="file"} 3000')
      expect(text).toContain('streamgate_ingest_request_duration_seconds_count{stream="a"} 1000')
      // Counted after a scrape: added to what was already handed over, never counted twice.
      m.ingestCounts('a', counts(5))
      const again = await m.registry.metrics()
      expect(again).toContain('streamgate_records_accepted_total{stream="a"} 2005')
      expect(again).toContain('streamgate_records_accepted_total{stream="b"} 1000')
      expect(inc.mock.calls.length).toBe(9 + 2)
      const json = await m.registry.getSingleMetric('streamgate_records_accepted_total')!.get()
      expect(json.values).toEqual(
        expect.arrayContaining([
          { labels: { stream: 'a' }, value: 2005 },
          { labels: { stream: 'b' }, value: 1000 },
        ]),
      )
    } finally {
      inc.mockRestore()
    }
  })

  describe('latency histograms: counted per request, handed to prom-client at scrape time', () => {
    const NAME = 'streamgate_ingest_request_duration_seconds'
    const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20]

    /** The same histogram, observed directly through prom-client. */
    function direct(): { registry: Registry; histogram: Histogram } {
      const registry = new Registry()
      const histogram = new Histogram({
        name: NAME,
        help: 'Ingest request latency, from the first byte read to the answer.',
        labelNames: ['stream'],
        buckets: BUCKETS,
        registers: [registry],
      })
      return { registry, histogram }
    }

    it('the same exposition as observing directly, across scrapes, on bucket bounds and past the last', async () => {
      const m = new Metrics({ defaultMetrics: false })
      const d = direct()
      // Powers of two and bounds themselves (≤ is inclusive): sums are exact in either order of addition.
      const first = [2 ** -13, 2 ** -10, 0.0005, 0.001, 2 ** -6, 0.25, 0.5, 1, 3, 20, 32, 64]
      const second = [2 ** -12, 0.5, 128, 2 ** -3]
      for (const [i, v] of first.entries()) {
        const stream = i % 3 === 0 ? 'b' : 'a'
        m.ingestAnswered(stream, 200, v)
        d.histogram.observe({ stream }, v)
      }
      expect(await m.registry.getSingleMetricAsString(NAME)).toBe(
        await d.registry.getSingleMetricAsString(NAME),
      )
      for (const v of second) {
        m.ingestAnswered('a', 202, v)
        d.histogram.observe({ stream: 'a' }, v)
      }
      const text = await m.registry.getSingleMetricAsString(NAME)
      expect(text).toBe(await d.registry.getSingleMetricAsString(NAME))
      expect(text).toContain(`${NAME}_bucket{le="0.0005",stream="a"} 2`)
      expect(text).toContain(`${NAME}_bucket{le="20",stream="a"} 9`)
      expect(text).toContain(`${NAME}_bucket{le="+Inf",stream="a"} 12`)
      expect(text).toContain(`${NAME}_count{stream="b"} 4`)
      // The JSON form (what the cluster's primary aggregates) agrees too.
      expect(await m.registry.getSingleMetric(NAME)!.get()).toEqual(await d.histogram.get())
    })

    it('any latencies: identical buckets and counts, the sum within rounding', async () => {
      const m = new Metrics({ defaultMetrics: false })
      const d = direct()
      let seed = 7
      for (let i = 0; i < 5000; i++) {
        seed = (seed * 1103515245 + 12345) % 2 ** 31
        const v = (seed / 2 ** 31) ** 3 * 25
        m.ingestAnswered('s', 200, v)
        d.histogram.observe({ stream: 's' }, v)
      }
      const ours = (await m.registry.getSingleMetric(NAME)!.get()).values
      const theirs = (await d.histogram.get()).values
      expect(ours.length).toBe(BUCKETS.length + 3)
      for (const [i, value] of theirs.entries()) {
        expect(ours[i]!.labels).toEqual(value.labels)
        if (value.metricName === `${NAME}_sum`) expect(ours[i]!.value).toBeCloseTo(value.value, 9)
        else expect(ours[i]!.value).toBe(value.value)
      }
    })

    it('streamgate_sink_up: the last delivery attempt of each sink, read at scrape', async () => {
      const m = new Metrics({ defaultMetrics: false })
      m.sinkDelivered('a', 1, 0.001)
      m.sinkRetried('b', 'timeout', 1)
      let text = await m.registry.metrics()
      expect(text).toContain('streamgate_sink_up{sink="a"} 1')
      expect(text).toContain('streamgate_sink_up{sink="b"} 0')
      m.sinkRetried('a', 'timeout', 1)
      m.sinkDelivered('b', 1, 0.001)
      text = await m.registry.metrics()
      expect(text).toContain('streamgate_sink_up{sink="a"} 0')
      expect(text).toContain('streamgate_sink_up{sink="b"} 1')
    })

    it('sink write durations the same way', async () => {
      const m = new Metrics({ defaultMetrics: false })
      for (let i = 0; i < 10; i++) m.sinkDelivered('file', 1, i < 8 ? 0.001 : 60)
      const text = await m.registry.metrics()
      expect(text).toContain('streamgate_sink_write_duration_seconds_bucket{le="0.001",sink="file"} 8')
      expect(text).toContain('streamgate_sink_write_duration_seconds_bucket{le="30",sink="file"} 8')
      expect(text).toContain('streamgate_sink_write_duration_seconds_bucket{le="+Inf",sink="file"} 10')
      expect(text).toContain('streamgate_sink_write_duration_seconds_count{sink="file"} 10')
    })
  })
})
