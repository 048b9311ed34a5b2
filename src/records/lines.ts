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

/**
 * Writes the records as lines into `out` from `offset` (room for linesLength(records) bytes); returns the
 * offset after the last "\n". Records whose payloads sit one "\n" apart in the same memory go out in one copy.
 */
export function copyLines(records: readonly SinkRecord[], out: Uint8Array, offset: number): number {
  let o = offset
  let i = 0
  let source: ArrayBufferLike | undefined
  let bytes: Uint8Array | undefined
  while (i < records.length) {
    const first = records[i]!.payload
    const start = first.byteOffset
    let end = start + first.length
    let j = i + 1
    if (first.buffer !== source) {
      source = first.buffer
      bytes = undefined
    }
    for (; j < records.length; j++) {
      const next = records[j]!.payload
      if (next.buffer !== source || next.byteOffset !== end + 1) break
      bytes ??= new Uint8Array(source)
      if (bytes[end] !== NEWLINE) break
      end = next.byteOffset + next.length
    }
    if (j === i + 1) out.set(first, o)
    else out.set(new Uint8Array(source, start, end - start), o)
    o += end - start
    out[o++] = NEWLINE
    i = j
  }
  return o
}
