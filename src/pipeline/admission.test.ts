import { afterEach, describe, expect, it, vi } from 'vitest'
import type { SpoolConfig } from '../config/types.js'
import type { Logger } from '../telemetry/logger.js'
import {
  Admission,
  Hysteresis,
  IngestTurns,
  LANE_STALL_MS,
  LARGE_BODY_SLOW_MS,
  LaneBudget,
  laneBudgetSeconds,
  waterMarks,
  type AdmissionReason,
  type LaneReading,
  type ReadTicket,
} from './admission.js'

interface Line {
  level: 'info' | 'warn'
  msg: string
}

function recordingLogger(lines: Line[]): Logger {
  return {
    info: (_fields: unknown, msg: string) => lines.push({ level: 'info', msg }),
    warn: (_fields: unknown, msg: string) => lines.push({ level: 'warn', msg }),
  } as unknown as Logger
}

const spool = (extra: Partial<SpoolConfig> = {}): SpoolConfig => ({
  dir: '/nonexistent',
  maxBytes: 1000,
  fsync: 'always',
  segmentBytes: 4096,
  maxLagSeconds: 2,
  ...extra,
})

class FakeLane implements LaneReading {
  lag = 0
  delivered = 0
  constructor(
    readonly sinkName: string,
    readonly laneName = sinkName,
  ) {}
}

function harness(config: SpoolConfig, lanes: FakeLane[] = [], paused = false) {
  const state = { used: 0, paused }
  const lines: Line[] = []
  const refused: [string, AdmissionReason][] = []
  const abandoned: string[] = []
  const admission = new Admission(
    {
      spoolConfig: () => config,
      usedBytes: () => state.used,
      lanes: () => [{ stream: 's', paused: state.paused, lanes }],
    },
    {
      logger: recordingLogger(lines),
      refused: (s, r) => refused.push([s, r]),
      abandoned: (s) => abandoned.push(s),
      timer: false,
    },
  )
  return { admission, state, lines, refused, abandoned }
}

const durable = { id: 's', config: { durability: 'spool' as const } }

describe('waterMarks', () => {
  it('defaults to 90 % and 75 % of maxBytes, and derives the low mark from a configured high one', () => {
    expect(waterMarks(spool())).toEqual({ highBytes: 900, lowBytes: 750 })
    expect(waterMarks(spool({ highWaterBytes: 600 }))).toEqual({ highBytes: 600, lowBytes: 500 })
    expect(waterMarks(spool({ highWaterBytes: 600, lowWaterBytes: 100 }))).toEqual({
      highBytes: 600,
      lowBytes: 100,
    })
  })
})

describe('Hysteresis', () => {
  it('turns on at the high mark and off only at the low mark', () => {
    const h = new Hysteresis(10, 5)
    expect(h.update(9)).toBe(false)
    expect(h.on).toBe(false)
    expect(h.update(10)).toBe(true)
    expect(h.on).toBe(true)
    expect(h.update(7)).toBe(false)
    expect(h.on).toBe(true)
    expect(h.update(5)).toBe(true)
    expect(h.on).toBe(false)
    expect(h.update(9)).toBe(false)
    expect(h.on).toBe(false)
  })
})

describe('LaneBudget', () => {
  it('measures the delivery rate while busy and judges lag in seconds of it, with hysteresis', () => {
    const b = new LaneBudget()
    b.sample(0, 0, 0, 2, false)
    // 100 records delivered per 100 ms while 1,000 wait: 1,000 records/s, 1 s behind.
    let t = 0
    let delivered = 0
    for (let i = 0; i < 30; i++) {
      t += 100
      delivered += 100
      b.sample(t, 1000, delivered, 2, false)
    }
    expect(b.rate).toBeCloseTo(1000, 0)
    expect(b.lagSeconds).toBeCloseTo(1, 1)
    expect(b.over.on).toBe(false)
    t += 100
    delivered += 100
    expect(b.sample(t, 3000, delivered, 2, false)).toBe(true) // 3 s behind: over
    t += 100
    delivered += 100
    expect(b.sample(t, 1500, delivered, 2, false)).toBe(false) // 1.5 s: between, still over
    expect(b.over.on).toBe(true)
    t += 100
    delivered += 100
    expect(b.sample(t, 900, delivered, 2, false)).toBe(true) // 0.9 s ≤ half the budget: back under
    expect(b.over.on).toBe(false)
  })

  it('does not hold a stalled lane (nothing delivered for LANE_STALL_MS) or a paused one to the budget', () => {
    const b = new LaneBudget()
    b.sample(0, 1000, 0, 1, false)
    b.sample(100, 5000, 100, 1, false)
    expect(b.over.on).toBe(true)
    // The sink stops answering: the lane stays over until it has delivered nothing for LANE_STALL_MS.
    expect(b.sample(100 + LANE_STALL_MS / 2, 6000, 100, 1, false)).toBe(false)
    expect(b.over.on).toBe(true)
    expect(b.sample(100 + LANE_STALL_MS, 7000, 100, 1, false)).toBe(true)
    expect(b.over.on).toBe(false)

    const p = new LaneBudget()
    p.sample(0, 1000, 0, 1, false)
    expect(p.sample(100, 5000, 100, 1, true)).toBe(false)
    expect(p.over.on).toBe(false)
  })

  it('gives a lane whose sink holds records (lingerMs) that hold on top of the budget: steps are not lag', () => {
    // An S3-like lane: 1,000 records/s arrive, the sink delivers them as one object every 2 s (lingerMs 2000),
    // so the lag is a saw-tooth from 0 up to 2 s of delivery between steps.
    const run = (lingerMs: number, budget: number, arriving = 1000): { b: LaneBudget; over: boolean } => {
      const b = new LaneBudget()
      let over = false
      let delivered = 0
      let backlog = 0
      for (let t = 0; t <= 60_000; t += 250) {
        backlog += (arriving * 250) / 1000
        if (t > 0 && t % 2000 === 0) {
          const step = Math.min(backlog, 2000)
          delivered += step
          backlog -= step
        }
        b.sample(t, backlog, delivered, laneBudgetSeconds(budget, lingerMs), false, lingerMs)
        if (t >= 10_000) over ||= b.over.on
      }
      return { b, over }
    }
    const { b: held, over: heldOver } = run(2000, 1)
    expect(heldOver).toBe(false)
    expect(held.rate).toBeGreaterThan(700)
    expect(held.rate).toBeLessThan(1300)
    // Judged without the hold, the same steps are 2 s of lag against a 1 s budget.
    expect(run(0, 1).over).toBe(true)
    // A holding lane that really falls behind (1,500 records/s arrive, 1,000 leave) is refused all the same.
    expect(run(2000, 1, 1500).over).toBe(true)
  })

  it('counts a holding lane as stalled only after LANE_STALL_MS plus its hold', () => {
    const b = new LaneBudget()
    b.sample(0, 1000, 0, laneBudgetSeconds(1, 60_000), false, 60_000)
    b.sample(100, 100_000, 100, laneBudgetSeconds(1, 60_000), false, 60_000)
    expect(b.over.on).toBe(true)
    expect(b.sample(100 + LANE_STALL_MS + 30_000, 100_000, 100, 61, false, 60_000)).toBe(false)
    expect(b.over.on).toBe(true)
    expect(b.sample(100 + LANE_STALL_MS + 60_000, 100_000, 100, 61, false, 60_000)).toBe(true)
    expect(b.over.on).toBe(false)
    expect(laneBudgetSeconds(0, 60_000)).toBe(0)
  })

  it('never judges with a budget of 0 (off)', () => {
    const b = new LaneBudget()
    b.sample(0, 1000, 0, 0, false)
    b.sample(100, 100_000, 10, 0, false)
    expect(b.over.on).toBe(false)
  })
})

describe('Admission', () => {
  it('refuses above the high-water mark until the spool is at the low one, logging each transition once', () => {
    const { admission, state, lines, refused } = harness(spool({ highWaterBytes: 800, lowWaterBytes: 400 }))
    state.used = 799
    expect(admission.check(durable)).toBeUndefined()
    state.used = 800
    const problem = admission.check(durable)
    expect(problem?.status).toBe(503)
    expect(problem?.slug).toBe('spool-full')
    expect(problem?.headers['retry-after']).toMatch(/^[1-9]\d*$/)
    expect(problem?.extra).toEqual({ reason: 'high-water' })
    for (let i = 0; i < 10; i++) expect(admission.check(durable)).toBeDefined()
    state.used = 500 // between the marks: still refusing
    expect(admission.check(durable)).toBeDefined()
    expect(admission.view('s').state).toBe('refusing')
    state.used = 400
    expect(admission.check(durable)).toBeUndefined()
    expect(admission.view('s').state).toBe('accepting')
    expect(lines.map((l) => l.level)).toEqual(['warn', 'info'])
    expect(refused).toHaveLength(12)
    expect(refused.every(([s, r]) => s === 's' && r === 'high-water')).toBe(true)
  })

  it('notices the spool falling under the low mark without traffic (sample), and logs it', () => {
    const { admission, state, lines } = harness(spool())
    state.used = 950
    admission.sample(0)
    expect(admission.figures().streams).toEqual([{ stream: 's', refusing: ['high-water'], held: 0 }])
    state.used = 0
    admission.sample(250)
    expect(admission.figures().streams).toEqual([{ stream: 's', refusing: [], held: 0 }])
    expect(lines).toHaveLength(2)
  })

  it('never refuses a durability: none stream', () => {
    const { admission, state } = harness(spool())
    state.used = 1000
    expect(admission.check({ id: 's', config: { durability: 'none' } })).toBeUndefined()
  })

  it("refuses a stream while one of its lanes is over its lag budget, with the lane's catch-up time", () => {
    const fast = new FakeLane('fast')
    const slow = new FakeLane('slow')
    const { admission, lines, refused } = harness(spool({ maxLagSeconds: 2 }), [fast, slow])
    admission.sample(0)
    // Both deliver 100 records per 250 ms (400/s); the slow one has 4,000 waiting (10 s).
    for (let t = 250; t <= 2500; t += 250) {
      fast.delivered += 100
      slow.delivered += 100
      fast.lag = 100
      slow.lag = 4000
      admission.sample(t)
    }
    const problem = admission.check(durable)
    expect(problem?.extra).toEqual({ reason: 'lag-budget' })
    expect(problem?.message).toContain('slow')
    expect(problem?.message).not.toContain('fast')
    // 10 s behind, back under at 1 s: about 9 s.
    expect(Number(problem?.headers['retry-after'])).toBeGreaterThanOrEqual(8)
    expect(Number(problem?.headers['retry-after'])).toBeLessThanOrEqual(10)
    const view = admission.view('s')
    expect(view.state).toBe('refusing')
    expect(view.reasons).toEqual([expect.objectContaining({ reason: 'lag-budget', sink: 'slow' })])
    expect(view.lanes.find((l) => l.sink === 'slow')?.recordsPerSecond).toBeCloseTo(400, -1)
    expect(refused).toEqual([['s', 'lag-budget']])
    expect(lines.filter((l) => l.level === 'warn')).toHaveLength(1)
    // The slow lane catches up to under half the budget: accepted again, one info line.
    slow.delivered += 100
    slow.lag = 300
    admission.sample(2750)
    expect(admission.check(durable)).toBeUndefined()
    expect(lines.map((l) => l.level)).toEqual(['warn', 'info'])
  })

  it("names a lane's whole budget (maxLagSeconds plus its sink's lingerMs) in the refusal and the view", () => {
    const s3 = Object.assign(new FakeLane('lake'), { lingerMs: 2000 })
    const { admission } = harness(spool({ maxLagSeconds: 2 }), [s3])
    admission.sample(0)
    for (let t = 250; t <= 2500; t += 250) {
      s3.delivered += 100
      s3.lag = 4000 // 10 s of its 400 records/s: over 2 + 2 s
      admission.sample(t)
    }
    const problem = admission.check(durable)
    expect(problem?.message).toContain("more than 4 s behind (spool.maxLagSeconds plus the sink's lingerMs)")
    expect(problem?.message).toContain('back under 2 s')
    expect(admission.view('s').reasons[0]?.message).toContain('(budget 4 s)')
  })

  it('holds a paused stream only to the spool marks (it accepts into the spool, SPEC)', () => {
    const lane = new FakeLane('out')
    const { admission, state } = harness(spool({ maxLagSeconds: 1 }), [lane], true)
    admission.sample(0)
    for (let t = 250; t <= 2000; t += 250) {
      lane.lag += 1000
      admission.sample(t)
    }
    expect(admission.check(durable)).toBeUndefined()
    state.used = 1000
    expect(admission.check(durable)?.extra).toEqual({ reason: 'high-water' })
  })
})

describe('Admission with backpressure: pause', () => {
  afterEach(() => {
    vi.useRealTimers()
  })
  const pausing = { id: 's', config: { durability: 'spool' as const, backpressure: 'pause' as const } }

  /** 'admitted', 'refused' (with the reason) or 'waiting', without letting (fake) time pass. */
  async function settle(answer: ReturnType<Admission['admit']>): Promise<string> {
    let outcome = 'waiting'
    void Promise.resolve(answer).then((p) => {
      outcome = p ? `refused ${String(p.extra?.reason)}` : 'admitted'
    })
    await Promise.resolve()
    await Promise.resolve()
    return outcome
  }

  it('answers at once, without a promise, while admission lets the stream in', () => {
    const { admission } = harness(spool())
    expect(admission.admit(pausing)).toBeUndefined()
  })

  it('holds a request above the high-water mark and lets it in once a sample finds the spool at the low mark', async () => {
    vi.useFakeTimers()
    const { admission, state, refused } = harness(
      spool({ highWaterBytes: 800, lowWaterBytes: 400, maxPauseMs: 5000 }),
    )
    state.used = 900
    const first = admission.admit(pausing)
    const second = admission.admit(pausing)
    expect(first).toBeInstanceOf(Promise)
    expect(admission.heldCount('s')).toBe(2)
    expect(admission.heldCount('other')).toBe(0)
    expect(admission.figures().streams).toEqual([{ stream: 's', refusing: ['high-water'], held: 2 }])
    state.used = 500 // between the marks: still held
    admission.sample(250)
    vi.advanceTimersByTime(1000)
    expect(await settle(first)).toBe('waiting')
    state.used = 400
    admission.sample(500)
    expect(await settle(first)).toBe('admitted')
    expect(await settle(second)).toBe('admitted')
    expect(admission.heldCount()).toBe(0)
    expect(refused).toEqual([]) // a held request that got in was never refused
  })

  it('refuses a held request after spool.maxPauseMs with the refusal it would have got, counted once', async () => {
    vi.useFakeTimers()
    const { admission, state, refused } = harness(spool({ maxPauseMs: 3000 }))
    state.used = 950
    const held = admission.admit(pausing)
    vi.advanceTimersByTime(2999)
    expect(await settle(held)).toBe('waiting')
    vi.advanceTimersByTime(1)
    expect(await settle(held)).toBe('refused high-water')
    expect(refused).toEqual([['s', 'high-water']])
    expect(admission.heldCount()).toBe(0)
  })

  it('holds for a lane over its lag budget too, and refuses at once with maxPauseMs 0 or backpressure: refuse', async () => {
    const lane = new FakeLane('out')
    const { admission } = harness(spool({ maxLagSeconds: 1, maxPauseMs: 60_000 }), [lane])
    admission.sample(0)
    for (let t = 250; t <= 2000; t += 250) {
      lane.delivered += 100
      lane.lag = 2000
      admission.sample(t)
    }
    const held = admission.admit(pausing)
    expect(await settle(held)).toBe('waiting')
    expect(admission.admit({ id: 's', config: { durability: 'spool' } })).toMatchObject({
      extra: { reason: 'lag-budget' },
    })
    lane.delivered += 1000
    lane.lag = 100
    admission.sample(2250)
    expect(await settle(held)).toBe('admitted')

    const { admission: never, state } = harness(spool({ maxPauseMs: 0 }))
    state.used = 1000
    expect(never.admit(pausing)).toMatchObject({ extra: { reason: 'high-water' } })
  })

  it('lets a held request go when its client goes away: the refusal of now, counted abandoned, unwatched', async () => {
    vi.useFakeTimers()
    const { admission, state, refused, abandoned } = harness(spool({ maxPauseMs: 60_000 }))
    state.used = 1000
    let gone: (() => void) | undefined
    let watching = 0
    const client = {
      watch: (g: () => void) => {
        gone = g
        watching++
        return () => void watching--
      },
    }
    const held = admission.admit(pausing, client)
    expect(watching).toBe(1)
    expect(await settle(held)).toBe('waiting')
    gone!()
    expect(await settle(held)).toBe('refused high-water')
    expect(watching).toBe(0)
    expect(admission.heldCount()).toBe(0)
    expect(admission.view('s')).toMatchObject({ held: 0, abandoned: 1 })
    expect(abandoned).toEqual(['s'])
    expect(refused).toEqual([]) // counted apart: nobody may read that refusal
    gone!() // a second signal changes nothing
    expect(abandoned).toEqual(['s'])

    // A client gone before it is held is let go at once; one admitted or refused at the bound is unwatched.
    const early = admission.admit(pausing, { watch: (g) => (g(), () => void watching--) })
    expect(await settle(early)).toBe('refused high-water')
    expect(admission.heldCount()).toBe(0)
    watching = 0
    const admitted = admission.admit(pausing, client)
    state.used = 0
    admission.sample(250)
    expect(await settle(admitted)).toBe('admitted')
    state.used = 1000
    const timedOut = admission.admit(pausing, client)
    expect(watching).toBe(1)
    vi.advanceTimersByTime(60_000)
    expect(await settle(timedOut)).toBe('refused high-water')
    expect(watching).toBe(0)
    expect(admission.view('s').abandoned).toBe(2)
  })

  it('answers every held request when closed', async () => {
    const { admission, state } = harness(spool({ maxPauseMs: 60_000 }))
    state.used = 1000
    const held = admission.admit(pausing)
    admission.close()
    expect(await settle(held)).toBe('refused high-water')
  })
})

describe('IngestTurns', () => {
  const spin = (ms: number): void => {
    const end = performance.now() + ms
    while (performance.now() < end);
  }

  /** A stand-in for a delivery lane: one step per turn of the event loop, counted, until stopped. */
  function laneStandIn(): { turns: () => number; stop: () => void } {
    let turns = 0
    let stopped = false
    const lane = (): void => {
      turns++
      if (!stopped) setImmediate(lane)
    }
    setImmediate(lane)
    return { turns: () => turns, stop: () => void (stopped = true) }
  }

  /** Runs `n` pieces of work of `ms` each through `turns`; the lane's step count at each one's start. */
  async function runWork(
    turns: IngestTurns,
    lane: { turns: () => number },
    n: number,
    ms: number,
    small = false,
  ): Promise<number[]> {
    const startedAt: number[] = []
    await Promise.all(
      Array.from({ length: n }, () =>
        turns.run(() => {
          startedAt.push(lane.turns())
          spin(ms)
        }, small),
      ),
    )
    return startedAt
  }

  /** The most pieces of work that started in one turn. */
  function mostPerTurn(startedAt: readonly number[]): number {
    const counts = new Map<number, number>()
    for (const t of startedAt) counts.set(t, (counts.get(t) ?? 0) + 1)
    return Math.max(...counts.values())
  }

  it('lets other callbacks run between slices of ingest work once a turn’s budget is spent', async () => {
    const turns = new IngestTurns(5)
    const lane = laneStandIn()
    const startedAt = await runWork(turns, lane, 12, 3)
    lane.stop()
    // 3 ms each under a 5 ms budget: at most two per turn, so the lane ran at least 5 times in between.
    expect(mostPerTurn(startedAt)).toBeLessThanOrEqual(2)
    expect(startedAt.at(-1)! - startedAt[0]!).toBeGreaterThanOrEqual(5)
    expect(turns.queued).toBe(0)
  })

  it('gives small work its own, larger budget: batches one per turn, small requests many', async () => {
    // A small budget far above the ~6 ms the small work takes, so a descheduled CI process cannot split it.
    const turns = new IngestTurns(1, 100)
    const lane = laneStandIn()
    // 2 ms batches over a 1 ms budget: one per turn.
    expect(mostPerTurn(await runWork(turns, lane, 6, 2))).toBe(1)
    // 0.2 ms small requests under 100 ms: the 30 of them need no more than two turns.
    expect(mostPerTurn(await runWork(turns, lane, 30, 0.2, true))).toBeGreaterThanOrEqual(15)
    lane.stop()
    expect(turns.queued).toBe(0)
  })

  it('runSliced: work that outlasts the budget goes on in later turns, ahead of work that has not started', async () => {
    const turns = new IngestTurns(1)
    const lane = laneStandIn()
    const pieces: [string, number][] = []
    const sliced = (name: string, n: number): Promise<string> =>
      turns.runSliced(async (slice) => {
        for (let i = 0; i < n; i++) {
          pieces.push([`${name}${i}`, lane.turns()])
          spin(1.5)
          if (slice.spent()) await slice.next()
        }
        return name
      })
    const results = await Promise.all([
      sliced('a', 3),
      sliced('b', 2),
      turns.run(() => {
        pieces.push(['c', lane.turns()])
        return 'c'
      }),
    ])
    lane.stop()
    expect(results).toEqual(['a', 'b', 'c'])
    // a started first and finished before b began; c waited for both.
    expect(pieces.map(([name]) => name)).toEqual(['a0', 'a1', 'a2', 'b0', 'b1', 'c'])
    // Each 1.5 ms piece over the 1 ms budget had a turn of its own: the lane ran between any two.
    for (let i = 1; i < pieces.length; i++) expect(pieces[i]![1]).toBeGreaterThan(pieces[i - 1]![1])
    expect(turns.queued).toBe(0)
  })

  it('runSliced: a failure is passed on and the next work still gets its turn', async () => {
    const turns = new IngestTurns(1)
    const failing = turns.runSliced(async (slice) => {
      spin(1.5)
      if (slice.spent()) await slice.next()
      throw new Error('bad record')
    })
    const next = turns.run(() => 'next')
    await expect(failing).rejects.toThrow('bad record')
    expect(await next).toBe('next')
    expect(turns.queued).toBe(0)
  })

  it('roomToRead: large bodies beyond the bound wait unread, in arrival order, until one is done', async () => {
    const turns = new IngestTurns(1, 1, 2)
    const take = (): ReturnType<IngestTurns['roomToRead']> => turns.roomToRead()
    const a = take()
    const b = take()
    expect(a).not.toBeInstanceOf(Promise)
    expect(b).not.toBeInstanceOf(Promise)
    const got: string[] = []
    const c = (take() as Promise<ReadTicket>).then((t) => (got.push('c'), t))
    const d = (take() as Promise<ReadTicket>).then((t) => (got.push('d'), t))
    expect(turns.waitingToRead).toBe(2)
    // Read, waiting for their turn: they still count.
    ;(a as ReadTicket).read()
    ;(b as ReadTicket).read()
    await new Promise((r) => setTimeout(r, LARGE_BODY_SLOW_MS + 50))
    expect(got).toEqual([])
    ;(a as ReadTicket).done()
    ;(a as ReadTicket).done() // a second done() gives nothing back twice
    await Promise.resolve()
    expect(got).toEqual(['c'])
    expect(turns.bodiesHeld).toBe(2)
    ;(b as ReadTicket).done()
    const [tc, td] = await Promise.all([c, d])
    expect(got).toEqual(['c', 'd'])
    tc.done()
    td.done()
    expect([turns.bodiesHeld, turns.waitingToRead]).toEqual([0, 0])
  })

  it('roomToRead: a body still being read, or handed off, after LARGE_BODY_SLOW_MS stops counting', async () => {
    const turns = new IngestTurns(1, 1, 1)
    const slowSender = turns.roomToRead() as ReadTicket
    const next = turns.roomToRead()
    expect(next).toBeInstanceOf(Promise)
    const t0 = performance.now()
    const second = await next
    // Let go by the periodic check once the first had been reading for too long, not before.
    expect(performance.now() - t0).toBeGreaterThanOrEqual(LARGE_BODY_SLOW_MS - 5)
    second.read()
    second.handedOff() // durability none: waiting for its sinks
    const third = turns.roomToRead()
    expect(third).toBeInstanceOf(Promise)
    const t1 = performance.now()
    ;(await third).done()
    expect(performance.now() - t1).toBeGreaterThanOrEqual(LARGE_BODY_SLOW_MS - 5)
    slowSender.done()
    second.done()
    expect([turns.bodiesHeld, turns.waitingToRead]).toEqual([0, 0])
  })

  it('runs work in arrival order, returns its result and passes its error on', async () => {
    const turns = new IngestTurns(0)
    const order: number[] = []
    const results = await Promise.allSettled([
      turns.run(() => order.push(1)),
      turns.run(() => {
        order.push(2)
        throw new Error('bad body')
      }),
      turns.run(() => {
        order.push(3)
        return 'ok'
      }),
    ])
    expect(order).toEqual([1, 2, 3])
    expect(results[1]).toMatchObject({ status: 'rejected', reason: { message: 'bad body' } })
    expect(results[2]).toEqual({ status: 'fulfilled', value: 'ok' })
  })
})
