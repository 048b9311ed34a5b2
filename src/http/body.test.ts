import fc from 'fast-check'
import { PassThrough } from 'node:stream'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
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

// readBody over a node stream (the ingest hot path) and over any async iterable (the hono route): the
// same answers — the body, 413 past the limit, 408 after idleMs without a piece.

function statusOf(err: unknown): number | undefined {
  return err instanceof ProblemError ? err.status : undefined
}

describe('readBody: the stall timeout', () => {
  beforeEach(() => {
    vi.useFakeTimers()
  })
  afterEach(() => {
    vi.useRealTimers()
  })

  it('a node stream: pieces that keep coming within idleMs are read whole', async () => {
    const stream = new PassThrough()
    const read = readBody(stream, 100, undefined, 1000)
    for (const piece of ['{"a":', '1}', '\n']) {
      await vi.advanceTimersByTimeAsync(900)
      stream.write(piece)
    }
    stream.end()
    expect((await read).toString()).toBe('{"a":1}\n')
  })

  it('a node stream: 408 once idleMs pass without a piece; the stream is not destroyed', async () => {
    const stream = new PassThrough()
    let settled = false
    const read = readBody(stream, 100, undefined, 1000).catch((err: unknown) => err)
    void read.finally(() => (settled = true))
    stream.write('{"a":')
    await vi.advanceTimersByTimeAsync(999)
    stream.write('1')
    await vi.advanceTimersByTimeAsync(999)
    expect(settled).toBe(false) // the second piece pushed the timer back
    await vi.advanceTimersByTimeAsync(1)
    const err = await read
    expect(statusOf(err)).toBe(408)
    expect((err as ProblemError).headers).toEqual({ connection: 'close' })
    expect(stream.destroyed).toBe(false)
  })

  it('a node stream: 413 past the limit; a stream cut short is a premature close', async () => {
    const big = new PassThrough()
    const tooBig = readBody(big, 10, undefined, 1000).catch((err: unknown) => err)
    big.write('0123456789')
    big.write('x')
    expect(statusOf(await tooBig)).toBe(413)
    const cut = new PassThrough()
    const aborted = readBody(cut, 10, undefined, 1000).catch((err: unknown) => err)
    cut.write('01')
    cut.destroy()
    // errorAnswer (src/http/ingest.ts) answers this 400 "aborted".
    expect(await aborted).toMatchObject({ code: 'ERR_STREAM_PREMATURE_CLOSE' })
  })

  it('an async iterable: the same body, and 408 when a piece does not come', async () => {
    async function* pieces(stallAfter: number): AsyncIterable<Uint8Array> {
      yield Buffer.from('{"a":')
      yield new TextEncoder().encode('1}')
      await new Promise((r) => setTimeout(r, stallAfter))
      yield Buffer.from('\n')
    }
    const read = readBody(pieces(500), 100, undefined, 1000)
    await vi.advanceTimersByTimeAsync(500)
    expect((await read).toString()).toBe('{"a":1}\n')
    const stalled = readBody(pieces(5000), 100, undefined, 1000).catch((err: unknown) => err)
    await vi.advanceTimersByTimeAsync(1000)
    expect(statusOf(await stalled)).toBe(408)
  })
})

describe('readBody: a node stream read through its events', () => {
  it('returns the same bytes as the chunks written, with and without the declared length', async () => {
    for (const declared of [undefined, 11, 8, 20]) {
      const stream = new PassThrough()
      const read = readBody(stream, 100, declared)
      for (const piece of ['{"a":', '1,', '"b":2}']) stream.write(piece)
      stream.end()
      expect((await read).toString()).toBe('{"a":1,"b":2}')
    }
  })

  it("rejects with the stream's error, and leaves the stream unread and paused on a 413", async () => {
    const failing = new PassThrough()
    const read = readBody(failing, 100).catch((err: unknown) => err)
    failing.write('{')
    const boom = Object.assign(new Error('aborted'), { code: 'ECONNRESET' })
    failing.destroy(boom)
    expect(await read).toBe(boom)
    const big = new PassThrough()
    const tooBig = readBody(big, 4).catch((err: unknown) => err)
    big.write('01234')
    expect(statusOf(await tooBig)).toBe(413)
    expect(big.listenerCount('data')).toBe(0)
    expect(big.isPaused()).toBe(true)
    expect(big.destroyed).toBe(false)
  })
})
