import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { DedupeWindow } from './dedupe.js'

describe('DedupeWindow', () => {
  it('remembers keys, exactly as text', () => {
    const w = new DedupeWindow(10, 60_000)
    w.remember(['9007199254740993'], 0)
    expect(w.has('9007199254740993', 1)).toBe(true)
    expect(w.has('9007199254740992', 1)).toBe(false)
  })
  it('forgets keys after windowMs', () => {
    const w = new DedupeWindow(10, 1000)
    w.remember(['a'], 0)
    expect(w.has('a', 999)).toBe(true)
    expect(w.has('a', 1000)).toBe(false)
  })
  it('never holds more than windowRecords keys and drops the oldest first (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.string(), { maxLength: 200 }),
        fc.integer({ min: 1, max: 50 }),
        (keys, limit) => {
          const w = new DedupeWindow(limit, 1e9)
          for (const k of keys) w.remember([k], 0)
          expect(w.size).toBeLessThanOrEqual(limit)
          const last = keys.at(-1)
          if (last !== undefined) expect(w.has(last, 0)).toBe(true)
        },
      ),
    )
  })
})
