// A token bucket over records (not requests): a stream's `rateLimit.recordsPerSecond`, with a burst of one
// second's worth unless `burstRecords` says otherwise. A request that does not fit gets 429 and a
// Retry-After long enough for its records to fit.

export class RecordRateLimiter {
  private tokens: number
  private updatedAt: number
  readonly burst: number

  constructor(
    private readonly perSecond: number,
    burst?: number,
    now = performance.now(),
  ) {
    this.burst = burst ?? Math.max(1, Math.ceil(perSecond))
    this.tokens = this.burst
    this.updatedAt = now
  }

  /** Takes `n` tokens and returns 0, or takes nothing and returns the seconds to wait. */
  take(n: number, now = performance.now()): number {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.updatedAt) / 1000) * this.perSecond)
    this.updatedAt = now
    // A request larger than the whole bucket is admitted when the bucket is full (otherwise it never could be).
    const need = Math.min(n, this.burst)
    if (this.tokens >= need) {
      this.tokens -= n
      return 0
    }
    return Math.max(1, Math.ceil((need - this.tokens) / this.perSecond))
  }
}
