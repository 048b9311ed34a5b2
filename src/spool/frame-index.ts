import { FrameKind } from './format.js'

/**
 * Cumulative record counts per frame kind, indexed by frame seq, so that a lane's lag in records is one
 * subtraction. 16 bytes per frame; compacted as segments are deleted.
 */
export class FrameIndex {
  private base = 1
  private length = 0
  /** Records and dead letters in the frames before `base` (dropped): what `before(base)` answers. */
  private beforeBaseRecords = 0
  private beforeBaseDeadLetters = 0
  private records = new Float64Array(1024)
  private deadLetters = new Float64Array(1024)

  get nextSeq(): number {
    return this.base + this.length
  }

  push(seq: number, kind: FrameKind, count: number): void {
    if (this.length === 0 && seq !== this.base) this.base = seq
    // Gaps (a corrupt frame was skipped) become zero-count entries.
    while (this.base + this.length < seq) this.append(0, 0)
    this.append(kind === FrameKind.Records ? count : 0, kind === FrameKind.DeadLetters ? count : 0)
  }

  private append(records: number, deadLetters: number): void {
    if (this.length === this.records.length) {
      const grow = (a: Float64Array<ArrayBuffer>): Float64Array<ArrayBuffer> => {
        const b = new Float64Array(a.length * 2)
        b.set(a)
        return b
      }
      this.records = grow(this.records)
      this.deadLetters = grow(this.deadLetters)
    }
    const prevR = this.length > 0 ? this.records[this.length - 1]! : this.beforeBaseRecords
    const prevD = this.length > 0 ? this.deadLetters[this.length - 1]! : this.beforeBaseDeadLetters
    this.records[this.length] = prevR + records
    this.deadLetters[this.length] = prevD + deadLetters
    this.length++
  }

  /**
   * Records of `kind` in frames with seq < `seq`, counted from the first frame ever indexed (dropped ones
   * included, so that values stay comparable across dropBefore). A seq at or before the first kept frame
   * answers the count before that frame: dropped frames were consumed by every lane.
   */
  before(kind: FrameKind, seq: number): number {
    const i = Math.min(seq - this.base, this.length) - 1
    if (i < 0) return kind === FrameKind.Records ? this.beforeBaseRecords : this.beforeBaseDeadLetters
    return (kind === FrameKind.Records ? this.records : this.deadLetters)[i]!
  }

  total(kind: FrameKind): number {
    return this.before(kind, this.base + this.length)
  }

  /** Records of `kind` in the frame `seq` (0 when unknown). */
  countAt(kind: FrameKind, seq: number): number {
    return this.before(kind, seq + 1) - this.before(kind, seq)
  }

  /** Forgets frames before `seq` (their segments were deleted); cumulative values stay comparable. */
  dropBefore(seq: number): void {
    const n = Math.min(seq - this.base, this.length)
    if (n <= 0) return
    // Before this, `before(base)` answered 0 while the kept values counted the dropped frames: a lane whose
    // position was the first kept frame showed every record ever spooled as its lag (4 million records in a
    // fan-out bench for one scrape), and admission's lag budget refused on it.
    this.beforeBaseRecords = this.records[n - 1]!
    this.beforeBaseDeadLetters = this.deadLetters[n - 1]!
    this.records.copyWithin(0, n, this.length)
    this.deadLetters.copyWithin(0, n, this.length)
    this.length -= n
    this.base += n
  }
}
