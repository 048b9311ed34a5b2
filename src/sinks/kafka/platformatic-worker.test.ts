import { MultipleErrors, ProtocolError, TimeoutError } from '@platformatic/kafka'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { OutgoingMessage } from './messages.js'
import { packMessages, toWireError, unpackMessages } from './platformatic-worker.js'

const bytes = (maxLength: number): fc.Arbitrary<Buffer> =>
  fc.uint8Array({ maxLength }).map((a) => Buffer.from(a))

const message: fc.Arbitrary<OutgoingMessage> = fc.record({
  key: fc.option(fc.string({ maxLength: 40, unit: 'grapheme' }), { nil: null }),
  value: bytes(300),
  headers: fc.dictionary(
    fc.oneof(
      fc.constantFrom('stream', 'content-type', 'record-id'),
      fc.string({ minLength: 1, maxLength: 20 }),
    ),
    fc.oneof(bytes(50), fc.string({ maxLength: 40, unit: 'grapheme' })),
    { maxKeys: 6 },
  ),
  timestamp: fc.integer({ min: 0, max: 2 ** 47 }),
  route: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
  bytes: fc.constant(0),
  index: fc.constant(0),
})

describe('packMessages / unpackMessages', () => {
  it('hands the worker exactly the messages the sink built', () => {
    fc.assert(
      fc.property(fc.array(message, { maxLength: 30 }), fc.string(), (messages, topic) => {
        // The buffer crosses the thread boundary as a transferred ArrayBuffer.
        const { buffer } = structuredClone({ buffer: packMessages(messages) })
        const got = unpackMessages(buffer, topic)
        expect(got).toHaveLength(messages.length)
        got.forEach((m, i) => {
          const sent = messages[i]!
          expect(m.topic).toBe(topic)
          expect(Buffer.compare(m.value!, sent.value)).toBe(0)
          const key = m.key
          expect(key === undefined ? null : key.toString()).toEqual(sent.key)
          expect(m.timestamp).toBe(BigInt(sent.timestamp))
          expect(m.partition).toBe(sent.route & 0x7fffffff)
          const headers = [...(m.headers as Map<Buffer, Buffer>)].map(([k, v]) => [
            k.toString(),
            Buffer.from(v),
          ])
          expect(headers).toEqual(
            Object.entries(sent.headers).map(([k, v]) => [
              k,
              typeof v === 'string' ? Buffer.from(v) : Buffer.from(v),
            ]),
          )
        })
      }),
      { numRuns: 300 },
    )
  })

  it('packs into a buffer of its own, so transferring it detaches nothing else', () => {
    const value = Buffer.from('{"a":1}')
    const packed = packMessages([
      { key: null, value, headers: {}, timestamp: 1, route: 0, bytes: 0, index: 0 },
    ])
    structuredClone(packed, { transfer: [packed] })
    expect(value.toString()).toBe('{"a":1}')
  })
})

describe('toWireError', () => {
  it('keeps what classification needs through a structured clone', () => {
    const err = new MultipleErrors('produce failed 2 times.', [
      new ProtocolError('MESSAGE_TOO_LARGE'),
      new TimeoutError('Request timed out', { cause: new Error('socket') }),
    ])
    expect(structuredClone(toWireError(err))).toEqual({
      name: 'MultipleErrors',
      code: 'PLT_KFK_MULTIPLE',
      message: 'produce failed 2 times.',
      errors: [
        {
          name: 'ProtocolError',
          code: 'PLT_KFK_PROTOCOL',
          apiId: 'MESSAGE_TOO_LARGE',
          canRetry: false,
          message: 'The request included a message larger than the max message size the server will accept.',
        },
        {
          name: 'TimeoutError',
          code: 'PLT_KFK_NETWORK',
          canRetry: false,
          message: 'Request timed out',
          cause: { name: 'Error', message: 'socket' },
        },
      ],
    })
    expect(toWireError('text')).toEqual({ name: 'Error', message: 'text' })
  })
})
