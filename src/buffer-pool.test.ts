import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { BufferPool, capacityFor } from './buffer-pool.js'

const KIB = 1024
const pool = (maxFreeBytes = 8 * KIB * KIB): BufferPool =>
  new BufferPool({ minBytes: 64 * KIB, maxBytes: 4 * KIB * KIB, maxFreeBytes })

describe('BufferPool', () => {
  it('hands a buffer given back to the next take of the same size class', () => {
    const p = pool()
    const a = p.take(900 * KIB)
    expect(a.length).toBe(900 * KIB)
    p.give(a)
    expect(p.freeBytes).toBe(capacityFor(900 * KIB))
    const b = p.take(1000 * KIB) // 900 KiB and 1000 KiB are both served from 1 MiB
    expect(b.buffer).toBe(a.buffer)
    expect(b.length).toBe(1000 * KIB)
    expect(p.stats).toEqual({ takes: 2, reuses: 1, gives: 1, freeBytes: 0 })
    const c = p.take(300 * KIB) // another class: a new buffer
    expect(c.buffer).not.toBe(a.buffer)
  })

  it('serves sizes outside its range as plain allocations and ignores them when given back', () => {
    const p = pool()
    const small = p.take(1000)
    const large = p.take(5 * KIB * KIB)
    p.give(small)
    p.give(large)
    expect(p.stats).toEqual({ takes: 0, reuses: 0, gives: 0, freeBytes: 0 })
  })

  it('ignores a buffer it did not hand out, even of a pooled size', () => {
    const p = pool()
    p.give(Buffer.allocUnsafeSlow(capacityFor(900 * KIB)))
    expect(p.freeBytes).toBe(0)
    expect(p.take(900 * KIB).buffer.byteLength).toBe(capacityFor(900 * KIB))
    expect(p.stats.reuses).toBe(0)
  })

  it('keeps a buffer given back twice on the free list once: two takes never share it', () => {
    const p = pool()
    const a = p.take(100 * KIB)
    p.give(a)
    p.give(a.subarray(10)) // another view of the same buffer
    expect(p.freeBytes).toBe(capacityFor(100 * KIB))
    const b = p.take(100 * KIB)
    const c = p.take(100 * KIB)
    expect(b.buffer).toBe(a.buffer)
    expect(c.buffer).not.toBe(b.buffer)
  })

  it('keeps at most maxFreeBytes free; the rest is left to the collector', () => {
    const p = pool(2 * KIB * KIB)
    const taken = [p.take(KIB * KIB), p.take(KIB * KIB), p.take(KIB * KIB)]
    for (const b of taken) p.give(b)
    expect(p.freeBytes).toBe(2 * KIB * KIB)
    const again = [p.take(KIB * KIB), p.take(KIB * KIB), p.take(KIB * KIB)].map((b) => b.buffer)
    expect(again.slice(0, 2)).toEqual(expect.arrayContaining([taken[0]!.buffer, taken[1]!.buffer]))
    expect(taken.map((b) => b.buffer)).not.toContain(again[2]) // the third was not kept: a new one
    expect(p.stats.reuses).toBe(2)
  })

  it('an idle pool lets go of its free buffers; one in use keeps them', () => {
    const p = pool()
    p.give(p.take(100 * KIB))
    p.trimIfIdle() // the first check only notes the takes so far
    expect(p.freeBytes).toBe(capacityFor(100 * KIB))
    p.give(p.take(100 * KIB)) // taken since: not idle
    p.trimIfIdle()
    expect(p.freeBytes).toBe(capacityFor(100 * KIB))
    p.trimIfIdle() // nothing taken since the last check
    expect(p.freeBytes).toBe(0)
    expect(p.take(100 * KIB).length).toBe(100 * KIB)
    expect(p.stats.reuses).toBe(1)
  })

  it('capacityFor: at least the length, at most 25 % more above 64 KiB, the same for lengths of one class', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 256 * KIB * KIB }), (length) => {
        const capacity = capacityFor(length)
        expect(capacity).toBeGreaterThanOrEqual(length)
        if (length > 64 * KIB) expect(capacity).toBeLessThanOrEqual(Math.ceil(length * 1.25))
        else expect(capacity).toBe(64 * KIB)
        expect(capacityFor(capacity)).toBe(capacity) // a capacity is its own class
        expect(capacityFor(length - 1 < 1 ? 1 : length - 1)).toBeLessThanOrEqual(capacity) // monotone
      }),
    )
    expect([KIB * KIB, KIB * KIB + 1, 1.25 * KIB * KIB + 1, 2 * KIB * KIB - 1].map(capacityFor)).toEqual([
      KIB * KIB,
      1.25 * KIB * KIB,
      1.5 * KIB * KIB,
      2 * KIB * KIB,
    ])
  })
})
