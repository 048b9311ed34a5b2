import { describe, expect, it } from 'vitest'
import { backoffDelay, sleep } from './retry.js'

describe('backoffDelay', () => {
  const policy = { initialMs: 100, maxMs: 1000 }
  it('grows exponentially up to the cap, with jitter below the ceiling', () => {
    expect(backoffDelay(1, policy, () => 1)).toBe(100)
    expect(backoffDelay(2, policy, () => 1)).toBe(200)
    expect(backoffDelay(4, policy, () => 1)).toBe(800)
    expect(backoffDelay(5, policy, () => 1)).toBe(1000)
    expect(backoffDelay(60, policy, () => 1)).toBe(1000)
    expect(backoffDelay(3, policy, () => 0.5)).toBe(200)
  })
  it('never returns zero', () => {
    expect(backoffDelay(1, policy, () => 0)).toBe(1)
  })
})

describe('sleep', () => {
  it('rejects when aborted', async () => {
    const ac = new AbortController()
    const p = sleep(10_000, ac.signal)
    ac.abort(new Error('stop'))
    await expect(p).rejects.toThrow('stop')
  })
})
