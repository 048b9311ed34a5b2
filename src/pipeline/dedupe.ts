// A bounded window of recently seen record keys (emnify: `id`), so that a vendor retry or two overlapping
// emnify streams during a migration [EM-DS-USAGE] do not duplicate records downstream. Keys are the exact
// text of the field (64-bit ids are never squeezed through a JS number). Memory is bounded by
// `windowRecords`; keys also expire after `windowMs`. A key is remembered only after its record was
// accepted, so a request that failed (and will be retried by the vendor) never marks its records as seen.

export class DedupeWindow {
  /** key → time first accepted; a Map iterates in insertion order, so the oldest entry comes first. */
  private readonly seen = new Map<string, number>()

  constructor(
    private readonly windowRecords: number,
    private readonly windowMs: number,
  ) {}

  has(key: string, now: number): boolean {
    const at = this.seen.get(key)
    if (at === undefined) return false
    if (now - at >= this.windowMs) {
      this.seen.delete(key)
      return false
    }
    return true
  }

  remember(keys: Iterable<string>, now: number): void {
    for (const key of keys) {
      this.seen.delete(key)
      this.seen.set(key, now)
    }
    this.evict(now)
  }

  get size(): number {
    return this.seen.size
  }

  private evict(now: number): void {
    let excess = this.seen.size - this.windowRecords
    for (const [key, at] of this.seen) {
      if (excess <= 0 && now - at < this.windowMs) break
      this.seen.delete(key)
      excess--
    }
  }
}
