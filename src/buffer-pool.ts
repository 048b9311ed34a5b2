// Large buffers that live for a request or a delivery batch (a request's body, a lane's spool read buffers)
// are taken from and given back to a pool, instead of being allocated each time and left to the garbage
// collector.
//
// Why (bench/RESULTS.md, "where ingest's major GCs come from"): V8 starts a major GC whenever external memory
// (Buffers) grew by ~64 MB since the last one. A body lives until its frame is fsync'd, and a read buffer
// until its batch is delivered: long enough to be promoted, so at full load most major GCs were started by
// them. A buffer taken again from the pool is no new external memory.
//
// Only the code that took a buffer gives it back, and only once nothing holds a view into it any more: a
// buffer given back while something still reads it would be overwritten by the next request's bytes. The
// pool accepts back only buffers it handed out that are not already free (anything else is ignored, left to
// the collector), so a second give of the same buffer cannot put it on the free list twice.

const KIB = 1024
const STEPS_PER_DOUBLING = 4
/** How often an idle pool is checked; free buffers go after one to two such periods without a take. */
const IDLE_TRIM_MS = 30_000

export interface BufferPoolOptions {
  /** Smaller requests are plain allocations (small buffers die young; the scavenger frees them for nothing). */
  minBytes: number
  /** Larger requests are plain allocations. */
  maxBytes: number
  /** The most bytes (by capacity) kept free for reuse; a buffer given back beyond it is left to the GC. */
  maxFreeBytes: number
}

export class BufferPool {
  private readonly free = new Map<number, ArrayBuffer[]>()
  /** Every buffer this pool handed out (weakly: one never given back is the collector's as usual). */
  private readonly issued = new WeakSet<ArrayBuffer>()
  /** The buffers on the free lists: a second give of one of them is ignored. */
  private readonly freeSet = new Set<ArrayBuffer>()
  private freeBytesValue = 0
  private takes = 0
  private reuses = 0
  private gives = 0
  private takesAtLastTrim = -1
  private trimTimer: NodeJS.Timeout | undefined

  constructor(readonly options: BufferPoolOptions) {}

  /** A buffer of exactly `length` bytes (contents undefined, as Buffer.allocUnsafe). */
  take(length: number): Buffer {
    if (length < this.options.minBytes || length > this.options.maxBytes) return Buffer.allocUnsafe(length)
    const capacity = capacityFor(length)
    this.takes++
    const list = this.free.get(capacity)
    let ab = list?.pop()
    if (ab) {
      this.freeSet.delete(ab)
      this.freeBytesValue -= capacity
      this.reuses++
    } else {
      ab = Buffer.allocUnsafeSlow(capacity).buffer // not zero-filled, its own ArrayBuffer
      this.issued.add(ab)
    }
    return Buffer.from(ab, 0, length)
  }

  /**
   * Gives back a buffer from `take` (any view of it). The caller vouches that nothing reads or writes it
   * any more. Buffers the pool did not hand out, or that are free already, are ignored.
   */
  give(buf: Uint8Array): void {
    const ab = buf.buffer
    if (!(ab instanceof ArrayBuffer) || !this.issued.has(ab) || this.freeSet.has(ab)) return
    const capacity = ab.byteLength
    if (this.freeBytesValue + capacity > this.options.maxFreeBytes) return
    let list = this.free.get(capacity)
    if (!list) {
      list = []
      this.free.set(capacity, list)
    }
    list.push(ab)
    this.gives++
    this.freeSet.add(ab)
    this.freeBytesValue += capacity
    if (!this.trimTimer) {
      this.trimTimer = setInterval(() => this.trimIfIdle(), IDLE_TRIM_MS)
      this.trimTimer.unref()
    }
  }

  /**
   * Lets go of every free buffer when nothing was taken since the previous call: after a burst, an idle
   * gateway gives the memory back (called every IDLE_TRIM_MS once something was given back).
   */
  trimIfIdle(): void {
    if (this.takes === this.takesAtLastTrim) {
      this.free.clear()
      this.freeSet.clear()
      this.freeBytesValue = 0
    }
    this.takesAtLastTrim = this.takes
  }

  /** Bytes on the free lists. */
  get freeBytes(): number {
    return this.freeBytesValue
  }

  /**
   * Takes within the pooled sizes, how many of them reused a free buffer, and the buffers taken back onto the
   * free lists (tests, diagnostics).
   */
  get stats(): { takes: number; reuses: number; gives: number; freeBytes: number } {
    return { takes: this.takes, reuses: this.reuses, gives: this.gives, freeBytes: this.freeBytesValue }
  }
}

/**
 * The capacity a request of `length` bytes is served from: the next of four sizes per doubling (…, 1 MiB,
 * 1.25, 1.5, 1.75, 2 MiB, 2.5, …), so a buffer is at most 25 % larger than asked for. Pages of it that are
 * never written are never made resident.
 */
export function capacityFor(length: number): number {
  if (length <= 64 * KIB) return 64 * KIB
  let power = 2 ** Math.floor(Math.log2(length))
  if (power > length) power /= 2 // Math.log2 rounding
  const step = power / STEPS_PER_DOUBLING
  return Math.ceil(length / step) * step
}

/**
 * The pool of request bodies read with a declared Content-Length (src/http/body.ts): from 64 KiB (smaller
 * ones die young) to 64 MiB; up to 32 MiB kept free — about what 16 concurrent 2 MB bodies need to go
 * round without new allocations.
 */
export const bodyPool = new BufferPool({
  minBytes: 64 * KIB,
  maxBytes: 64 * KIB * KIB,
  maxFreeBytes: 32 * KIB * KIB,
})
