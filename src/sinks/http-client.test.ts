import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { permanentError, SinkError, transientError } from '../errors.js'
import {
  answerDetail,
  HttpClient,
  mapLimit,
  MAX_RETRY_AFTER_MS,
  parseRetryAfter,
  statusError,
  writeOutcome,
  type HttpAnswer,
} from './http-client.js'

const answer = (status: number, body = '', headers: HttpAnswer['headers'] = {}): HttpAnswer => ({
  status,
  headers,
  body: Buffer.from(body),
})

describe('parseRetryAfter', () => {
  const now = Date.parse('2026-11-03T10:00:00Z')
  it.each([
    ['120', 120_000],
    [' 0 ', 0],
    ['Tue, 03 Nov 2026 10:00:10 GMT', 10_000],
    ['Tue, 03 Nov 2026 09:59:00 GMT', 0],
    ['99999999', MAX_RETRY_AFTER_MS],
    ['Wed, 03 Nov 2027 10:00:00 GMT', MAX_RETRY_AFTER_MS],
  ])('%s → %d ms', (value, ms) => {
    expect(parseRetryAfter(value, now)).toBe(ms)
  })
  it('reads the first of repeated headers, and ignores what it cannot read', () => {
    expect(parseRetryAfter(['5', '9'], now)).toBe(5000)
    expect(parseRetryAfter('soon', now)).toBeUndefined()
    expect(parseRetryAfter('-3', now)).toBeUndefined()
    expect(parseRetryAfter(undefined, now)).toBeUndefined()
    expect(parseRetryAfter('', now)).toBeUndefined()
  })
})

describe('statusError', () => {
  it.each([
    [408, true],
    [429, true],
    [500, true],
    [502, true],
    [503, true],
    [400, false],
    [401, false],
    [404, false],
    [409, false],
    [422, false],
    [301, false],
  ])('%d retriable: %s', (status, retriable) => {
    const err = statusError(answer(status), 'x', 'POST http://h/p')
    expect(err).toMatchObject({ retriable, reason: `x-${status}` })
    expect(err.message).toBe(`POST http://h/p answered ${status}`)
  })
  it('carries Retry-After and the server’s explanation', () => {
    const err = statusError(
      answer(503, '{"type":"t","status":"503","title":"Busy","report":{"message":"inlet overloaded"}}', {
        'retry-after': '4',
      }),
      'adobe',
      'inlet',
    )
    expect(err).toMatchObject({ retriable: true, retryAfterMs: 4000 })
    expect(err.message).toBe('inlet answered 503: inlet overloaded')
  })
  it('answerDetail prefers message/detail, falls back to text, and cuts long text', () => {
    expect(answerDetail(Buffer.from('{"detail":"d","title":"t"}'))).toBe('d')
    expect(answerDetail(Buffer.from('{"title":"only title"}'))).toBe('only title')
    expect(answerDetail(Buffer.from('<html>\n  bad   gateway</html>'))).toBe('<html> bad gateway</html>')
    expect(answerDetail(Buffer.from('x'.repeat(1000)))).toHaveLength(301)
    expect(answerDetail(Buffer.alloc(0))).toBe('')
  })
})

describe('mapLimit', () => {
  it('keeps at most `limit` calls in flight and returns results in order', async () => {
    let inFlight = 0
    let most = 0
    const out = await mapLimit([5, 1, 4, 2, 3, 1, 2], 3, async (ms, i) => {
      inFlight++
      most = Math.max(most, inFlight)
      await new Promise((r) => setTimeout(r, ms * 5))
      inFlight--
      return i * 10
    })
    expect(out).toEqual([0, 10, 20, 30, 40, 50, 60])
    expect(most).toBe(3)
  })
  it('starts nothing new after a failure, waits for the running calls, throws the first error', async () => {
    const started: number[] = []
    let finished = 0
    const run = mapLimit([0, 1, 2, 3, 4, 5], 2, async (i) => {
      started.push(i)
      // Item 1 fails while item 0 is still running: item 0 finishes, nothing else starts.
      await new Promise((r) => setTimeout(r, i === 1 ? 5 : 30))
      finished++
      if (i === 1) throw new Error('boom')
    })
    await expect(run).rejects.toThrow('boom')
    expect(started).toEqual([0, 1])
    expect(finished).toBe(2)
  })
})

describe('writeOutcome', () => {
  const t1 = transientError('a', 'x-503', undefined, 1000)
  const t2 = transientError('b', 'x-500', undefined, 5000)
  const p = permanentError('c', 'x-400')
  it('reports failures by index when some records got through', () => {
    expect(
      writeOutcome(
        [
          { index: 2, error: p },
          { index: 0, error: t1 },
        ],
        3,
      ),
    ).toEqual({
      failed: [
        { index: 0, error: t1 },
        { index: 2, error: p },
      ],
    })
  })
  it('rejects once when every record failed transiently (the longest Retry-After) or for one reason', () => {
    expect(() =>
      writeOutcome(
        [
          { index: 0, error: t1 },
          { index: 1, error: t2 },
        ],
        2,
      ),
    ).toThrow(t2)
    expect(() =>
      writeOutcome(
        [
          { index: 0, error: p },
          { index: 1, error: p },
        ],
        2,
      ),
    ).toThrow(p)
  })
  it('keeps mixed permanent/transient failures of a whole batch per index', () => {
    expect(
      writeOutcome(
        [
          { index: 0, error: p },
          { index: 1, error: t1 },
        ],
        2,
      ).failed,
    ).toHaveLength(2)
    expect(writeOutcome([], 2).failed).toEqual([])
  })
})

describe('HttpClient', () => {
  let server: Server
  let base: string
  beforeAll(async () => {
    server = createServer((req, res) => {
      if (req.url?.startsWith('/slow')) setTimeout(() => res.end('late'), 2_000)
      else res.end(`ok ${req.method}`)
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  })
  afterAll(async () => {
    server.closeAllConnections()
    await new Promise((r) => server.close(r))
  })

  it('answers with status and body', async () => {
    const client = new HttpClient({ timeoutMs: 1000 })
    const got = await client.request({
      url: new URL(`${base}/x`),
      method: 'POST',
      signal: AbortSignal.timeout(5000),
    })
    expect(got.status).toBe(200)
    expect(got.body.toString()).toBe('ok POST')
    await client.close()
  })

  it('a slow answer is a transient timeout; the caller’s abort is rethrown as is', async () => {
    const client = new HttpClient({ timeoutMs: 200 })
    const url = new URL(`${base}/slow?secret=abc`)
    const err = await client
      .request({ url, method: 'GET', signal: AbortSignal.timeout(5000) })
      .catch((e: unknown) => e)
    expect(err).toBeInstanceOf(SinkError)
    expect(err).toMatchObject({ retriable: true, reason: 'timeout' })
    expect((err as Error).message).not.toContain('secret')
    const controller = new AbortController()
    const reason = new Error('stop now')
    setTimeout(() => controller.abort(reason), 50)
    await expect(
      client.request({ url, method: 'GET', signal: controller.signal, timeoutMs: 5000 }),
    ).rejects.toBe(reason)
    await client.close()
  })

  it('a refused connection is a transient network error', async () => {
    const client = new HttpClient({ timeoutMs: 1000 })
    const err = await client
      .request({ url: new URL('http://127.0.0.1:1/'), method: 'GET', signal: AbortSignal.timeout(5000) })
      .catch((e: unknown) => e)
    expect(err).toMatchObject({ retriable: true, reason: 'network' })
    await client.close()
  })
})
