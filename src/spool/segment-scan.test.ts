import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { afterAll, describe, expect, it } from 'vitest'
import { checkFrame, encodeFrame, frameCount, frameKind, frameSeq, FrameKind } from './format.js'
import { SegmentScanner, spareScanWindows } from './segment-scan.js'

const dir = mkdtempSync(join(tmpdir(), 'sg-scan-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

type Step =
  { ok: true; length: number; seq: number; kind: FrameKind; count: number } | { ok: false; length?: number }

/** The rule recovery applied before the scanner, over the whole file in memory: what the scanner must match. */
function wholeFile(buf: Buffer, offset: number): Step {
  const check = checkFrame(buf, offset, buf.length)
  if (!check.ok) return check.length === undefined ? { ok: false } : { ok: false, length: check.length }
  return {
    ok: true,
    length: check.length,
    seq: frameSeq(buf, offset),
    kind: frameKind(buf, offset),
    count: frameCount(buf, offset),
  }
}

async function scanned(scan: SegmentScanner, offset: number): Promise<Step> {
  const step = await scan.check(offset)
  if (!step.ok) return step.length === undefined ? { ok: false } : { ok: false, length: step.length }
  return { ok: true, length: step.length, ...step.frame }
}

/** Frames of `sizes[i]` records each with payloads of `bytes` bytes, back to back as in a segment. */
function segment(frames: { records: number; bytes: number }[]): Buffer {
  return Buffer.concat(
    frames.map((f, i) =>
      encodeFrame(
        i % 3 === 2 ? FrameKind.DeadLetters : FrameKind.Records,
        i + 1,
        1_700_000_000_000 + i,
        Array.from({ length: f.records }, (_, r) => ({
          stream: 's',
          payload: Buffer.alloc(f.bytes, 97 + ((i + r) % 26)),
          receivedAtMs: 1_700_000_000_000 + i,
          ...(r % 2 === 0 ? { id: `id-${i}-${r}` } : {}),
        })),
      ),
    ),
  )
}

let files = 0
function file(bytes: Buffer): string {
  const path = join(dir, `${++files}.seg`)
  writeFileSync(path, bytes)
  return path
}

describe('SegmentScanner', () => {
  it('reads frames larger than its window and frames that straddle two windows', async () => {
    const bytes = segment([
      { records: 3, bytes: 10 },
      { records: 2, bytes: 300 }, // larger than the 64-byte window
      { records: 1, bytes: 5 },
      { records: 4, bytes: 20 },
    ])
    const scan = await SegmentScanner.open(file(bytes), 64)
    const seen: number[] = []
    let offset = 0
    try {
      while (offset < scan.size) {
        const step = await scan.check(offset)
        expect(step.ok).toBe(true)
        if (!step.ok) break
        seen.push(step.frame.seq, step.frame.count)
        offset += step.length
      }
    } finally {
      await scan.close()
    }
    expect(seen).toEqual([1, 3, 2, 2, 3, 1, 4, 4])
    expect(offset).toBe(bytes.length)
  })

  it('hands its window to the next scanner once closed, and never one smaller than a frame needs', async () => {
    const file = join(dir, 'windows.seg')
    const bytes = segment([
      { records: 3, bytes: 100 },
      { records: 2, bytes: 2_000 },
    ])
    writeFileSync(file, bytes)
    const first = await SegmentScanner.open(file, 1_024)
    expect((await scanned(first, 0)).ok).toBe(true)
    const held = spareScanWindows()
    await first.close()
    expect(spareScanWindows()).toBe(held + 1)
    const second = await SegmentScanner.open(file, 1_024)
    expect(spareScanWindows()).toBe(held)
    // The second scanner reads through the first one's window and still checks every frame as a whole
    // file would, the large second frame included.
    let offset = 0
    while (offset < bytes.length) {
      const step = await scanned(second, offset)
      expect(step).toEqual(wholeFile(bytes, offset))
      offset += step.length!
    }
    await second.close()
  })

  it('never reads a length that runs past the end of the file (a torn tail or garbage)', async () => {
    const bytes = segment([{ records: 1, bytes: 10 }])
    bytes.writeUInt32LE(0xfffffff0, 0) // a garbage length of ~4 GiB
    const scan = await SegmentScanner.open(file(bytes), 16)
    try {
      expect(await scan.check(0)).toEqual({ ok: false, length: 8 + 0xfffffff0 })
      expect(await scan.check(bytes.length - 3)).toEqual({ ok: false })
    } finally {
      await scan.close()
    }
  })

  it('checks every offset as the whole-file check does, for any window, cut and damaged byte', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({ records: fc.integer({ min: 0, max: 5 }), bytes: fc.integer({ min: 0, max: 120 }) }),
          {
            minLength: 1,
            maxLength: 6,
          },
        ),
        fc.integer({ min: 8, max: 400 }),
        fc.option(fc.nat(), { nil: undefined }),
        fc.option(fc.record({ at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }), { nil: undefined }),
        async (frames, window, cut, damage) => {
          let bytes = segment(frames)
          if (cut !== undefined) bytes = bytes.subarray(0, cut % (bytes.length + 1))
          if (damage !== undefined && bytes.length > 0) bytes[damage.at % bytes.length]! ^= damage.xor
          const path = file(bytes)
          const whole = readFileSync(path)
          const scan = await SegmentScanner.open(path, window)
          try {
            // Every offset, in an order that moves the window back and forth.
            for (let offset = 0; offset <= whole.length; offset += 1 + (offset % 7))
              expect(await scanned(scan, offset)).toEqual(wholeFile(whole, offset))
            for (let offset = whole.length; offset >= 0; offset -= 5)
              expect(await scanned(scan, offset)).toEqual(wholeFile(whole, offset))
          } finally {
            await scan.close()
          }
        },
      ),
      { numRuns: 100 },
    )
  })
})
