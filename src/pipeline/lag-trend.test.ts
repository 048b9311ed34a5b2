import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { LagTrend } from './lag-trend.js'

/** Samples every 5 s: [lag, delivered] pairs, or lags alone with a delivered count that keeps rising. */
function feed(trend: LagTrend, samples: (number | [number, number])[], everyMs = 5_000): void {
  samples.forEach((s, i) => {
    const [lag, delivered] = Array.isArray(s) ? s : [s, i]
    trend.add(i * everyMs, lag, delivered)
  })
}

describe('LagTrend', () => {
  it('growing: the lag rose at every sample over the whole window while the lane delivered', () => {
    const trend = new LagTrend(30_000)
    feed(trend, [10, 20, 25, 35, 50, 60, 80])
    expect(trend.verdict()).toEqual({ kind: 'growing', from: 10, to: 80, overMs: 30_000 })
  })

  it('no verdict before the samples cover the window', () => {
    const trend = new LagTrend(30_000)
    feed(trend, [10, 20, 30, 40, 50, 60])
    expect(trend.verdict()).toBeUndefined()
    trend.add(30_000, 70, 6)
    expect(trend.verdict()).toEqual({ kind: 'growing', from: 10, to: 70, overMs: 30_000 })
  })

  it('one step that does not rise ends growth; it counts again once that step left the window', () => {
    const trend = new LagTrend(30_000)
    feed(trend, [10, 20, 30, 30, 40, 50, 60])
    expect(trend.verdict()).toBeUndefined()
    for (let i = 7; i <= 9; i++) trend.add(i * 5_000, 60 + i, i)
    // At 45 s the window starts at 15 s (lag 30): from there it rose at every sample.
    expect(trend.verdict()).toEqual({ kind: 'growing', from: 30, to: 69, overMs: 30_000 })
  })

  it('a lag of 0 anywhere in the window is fine (an idle lane that is delivering a burst)', () => {
    const trend = new LagTrend(30_000)
    feed(trend, [
      [0, 0],
      [0, 0],
      [0, 0],
      [0, 0],
      [0, 0],
      [0, 0],
      [500, 0],
    ])
    expect(trend.verdict()).toBeUndefined()
    trend.reset()
    feed(trend, [5, 10, 0, 10, 20, 30, 40])
    expect(trend.verdict()).toBeUndefined()
  })

  it('stalled: nothing delivered and the lag never fell over the window, new records or not', () => {
    const flat = new LagTrend(30_000)
    feed(flat, [
      [40, 7],
      [40, 7],
      [40, 7],
      [40, 7],
      [40, 7],
      [40, 7],
      [40, 7],
    ])
    expect(flat.verdict()).toEqual({ kind: 'stalled', lag: 40, overMs: 30_000 })
    const filling = new LagTrend(30_000)
    feed(filling, [
      [40, 7],
      [41, 7],
      [41, 7],
      [60, 7],
      [61, 7],
      [70, 7],
      [90, 7],
    ])
    expect(filling.verdict()).toEqual({ kind: 'stalled', lag: 90, overMs: 30_000 })
  })

  it('not stalled when the lane moved: records delivered, or dead-lettered (the lag fell)', () => {
    const delivering = new LagTrend(30_000)
    feed(delivering, [
      [40, 7],
      [40, 7],
      [40, 7],
      [40, 8],
      [40, 8],
      [40, 8],
      [40, 8],
    ])
    expect(delivering.verdict()).toBeUndefined()
    const deadLettering = new LagTrend(30_000)
    feed(deadLettering, [
      [40, 7],
      [40, 7],
      [30, 7],
      [40, 7],
      [40, 7],
      [40, 7],
      [40, 7],
    ])
    expect(deadLettering.verdict()).toBeUndefined()
  })

  it('reset forgets the history', () => {
    const trend = new LagTrend(30_000)
    feed(trend, [1, 2, 3, 4, 5, 6, 7])
    expect(trend.verdict()).toBeDefined()
    trend.reset()
    expect(trend.verdict()).toBeUndefined()
  })

  it('keeps only what the window needs', () => {
    const trend = new LagTrend(1_000)
    for (let i = 1; i <= 10_000; i++) trend.add(i * 100, i, i)
    expect((trend as unknown as { samples: unknown[] }).samples.length).toBeLessThanOrEqual(12)
    expect(trend.verdict()).toEqual({ kind: 'growing', from: 9_990, to: 10_000, overMs: 1_000 })
  })

  it('agrees with the rules on random series', () => {
    const sample = fc.tuple(fc.nat(6), fc.nat(2))
    fc.assert(
      fc.property(fc.array(sample, { minLength: 1, maxLength: 30 }), (samples) => {
        const trend = new LagTrend(30_000)
        feed(trend, samples)
        // The window: the last 7 samples (5 s apart, from the newest one at least 30 s old).
        const window = samples.slice(Math.max(0, samples.length - 7))
        const lags = window.map(([lag]) => lag)
        const rises = (strict: boolean): boolean =>
          lags.every((lag, i) => i === 0 || (strict ? lag > lags[i - 1]! : lag >= lags[i - 1]!))
        let expected: string | undefined
        if (samples.length >= 7 && !lags.includes(0)) {
          if (window[0]![1] === window.at(-1)![1] && rises(false)) expected = 'stalled'
          else if (rises(true)) expected = 'growing'
        }
        expect(trend.verdict()?.kind).toBe(expected)
      }),
    )
  })
})
