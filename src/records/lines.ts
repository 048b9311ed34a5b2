import type { SinkRecord } from './record.js'

// Records as NDJSON lines: each payload followed by one "\n". The spool's line frames (src/spool/format.ts)
// and the file sink write exactly these bytes. Records framed from an NDJSON body are views into it, one
// "\n" apart, and the records of a line frame read back are views into the frame, one "\n" apart: such runs
// are copied with one memory copy each instead of one per record (the per-record copy was 3–5 % of the main
// thread under 2,000-record load, bench/RESULTS.md 2026-12-04 fifth session).

const NEWLINE = 0x0a

/** Bytes of the records as lines: every payload plus its "\n". */
export function linesLength(records: readonly SinkRecord[]): number {
  let size = records.length
  for (let i = 0; i < records.length; i++) size += records[i]!.payload.length
  return size
}

/** Records i..next−1, one "\n" apart in `source`: their payloads span [start, end). */
interface Run {
  source: ArrayBufferLike
  start: number
  end: number
  next: number
}

/** The run of records from `i` (at least that record). */
function runFrom(records: readonly SinkRecord[], i: number): Run {
  const first = records[i]!.payload
  const source = first.buffer
  const start = first.byteOffset
  let end = start + first.length
  let bytes: Uint8Array | undefined
  let j = i + 1
  for (; j < records.length; j++) {
    const next = records[j]!.payload
    if (next.byteOffset !== end + 1 || next.buffer !== source) break
    bytes ??= new Uint8Array(source)
    if (bytes[end] !== NEWLINE) break
    end = next.byteOffset + next.length
  }
  return { source, start, end, next: j }
}

/** Copies the run's lines (each payload and its "\n") into `out` at `o`; returns the offset after them. */
function copyRun(records: readonly SinkRecord[], i: number, run: Run, out: Uint8Array, o: number): number {
  if (run.next === i + 1) out.set(records[i]!.payload, o)
  else out.set(new Uint8Array(run.source, run.start, run.end - run.start), o)
  o += run.end - run.start
  out[o++] = NEWLINE
  return o
}

/**
 * Writes the records as lines into `out` from `offset` (room for linesLength(records) bytes); returns the
 * offset after the last "\n". Records whose payloads sit one "\n" apart in the same memory go out in one copy.
 */
export function copyLines(records: readonly SinkRecord[], out: Uint8Array, offset: number): number {
  let o = offset
  for (let i = 0; i < records.length;) {
    const run = runFrom(records, i)
    o = copyRun(records, i, run, out, o)
    i = run.next
  }
  return o
}

/**
 * The records as lines, in buffers to write one after another: a run of records one "\n" apart whose last
 * payload is followed by a "\n" of the same memory too (the records of a spool lines frame) and that spans
 * at least `minViewBytes` is a view of that memory, no copy; the rest is copied. The views are valid only as
 * long as the records' memory is: a sink that writes them must be done with them when its write settles.
 */
export function linesChunks(records: readonly SinkRecord[], minViewBytes: number): Buffer[] {
  const runs: Run[] = []
  const viewed: boolean[] = []
  let copied = 0
  for (let i = 0; i < records.length;) {
    const run = runFrom(records, i)
    const lines = run.end - run.start + 1
    const view =
      lines >= minViewBytes &&
      run.end < run.source.byteLength &&
      new Uint8Array(run.source, run.end, 1)[0] === NEWLINE
    if (!view) copied += lines
    runs.push(run)
    viewed.push(view)
    i = run.next
  }
  const chunks: Buffer[] = []
  const copies = copied > 0 ? Buffer.allocUnsafe(copied) : undefined
  let o = 0
  let from = 0
  let i = 0
  for (let r = 0; r < runs.length; r++) {
    const run = runs[r]!
    if (viewed[r]) {
      if (o > from) chunks.push(copies!.subarray(from, o))
      from = o
      chunks.push(Buffer.from(run.source, run.start, run.end - run.start + 1))
    } else o = copyRun(records, i, run, copies!, o)
    i = run.next
  }
  if (o > from) chunks.push(copies!.subarray(from, o))
  return chunks
}
