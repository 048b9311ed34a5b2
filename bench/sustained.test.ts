import { describe, expect, it } from 'vitest'
import type { LoadResult } from './load.js'
import {
  LAG_END_BUDGET_S,
  acceptedReqPerS,
  analysePhase,
  judgeLane,
  nextRate,
  parsePrometheus,
  slopePerS,
  snapshotOf,
  valueAt,
  type Snapshot,
} from './sustained.js'

const METRICS = `# HELP streamgate_records_accepted_total Records accepted for delivery.
# TYPE streamgate_records_accepted_total counter
streamgate_records_accepted_total{stream="azion-ndjson"} 40000
streamgate_records_accepted_total{stream="other"} 7
streamgate_sink_records_delivered_total{sink="kafka"} 30000
streamgate_sink_records_delivered_total{sink="s3"} 12000
streamgate_sink_records_delivered_total{sink="unrelated"} 5
streamgate_sink_lag_records{stream="azion-ndjson",sink="kafka"} 10000
streamgate_sink_lag_records{stream="azion-ndjson",sink="s3"} 28000
streamgate_sink_lag_records{stream="other",sink="kafka"} 99
streamgate_ingest_requests_total{stream="azion-ndjson",status="200"} 20
streamgate_ingest_requests_total{stream="azion-ndjson",status="503"} 4
streamgate_spool_bytes 123456
`

function snap(t: number, accepted: number, delivered: number, lag: number): Snapshot {
  return { t, accepted, delivered: { out: delivered }, lag: { out: lag }, requests: {}, spoolBytes: 0 }
}

function load(requests: number, non2xx: number, durationS: number): LoadResult {
  return {
    generator: 'autocannon',
    durationS,
    requests,
    non2xx,
    errors: 0,
    errorDetail: '',
    latencyMs: { p50: 1, p99: 2, max: 3, mean: 1 },
    byStatus: {
      '200': { count: requests - non2xx, p50: 100, p99: 400, max: 500 },
      ...(non2xx > 0 ? { '503': { count: non2xx, p50: 1, p99: 3, max: 4 } } : {}),
    },
  }
}

describe('reading /metrics', () => {
  it('parses names, labels and values, skipping comments', () => {
    const samples = parsePrometheus(METRICS)
    expect(samples).toContainEqual({
      name: 'streamgate_sink_lag_records',
      labels: { stream: 'azion-ndjson', sink: 's3' },
      value: 28000,
    })
    expect(samples).toContainEqual({ name: 'streamgate_spool_bytes', labels: {}, value: 123456 })
    expect(samples.some((s) => s.name.startsWith('#'))).toBe(false)
  })

  it("keeps this stream's figures and its lanes only", () => {
    const s = snapshotOf(METRICS, 'azion-ndjson', ['kafka', 's3'], 1234)
    expect(s).toEqual({
      t: 1234,
      accepted: 40000,
      delivered: { kafka: 30000, s3: 12000 },
      lag: { kafka: 10000, s3: 28000 },
      requests: { '200': 20, '503': 4 },
      spoolBytes: 123456,
    })
  })

  it('reports a lane the gateway has not shown yet as 0', () => {
    expect(snapshotOf('', 'x', ['out'], 0).lag).toEqual({ out: 0 })
  })
})

describe('series arithmetic', () => {
  it('interpolates a counter between samples and clamps outside them', () => {
    const samples = [snap(0, 0, 0, 0), snap(1000, 100, 0, 0), snap(3000, 500, 0, 0)]
    expect(valueAt(samples, 500, (s) => s.accepted)).toBe(50)
    expect(valueAt(samples, 2000, (s) => s.accepted)).toBe(300)
    expect(valueAt(samples, -5, (s) => s.accepted)).toBe(0)
    expect(valueAt(samples, 9000, (s) => s.accepted)).toBe(500)
  })

  it('gives the least-squares slope per second', () => {
    const points = [0, 1000, 2000, 3000].map((t) => ({ t, v: 7 + (t / 1000) * 250 }))
    expect(slopePerS(points)).toBeCloseTo(250, 6)
    expect(slopePerS([{ t: 0, v: 1 }])).toBe(0)
    // a sawtooth that does not grow has no trend
    const saw = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => ({ t: i * 1000, v: i % 2 === 0 ? 0 : 1000 }))
    expect(Math.abs(slopePerS(saw))).toBeLessThan(100)
  })
})

describe('judging a lane', () => {
  it('is bounded when the lag neither grows nor ends above the budget', () => {
    expect(judgeLane({ end: 40_000, growthPerS: 100 }, 40_000, 40_000)).toEqual({
      lagEndS: 1,
      bounded: true,
      unbounded: '',
    })
  })

  it('is not bounded when the lag grows by more than 5 % of the accepted rate', () => {
    const j = judgeLane({ end: 1000, growthPerS: 2_500 }, 40_000, 40_000)
    expect(j.bounded).toBe(false)
    expect(j.unbounded).toMatch(/lag grew 2,500 rec\/s/)
  })

  it('is not bounded when the lag at the end is more than 5 s of delivery', () => {
    const j = judgeLane({ end: (LAG_END_BUDGET_S + 1) * 10_000, growthPerS: 0 }, 10_000, 10_000)
    expect(j.bounded).toBe(false)
    expect(j.lagEndS).toBe(LAG_END_BUDGET_S + 1)
  })

  it('counts a lag with nothing delivered as infinitely behind, and no lag as 0 s', () => {
    expect(judgeLane({ end: 5, growthPerS: 0 }, 0, 0).lagEndS).toBe(Infinity)
    expect(judgeLane({ end: 0, growthPerS: 0 }, 0, 0)).toMatchObject({ lagEndS: 0, bounded: true })
  })
})

describe('the rate search', () => {
  it('doubles while rates hold and no rate has failed, up to the cap', () => {
    expect(nextRate(0, Infinity, 4, true, 48)).toBe(8)
    expect(nextRate(8, Infinity, 8, true, 48)).toBe(16)
    expect(nextRate(32, Infinity, 32, true, 48)).toBe(48)
  })

  it('halves until a rate holds, then bisects between the highest that held and the lowest that failed', () => {
    expect(nextRate(0, 8, 8, false, 48)).toBe(4)
    expect(nextRate(4, 8, 4, true, 48)).toBe(6)
    expect(nextRate(8, 16, 16, false, 48)).toBe(12)
    expect(nextRate(12, 16, 12, true, 48)).toBe(14)
  })

  it('stops when the bracket is closed or the cap is reached', () => {
    expect(nextRate(9, 10, 9, true, 48)).toBeUndefined()
    expect(nextRate(0, 1, 1, false, 48)).toBeUndefined()
    expect(nextRate(48, Infinity, 48, true, 48)).toBeUndefined()
  })

  it('starts from the requests the gateway accepted, not the refusals it answered', () => {
    // 1,410 answers/s at full load, of which 100,000 records/s (50 bodies of 2,000) were accepted.
    expect(acceptedReqPerS({ acceptedPerS: 100_000 }, { recordsPerRequest: 2_000 })).toBe(50)
  })
})

describe('analysePhase', () => {
  // 10 s at 4 req/s of 2,000 records, accepted 8,000 rec/s; the lane delivers 8,000 rec/s for 5 s, then 2,000.
  const samples: Snapshot[] = []
  for (let s = 0; s <= 10; s++) {
    const accepted = s * 8_000
    const delivered = s <= 5 ? s * 8_000 : 40_000 + (s - 5) * 2_000
    samples.push(snap(s * 1000, accepted, delivered, accepted - delivered))
  }
  const end = samples[samples.length - 1] as Snapshot
  const base = {
    label: 'test',
    askedReqPerS: 4,
    connections: 4,
    recordsPerRequest: 2000,
    sinks: ['out'],
    samples,
    start: samples[0] as Snapshot,
    end,
    peakRssBytes: 1,
  }

  it('reports the collapse in the second half, the lag and why the rate is not sustainable', () => {
    const drained = snap(12_000, 80_000, 80_000, 0)
    const p = analysePhase({
      ...base,
      load: load(40, 0, 10),
      samples: [...samples, drained],
      final: drained,
      drainMs: { out: 2000 },
    })
    expect(p.acceptedPerS).toBe(8_000)
    expect(p.burstAcceptedPerS).toBe(8_000)
    const lane = p.lanes[0]
    expect(lane?.deliveredPerS).toBe(5_000)
    expect(lane?.deliveredRatio).toBeCloseTo(0.625)
    expect(lane?.firstHalfPerS).toBe(8_000)
    expect(lane?.secondHalfPerS).toBe(2_000)
    expect(lane?.lagEnd).toBe(30_000)
    expect(lane?.lagEndS).toBe(6)
    expect(lane?.lagGrowthPerS).toBeCloseTo(6_000)
    expect(lane?.bounded).toBe(false)
    expect(p.sustainable).toBe(false)
    expect(p.notSustainable).toMatch(/^out: lag grew/)
    expect(p.missing).toEqual([])
    expect(p.okP99Ms).toBe(400)
  })

  it('finds acknowledged records a drained lane never delivered, and counts refusals', () => {
    const drained = snap(12_000, 80_000, 70_000, 0)
    const p = analysePhase({
      ...base,
      load: load(40, 4, 10),
      samples: [...samples, drained],
      final: drained,
      drainMs: { out: 2_000 },
    })
    // 36 requests answered 2xx × 2,000 = 72,000 acknowledged; 70,000 delivered
    expect(p.acknowledged).toBe(72_000)
    expect(p.missing).toEqual([{ sink: 'out', records: 2_000 }])
    expect(p.undrained).toEqual([])
    expect(p.refused503).toBe(4)
    expect(p.refusalP99Ms).toBe(3)
    expect(p.notSustainable).toMatch(/10 % of requests refused/)
  })

  it('a drain given up is reported as such, not as lost records', () => {
    const stuck = snap(12_000, 80_000, 70_000, 10_000)
    const p = analysePhase({
      ...base,
      load: load(40, 0, 10),
      samples: [...samples, stuck],
      final: stuck,
      drainMs: { out: undefined },
    })
    expect(p.missing).toEqual([])
    expect(p.undrained).toEqual([{ sink: 'out', lag: 10_000 }])
  })

  it('a rate the gateway did not keep up with is not sustainable', () => {
    const flat = samples.map((s) => snap(s.t, s.accepted, s.accepted, 0))
    const last = flat[flat.length - 1] as Snapshot
    const p = analysePhase({
      ...base,
      askedReqPerS: 8,
      load: load(40, 0, 10),
      samples: flat,
      start: flat[0] as Snapshot,
      end: last,
      final: last,
      drainMs: { out: 0 },
    })
    expect(p.lanes[0]?.bounded).toBe(true)
    expect(p.sustainable).toBe(false)
    expect(p.notSustainable).toBe('4.0 of 8 req/s asked were answered')
  })
})
