import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { afterAll, describe, expect, it } from 'vitest'
import type { FileSinkConfig } from '../../config/types.js'
import type { SinkRecord } from '../../records/record.js'
import { createLogger } from '../../telemetry/logger.js'
import { createFileSink } from './sink.js'

const root = mkdtempSync(join(tmpdir(), 'sg-file-sink-'))
afterAll(() => rmSync(root, { recursive: true, force: true }))

const config = (dir: string, extra: Partial<FileSinkConfig> = {}): FileSinkConfig => ({
  type: 'file',
  dir,
  prefix: 'out',
  maxFileBytes: 1 << 30,
  maxFileAgeMs: 3_600_000,
  fsync: false,
  retry: { initialMs: 1, maxMs: 1, maxAttempts: 0 },
  ...extra,
})

/** Every line of every file the sink wrote, in file order. */
const lines = (dir: string): string[] =>
  readdirSync(dir)
    .sort()
    .flatMap((f) => readFileSync(join(dir, f), 'utf8').split('\n').slice(0, -1))

/** Where the line that holds the byte at part/parts of `text` ends (after its "\n"). */
function linesEnd(text: Buffer, part: number, parts: number): number {
  return text.indexOf(0x0a, Math.floor((text.length * part) / parts)) + 1 || text.length
}

describe('file sink', () => {
  it('writes every batch intact and in order: small and megabyte batches, several writes at once', async () => {
    // Batches from 1 record to ~1.3 MB, several in flight at once (lanes share one file sink and its group
    // write): every line once, unchanged, in the order the writes were made.
    let run = 0
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({ records: fc.integer({ min: 1, max: 600 }), bytes: fc.integer({ min: 1, max: 2_200 }) }),
          { minLength: 1, maxLength: 12 },
        ),
        fc.integer({ min: 1, max: 4 }),
        // Which batches go as lines (Sink.writeLines, the lane's path), each in a random number of pieces.
        fc.array(fc.nat({ max: 3 }), { minLength: 12, maxLength: 12 }),
        async (batches, inFlight, asLines) => {
          const dir = join(root, `p${run++}`)
          const sink = createFileSink('out', config(dir), { logger: createLogger('silent') })
          const expected: string[] = []
          const made = batches.map((b, n) =>
            Array.from({ length: b.records }, (_, i): SinkRecord => {
              const text = `${n}-${i}-`.padEnd(b.bytes, String.fromCharCode(97 + ((n + i) % 26)))
              expected.push(text)
              return { stream: 's', payload: Buffer.from(text), receivedAtMs: 0 }
            }),
          )
          for (let i = 0; i < made.length; i += inFlight)
            await Promise.all(
              made.slice(i, i + inFlight).map(async (b, k) => {
                const pieces = asLines[i + k]!
                if (pieces === 0) return sink.write(b, AbortSignal.timeout(5_000))
                const text = Buffer.from(b.map((r) => `${r.payload.toString()}\n`).join(''))
                const cuts = [
                  0,
                  ...Array.from({ length: pieces - 1 }, (_, c) => linesEnd(text, c + 1, pieces)),
                  text.length,
                ]
                const lines = cuts
                  .slice(1)
                  .map((end, c) => text.subarray(cuts[c], end))
                  .filter((l) => l.length > 0)
                return sink.writeLines!(lines, b.length, AbortSignal.timeout(5_000))
              }),
            )
          await sink.close()
          expect(lines(dir)).toEqual(expected)
        },
      ),
      { numRuns: 40 },
    )
  }, 60_000)
})
