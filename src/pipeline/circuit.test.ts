import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { permanentError, transientError, type SinkError } from '../errors.js'
import type { SinkRecord } from '../records/record.js'
import { ALL_WRITTEN, type Sink, type WriteResult } from '../sinks/sink.js'
import { createLogger } from '../telemetry/logger.js'
import { Metrics } from '../telemetry/metrics.js'
import { CircuitBreaker, type CircuitAttempt, type CircuitState } from './circuit.js'
import { deliver } from './delivery.js'

beforeEach(() => {
  vi.useFakeTimers()
})
afterEach(() => {
  vi.useRealTimers()
})

/** Resolves to 'admitted' or 'waiting' without letting fake time pass. */
async function settle(p: Promise<CircuitAttempt>): Promise<'admitted' | 'waiting'> {
  let done = false
  void p.then(() => (done = true)).catch(() => undefined)
  await vi.advanceTimersByTimeAsync(0)
  return done ? 'admitted' : 'waiting'
}

async function fail(breaker: CircuitBreaker, times: number): Promise<void> {
  for (let i = 0; i < times; i++) (await breaker.admit()).failed()
}

describe('CircuitBreaker', () => {
  it('opens after failureThreshold consecutive failures; a success in between starts the count again', async () => {
    const changes: CircuitState[] = []
    const breaker = new CircuitBreaker(
      { failureThreshold: 3, openMs: 1000, maxOpenMs: 10_000 },
      { onChange: (s) => changes.push(s) },
    )
    await fail(breaker, 2)
    ;(await breaker.admit()).succeeded()
    await fail(breaker, 2)
    expect(breaker.state).toBe('closed')
    await fail(breaker, 1)
    expect(breaker.state).toBe('open')
    expect(breaker.snapshot()).toEqual({ state: 'open', failures: 3, retryAt: Date.now() + 1000 })
    expect(breaker.remainingMs).toBe(1000)
    expect(changes).toEqual(['open'])
  })

  it('while open nobody is admitted; after the cool-down one probe, and its success lets everyone through', async () => {
    const breaker = new CircuitBreaker({ failureThreshold: 1, openMs: 1000, maxOpenMs: 10_000 })
    await fail(breaker, 1)
    const a = breaker.admit()
    const b = breaker.admit()
    expect(await settle(a)).toBe('waiting')
    await vi.advanceTimersByTimeAsync(999)
    expect(await settle(a)).toBe('waiting')
    await vi.advanceTimersByTimeAsync(1)
    expect(await settle(a)).toBe('admitted')
    expect(breaker.state).toBe('half-open')
    expect(await settle(b)).toBe('waiting') // one probe at a time
    ;(await a).succeeded()
    expect(await settle(b)).toBe('admitted')
    expect(breaker.state).toBe('closed')
    expect(await settle(breaker.admit())).toBe('admitted')
  })

  it('a failed probe reopens it for twice as long, capped at maxOpenMs', async () => {
    const opened: number[] = []
    const breaker = new CircuitBreaker(
      { failureThreshold: 2, openMs: 1000, maxOpenMs: 3000 },
      { onChange: (s, { openMs }) => s === 'open' && opened.push(openMs) },
    )
    await fail(breaker, 2)
    for (let i = 0; i < 3; i++) {
      await vi.advanceTimersByTimeAsync(opened.at(-1)!)
      ;(await breaker.admit()).failed() // the probe
    }
    expect(opened).toEqual([1000, 2000, 3000, 3000])
    await vi.advanceTimersByTimeAsync(3000)
    ;(await breaker.admit()).succeeded()
    // A success forgets the history: the next opening starts at openMs again.
    await fail(breaker, 2)
    expect(opened.at(-1)).toBe(1000)
  })

  it('late failures of attempts admitted before it opened do not extend the cool-down; a late success closes it', async () => {
    const breaker = new CircuitBreaker({ failureThreshold: 1, openMs: 1000, maxOpenMs: 10_000 })
    const early = await breaker.admit()
    const early2 = await breaker.admit()
    await fail(breaker, 1)
    await vi.advanceTimersByTimeAsync(500)
    early.failed()
    expect(breaker.remainingMs).toBe(500)
    // A late success is still proof that the sink answers: the circuit closes.
    early2.succeeded()
    expect(breaker.state).toBe('closed')
  })

  it('an abandoned probe hands the probe slot to the next caller; verdicts count once', async () => {
    const breaker = new CircuitBreaker({ failureThreshold: 1, openMs: 100, maxOpenMs: 1000 })
    await fail(breaker, 1)
    await vi.advanceTimersByTimeAsync(100)
    const probe = await breaker.admit()
    const next = breaker.admit()
    expect(await settle(next)).toBe('waiting')
    probe.abandoned()
    probe.failed() // ignored: the attempt already ended
    expect(await settle(next)).toBe('admitted')
    expect(breaker.state).toBe('half-open')
  })

  it('admit rejects when its signal aborts while waiting', async () => {
    const breaker = new CircuitBreaker({ failureThreshold: 1, openMs: 60_000, maxOpenMs: 60_000 })
    await fail(breaker, 1)
    const ac = new AbortController()
    const waiting = breaker.admit(ac.signal)
    const outcome = expect(waiting).rejects.toThrow('stop')
    ac.abort(new Error('stop'))
    await outcome
  })

  it('failureThreshold 0 disables it', async () => {
    const breaker = new CircuitBreaker({ failureThreshold: 0 })
    await fail(breaker, 100)
    expect(breaker.state).toBe('closed')
  })
})

describe('deliver with a circuit breaker', () => {
  const logger = createLogger('silent')
  const recs = (n: number): SinkRecord[] =>
    Array.from({ length: n }, (_, i) => ({
      stream: 's',
      payload: Buffer.from(`{"n":${i}}`),
      receivedAtMs: 0,
    }))

  /** A sink whose writes follow a script; every call is logged with its time. */
  function scriptedSink(script: ((batch: readonly SinkRecord[]) => WriteResult)[]): Sink & {
    calls: { at: number; records: number }[]
  } {
    const calls: { at: number; records: number }[] = []
    return {
      name: 'scripted',
      type: 'http',
      limits: { maxBatchRecords: 100, maxBatchBytes: 1 << 20, lingerMs: 0, maxRecordBytes: 1 << 20 },
      calls,
      write: (batch) => {
        calls.push({ at: Date.now(), records: batch.length })
        const step = script.shift() ?? (() => ALL_WRITTEN)
        return Promise.resolve().then(() => step(batch))
      },
      healthcheck: () => Promise.resolve(),
      close: () => Promise.resolve(),
    }
  }
  const down = (): WriteResult => {
    throw transientError('connection refused', 'unreachable')
  }

  it('stops calling the sink while open, probes after the cool-down, and retries only the failed entries', async () => {
    const metrics = new Metrics({ defaultMetrics: false })
    const breaker = new CircuitBreaker(
      { failureThreshold: 3, openMs: 5_000, maxOpenMs: 5_000 },
      { onChange: (s) => metrics.sinkCircuit('scripted', s) },
    )
    const partial = (batch: readonly SinkRecord[]): WriteResult => ({
      failed: [{ index: batch.length - 1, error: transientError('throttled', 'throttled') }],
    })
    const sink = scriptedSink([down, down, down, down, partial])
    const started = Date.now()
    const done = deliver(sink, recs(4), {
      retry: { initialMs: 1, maxMs: 1, maxAttempts: 0 },
      signal: new AbortController().signal,
      metrics,
      logger,
      deadLetter: () => Promise.reject(new Error('nothing is dead-lettered here')),
      circuit: breaker,
    })
    await vi.advanceTimersByTimeAsync(100)
    expect(sink.calls).toHaveLength(3) // then the circuit opened
    expect(breaker.state).toBe('open')
    expect((await metrics.render()).body).toContain('streamgate_sink_circuit_open{sink="scripted"} 1')
    await vi.advanceTimersByTimeAsync(4_800)
    expect(sink.calls).toHaveLength(3)
    await vi.advanceTimersByTimeAsync(200)
    // The probe failed (reopened for 5 s), the next probe delivered 3 of 4, the last one went alone.
    await vi.advanceTimersByTimeAsync(5_100)
    await done
    expect(sink.calls.map((c) => c.records)).toEqual([4, 4, 4, 4, 4, 1])
    expect(sink.calls[3]!.at - started).toBeGreaterThanOrEqual(5_000)
    expect(sink.calls[4]!.at - sink.calls[3]!.at).toBeGreaterThanOrEqual(5_000)
    expect(breaker.state).toBe('closed')
    const text = (await metrics.render()).body
    expect(text).toContain('streamgate_sink_circuit_open{sink="scripted"} 0')
    expect(text).toContain('streamgate_sink_circuit_opened_total{sink="scripted"} 2')
  })

  it('permanent errors go to the dead-letter callback and do not open the circuit', async () => {
    const breaker = new CircuitBreaker({ failureThreshold: 1, openMs: 5_000, maxOpenMs: 5_000 })
    const rejected = (): WriteResult => {
      throw permanentError('unknown topic', 'unknown-topic')
    }
    const sink = scriptedSink([rejected, rejected])
    const dead: { records: number; error: SinkError }[] = []
    for (let i = 0; i < 2; i++)
      await deliver(sink, recs(2), {
        retry: { initialMs: 1, maxMs: 1, maxAttempts: 0 },
        signal: new AbortController().signal,
        metrics: new Metrics({ defaultMetrics: false }),
        logger,
        deadLetter: (records, error) => {
          dead.push({ records: records.length, error })
          return Promise.resolve()
        },
        circuit: breaker,
      })
    expect(dead.map((d) => [d.records, d.error.reason])).toEqual([
      [2, 'unknown-topic'],
      [2, 'unknown-topic'],
    ])
    expect(breaker.state).toBe('closed')
  })
})
