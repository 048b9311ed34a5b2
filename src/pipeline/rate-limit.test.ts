import { describe, expect, it } from 'vitest'
import { RecordRateLimiter } from './rate-limit.js'

describe('RecordRateLimiter', () => {
  it('admits up to the burst, then asks to wait, then refills', () => {
    const rl = new RecordRateLimiter(10, undefined, 0)
    expect(rl.take(6, 0)).toBe(0)
    expect(rl.take(6, 0)).toBeGreaterThan(0)
    expect(rl.take(6, 1000)).toBe(0)
  })
  it('admits a request larger than the burst only from a full bucket', () => {
    const rl = new RecordRateLimiter(10, 10, 0)
    expect(rl.take(50, 0)).toBe(0)
    expect(rl.take(1, 100)).toBeGreaterThan(0)
  })
})
