import { crc32 } from 'node:zlib'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { SinkRecord } from '../records/record.js'
import {
  checkFrame,
  decodeFrame,
  encodeFrame,
  FRAME_HEADER_BYTES,
  FrameKind,
  frameCount,
  frameKind,
  frameLines,
  frameSeq,
  LINES_FORMAT,
  payloadLength,
  recordAt,
  recordCount,
  RECORDS_FORMAT,
} from './format.js'

// Both frame versions: what goes in comes out, byte for byte, whichever version was written, and a damaged
// body is caught by its CRC. Payloads are views into one body (as framed NDJSON records are) or copies.

const record: fc.Arbitrary<Item> = fc.record({
  text: fc.string({ unit: 'grapheme', maxLength: 20 }),
  separator: fc.constantFrom('\n', '\n', ',', '\r\n', ''),
  own: fc.boolean(),
  id: fc.option(fc.string({ maxLength: 8 }), { nil: undefined, freq: 6 }),
  fields: fc.option(
    fc.dictionary(fc.stringMatching(/^[a-z][a-z0-9]{0,3}$/), fc.string({ maxLength: 6 }), { maxKeys: 2 }),
    {
      nil: undefined,
      freq: 8,
    },
  ),
})

interface Item {
  text: string
  separator: string
  own: boolean
  id: string | undefined
  fields: Record<string, string> | undefined
}

function recordsOf(items: Item[]): SinkRecord[] {
  const body = Buffer.from(items.map((r) => r.text + r.separator).join(''))
  let at = 0
  return items.map(({ text, separator, own, id, fields }) => {
    const length = Buffer.byteLength(text)
    const view = body.subarray(at, at + length)
    at += length + Buffer.byteLength(separator)
    return {
      stream: 's',
      payload: own ? Buffer.from(view) : view,
      receivedAtMs: 7,
      ...(id !== undefined ? { id } : {}),
      ...(fields !== undefined ? { fields } : {}),
    }
  })
}

describe('spool frames', () => {
  it('round-trip byte for byte (ids too) in either version; a lines frame exactly when no record has fields', () => {
    fc.assert(
      fc.property(
        fc.array(record, { maxLength: 30 }),
        fc.constantFrom(RECORDS_FORMAT, LINES_FORMAT),
        fc.constantFrom(FrameKind.Records, FrameKind.DeadLetters),
        fc.nat({ max: 2 ** 40 }),
        fc.nat({ max: 7 }),
        (items, format, kind, seq, pad) => {
          const records = recordsOf(items)
          const frame = encodeFrame(kind, seq, 7, records, undefined, format)
          const lines = records.every((r) => r.fields === undefined)
          expect(frame[FRAME_HEADER_BYTES]).toBe(
            format === LINES_FORMAT && lines ? LINES_FORMAT : RECORDS_FORMAT,
          )
          // Read back from the middle of a larger buffer, as a reader's buffer holds it.
          const buf = Buffer.concat([Buffer.alloc(pad, 1), frame, Buffer.alloc(3, 2)])
          expect(checkFrame(buf, pad, pad + frame.length)).toEqual({ ok: true, length: frame.length })
          expect([frameKind(buf, pad), frameSeq(buf, pad), frameCount(buf, pad)]).toEqual([
            kind,
            seq,
            records.length,
          ])
          const decoded = decodeFrame(buf, pad, 's')
          expect([decoded.kind, decoded.seq, decoded.receivedAtMs, recordCount(decoded)]).toEqual([
            kind,
            seq,
            7,
            records.length,
          ])
          const got = records.map((_, i) => recordAt(decoded, i))
          expect(got).toEqual(records.map((r) => ({ ...r, payload: Buffer.from(r.payload) })))
          expect(decoded.records).toEqual(got)
          // Without making records: each payload's length, and any run of records as NDJSON lines — of a
          // lines frame, a view of the frame's own bytes.
          expect(records.map((_, i) => payloadLength(decoded, i))).toEqual(
            records.map((r) => r.payload.length),
          )
          for (let from = 0; from <= records.length; from++)
            for (let to = from; to <= records.length; to++) {
              const run = frameLines(decoded, from, to)
              const expected = records.slice(from, to).flatMap((r) => [r.payload, Buffer.from('\n')])
              expect(run.equals(Buffer.concat(expected))).toBe(true)
              const inFrame =
                run.buffer === buf.buffer &&
                run.byteOffset >= buf.byteOffset + pad &&
                run.byteOffset < buf.byteOffset + pad + frame.length
              if (to > from) expect(inFrame).toBe(buf[pad + FRAME_HEADER_BYTES] === LINES_FORMAT)
            }
        },
      ),
      { numRuns: 400 },
    )
  })

  it('a lines frame ends with the records as NDJSON lines; a flipped byte fails the CRC', () => {
    fc.assert(
      fc.property(fc.array(record, { minLength: 1, maxLength: 20 }), fc.nat(), (items, at) => {
        const records = recordsOf(items.map((r) => ({ ...r, fields: undefined })))
        const frame = encodeFrame(FrameKind.Records, 1, 7, records)
        const lines = Buffer.concat(records.flatMap((r) => [r.payload, Buffer.from('\n')]))
        expect(frame.subarray(frame.length - lines.length).equals(lines)).toBe(true)
        const flipped = Buffer.from(frame)
        flipped[FRAME_HEADER_BYTES + (at % (frame.length - FRAME_HEADER_BYTES))]! ^= 0x20
        expect(checkFrame(flipped, 0, flipped.length)).toMatchObject({ ok: false, reason: 'crc' })
      }),
      { numRuns: 300 },
    )
  })

  it('seq and receivedAtMs are u64 little-endian, as earlier versions wrote and read them', () => {
    fc.assert(
      fc.property(fc.nat({ max: Number.MAX_SAFE_INTEGER }), fc.nat({ max: 2 ** 45 }), (seq, receivedAtMs) => {
        const frame = encodeFrame(FrameKind.Records, seq, receivedAtMs, recordsOf([]))
        expect(frame.readBigUInt64LE(FRAME_HEADER_BYTES + 2)).toBe(BigInt(seq))
        expect(frame.readBigUInt64LE(FRAME_HEADER_BYTES + 10)).toBe(BigInt(receivedAtMs))
        expect(frameSeq(frame, 0)).toBe(seq)
        expect(decodeFrame(frame, 0, 's')).toMatchObject({ seq, receivedAtMs })
      }),
      { numRuns: 300 },
    )
  })

  it('a frame of an unknown version is refused, not decoded', () => {
    const frame = encodeFrame(FrameKind.Records, 1, 7, recordsOf([]))
    frame[FRAME_HEADER_BYTES] = 3
    frame.writeUInt32LE(crc32(frame.subarray(FRAME_HEADER_BYTES)), 4)
    expect(checkFrame(frame, 0, frame.length)).toMatchObject({ ok: false, reason: 'version' })
  })
})
