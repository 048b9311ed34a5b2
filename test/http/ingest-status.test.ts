import { createHmac } from 'node:crypto'
import { gzipSync, brotliCompressSync, deflateSync } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { fixture, readNdjsonLines, startGateway, waitFor, type TestGateway } from '../support/gateway.js'
import { send } from '../support/http.js'

// Every row of SPEC section 2's status table, over a real loopback socket, plus the bad inputs that must
// get their documented status without taking the process down.

const TOKEN = 'emnify-secret-token'
const json = { 'content-type': 'application/json' }
const auth = { ...json, 'x-emnify-token': TOKEN }

let gw: TestGateway
const out = (): string[] => readNdjsonLines(`${gw.dir}/out`)
/** Delivery is asynchronous (spool → lane → sink): poll until the line arrives. */
const delivered = (line: string): Promise<true> =>
  waitFor(() => out().includes(line), 10_000, `delivery of ${line.slice(0, 60)}`)

beforeAll(async () => {
  gw = await startGateway(
    {
      server: { maxBodyBytes: 64 * 1024 },
      sinks: {
        out: { type: 'file', dir: '{dir}/out' },
        strictOut: { type: 'file', dir: '{dir}/strict' },
        dl: { type: 'file', dir: '{dir}/dl' },
      },
      streams: {
        events: {
          source: 'emnify',
          recordType: 'event',
          method: ['POST', 'PUT'],
          auth: { headers: ['X-Emnify-Token:${EMNIFY_TOKEN}'] },
          deadLetter: 'dl',
          sinks: ['out'],
        },
        strict: { source: 'emnify', recordType: 'event', validation: 'reject', sinks: ['strictOut'] },
        lines: { source: 'ndjson', sinks: ['out'] },
        anyjson: { source: 'json', sinks: ['out'] },
        signed: {
          source: 'ndjson',
          auth: { hmac: { header: 'X-Signature', secret: 'k', prefix: 'sha256=' } },
          sinks: ['out'],
        },
        fenced: { source: 'ndjson', auth: { allowCidrs: ['10.0.0.0/8'] }, sinks: ['out'] },
        limited: { source: 'ndjson', rateLimit: { recordsPerSecond: 5 }, sinks: ['out'] },
        deepReject: { source: 'ndjson', maxJsonDepth: 4, validation: 'reject', sinks: ['out'] },
        deepDeadLetter: { source: 'ndjson', maxJsonDepth: 4, deadLetter: 'dl', sinks: ['out'] },
        deepOff: { source: 'ndjson', maxJsonDepth: 4, validation: 'off', deadLetter: 'dl', sinks: ['out'] },
        deepDrop: { source: 'ndjson', maxJsonDepth: 4, validation: 'drop', sinks: ['out'] },
      },
    },
    { EMNIFY_TOKEN: TOKEN },
  )
})

afterAll(async () => {
  await gw?.close()
})

const event = (id: number | string, extra = ''): string =>
  `{"id":${id},"timestamp":"2021-10-27T08:40:10.000Z","event_type":{"id":1,"description":"Update location"}${extra}}`

describe('ingest status contract', () => {
  it('200 with counts, and the record bytes forwarded exactly (64-bit id intact)', async () => {
    const body = `[${event('9007199254740993')} , ${event(2)}]`
    const res = await send(`${gw.url}/ingest/events`, { headers: auth, body })
    expect(res.status).toBe(200)
    expect(res.json()).toEqual({ accepted: 2, rejected: 0, filtered: 0, duplicates: 0 })
    await delivered(event('9007199254740993'))
    await delivered(event(2))
  })

  it('accepts a single object and the documented bulk sample', async () => {
    expect((await send(`${gw.url}/ingest/events`, { headers: auth, body: event(3) })).json()).toMatchObject({
      accepted: 1,
    })
    const bulk = await send(`${gw.url}/ingest/events`, {
      method: 'PUT',
      headers: auth,
      body: fixture('emnify/events-bulk.json'),
    })
    expect(bulk.json()).toEqual({ accepted: 3, rejected: 0, filtered: 0, duplicates: 0 })
  })

  it('404 for an unknown stream, as problem+json', async () => {
    const res = await send(`${gw.url}/ingest/nope`, { headers: auth, body: event(1) })
    expect(res.status).toBe(404)
    expect(res.headers['content-type']).toBe('application/problem+json')
    expect(res.json()).toMatchObject({
      status: 404,
      title: 'Unknown stream',
      type: expect.stringContaining('unknown-stream') as string,
    })
  })

  it('405 for a method the stream does not accept, with Allow', async () => {
    const res = await send(`${gw.url}/ingest/events`, { method: 'PATCH', headers: auth, body: event(1) })
    expect(res.status).toBe(405)
    expect(res.headers.allow).toBe('POST, PUT, GET, HEAD') // GET and HEAD: availability probes
    expect((await send(`${gw.url}/ingest/events`, { method: 'DELETE', headers: auth })).status).toBe(405)
  })

  it('401 for a missing or wrong header, naming the missing one but never echoing values', async () => {
    const missing = await send(`${gw.url}/ingest/events`, { headers: json, body: event(1) })
    expect(missing.status).toBe(401)
    expect(missing.json<{ detail: string }>().detail).toContain('X-Emnify-Token')
    const wrong = await send(`${gw.url}/ingest/events`, {
      headers: { ...json, 'x-emnify-token': 'emnify-secret-tokeX' },
      body: event(1),
    })
    expect(wrong.status).toBe(401)
    expect(wrong.text).not.toContain(TOKEN)
  })

  it('401 for a bad HMAC, 200 for a good one', async () => {
    const body = '{"a":1}\n'
    const sig = `sha256=${createHmac('sha256', 'k').update(body).digest('hex')}`
    expect((await send(`${gw.url}/ingest/signed`, { headers: { 'x-signature': sig }, body })).status).toBe(
      200,
    )
    expect(
      (await send(`${gw.url}/ingest/signed`, { headers: { 'x-signature': 'sha256=00' }, body })).status,
    ).toBe(401)
    expect((await send(`${gw.url}/ingest/signed`, { body })).status).toBe(401)
  })

  it('403 for a source address outside the allow-list', async () => {
    const res = await send(`${gw.url}/ingest/fenced`, { body: '{"a":1}' })
    expect(res.status).toBe(403)
  })

  it('413 on a declared Content-Length over the limit, on a streamed body over it, and on a gzip bomb', async () => {
    const big = Buffer.alloc(70 * 1024, 0x20)
    expect((await send(`${gw.url}/ingest/lines`, { body: big })).status).toBe(413)
    const chunked = await send(`${gw.url}/ingest/lines`, {
      body: [big.subarray(0, 40_000), big.subarray(40_000)],
    })
    expect(chunked.status).toBe(413)
    // 100 MB of spaces compress to ~100 KB... keep it smaller than the wire limit: 20 MB → ~20 KB.
    const bomb = gzipSync(Buffer.alloc(20 * 1024 * 1024, 0x20))
    expect(bomb.length).toBeLessThan(64 * 1024)
    const res = await send(`${gw.url}/ingest/lines`, { headers: { 'content-encoding': 'gzip' }, body: bomb })
    expect(res.status).toBe(413)
    expect(res.json<{ detail: string }>().detail).toContain('decompressed')
  })

  it('decodes gzip, deflate and br; 415 for an unknown encoding; 400 for corrupt or truncated data', async () => {
    const body = Buffer.from('{"enc":1}\n{"enc":2}\n')
    for (const [enc, data] of [
      ['gzip', gzipSync(body)],
      ['deflate', deflateSync(body)],
      ['br', brotliCompressSync(body)],
    ] as const) {
      const res = await send(`${gw.url}/ingest/lines`, { headers: { 'content-encoding': enc }, body: data })
      expect(res.status, enc).toBe(200)
      expect(res.json(), enc).toMatchObject({ accepted: 2 })
    }
    expect(
      (await send(`${gw.url}/ingest/lines`, { headers: { 'content-encoding': 'zstd' }, body })).status,
    ).toBe(415)
    const corrupt = await send(`${gw.url}/ingest/lines`, {
      headers: { 'content-encoding': 'gzip' },
      body: Buffer.from('not gzip at all'),
    })
    expect(corrupt.status).toBe(400)
    const gz = gzipSync(body)
    const truncated = await send(`${gw.url}/ingest/lines`, {
      headers: { 'content-encoding': 'gzip' },
      body: gz.subarray(0, gz.length - 10),
    })
    expect(truncated.status).toBe(400)
  })

  it('415 for a Content-Type that is not JSON or text', async () => {
    const res = await send(`${gw.url}/ingest/lines`, {
      headers: { 'content-type': 'multipart/form-data; boundary=x' },
      body: '{}',
    })
    expect(res.status).toBe(415)
    expect(
      (
        await send(`${gw.url}/ingest/lines`, {
          headers: { 'content-type': 'application/x-ndjson' },
          body: '{}',
        })
      ).status,
    ).toBe(200)
  })

  it('400 when the body cannot be framed: not JSON, not an object, empty, invalid UTF-8', async () => {
    const notJson = await send(`${gw.url}/ingest/events`, { headers: auth, body: 'hello' })
    expect(notJson.status).toBe(400)
    const broken = await send(`${gw.url}/ingest/events`, { headers: auth, body: `[${event(1)},` })
    expect(broken.status).toBe(400)
    const scalars = await send(`${gw.url}/ingest/events`, { headers: auth, body: '[1,2]' })
    expect(scalars.status).toBe(400)
    expect(scalars.json<{ errors: unknown[] }>().errors[0]).toMatchObject({ index: 0 })
    expect((await send(`${gw.url}/ingest/events`, { headers: auth, body: '' })).status).toBe(400)
    const badLine = await send(`${gw.url}/ingest/lines`, { body: '{"a":1}\n{"a":\n' })
    expect(badLine.status).toBe(400)
    // Lines are counted from 1 in the message; errors[].index stays the 0-based record index.
    expect(badLine.json<{ detail: string }>().detail).toMatch(/^line 2 is not valid JSON/)
    expect(badLine.json<{ errors: unknown[] }>().errors).toEqual([
      { index: 1, pointer: '', message: 'not valid JSON' },
    ])
    const invalidUtf8 = await send(`${gw.url}/ingest/lines`, {
      body: Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xc3, 0x28, 0x22, 0x7d]),
    })
    expect(invalidUtf8.status).toBe(400)
    expect(invalidUtf8.json<{ type: string }>().type).toContain('invalid-utf8')
  })

  it('strips a UTF-8 BOM', async () => {
    const res = await send(`${gw.url}/ingest/anyjson`, {
      body: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"bom":1}')]),
    })
    expect(res.status).toBe(200)
    await delivered('{"bom":1}')
  })

  it('survives a 10,000-deep nested array (dead-lettered: deeper than maxJsonDepth) and __proto__ keys', async () => {
    const deep = '['.repeat(10_000) + ']'.repeat(10_000)
    const res = await send(`${gw.url}/ingest/anyjson`, { body: `[${deep}]` })
    expect(res.status).toBe(200)
    expect(res.json()).toEqual({ accepted: 0, rejected: 1, filtered: 0, duplicates: 0 })
    await waitFor(
      () =>
        readNdjsonLines(`${gw.dir}/dead-letter`)
          .map((l) => JSON.parse(l) as { raw: string; errors: { message: string }[] })
          .find((l) => l.raw === deep)?.errors[0]?.message === 'nesting depth exceeds 256',
      10_000,
      'the dead letter of the deep record',
    )
    expect(out()).not.toContain(deep)
    const proto = '{"__proto__":{"polluted":true},"constructor":{"prototype":{"x":1}}}'
    const res2 = await send(`${gw.url}/ingest/anyjson`, { body: proto })
    expect(res2.status).toBe(200)
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
    await delivered(proto)
    expect((await send(`${gw.url}/healthz`, { method: 'GET' })).status).toBe(200)
  })

  it('a record nested deeper than maxJsonDepth is invalid under every policy and never delivered', async () => {
    const ok = (n: number): string => `{"n":${n},"a":{"b":{"c":[1]}}}`
    const bad = (n: number): string => `{"n":${n},"a":{"b":{"c":[[1]]}}}`
    // reject: 422 naming the record and the limit; nothing accepted.
    const rejected = await send(`${gw.url}/ingest/deepReject`, { body: `${ok(1)}\n${bad(2)}\n` })
    expect(rejected.status).toBe(422)
    expect(rejected.json<{ errors: unknown[] }>().errors).toEqual([
      { index: 1, pointer: '', message: 'nesting depth exceeds 4' },
    ])
    // dead-letter (and off, which has no policy of its own for it): counted as rejected, dead-lettered.
    for (const id of ['deepDeadLetter', 'deepOff']) {
      const res = await send(`${gw.url}/ingest/${id}`, { body: `${ok(3)}\n${bad(4)}\n` })
      expect(res.json(), id).toEqual({ accepted: 1, rejected: 1, filtered: 0, duplicates: 0 })
    }
    const deepLetters = (): { stream: string; errors: unknown[] }[] =>
      readNdjsonLines(`${gw.dir}/dl`)
        .map((l) => JSON.parse(l) as { stream: string; raw: string; errors: unknown[] })
        .filter((l) => l.raw === bad(4))
        .map((l) => ({ stream: l.stream, errors: l.errors }))
    await waitFor(() => deepLetters().length === 2, 10_000, 'two dead letters of the deep record')
    const errors = [{ index: 1, pointer: '', message: 'nesting depth exceeds 4' }]
    expect(deepLetters()).toEqual(
      expect.arrayContaining([
        { stream: 'deepDeadLetter', errors },
        { stream: 'deepOff', errors },
      ]),
    )
    // drop: counted, discarded.
    const dropped = await send(`${gw.url}/ingest/deepDrop`, { body: `${ok(5)}\n${bad(6)}\n` })
    expect(dropped.json()).toEqual({ accepted: 1, rejected: 1, filtered: 0, duplicates: 0 })
    await delivered(ok(5))
    await delivered(ok(3))
    for (const n of [2, 4, 6]) expect(out()).not.toContain(bad(n))
    expect(out()).not.toContain(ok(1))
  })

  it('422 with per-record errors under validation: reject, and nothing delivered', async () => {
    const body = `[${event(10)},{"timestamp":"x","event_type":{"id":1}},${event(11)},{"id":12,"timestamp":"2021-10-27T08:40:10Z","event_type":"nope"}]`
    const res = await send(`${gw.url}/ingest/strict`, { headers: json, body })
    expect(res.status).toBe(422)
    const problem = res.json<{ errors: { index: number; pointer: string }[] }>()
    expect(problem.errors).toEqual([
      expect.objectContaining({ index: 1, pointer: '/id' }),
      expect.objectContaining({ index: 3, pointer: '/event_type' }),
    ])
    // A later valid request to the same stream is the barrier: once it is delivered, nothing of the
    // rejected one can still be on its way.
    const barrier = event(13)
    expect((await send(`${gw.url}/ingest/strict`, { headers: json, body: barrier })).status).toBe(200)
    await waitFor(() => readNdjsonLines(`${gw.dir}/strict`).includes(barrier), 10_000, 'the barrier record')
    expect(readNdjsonLines(`${gw.dir}/strict`)).toEqual([barrier])
  })

  it('dead-letters invalid records (default policy) with the reason and the raw bytes', async () => {
    const bad = '{"id":77,"timestamp":"2021-10-27T08:40:10Z"}'
    const res = await send(`${gw.url}/ingest/events`, { headers: auth, body: `[${event(76)},${bad}]` })
    expect(res.json()).toEqual({ accepted: 1, rejected: 1, filtered: 0, duplicates: 0 })
    await waitFor(
      () => readNdjsonLines(`${gw.dir}/dl`).some((l) => (JSON.parse(l) as { raw: string }).raw === bad),
      10_000,
      'the dead letter',
    )
    const letters = readNdjsonLines(`${gw.dir}/dl`).map(
      (l) => JSON.parse(l) as { raw: string; reason: string; errors: { pointer: string }[] },
    )
    expect(letters).toContainEqual(expect.objectContaining({ raw: bad, reason: 'invalid', stream: 'events' }))
    expect(letters.find((l) => l.raw === bad)!.errors[0]!.pointer).toBe('/event_type')
  })

  it('429 with Retry-After past the stream rate limit', async () => {
    const ten = Array.from({ length: 4 }, (_, i) => `{"n":${i}}`).join('\n')
    expect((await send(`${gw.url}/ingest/limited`, { body: ten })).status).toBe(200)
    const res = await send(`${gw.url}/ingest/limited`, { body: ten })
    expect(res.status).toBe(429)
    expect(Number(res.headers['retry-after'])).toBeGreaterThanOrEqual(1)
  })

  it('exposes the counts as Prometheus metrics', async () => {
    const res = await send(`${gw.url}/metrics`, { method: 'GET' })
    expect(res.status).toBe(200)
    expect(res.text).toMatch(/streamgate_records_accepted_total\{stream="events"\} \d+/)
    expect(res.text).toMatch(/streamgate_records_rejected_total\{stream="events",reason="invalid"\} 1/)
    expect(res.text).toMatch(
      /streamgate_ingest_request_duration_seconds_bucket\{le="[^"]+",stream="events"\}/,
    )
    expect(res.text).toMatch(/streamgate_http_responses_total\{route="ingest",status="404"\} \d+/)
  })

  it('answers 503 with Retry-After once draining, and readyz turns 503', async () => {
    const local = await startGateway({
      sinks: { out: { type: 'file', dir: '{dir}/out' } },
      streams: { s: { source: 'ndjson', sinks: ['out'] } },
    })
    try {
      expect((await send(`${local.url}/readyz`, { method: 'GET' })).status).toBe(200)
      local.gateway.startDraining()
      const res = await send(`${local.url}/ingest/s`, { body: '{"a":1}' })
      expect(res.status).toBe(503)
      expect(res.headers['retry-after']).toBeDefined()
      expect((await send(`${local.url}/readyz`, { method: 'GET' })).status).toBe(503)
    } finally {
      await local.close()
    }
  })
})
