// "Lag keeps growing", made concrete. Each lane's lag (records in the spool it has not delivered) and its
// delivered count are sampled at a fixed interval; the verdict looks at the samples of the last `windowMs`
// (from the newest sample at least that old), after the rules of LinkedIn's Burrow for Kafka consumer lag
// (https://github.com/linkedin/Burrow/wiki/Consumer-Lag-Evaluation-Rules):
//
//   - no verdict until the samples cover the whole window;
//   - a lag of 0 anywhere in the window: fine (the lane caught up; a burst being delivered is no trouble);
//   - `stalled`: the lag never fell and nothing was delivered over the whole window — the lane is stuck
//     (a sink that hangs, or retries without success) whether or not new records keep coming;
//   - `growing`: the lag rose at every sample over the whole window — the lane delivers, but less than it
//     is given (records accepted = delivered + lag growth).
//
// A lag that moves up and down without reaching 0 is neither: the `streamgate_sink_lag_records` gauge is
// there to alert on its level. The gateway makes the window the configured one plus the sink's lingerMs, so
// that a sink batching for minutes on purpose (S3 roll-over by age, Domo) is not stalled while it fills a
// batch. Times are passed in (ms on any monotonic clock), so the rules are tested without waiting.

export type LaneTrouble =
  | { kind: 'growing'; from: number; to: number; overMs: number }
  | { kind: 'stalled'; lag: number; overMs: number }

interface Sample {
  at: number
  lag: number
  delivered: number
}

export class LagTrend {
  private samples: Sample[] = []

  constructor(private readonly windowMs: number) {}

  add(at: number, lag: number, delivered: number): void {
    this.samples.push({ at, lag, delivered })
    // Keep the newest sample at least windowMs old (the window's start) and everything after it.
    const cutoff = at - this.windowMs
    let start = 0
    for (let i = this.samples.length - 1; i >= 0; i--)
      if (this.samples[i]!.at <= cutoff) {
        start = i
        break
      }
    if (start > 0) this.samples = this.samples.slice(start)
  }

  /** Forget every sample (the lane was paused or replaced: its history says nothing about now). */
  reset(): void {
    this.samples = []
  }

  verdict(): LaneTrouble | undefined {
    const first = this.samples[0]
    const last = this.samples.at(-1)
    if (!first || !last || last.at - first.at < this.windowMs) return undefined
    if (this.samples.some((s) => s.lag === 0)) return undefined
    const overMs = last.at - first.at
    const steps = this.samples.slice(1).map((s, i) => ({ s, prev: this.samples[i]! }))
    if (last.delivered === first.delivered && steps.every(({ s, prev }) => s.lag >= prev.lag))
      return { kind: 'stalled', lag: last.lag, overMs }
    if (steps.every(({ s, prev }) => s.lag > prev.lag))
      return { kind: 'growing', from: first.lag, to: last.lag, overMs }
    return undefined
  }
}
