import { createRequire } from 'node:module'
import {
  AuthenticationError,
  MultipleErrors,
  NetworkError,
  ProtocolError,
  ResponseError,
  TimeoutError,
  UnsupportedCompressionError,
  UserError,
} from '@platformatic/kafka'
import { describe, expect, it } from 'vitest'
import { SinkError } from '../../errors.js'
import { brokerAnswered, classifyKafkaError, PlatformaticError } from './errors.js'
import { toWireError } from './platformatic-worker.js'

// The mapping is tested on the errors the libraries really build: kafkajs' own constructors and retrier,
// and @platformatic/kafka's error classes, sent through the worker's wire form (and a structured clone, as
// postMessage does) the way platformatic-client.ts receives them.

const require = createRequire(import.meta.url)
const { createErrorFromCode } = require('kafkajs/src/protocol/error') as {
  createErrorFromCode: (code: number) => Error
}
const createRetry = require('kafkajs/src/retry') as (o: {
  retries: number
}) => <T>(fn: () => Promise<T>) => Promise<T>
const kafkajsErrors = require('kafkajs') as Record<string, new (message: string, meta?: object) => Error>

/** An error as it leaves a kafkajs call after its retries are used up (or at once if not retriable). */
const afterRetries = (err: Error): Promise<unknown> =>
  createRetry({ retries: 0 })(() => Promise.reject(err)).catch((e: unknown) => e)

/** A platformatic error as the sink's side of the worker sees it. */
const fromWorker = (err: unknown): PlatformaticError =>
  new PlatformaticError(structuredClone(toWireError(err)))

/** A produce answer with one failed partition per Kafka error code given. */
const produceAnswer = (...codes: number[]): ResponseError =>
  new ResponseError(
    0,
    11,
    Object.fromEntries(codes.map((code, i) => [`/responses/0/partition_responses/${i}`, [code, null]])),
    { responses: [] },
  )

type Case = [what: string, make: () => unknown, reason: string, retriable: boolean, kind?: string]

function check(cases: Case[]): void {
  for (const [what, make, reason, retriable, kind = 'other'] of cases)
    it(`${what} → ${reason} (${retriable ? 'retriable' : 'permanent'})`, async () => {
      const failure = classifyKafkaError(await make())
      expect(failure.error).toBeInstanceOf(SinkError)
      expect(failure.error.reason).toBe(reason)
      expect(failure.error.retriable).toBe(retriable)
      expect(failure.kind).toBe(kind)
    })
}

describe('classifyKafkaError: kafkajs', () => {
  check([
    [
      'unknown topic (after kafkajs retries)',
      () => afterRetries(createErrorFromCode(3)),
      'unknown-topic',
      true,
      'unknown-topic',
    ],
    [
      'MESSAGE_TOO_LARGE',
      () => afterRetries(createErrorFromCode(10)),
      'record-too-large',
      false,
      'too-large',
    ],
    [
      'RECORD_LIST_TOO_LARGE',
      () => afterRetries(createErrorFromCode(18)),
      'record-too-large',
      false,
      'too-large',
    ],
    ['TOPIC_AUTHORIZATION_FAILED', () => afterRetries(createErrorFromCode(29)), 'unauthorized', false],
    [
      'CLUSTER_AUTHORIZATION_FAILED: held, not dead-lettered',
      () => afterRetries(createErrorFromCode(31)),
      'auth',
      true,
    ],
    ['SASL_AUTHENTICATION_FAILED: held', () => afterRetries(createErrorFromCode(58)), 'auth', true],
    [
      'a SASL handshake that failed: held',
      () =>
        afterRetries(
          new kafkajsErrors.KafkaJSSASLAuthenticationError!('SASL PLAIN authentication failed: bad'),
        ),
      'auth',
      true,
    ],
    ['NOT_ENOUGH_REPLICAS', () => afterRetries(createErrorFromCode(19)), 'not-enough-replicas', true],
    ['LEADER_NOT_AVAILABLE', () => afterRetries(createErrorFromCode(5)), 'leader-not-available', true],
    ['REQUEST_TIMED_OUT', () => afterRetries(createErrorFromCode(7)), 'timeout', true],
    ['OUT_OF_ORDER_SEQUENCE_NUMBER', () => afterRetries(createErrorFromCode(45)), 'producer-state', true],
    [
      'connection refused',
      () =>
        afterRetries(
          new kafkajsErrors.KafkaJSConnectionError!('Connection error: connect ECONNREFUSED', {
            code: 'ECONNREFUSED',
          }),
        ),
      'unreachable',
      true,
    ],
    [
      'request timeout',
      () => afterRetries(new kafkajsErrors.KafkaJSRequestTimeoutError!('Request Produce timed out')),
      'timeout',
      true,
    ],
    ['another retriable broker error', () => afterRetries(createErrorFromCode(2)), 'kafka-error', true],
    ['another final broker error', () => afterRetries(createErrorFromCode(42)), 'kafka-rejected', false],
    ['a bug', () => new TypeError('x is not a function'), 'internal', false],
  ])

  it('keeps a SinkError as it is', () => {
    const error = new SinkError('closed', { retriable: true, reason: 'closed' })
    expect(classifyKafkaError(error).error).toBe(error)
  })
})

describe('classifyKafkaError: @platformatic/kafka through the worker', () => {
  check([
    [
      'unknown topic in a produce answer',
      () => fromWorker(produceAnswer(3)),
      'unknown-topic',
      true,
      'unknown-topic',
    ],
    [
      'unknown topic in a metadata answer (the client says it with a UserError)',
      () => fromWorker(new UserError('Unknown topic events-x.')),
      'unknown-topic',
      true,
      'unknown-topic',
    ],
    [
      'MESSAGE_TOO_LARGE in a produce answer',
      () => fromWorker(produceAnswer(10)),
      'record-too-large',
      false,
      'too-large',
    ],
    [
      'MESSAGE_TOO_LARGE next to a retriable partition error',
      () => fromWorker(new MultipleErrors('Producing messages failed.', [produceAnswer(6, 10)])),
      'record-too-large',
      false,
      'too-large',
    ],
    ['TOPIC_AUTHORIZATION_FAILED', () => fromWorker(produceAnswer(29)), 'unauthorized', false],
    [
      'SASL_AUTHENTICATION_FAILED: held',
      () => fromWorker(new ProtocolError('SASL_AUTHENTICATION_FAILED')),
      'auth',
      true,
    ],
    [
      'a failed SASL handshake: held',
      () => fromWorker(new AuthenticationError('Cannot find a suitable SASL mechanism.')),
      'auth',
      true,
    ],
    ['NOT_LEADER_OR_FOLLOWER', () => fromWorker(produceAnswer(6)), 'leader-not-available', true],
    ['NOT_ENOUGH_REPLICAS', () => fromWorker(produceAnswer(19)), 'not-enough-replicas', true],
    ['OUT_OF_ORDER_SEQUENCE_NUMBER', () => fromWorker(produceAnswer(45)), 'producer-state', true],
    [
      'connection refused',
      () =>
        fromWorker(
          new MultipleErrors('Producing messages failed.', [
            new NetworkError('Connection to 127.0.0.1:9 failed.', {
              cause: Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' }),
            }),
          ]),
        ),
      'unreachable',
      true,
    ],
    // platformatic marks its timeouts canRetry: false; for us a timeout is transient.
    ['a request timeout', () => fromWorker(new TimeoutError('Request timed out')), 'timeout', true],
    [
      'an unsupported codec',
      () => fromWorker(new UnsupportedCompressionError('zstd is not supported')),
      'unsupported-compression',
      false,
    ],
    [
      'options the client refused (our bug)',
      () => fromWorker(new UserError('Failed to serialize a message.')),
      'internal',
      false,
    ],
    ['another retriable broker error', () => fromWorker(produceAnswer(2)), 'kafka-error', true],
    ['another final broker error', () => fromWorker(produceAnswer(42)), 'kafka-rejected', false],
    ['anything else', () => fromWorker(new Error('socket hang up')), 'kafka-error', true],
  ])

  it('names what went wrong in the message', () => {
    const refused = classifyKafkaError(
      fromWorker(
        new MultipleErrors('Producing messages failed.', [
          new NetworkError('Connection to 127.0.0.1:9 failed.', { cause: new Error('connect ECONNREFUSED') }),
        ]),
      ),
    )
    expect(refused.error.message).toBe('kafka: connect ECONNREFUSED')
    const large = classifyKafkaError(fromWorker(produceAnswer(10)))
    expect(large.error.message).toMatch(/^kafka: MESSAGE_TOO_LARGE: The request included a message larger/)
  })
})

describe('brokerAnswered', () => {
  it('tells a broker answer from a connection failure, for both clients', async () => {
    expect(brokerAnswered(await afterRetries(createErrorFromCode(3)))).toBe(true)
    expect(brokerAnswered(new kafkajsErrors.KafkaJSConnectionError!('refused'))).toBe(false)
    expect(brokerAnswered(fromWorker(produceAnswer(3)))).toBe(true)
    expect(brokerAnswered(fromWorker(new NetworkError('Connection closed')))).toBe(false)
  })
})
