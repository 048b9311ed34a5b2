import { describe, expect, it } from 'vitest'
import type { AdobeSinkConfig } from '../../config/types.js'
import { SinkError } from '../../errors.js'
import type { SinkRecord } from '../../records/record.js'
import { ADOBE_MAX_REQUEST_BYTES, EnvelopeBuilder, groupByBytes, parseInletUrl, TokenBucket } from './sink.js'

const base: AdobeSinkConfig = {
  type: 'adobe',
  inletUrl: 'https://dcs.adobedc.net/collection/abc',
  mode: 'batch',
  syncValidation: false,
  schemaRef: 'https://ns.adobe.com/t/schemas/s1',
  schemaContentType: 'application/vnd.adobe.xed-full+json;version=1',
  requestsPerSecond: 1000,
  messagesPerSecond: 10000,
  retry: { initialMs: 1, maxMs: 1, maxAttempts: 0 },
}
const rec = (text: string, extra: Partial<SinkRecord> = {}): SinkRecord => ({
  stream: 's',
  payload: Buffer.from(text),
  receivedAtMs: 1_700_000_000_000,
  ...extra,
})
const built = (b: EnvelopeBuilder, r: SinkRecord): string => {
  const out = b.build(r)
  if (out instanceof SinkError) throw out
  return out.toString()
}

describe('EnvelopeBuilder', () => {
  const ref =
    '{"id":"https://ns.adobe.com/t/schemas/s1","contentType":"application/vnd.adobe.xed-full+json;version=1"}'

  it('splices the record bytes in as xdmEntity; overhead is exactly the bytes around them', () => {
    const b = new EnvelopeBuilder({ ...base, datasetId: 'd1', sourceName: 'sg' })
    const payload = '{"id":123456789012345678901,"ü":"✓"}'
    const text = built(b, rec(payload))
    expect(text).toBe(
      `{"header":{"schemaRef":${ref},"datasetId":"d1","source":{"name":"sg"},"createdAt":1700000000000},` +
        `"body":{"xdmMeta":{"schemaRef":${ref}},"xdmEntity":${payload}}}`,
    )
    expect(Buffer.byteLength(text)).toBe(b.overhead + Buffer.byteLength(payload))
  })

  it('escapes configured strings as JSON', () => {
    const b = new EnvelopeBuilder({ ...base, sourceName: 'a "quoted" name' })
    expect(built(b, rec('{}'))).toContain('"source":{"name":"a \\"quoted\\" name"}')
  })

  it('a parsed text record becomes an object of its fields; other non-objects are refused', () => {
    const b = new EnvelopeBuilder(base)
    expect(built(b, rec('v1\tx', { fields: { version: 'v1', host: 'x' } }))).toContain(
      '"xdmEntity":{"version":"v1","host":"x"}}}',
    )
    const refused = b.build(rec('[1,2]'))
    expect(refused).toBeInstanceOf(SinkError)
    expect(refused).toMatchObject({ retriable: false, reason: 'not-json-object' })
  })

  it('mapping: nested xdm paths in mapping order, missing fields left out, empty mapping result is {}', () => {
    const b = new EnvelopeBuilder({
      ...base,
      mapping: { '_t.a.x': 'x', _id: 'id', '_t.b': 'obj', '_t.a.y': 'deep.y', '_t.gone.z': 'nope' },
    })
    expect(
      built(b, rec('{"id":18446744073709551615,"x":"s\\"","deep":{"y":[1, 2]},"obj":{"k":null}}')),
    ).toContain(
      '"xdmEntity":{"_t":{"a":{"x":"s\\"","y":[1, 2]},"b":{"k":null}},"_id":18446744073709551615}}}',
    )
    expect(built(b, rec('{"other":1}'))).toContain('"xdmEntity":{}}}')
  })

  it('refuses overlapping mapping paths', () => {
    expect(() => new EnvelopeBuilder({ ...base, mapping: { a: 'x', 'a.b': 'y' } })).toThrow(/overlaps/)
    expect(() => new EnvelopeBuilder({ ...base, mapping: { 'a.b': 'y', a: 'x' } })).toThrow(/overlaps/)
    expect(() => new EnvelopeBuilder({ ...base, mapping: { 'a..b': 'y' } })).toThrow(/empty path/)
  })
})

describe('parseInletUrl', () => {
  it.each([
    ['https://dcs.adobedc.net/collection/abc123', 'abc123'],
    ['https://dcs.adobedc.net/collection/batch/abc123', 'abc123'],
    ['https://dcs.adobedc.net/collection/abc123/', 'abc123'],
  ])('%s', (text, id) => {
    const parsed = parseInletUrl(text)!
    expect(parsed.inletId).toBe(id)
    expect(parsed.inletUrl.href).toBe(`https://dcs.adobedc.net/collection/${id}`)
    expect(parsed.batchUrl.href).toBe(`https://dcs.adobedc.net/collection/batch/${id}`)
  })
  it('keeps a query (e.g. ?x-adobe-flow-id=…) on the single endpoint only, and refuses other paths', () => {
    const parsed = parseInletUrl('https://h/collection/i?x-adobe-flow-id=f&syncValidation=true')!
    expect(parsed.inletUrl.href).toBe('https://h/collection/i?x-adobe-flow-id=f&syncValidation=true')
    expect(parsed.batchUrl.href).toBe('https://h/collection/batch/i')
    expect(parseInletUrl('https://h/collection/batch/i?q=1')!.batchUrl.href).toBe(
      'https://h/collection/batch/i',
    )
    expect(parseInletUrl('https://h/other/i')).toBeUndefined()
    expect(parseInletUrl('not a url')).toBeUndefined()
    expect(parseInletUrl('ftp://h/collection/i')).toBeUndefined()
  })
})

describe('groupByBytes', () => {
  const msg = (index: number, size: number) => ({ index, bytes: Buffer.alloc(size, 0x61) })
  it('fills each request up to the limit, counting {"messages":[ ]} and commas', () => {
    // 15 bytes of wrapper: 15 + 40 + 1 + 40 = 96 fits in 96, a third message does not.
    const groups = groupByBytes([msg(0, 40), msg(1, 40), msg(2, 40)], 96)
    expect(groups.map((g) => g.map((m) => m.index))).toEqual([[0, 1], [2]])
    expect(groupByBytes([msg(0, 40), msg(1, 40)], 95).map((g) => g.length)).toEqual([1, 1])
  })
  it('never exceeds ADOBE_MAX_REQUEST_BYTES with the default', () => {
    const many = Array.from({ length: 300 }, (_, i) => msg(i, 9_999 + (i % 7)))
    for (const g of groupByBytes(many)) {
      const size = 15 + g.reduce((n, m) => n + m.bytes.length, 0) + g.length - 1
      expect(size).toBeLessThanOrEqual(ADOBE_MAX_REQUEST_BYTES)
    }
  })
})

describe('TokenBucket', () => {
  it('serves a burst at once, then paces at the rate', async () => {
    const bucket = new TokenBucket(20)
    const started = performance.now()
    for (let i = 0; i < 20; i++) await bucket.take(1, AbortSignal.timeout(5000))
    expect(performance.now() - started).toBeLessThan(50)
    for (let i = 0; i < 4; i++) await bucket.take(1, AbortSignal.timeout(5000))
    // 4 more at 20/s: about 200 ms.
    expect(performance.now() - started).toBeGreaterThanOrEqual(180)
  })

  it('an aborted wait gives its tokens back and rejects with the signal’s reason', async () => {
    let now = 0
    const bucket = new TokenBucket(1, 1, () => now)
    await bucket.take(1, AbortSignal.timeout(1000))
    const controller = new AbortController()
    const waiting = bucket.take(1, controller.signal)
    controller.abort(new Error('stop'))
    await expect(waiting).rejects.toThrow('stop')
    // One second later the bucket is full again: the aborted take did not leave a debt.
    now = 1000
    const started = performance.now()
    await bucket.take(1, AbortSignal.timeout(1000))
    expect(performance.now() - started).toBeLessThan(50)
  })
})
