import type { SinkRecord } from './record.js'

// Records as NDJSON lines: each payload followed by one "\n". The spool's lines frames (src/spool/format.ts)
// and the file sink write exactly these bytes. Records framed from an NDJSON body are views into it, one
// "\n" apart, and the records of a lines frame read back are views into the frame, one "\n" apart: such a
// run is copied in one piece, and the file sink hands a frame's run to the kernel without copying it at all.
// (Copying a run in one piece is not itself much cheaper than per record — V8's set() is ~24 ns a record
// and the copy is memory-bound, bench/RESULTS.md 2026-12-04 fifth session; not copying is what saves.)

const NEWLINE = 0x0a

/** Bytes of the records as lines: every payload plus its "\n". */
export function linesLength(records: readonly SinkRecord[]): number {
  let size = records.length
  for (let i = 0; i < records.length; i++) size += records[i]!.payload.length
  return size
}

/** The end (exclusive) of the run of records from `i`: payloads one "\n" apart in the same memory. */
function runEnd(records: readonly SinkRecord[], i: number): number {
  const first = records[i]!.payload
  const source = first.buffer
  let end = first.byteOffset + first.length
  let bytes: Uint8Array | undefined
  let j = i + 1
  for (; j < records.length; j++) {
    const next = records[j]!.payload
    if (next.byteOffset !== end + 1 || next.buffer !== source) break
    bytes ??= new Uint8Array(source)
    if (bytes[end] !== NEWLINE) break
    end = next.byteOffset + next.length
  }
  return j
}

/** The memory under the payloads of records i..next−1 (a run), without the "\n" after the last one. */
function runBytes(records: readonly SinkRecord[], i: number, next: number): Uint8Array {
  const first = records[i]!.payload
  if (next === i + 1) return first
  const last = records[next - 1]!.payload
  return new Uint8Array(first.buffer, first.byteOffset, last.byteOffset + last.length - first.byteOffset)
}

/**
 * Writes the records as lines into `out` from `offset` (room for linesLength(records) bytes); returns the
 * offset after the last "\n". Records whose payloads sit one "\n" apart in the same memory go out in one copy.
 */
export function copyLines(records: readonly SinkRecord[], out: Uint8Array, offset: number): number {
  let o = offset
  for (let i = 0; i < records.length;) {
    const next = runEnd(records, i)
    o = copyRun(runBytes(records, i, next), out, o)
    i = next
  }
  return o
}

function copyRun(run: Uint8Array, out: Uint8Array, o: number): number {
  out.set(run, o)
  o += run.length
  out[o++] = NEWLINE
  return o
}

/**
 * The records as lines, in buffers to write one after another: a run of records one "\n" apart whose last
 * payload is followed by a "\n" of the same memory too (the records of a spool lines frame) and that spans
 * at least `minViewBytes` is a view of that memory, no copy; the rest is copied. The views are valid only as
 * long as the records' memory is: a sink that writes them must be done with them when its write settles.
 */
export function linesChunks(records: readonly SinkRecord[], minViewBytes: number): Buffer[] {
  // Each run's end, negative for a run handed over as a view; then the bytes to copy.
  const ends: number[] = []
  let copied = 0
  for (let i = 0; i < records.length;) {
    const next = runEnd(records, i)
    const run = runBytes(records, i, next)
    const after = run.byteOffset + run.length
    const view =
      run.length + 1 >= minViewBytes &&
      after < run.buffer.byteLength &&
      new Uint8Array(run.buffer, after, 1)[0] === NEWLINE
    if (!view) copied += run.length + 1
    ends.push(view ? -next : next)
    i = next
  }
  const chunks = new Chunks(copied)
  let i = 0
  for (const end of ends) {
    const run = runBytes(records, i, Math.abs(end))
    if (end < 0) chunks.view(Buffer.from(run.buffer, run.byteOffset, run.length + 1))
    else chunks.copy(run, true)
    i = Math.abs(end)
  }
  return chunks.done()
}

/**
 * Buffers of whole lines to write one after another, as fewer buffers: those under `minViewBytes` are copied
 * into one buffer (in order, between the larger ones, which are passed on as they are). A few large iovecs
 * cost less than many small ones, and copying a small run costs less than an iovec of its own.
 */
export function joinSmallLines(lines: readonly Buffer[], minViewBytes: number): Buffer[] {
  let small = 0
  for (const line of lines) if (line.length < minViewBytes) small += line.length
  if (small === 0) return lines.slice()
  const chunks = new Chunks(small)
  for (const line of lines) {
    if (line.length < minViewBytes) chunks.copy(line, false)
    else chunks.view(line)
  }
  return chunks.done()
}

/**
 * Buffers to write one after another: views passed on as they are, and what is copied gathered into one
 * buffer of `copied` bytes, a piece of it between two views.
 */
class Chunks {
  private readonly out: Buffer[] = []
  private readonly copies: Buffer
  private from = 0
  private o = 0

  constructor(copied: number) {
    this.copies = Buffer.allocUnsafe(copied)
  }

  /** Copies `bytes`, then a "\n" when `newline`. */
  copy(bytes: Uint8Array, newline: boolean): void {
    this.copies.set(bytes, this.o)
    this.o += bytes.length
    if (newline) this.copies[this.o++] = NEWLINE
  }

  view(buf: Buffer): void {
    this.flush()
    this.out.push(buf)
  }

  done(): Buffer[] {
    this.flush()
    return this.out
  }

  private flush(): void {
    if (this.o > this.from) this.out.push(this.copies.subarray(this.from, this.o))
    this.from = this.o
  }
}
