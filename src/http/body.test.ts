import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { ProblemError } from '../errors.js'
import { readBody } from './body.js'

async function* chunksOf(pieces: readonly Uint8Array[]): AsyncGenerator<Uint8Array> {
  for (const piece of pieces) {
    await Promise.resolve()
    yield piece
  }
}

describe('readBody', () => {
  it('with Content-Length, copies the body into one buffer of that size as it arrives', async () => {
    const body = Buffer.alloc(1024 * 1024, 'x')
    const pieces = Array.from({ length: 16 }, (_, i) => body.subarray(i * 65536, (i + 1) * 65536))
    const out = await readBody(chunksOf(pieces), 2 * body.length, body.length)
    expect(out.equals(body)).toBe(true)
    // Its own allocation, exactly the body (no chunk list concatenated into a second copy).
    expect(out.buffer.byteLength).toBe(body.length)
    expect(pieces.some((p) => p.buffer === out.buffer)).toBe(false)
  })

  it('returns the same bytes whatever the chunking and the declared length (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.uint8Array({ maxLength: 50 }), { maxLength: 8 }),
        fc.option(fc.integer({ min: -5, max: 5 }), { nil: undefined }),
        async (pieces, skew) => {
          const whole = Buffer.concat(pieces)
          const declared = skew === undefined ? undefined : Math.max(0, whole.length + skew)
          const out = await readBody(chunksOf(pieces), 1000, declared)
          expect(Buffer.compare(out, whole)).toBe(0)
        },
      ),
    )
  })

  it('413 once the streamed body passes the limit, declared or not', async () => {
    const pieces = [Buffer.alloc(60), Buffer.alloc(60)]
    for (const declared of [undefined, 100, 120]) {
      const err = await readBody(chunksOf(pieces), 100, declared).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(ProblemError)
      expect((err as ProblemError).status).toBe(413)
    }
  })
})
