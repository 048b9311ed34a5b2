import { isUtf8 } from 'node:buffer'
import { Readable } from 'node:stream'
import { promisify } from 'node:util'
import * as zlib from 'node:zlib'
import { bodyPool } from '../buffer-pool.js'
import { problem, ProblemError } from '../errors.js'

// Reading and decoding a request body within a byte limit that holds both on the wire and after
// decompression: a 10 KB gzip bomb that inflates to gigabytes stops at the limit (zlib's maxOutputLength),
// never exhausting memory.

const gunzip = promisify(zlib.gunzip)
const inflate = promisify(zlib.inflate)
const inflateRaw = promisify(zlib.inflateRaw)
const brotli = promisify(zlib.brotliDecompress)

export function tooLarge(limit: number, what: string): ProblemError {
  return problem('body-too-large', `${what} is larger than the limit of ${limit} bytes`, {
    headers: { connection: 'close' },
    extra: { limitBytes: limit },
  })
}

/** 408 for a body that stalled: the connection is closed (the rest of the body may still come). */
export function bodyTimedOut(idleMs: number): ProblemError {
  return problem(
    'body-timeout',
    `the request body stalled: nothing arrived for ${idleMs} ms (server.bodyTimeoutMs)`,
    { headers: { connection: 'close' } },
  )
}

/**
 * Collects a body stream, failing with 413 as soon as it passes `limit` bytes, and with 408 when `idleMs`
 * (> 0) pass without a new piece (a client that stalls mid-body holds a connection and a request slot).
 * On either failure the stream is left as it is, not destroyed: the caller answers and closes the
 * connection (`Connection: close`), which a destroyed request would not let it do. With the declared
 * Content-Length (`expected`, already checked against the limit) the body is copied into one buffer of that
 * size as it arrives, so a large bulk (emnify: 10,000 records, ~15 MB) is held once, not as a chunk list
 * plus its concatenation. That buffer comes from `bodyPool` (src/buffer-pool.ts): the caller may give it
 * back once nothing holds a view into the body any more, or leave it to the collector.
 */
export function readBody(
  body: AsyncIterable<Uint8Array>,
  limit: number,
  expected?: number,
  idleMs = 0,
): Promise<Buffer> {
  if (idleMs <= 0) return collect(body, limit, expected)
  // One timer per request, pushed back (refresh) at every piece. When it fires the answer is a 408 at
  // once; the read it interrupts stays pending until the connection closes, and is then ignored. (Racing
  // every read against the timer instead costs a promise per piece; measured, this is the cheapest.)
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(bodyTimedOut(idleMs)), idleMs)
    collect(body, limit, expected, timer).then(
      (buf) => {
        clearTimeout(timer)
        resolve(buf)
      },
      (err: Error) => {
        clearTimeout(timer)
        reject(err)
      },
    )
  })
}

/** What a body is read into as it arrives: one buffer of the declared length, or a list of chunks. */
class BodyBuffer {
  private chunks: Buffer[] = []
  private into: Buffer | undefined
  total = 0

  constructor(
    private readonly limit: number,
    expected: number | undefined,
  ) {
    this.into =
      expected !== undefined && Number.isSafeInteger(expected) && expected > 0 && expected <= limit
        ? bodyPool.take(expected)
        : undefined
  }

  /** Adds a piece; the 413 to answer when the body passes the limit (the piece is then not added). */
  add(chunk: Uint8Array): ProblemError | undefined {
    const total = this.total
    if (total + chunk.length > this.limit) return tooLarge(this.limit, 'the request body')
    const into = this.into
    if (into && total + chunk.length <= into.length) into.set(chunk, total)
    else {
      if (into) this.chunks = [into.subarray(0, total)] // more than declared: keep collecting (never sent by node:http)
      this.into = undefined
      this.chunks.push(
        Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length),
      )
    }
    this.total = total + chunk.length
    return undefined
  }

  whole(): Buffer {
    const into = this.into
    if (into) return this.total === into.length ? into : into.subarray(0, this.total)
    return this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.total)
  }
}

function collect(
  body: AsyncIterable<Uint8Array>,
  limit: number,
  expected: number | undefined,
  timer?: NodeJS.Timeout,
): Promise<Buffer> {
  // A node stream still to be read (the ingest route's IncomingMessage) is read through its events: the
  // async iterator costs a promise and an iterator result per piece and its own stream-end watcher, which
  // on one-record requests was 3–4 % of the gateway's CPU (bench/RESULTS.md, one-record requests).
  if (body instanceof Readable && !body.readableEnded && !body.destroyed && body.readableEncoding === null)
    return collectEvents(body, limit, expected, timer)
  return collectIterable(body, limit, expected, timer)
}

/**
 * Reads a node stream through 'data'/'end'/'error'/'close'. On a 413 the listeners are removed and the
 * stream paused, not destroyed (the caller answers and closes the connection). A stream that closes before
 * its end rejects with ERR_STREAM_PREMATURE_CLOSE, as the iterator did.
 */
function collectEvents(
  stream: Readable,
  limit: number,
  expected: number | undefined,
  timer: NodeJS.Timeout | undefined,
): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const buffer = new BodyBuffer(limit, expected)
    const done = (): void => {
      stream.off('data', onData)
      stream.off('end', onEnd)
      stream.off('error', onError)
      stream.off('close', onClose)
    }
    const onData = (chunk: Buffer): void => {
      timer?.refresh()
      const refused = buffer.add(chunk)
      if (refused) {
        done()
        stream.pause()
        reject(refused)
      }
    }
    const onEnd = (): void => {
      done()
      resolve(buffer.whole())
    }
    const onError = (err: Error): void => {
      done()
      reject(err)
    }
    const onClose = (): void => {
      done()
      reject(prematureClose())
    }
    stream.on('data', onData)
    stream.on('end', onEnd)
    stream.on('error', onError)
    stream.on('close', onClose)
  })
}

function prematureClose(): Error {
  return Object.assign(new Error('Premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' })
}

/**
 * Reads piece by piece. Not `for await`: leaving that loop on a 413 calls the iterator's `return()`, which
 * destroys the request and its socket before the 413 can be sent.
 */
async function collectIterable(
  body: AsyncIterable<Uint8Array>,
  limit: number,
  expected: number | undefined,
  timer?: NodeJS.Timeout,
): Promise<Buffer> {
  const buffer = new BodyBuffer(limit, expected)
  const pieces = body[Symbol.asyncIterator]()
  for (;;) {
    const next = await pieces.next()
    if (next.done === true) break
    timer?.refresh()
    const refused = buffer.add(next.value)
    if (refused) throw refused
  }
  return buffer.whole()
}

/** Undoes Content-Encoding (gzip, x-gzip, deflate, br, identity; a list is undone right to left). */
export async function decodeBody(
  raw: Buffer,
  contentEncoding: string | undefined,
  limit: number,
): Promise<Buffer> {
  if (!contentEncoding) return raw
  const codings = contentEncoding
    .split(',')
    .map((c) => c.trim().toLowerCase())
    .filter((c) => c !== '' && c !== 'identity')
  let body = raw
  for (const coding of codings.reverse()) {
    const options = { maxOutputLength: limit }
    try {
      switch (coding) {
        case 'gzip':
        case 'x-gzip':
          body = await gunzip(body, options)
          break
        case 'deflate':
          // RFC 9110 deflate is zlib-wrapped; some clients send raw deflate. Try both.
          body = await inflate(body, options).catch((err: NodeJS.ErrnoException) => {
            if (err.code === 'ERR_BUFFER_TOO_LARGE') throw err
            return inflateRaw(body, options)
          })
          break
        case 'br':
          body = await brotli(body, options)
          break
        default:
          throw problem(
            'unsupported-encoding',
            `Content-Encoding "${coding}" is not supported; use gzip, deflate, br or identity`,
            { headers: { 'accept-encoding': 'gzip, deflate, br' } },
          )
      }
    } catch (err) {
      if (err instanceof ProblemError) throw err
      if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE' || err instanceof RangeError)
        throw tooLarge(limit, 'the decompressed body')
      throw problem('corrupt-encoding', `the ${coding} body cannot be decoded: ${(err as Error).message}`)
    }
  }
  return body
}

/** Rejects invalid UTF-8 (400) and strips a UTF-8 byte order mark. */
export function checkText(body: Buffer): Buffer {
  if (!isUtf8(body)) throw problem('invalid-utf8', 'the body is not valid UTF-8 text')
  if (body.length >= 3 && body[0] === 0xef && body[1] === 0xbb && body[2] === 0xbf) return body.subarray(3)
  return body
}
