import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { copyLines, joinSmallLines, linesChunks, linesLength } from './lines.js'
import type { SinkRecord } from './record.js'

// Records laid out as a body would hold them: views into one buffer with a separator between them (a "\n" in
// NDJSON, but also "," of an array, "\r\n", nothing, or a stray byte), mixed with copies in buffers of their own.
const layout = fc.array(
  fc.record({
    text: fc.string({ unit: 'grapheme', maxLength: 12 }),
    separator: fc.constantFrom('\n', '\n', '\n', ',', '\r\n', '', 'x', '\n\n'),
    own: fc.boolean(),
  }),
  { maxLength: 40 },
)

function recordsOf(items: { text: string; separator: string; own: boolean }[]): SinkRecord[] {
  // A memory of its own (not Node's shared slab), so a view into it is told from a copy by its buffer.
  const text = Buffer.from(items.map((r) => r.text + r.separator).join(''))
  const body = Buffer.allocUnsafeSlow(text.length)
  text.copy(body)
  let at = 0
  return items.map(({ text, separator, own }) => {
    const length = Buffer.byteLength(text)
    const view = body.subarray(at, at + length)
    at += length + Buffer.byteLength(separator)
    return { stream: 's', payload: own ? Buffer.from(view) : view, receivedAtMs: 0 }
  })
}

/** Counts the memory copies made into it. */
class CountingBytes extends Uint8Array {
  copies = 0
  override set(array: ArrayLike<number>, offset?: number): void {
    this.copies++
    super.set(array, offset)
  }
}

describe('copyLines', () => {
  it('writes every payload followed by "\\n", whatever lies between them in memory', () => {
    fc.assert(
      fc.property(layout, fc.nat({ max: 5 }), (items, offset) => {
        const records = recordsOf(items)
        const expected = Buffer.concat(records.flatMap((r) => [r.payload, Buffer.from('\n')]))
        expect(linesLength(records)).toBe(expected.length)
        const out = Buffer.alloc(offset + expected.length + 3, 0xee)
        expect(copyLines(records, out, offset)).toBe(offset + expected.length)
        expect(out.subarray(offset, offset + expected.length).equals(expected)).toBe(true)
        // Nothing written outside its room.
        expect([...out.subarray(0, offset), ...out.subarray(offset + expected.length)]).toEqual(
          new Array<number>(offset + 3).fill(0xee),
        )
      }),
      { numRuns: 500 },
    )
  })

  it('copies lines of one NDJSON body in one piece (a run ends where the bytes between are not one "\\n")', () => {
    const body = Buffer.from('{"a":1}\n{"b":2}\n{"c":3},{"d":4}\n')
    const at = (start: number, end: number): SinkRecord => ({
      stream: 's',
      payload: body.subarray(start, end),
      receivedAtMs: 0,
    })
    const records = [at(0, 7), at(8, 15), at(16, 23), at(24, 31)]
    const out = new CountingBytes(linesLength(records))
    copyLines(records, out, 0)
    expect(Buffer.from(out).toString()).toBe('{"a":1}\n{"b":2}\n{"c":3}\n{"d":4}\n')
    expect(out.copies).toBe(2)
  })
})

describe('linesChunks', () => {
  it('the chunks are the lines; only runs ending in a "\\n" of their own memory, of minViewBytes or more, are views', () => {
    fc.assert(
      fc.property(layout, fc.integer({ min: 1, max: 60 }), (items, minViewBytes) => {
        const records = recordsOf(items)
        const expected = Buffer.concat(records.flatMap((r) => [r.payload, Buffer.from('\n')]))
        const chunks = linesChunks(records, minViewBytes)
        expect(Buffer.concat(chunks).equals(expected)).toBe(true)
        for (const chunk of chunks) {
          expect(chunk.length).toBeGreaterThan(0)
          // The body's own memory (the views of records not copied are into it).
          const body = records.find((_, k) => !items[k]!.own)?.payload.buffer
          if (body === undefined || chunk.buffer !== body) continue
          // A view: long enough, and it ends with the "\n" that follows its last payload in that memory.
          expect(chunk.length).toBeGreaterThanOrEqual(minViewBytes)
          expect(chunk[chunk.length - 1]).toBe(0x0a)
        }
      }),
      { numRuns: 500 },
    )
  })

  it('a spool lines frame read back is one view per frame, no copy', () => {
    const frame = Buffer.allocUnsafeSlow(24)
    frame.write('{"a":1}\n{"b":2}\n{"c":3}\n')
    const records = [0, 8, 16].map((at): SinkRecord => ({
      stream: 's',
      payload: frame.subarray(at, at + 7),
      receivedAtMs: 0,
    }))
    const chunks = linesChunks(records, 8)
    expect(chunks).toHaveLength(1)
    expect(chunks[0]!.buffer).toBe(frame.buffer)
    expect(chunks[0]!.toString()).toBe('{"a":1}\n{"b":2}\n{"c":3}\n')
    // Under minViewBytes: copied.
    expect(linesChunks(records, 100)[0]!.buffer).not.toBe(frame.buffer)
  })
})

describe('joinSmallLines', () => {
  it('the same bytes in order; buffers of minViewBytes or more passed on as they are, smaller ones joined', () => {
    fc.assert(
      fc.property(
        fc.array(fc.string({ maxLength: 40 }), { maxLength: 30 }),
        fc.integer({ min: 1, max: 30 }),
        (texts, minViewBytes) => {
          const lines: Buffer[] = texts.map((t) => Buffer.from(`${t}\n`))
          const out = joinSmallLines(lines, minViewBytes)
          expect(Buffer.concat(out).equals(Buffer.concat(lines))).toBe(true)
          const large = lines.filter((l) => l.length >= minViewBytes)
          // The large ones are the same buffers (no copy), in order…
          expect(out.filter((b) => large.includes(b))).toEqual(large)
          // … and between two of them, the small ones make one buffer at most.
          const joined = out.filter((b) => !large.includes(b))
          const groups = lines.reduce<{ n: number; inSmall: boolean }>(
            (g, l) =>
              l.length >= minViewBytes
                ? { n: g.n, inSmall: false }
                : { n: g.inSmall ? g.n : g.n + 1, inSmall: true },
            { n: 0, inSmall: false },
          ).n
          expect(joined.length).toBe(groups)
        },
      ),
      { numRuns: 500 },
    )
  })
})
