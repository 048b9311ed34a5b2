import { createRequire } from 'node:module'
import { murmur2 as platformaticMurmur2 } from '@platformatic/kafka'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { SinkRecord } from '../../records/record.js'
import { contentTypeOf, MessageBuilder, murmur2, partitionOf } from './messages.js'

const require = createRequire(import.meta.url)
const kafkajsMurmur2 = require('kafkajs/src/producer/partitioners/default/murmur2') as (key: Buffer) => number
const { Partitioners } = require('kafkajs') as typeof import('kafkajs')

const record = (payload: string, extra: Partial<SinkRecord> = {}): SinkRecord => ({
  stream: 's',
  payload: Buffer.from(payload),
  receivedAtMs: 1_764_000_000_123,
  ...extra,
})

describe('murmur2 and partitionOf', () => {
  it('equals the murmur2 of kafkajs and of @platformatic/kafka on any key', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        const key = Buffer.from(bytes)
        expect(murmur2(key)).toBe(kafkajsMurmur2(key))
        expect(murmur2(key)).toBe(platformaticMurmur2(key))
      }),
      { numRuns: 2_000 },
    )
  })

  it('puts a keyed message in the partition kafkajs (and so Java) would', () => {
    const partitioner = Partitioners.DefaultPartitioner()
    fc.assert(
      fc.property(fc.string({ minLength: 1 }), fc.integer({ min: 1, max: 64 }), (text, partitions) => {
        const key = Buffer.from(text)
        const partitionMetadata = Array.from({ length: partitions }, (_, partitionId) => ({
          partitionId,
          leader: 1,
        }))
        const theirs = partitioner({
          topic: 't',
          partitionMetadata: partitionMetadata as Parameters<typeof partitioner>[0]['partitionMetadata'],
          message: { key, value: null },
        })
        expect(partitionOf(murmur2(key), partitions)).toBe(theirs)
      }),
      { numRuns: 1_000 },
    )
  })

  it('known values (the Java client test vectors)', () => {
    // org.apache.kafka.common.utils.UtilsTest#testMurmur2
    expect(murmur2(Buffer.from('21'))).toBe(-973932308)
    expect(murmur2(Buffer.from('foobar'))).toBe(-790332482)
    expect(murmur2(Buffer.from('a-little-bit-long-string'))).toBe(-985981536)
    expect(murmur2(Buffer.from('a-little-bit-longer-string'))).toBe(-1486304829)
    expect(murmur2(Buffer.from('lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8'))).toBe(-58897971)
    expect(murmur2(Buffer.from([97, 98, 99]))).toBe(479470107)
  })
})

describe('MessageBuilder', () => {
  it('builds key, value (the same bytes, not a copy), headers and timestamp', () => {
    const builder = new MessageBuilder({
      key: '{{sim.iccid}}',
      headers: {
        'x-type': '{{event_type.description}}',
        'x-relay': 'gw',
        'content-type': 'application/x-ndjson',
      },
    })
    const r = record('{"sim":{"iccid":"8988"},"event_type":{"description":"Update location"}}', {
      id: '42',
      stream: 'emnify',
    })
    const m = builder.build(7, r)
    expect(m.index).toBe(7)
    expect(m.value).toBe(r.payload)
    expect(m.key).toBe('8988')
    expect(m.route).toBe(murmur2(Buffer.from('8988')))
    expect(m.timestamp).toBe(1_764_000_000_123)
    expect(Object.fromEntries(Object.entries(m.headers).map(([k, v]) => [k, v.toString()]))).toEqual({
      stream: 'emnify',
      'content-type': 'application/x-ndjson', // a configured header replaces the built-in one
      'record-id': '42',
      'x-type': 'Update location',
      'x-relay': 'gw',
    })
    // Estimated batch bytes: payload, key, header names and values, overheads; never less than the content.
    const content =
      r.payload.length +
      4 +
      Object.entries(m.headers).reduce((n, [k, v]) => n + Buffer.byteLength(k) + Buffer.byteLength(v), 0)
    expect(m.bytes).toBeGreaterThanOrEqual(content)
    expect(m.bytes).toBeLessThan(content + 100)
  })

  it('hashes keys of any length and script as their UTF-8 bytes', () => {
    const builder = new MessageBuilder({ key: '{{k}}' })
    for (const k of ['a', 'ü', '日本語のキー', 'x'.repeat(300), '🙂'.repeat(200), 'short-again'])
      expect(builder.build(0, record(JSON.stringify({ k }))).route).toBe(murmur2(Buffer.from(k)))
  })

  it('leaves out the key and headers that render empty, and record-id when there is no id', () => {
    const builder = new MessageBuilder({ key: '{{missing}}', headers: { 'x-a': '{{missing}}' } })
    const m = builder.build(0, record('{"a":1}'))
    expect(m.key).toBeNull()
    expect(Object.keys(m.headers)).toEqual(['stream', 'content-type'])
    expect(new MessageBuilder({}).build(0, record('{}')).key).toBeNull()
  })

  it('cuts messages into chunks within the byte limit; one chunk, one partition slot for unkeyed messages', () => {
    const builder = new MessageBuilder({ key: '{{k}}' })
    const messages = Array.from({ length: 40 }, (_, i) =>
      builder.build(i, record(i % 4 === 0 ? `{"k":"key-${i}","pad":"${'x'.repeat(100)}"}` : `{"n":${i}}`)),
    )
    const limit = 600
    const chunks = builder.chunk(messages, limit)
    expect(chunks.flat().map((m) => m.index)).toEqual(messages.map((m) => m.index))
    for (const part of chunks) {
      if (part.length > 1) expect(part.reduce((n, m) => n + m.bytes, 0)).toBeLessThanOrEqual(limit)
      const slots = new Set(part.filter((m) => m.key === null).map((m) => m.route))
      expect(slots.size).toBeLessThanOrEqual(1)
      for (const m of part.filter((m) => m.key !== null)) expect(m.route).toBe(murmur2(Buffer.from(m.key!)))
    }
    const unkeyedSlots = chunks.map((part) => part.find((m) => m.key === null)?.route)
    expect(new Set(unkeyedSlots).size).toBe(chunks.length)
  })

  it('gives a record too large for any chunk a chunk of its own', () => {
    const builder = new MessageBuilder({})
    const messages = [record('{"a":1}'), record(`{"big":"${'b'.repeat(2000)}"}`), record('{"c":3}')].map(
      (r, i) => builder.build(i, r),
    )
    expect(builder.chunk(messages, 1000).map((part) => part.map((m) => m.index))).toEqual([[0], [1], [2]])
  })
})

describe('contentTypeOf', () => {
  it('labels JSON records application/json and other text text/plain', () => {
    expect(contentTypeOf(record('{"a":1}'))).toBe('application/json')
    expect(contentTypeOf(record(' [1,2]'))).toBe('application/json')
    expect(contentTypeOf(record('42'))).toBe('application/json')
    expect(contentTypeOf(record('"text"'))).toBe('application/json')
    expect(contentTypeOf(record('hello world'))).toBe('text/plain; charset=utf-8')
    expect(contentTypeOf(record('null pointer'))).toBe('text/plain; charset=utf-8')
    expect(contentTypeOf(record('v1\t2026-11-23T10:00:00Z\tGET', { fields: { time: 'x' } }))).toBe(
      'text/plain; charset=utf-8',
    )
  })
})
