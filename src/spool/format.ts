import { crc32 } from 'node:zlib'
import { copyLines, linesLength } from '../records/lines.js'
import type { SinkRecord } from '../records/record.js'

// The spool's on-disk format.
//
// The spool is one log per stream: <spool.dir>/streams/<stream-id>/ holds segment files named by the
// sequence number of their first frame (`00000000000000000001.seg`, 20 digits, so names sort by number)
// and `cursors.json` (every lane's position). A segment is a sequence of frames; one frame is one ingest
// request's records (or one batch of dead letters), written with a single write and fsync'd before the
// request is answered (group commit: one fsync covers every frame queued meanwhile).
//
// Frame (all integers little-endian):
//
//   offset size  field
//   0      4     bodyLength   u32, bytes of body
//   4      4     crc          u32, CRC-32 (zlib) of body
//   8      n     body:
//                  0   1  version      u8: 1 = records frame, 2 = lines frame
//                  1   1  kind         u8: 1 = records for the stream's sinks, 2 = dead letters
//                  2   8  seq          u64, frame sequence number, +1 per frame within the stream log
//                  10  8  receivedAtMs u64, when streamgate accepted the records
//                  18  4  count        u32, number of records
//                  22  …  version 1, records, each:
//                         4  payloadLength u32, then the payload bytes (exactly as the vendor sent them)
//                         2  idLength      u16 (0xffff = no id), then the id text (UTF-8)
//                         4  fieldsLength  u32 (0 = none), then the fields as JSON (Azion text records)
//                  22  …  version 2 (no record has fields):
//                         count × u32 payload lengths,
//                         4  idsLength u32, bytes of the ids part (0 = no record has an id), then
//                            count × u16 idLength (0xffff = no id) and the ids' text (UTF-8) one after another,
//                         then every payload followed by one "\n" — the records as NDJSON lines, so records
//                         that were lines of one body are copied in one piece, and read back as views
//                         one "\n" apart that a sink writing lines copies in one piece too.
//
// Version 2 frames are written since 2026-12-04 (fifth session); both versions are read, so a spool written
// by an earlier streamgate is delivered as it is. An earlier streamgate cannot read version 2 frames (it
// counts them as damaged): drain the spool before going back to one.
//
// Recovery reads every frame and checks its length and CRC. A frame that runs past the end of the last
// segment, or fails its CRC with nothing valid after it, is a torn tail (a write cut short by a crash):
// the file is truncated there. A frame that fails its CRC but is followed by valid frames is corrupt: it
// is skipped and counted (its records cannot be trusted), and recovery goes on.

export const FRAME_HEADER_BYTES = 8
/** The body's fixed part: version, kind, seq, receivedAtMs, record count. */
export const BODY_FIXED_BYTES = 22
/** A frame of records with their ids and fields (version 1). */
export const RECORDS_FORMAT = 1
/** A frame of records as NDJSON lines with their ids (version 2): no record has fields. */
export const LINES_FORMAT = 2
const NO_ID = 0xffff

export const enum FrameKind {
  Records = 1,
  DeadLetters = 2,
}

export interface Frame {
  kind: FrameKind
  seq: number
  receivedAtMs: number
  records: SinkRecord[]
}

/**
 * Encodes a frame (header + body). `stream` is not stored: a log belongs to one stream. One allocation, each
 * payload copied once (records one "\n" apart in one body in one piece), ids and fields written straight into
 * the frame, one CRC pass over the body. A lines frame (version 2) when no record has fields, unless `format`
 * asks for version 1.
 */
export function encodeFrame(
  kind: FrameKind,
  seq: number,
  receivedAtMs: number,
  records: readonly SinkRecord[],
  allocate: (length: number) => Buffer = allocUnsafe,
  format: typeof RECORDS_FORMAT | typeof LINES_FORMAT = LINES_FORMAT,
): Buffer {
  if (format === LINES_FORMAT && records.every(hasNoFields))
    return encodeLinesFrame(kind, seq, receivedAtMs, records, allocate)
  let size = BODY_FIXED_BYTES
  let fields: (string | undefined)[] | undefined
  for (let i = 0; i < records.length; i++) {
    const r = records[i]!
    size += RECORD_FIXED_BYTES + r.payload.length
    if (r.id !== undefined) {
      const idLength = idBytes(r.id)
      size += idLength
    }
    if (r.fields) {
      fields ??= new Array<string | undefined>(records.length)
      const json = JSON.stringify(r.fields)
      fields[i] = json
      size += Buffer.byteLength(json)
    }
  }
  const frame = allocate(FRAME_HEADER_BYTES + size)
  let o = FRAME_HEADER_BYTES
  writeFixed(frame, RECORDS_FORMAT, kind, seq, receivedAtMs, records.length)
  o += BODY_FIXED_BYTES
  for (let i = 0; i < records.length; i++) {
    const r = records[i]!
    const payload = r.payload
    writeU32(frame, o, payload.length)
    frame.set(payload, o + 4)
    o += 4 + payload.length
    if (r.id !== undefined) {
      const idLength = r.id === '' ? 0 : frame.write(r.id, o + 2, 'utf8')
      writeU16(frame, o, idLength)
      o += 2 + idLength
    } else {
      writeU16(frame, o, NO_ID)
      o += 2
    }
    const f = fields?.[i]
    if (f !== undefined) {
      const fieldsLength = frame.write(f, o + 4, 'utf8')
      writeU32(frame, o, fieldsLength)
      o += 4 + fieldsLength
    } else {
      writeU32(frame, o, 0)
      o += 4
    }
  }
  return sealed(frame, size)
}

/** An id's UTF-8 length; a u16 holds it, 0xffff meaning "no id". */
function idBytes(id: string): number {
  const length = Buffer.byteLength(id)
  if (length >= NO_ID) throw new RangeError('record id longer than 65534 bytes')
  return length
}

const hasNoFields = (r: SinkRecord): boolean => r.fields === undefined

/** A lines frame (version 2): the payload lengths, the ids, then the records as NDJSON lines. */
function encodeLinesFrame(
  kind: FrameKind,
  seq: number,
  receivedAtMs: number,
  records: readonly SinkRecord[],
  allocate: (length: number) => Buffer,
): Buffer {
  const count = records.length
  // The ids part: a u16 length per record and the texts, only when some record has an id.
  let idsLength = 0
  for (let i = 0; i < count; i++) {
    const id = records[i]!.id
    if (id === undefined) continue
    const idLength = idBytes(id)
    if (idsLength === 0) idsLength = 2 * count
    idsLength += idLength
  }
  const size = BODY_FIXED_BYTES + 4 * count + 4 + idsLength + linesLength(records)
  const frame = allocate(FRAME_HEADER_BYTES + size)
  writeFixed(frame, LINES_FORMAT, kind, seq, receivedAtMs, count)
  let o = FRAME_HEADER_BYTES + BODY_FIXED_BYTES
  for (let i = 0; i < count; i++, o += 4) writeU32(frame, o, records[i]!.payload.length)
  writeU32(frame, o, idsLength)
  o += 4
  if (idsLength > 0) {
    let text = o + 2 * count
    for (let i = 0; i < count; i++, o += 2) {
      const id = records[i]!.id
      if (id === undefined) {
        writeU16(frame, o, NO_ID)
        continue
      }
      const idLength = id === '' ? 0 : frame.write(id, text, 'utf8')
      writeU16(frame, o, idLength)
      text += idLength
    }
    o = text
  }
  copyLines(records, frame, o)
  return sealed(frame, size)
}

/** The body's fixed part. */
function writeFixed(
  frame: Buffer,
  version: number,
  kind: FrameKind,
  seq: number,
  receivedAtMs: number,
  count: number,
): void {
  const o = FRAME_HEADER_BYTES
  frame[o] = version
  frame[o + 1] = kind
  writeU64(frame, o + 2, seq)
  writeU64(frame, o + 10, receivedAtMs)
  frame.writeUInt32LE(count, o + 18)
}

/** The header: the body's length and CRC. */
function sealed(frame: Buffer, bodyLength: number): Buffer {
  frame.writeUInt32LE(bodyLength, 0)
  frame.writeUInt32LE(crc32(frame.subarray(FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + bodyLength)), 4)
  return frame
}

const allocUnsafe = (length: number): Buffer => Buffer.allocUnsafe(length)

/** Per record: payloadLength u32, idLength u16, fieldsLength u32. */
const RECORD_FIXED_BYTES = 10

function writeU32(buf: Buffer, o: number, v: number): void {
  buf[o] = v
  buf[o + 1] = v >>> 8
  buf[o + 2] = v >>> 16
  buf[o + 3] = v >>> 24
}

function writeU16(buf: Buffer, o: number, v: number): void {
  buf[o] = v
  buf[o + 1] = v >>> 8
}

function readU32(buf: Buffer, o: number): number {
  return (buf[o]! | (buf[o + 1]! << 8) | (buf[o + 2]! << 16)) + buf[o + 3]! * 0x1000000
}

/**
 * A u64 of a safe integer (seq, ms since the epoch) as two u32 halves: the same bytes as writeBigUInt64LE,
 * without a BigInt per frame (~1 % of one-record requests).
 */
function writeU64(buf: Buffer, o: number, v: number): void {
  writeU32(buf, o, v >>> 0)
  writeU32(buf, o + 4, Math.floor(v / 0x100000000))
}

function readU64(buf: Buffer, o: number): number {
  return readU32(buf, o) + readU32(buf, o + 4) * 0x100000000
}

function readU16(buf: Buffer, o: number): number {
  return buf[o]! | (buf[o + 1]! << 8)
}

export type FrameCheck =
  { ok: true; length: number } | { ok: false; reason: 'short' | 'crc' | 'version'; length?: number }

/** Checks the frame starting at `buf[offset]` without decoding its records. */
export function checkFrame(buf: Buffer, offset: number, end: number): FrameCheck {
  if (end - offset < FRAME_HEADER_BYTES) return { ok: false, reason: 'short' }
  const bodyLength = buf.readUInt32LE(offset)
  const length = FRAME_HEADER_BYTES + bodyLength
  if (bodyLength < BODY_FIXED_BYTES || end - offset < length) return { ok: false, reason: 'short', length }
  const body = buf.subarray(offset + FRAME_HEADER_BYTES, offset + length)
  if (crc32(body) !== buf.readUInt32LE(offset + 4)) return { ok: false, reason: 'crc', length }
  if (body[0] !== RECORDS_FORMAT && body[0] !== LINES_FORMAT) return { ok: false, reason: 'version', length }
  return { ok: true, length }
}

/** Frame seq of a checked frame. */
export function frameSeq(buf: Buffer, offset: number): number {
  return readU64(buf, offset + FRAME_HEADER_BYTES + 2)
}

export function frameKind(buf: Buffer, offset: number): FrameKind {
  return buf.readUInt8(offset + FRAME_HEADER_BYTES + 1)
}

export function frameCount(buf: Buffer, offset: number): number {
  return buf.readUInt32LE(offset + FRAME_HEADER_BYTES + 18)
}

/**
 * Decodes a checked frame. Payloads are views into `buf` (no copy): callers must not reuse `buf`. Records are
 * made when asked for (`recordAt`), not all at once: a lane that takes a frame's records piece by piece
 * then holds no record objects it has not reached yet, so those made for a piece die young with it instead
 * of being promoted while the lane waits on its sink (bench/RESULTS.md, "S3 drain memory").
 */
export function decodeFrame(buf: Buffer, offset: number, stream: string): Frame {
  let o = offset + FRAME_HEADER_BYTES
  const version = buf[o]
  const kind = buf.readUInt8(o + 1) as FrameKind
  const seq = readU64(buf, o + 2)
  const receivedAtMs = readU64(buf, o + 10)
  const count = buf.readUInt32LE(o + 18)
  o += BODY_FIXED_BYTES
  // Where each record starts in `buf` (a lines frame: where each payload starts): one pass over the lengths,
  // no objects.
  const starts = new Float64Array(count)
  if (version === LINES_FORMAT) {
    const lengths = o
    o += 4 * count
    const idsLength = readU32(buf, o)
    o += 4
    // Where each id's text starts (ids are read only when a record is made).
    let idStarts: Float64Array | undefined
    if (idsLength > 0) {
      idStarts = new Float64Array(count)
      let text = o + 2 * count
      for (let i = 0; i < count; i++) {
        idStarts[i] = text
        const idLength = readU16(buf, o + 2 * i)
        if (idLength !== NO_ID) text += idLength
      }
      o += idsLength
    }
    for (let i = 0; i < count; i++) {
      starts[i] = o
      o += readU32(buf, lengths + 4 * i) + 1
    }
    return new DecodedFrame(kind, seq, receivedAtMs, buf, stream, starts, lengths, idStarts)
  }
  for (let i = 0; i < count; i++) {
    starts[i] = o
    o += 4 + readU32(buf, o)
    const idLength = readU16(buf, o)
    o += 2 + (idLength !== NO_ID ? idLength : 0)
    o += 4 + readU32(buf, o)
  }
  return new DecodedFrame(kind, seq, receivedAtMs, buf, stream, starts, -1)
}

/** A frame read back from a log: its records are decoded one at a time when asked for. */
class DecodedFrame implements Frame {
  private all: SinkRecord[] | undefined

  constructor(
    readonly kind: FrameKind,
    readonly seq: number,
    readonly receivedAtMs: number,
    private readonly buf: Buffer,
    private readonly stream: string,
    private readonly starts: Float64Array,
    /** A lines frame: where its payload lengths are in `buf`; -1 for a records frame. */
    private readonly lengths: number,
    /** A lines frame with ids: where each id's text starts (its u16 length follows idsLength). */
    private readonly idStarts?: Float64Array,
  ) {}

  get count(): number {
    return this.starts.length
  }

  /** Every record (made once, on first use). */
  get records(): SinkRecord[] {
    if (!this.all) {
      const all = new Array<SinkRecord>(this.starts.length)
      for (let i = 0; i < all.length; i++) all[i] = this.record(i)
      this.all = all
    }
    return this.all
  }

  payloadLength(i: number): number {
    return readU32(this.buf, this.lengths >= 0 ? this.lengths + 4 * i : this.starts[i]!)
  }

  /** A lines frame: records from..to−1 as the lines they are in the frame; undefined for a records frame. */
  lines(from: number, to: number): Buffer | undefined {
    if (this.lengths < 0) return undefined
    const last = to - 1
    return this.buf.subarray(this.starts[from], this.starts[last]! + this.payloadLength(last) + 1)
  }

  /** Record `i`, a new object each call. */
  record(i: number): SinkRecord {
    const { buf, stream, receivedAtMs } = this
    let o = this.starts[i]!
    if (this.lengths >= 0) {
      const payload = buf.subarray(o, o + readU32(buf, this.lengths + 4 * i))
      if (this.idStarts === undefined) return { stream, payload, receivedAtMs }
      const idLengths = this.lengths + 4 * this.starts.length + 4
      const idLength = readU16(buf, idLengths + 2 * i)
      if (idLength === NO_ID) return { stream, payload, receivedAtMs }
      const at = this.idStarts[i]!
      return { stream, payload, receivedAtMs, id: buf.toString('utf8', at, at + idLength) }
    }
    const payloadLength = readU32(buf, o)
    const payload = buf.subarray(o + 4, o + 4 + payloadLength)
    o += 4 + payloadLength
    const idLength = readU16(buf, o)
    o += 2
    let id: string | undefined
    if (idLength !== NO_ID) {
      id = buf.toString('utf8', o, o + idLength)
      o += idLength
    }
    const fieldsLength = readU32(buf, o)
    o += 4
    if (fieldsLength > 0) {
      const fields = JSON.parse(buf.toString('utf8', o, o + fieldsLength)) as Record<string, string>
      return id !== undefined
        ? { stream, payload, receivedAtMs, id, fields }
        : { stream, payload, receivedAtMs, fields }
    }
    return id !== undefined ? { stream, payload, receivedAtMs, id } : { stream, payload, receivedAtMs }
  }
}

/** The payload length of record `i` of `frame`, without making the record. */
export function payloadLength(frame: Frame, i: number): number {
  return frame instanceof DecodedFrame ? frame.payloadLength(i) : frame.records[i]!.payload.length
}

/**
 * Records from..to−1 of `frame` as NDJSON lines (each payload followed by "\n"). Of a lines frame read back,
 * a view of the frame's own bytes, no record made and nothing copied (valid as long as the frame's buffer
 * is: see LogReader.recycle); of any other frame, a copy.
 */
export function frameLines(frame: Frame, from: number, to: number): Buffer {
  if (to <= from) return Buffer.alloc(0)
  const view = frame instanceof DecodedFrame ? frame.lines(from, to) : undefined
  if (view) return view
  const records = recordsIn(frame, from, to)
  const out = Buffer.allocUnsafe(linesLength(records))
  copyLines(records, out, 0)
  return out
}

/** Records from..to−1 of `frame`, added to `into` (made now, for a frame read back). */
export function recordsIn(frame: Frame, from: number, to: number, into: SinkRecord[] = []): SinkRecord[] {
  for (let i = from; i < to; i++) into.push(recordAt(frame, i))
  return into
}

/** How many records `frame` holds. */
export function recordCount(frame: Frame): number {
  return frame instanceof DecodedFrame ? frame.count : frame.records.length
}

/** Record `i` of `frame`; of a frame read back, a new object each call (decoded when asked for). */
export function recordAt(frame: Frame, i: number): SinkRecord {
  return frame instanceof DecodedFrame ? frame.record(i) : frame.records[i]!
}
