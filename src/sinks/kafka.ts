import { readFileSync } from 'node:fs'
import { randomInt } from 'node:crypto'
import { createRequire } from 'node:module'
import type { ConnectionOptions } from 'node:tls'
import * as zlib from 'node:zlib'
import type * as KafkaJs from 'kafkajs'
import type {
  Admin,
  CompressionTypes,
  Kafka,
  ICustomPartitioner,
  IHeaders,
  ISocketFactory,
  KafkaConfig,
  Message,
  Producer,
  RetryOptions,
  SASLOptions,
  logCreator,
} from 'kafkajs'
import type { KafkaSinkConfig } from '../config/types.js'
import { SinkError, isProgrammingError, permanentError, transientError } from '../errors.js'
import { RecordTemplate } from '../records/template.js'
import type { Logger } from '../telemetry/logger.js'
import {
  ALL_WRITTEN,
  batchLimits,
  type Sink,
  type SinkContext,
  type SinkRecord,
  type WriteResult,
} from './sink.js'

// kafkajs is loaded when the first kafka sink is built, not at start-up: it costs ~240 ms and ~12 MB of
// RSS that a gateway without a kafka sink never needs. It is CommonJS, so `require` loads it synchronously
// (the same module instance an `import` would give) and the sink factory stays synchronous.
const requireModule = createRequire(import.meta.url)
let kafkajsModule: typeof KafkaJs | undefined
function kafkajs(): typeof KafkaJs {
  return (kafkajsModule ??= requireModule('kafkajs') as typeof KafkaJs)
}

// Kafka through kafkajs 2.2.4. Each record becomes one message:
//   topic   = the `topic` template rendered for the record (records are grouped by topic, one send per topic)
//   key     = the `key` template rendered (no key when there is no template or it renders empty)
//   value   = the record's payload bytes, exactly as the vendor sent them
//   headers = stream, content-type, record-id (when the record has an id), then the configured `headers`
//             (templates; a configured name replaces a built-in one; one that renders empty is left out)
//   timestamp = when streamgate accepted the record, so a resent record carries the same time.
//
// Retries belong to the delivery layer (src/pipeline/delivery.ts), not to kafkajs: the producer gets the
// fewest retries kafkajs allows (0, or 1 for the idempotent producer, which refuses fewer), and every failed
// send is reported per record (by index) as a SinkError that says whether retrying can help.
//
// Idempotence with kafkajs needs two precautions, because the broker recognises a resent batch by
// (producer id, partition, first sequence number) alone, never by its content:
//  - A failed produce request makes kafkajs roll back the sequence numbers of every partition in that
//    request (one partition's error fails the whole response), including partitions the broker did append,
//    and a timed-out request may have been appended too. The next batch to such a partition reuses sequence
//    numbers the broker has seen: with the same range it is acknowledged as a duplicate WITHOUT being
//    stored, otherwise refused as out of order. So after any failed send the producer is retired and the
//    next write gets a new one (a new producer id, fresh sequences).
//  - kafkajs' own retry re-partitions the messages. Its default partitioner spreads unkeyed messages
//    round-robin, so the retry would put different messages under the same sequence numbers. Here unkeyed
//    messages of one send go to one partition chosen before the send (sticky, as Java's producer does,
//    KIP-480), and keyed messages by murmur2 of the key: a retry rebuilds exactly the same batches.
// Broker source: https://github.com/apache/kafka/blob/3.9/storage/src/main/java/org/apache/kafka/storage/internals/log/ProducerStateEntry.java
// (findDuplicateBatch compares producer epoch and sequence range only).

/**
 * A record whose payload is over 1 MiB never goes to Kafka: the delivery layer dead-letters it before
 * `write` (reason `record-too-large`). 1 MiB is the broker's default `message.max.bytes` (1048588, the
 * largest record batch it takes, measured after compression:
 * https://kafka.apache.org/39/documentation.html#brokerconfigs_message.max.bytes) rounded down; a batch's
 * 61-byte header and the record's key and headers come on top. So the broker has the last word: an
 * incompressible record just under 1 MiB, or any record over a topic's lower `max.message.bytes`, comes
 * back MESSAGE_TOO_LARGE and is reported permanently failed with the same reason.
 */
export const KAFKA_MAX_RECORD_BYTES = 1024 * 1024
/**
 * kafkajs puts all messages of one partition in one send into a single record batch, which must stay under
 * the broker's `message.max.bytes`. Sends are cut into chunks of at most this many (estimated, uncompressed)
 * bytes, so a batch never exceeds the default limit even with compression `none`.
 */
const PRODUCE_CHUNK_BYTES = 1_000_000
/** Per-record bytes a record batch spends besides payload, key and headers (varint lengths, deltas). */
const RECORD_OVERHEAD_BYTES = 32
/** Per-header bytes besides name and value (two varint lengths). */
const HEADER_OVERHEAD_BYTES = 4
/** The names of the built-in headers (stream, content-type, record-id) with their overhead. */
const BUILTIN_HEADER_BYTES = 'streamcontent-typerecord-id'.length + 3 * HEADER_OVERHEAD_BYTES
/** A record batch's fixed header (v2 format). */
const RECORD_BATCH_HEADER_BYTES = 61

const KAFKA_DEFAULTS = {
  maxBatchRecords: 10_000,
  maxBatchBytes: 8 * 1024 * 1024,
  lingerMs: 50,
  maxRecordBytes: KAFKA_MAX_RECORD_BYTES,
}

/** A refused connection fails at once; this bounds connects to a host that does not answer. */
const CONNECTION_TIMEOUT_MS = 5_000
/** The client waits this much longer than the broker's produce `timeout` before it gives up on a request. */
const REQUEST_TIMEOUT_MARGIN_MS = 5_000
/** Connects and metadata: one quick retry inside kafkajs, then the error is ours to report. */
const CLIENT_RETRY: RetryOptions = { retries: 1, initialRetryTime: 100, maxRetryTime: 1_000 }
/** kafkajs refuses an idempotent producer with fewer than 1 retry. */
const IDEMPOTENT_PRODUCER_RETRY: RetryOptions = { retries: 1, initialRetryTime: 100, maxRetryTime: 1_000 }
const PRODUCER_RETRY: RetryOptions = { retries: 0 }

/** Kafka topic names: https://github.com/apache/kafka/blob/3.9/clients/src/main/java/org/apache/kafka/common/internals/Topic.java */
const TOPIC_NAME = /^[a-zA-Z0-9._-]{1,249}$/

/** Warnings kafkajs prints that this sink has dealt with (see the idempotence notes above). */
const SILENCED_KAFKAJS_WARNINGS = new Set([
  'Limiting retries for the idempotent producer may invalidate EoS guarantees',
])

const ERROR_REASONS: Readonly<Record<string, { retriable: boolean; reason: string }>> = {
  TOPIC_AUTHORIZATION_FAILED: { retriable: false, reason: 'unauthorized' },
  CLUSTER_AUTHORIZATION_FAILED: { retriable: false, reason: 'unauthorized' },
  TRANSACTIONAL_ID_AUTHORIZATION_FAILED: { retriable: false, reason: 'unauthorized' },
  SASL_AUTHENTICATION_FAILED: { retriable: false, reason: 'unauthorized' },
  UNSUPPORTED_SASL_MECHANISM: { retriable: false, reason: 'unauthorized' },
  ILLEGAL_SASL_STATE: { retriable: false, reason: 'unauthorized' },
  INVALID_TOPIC_EXCEPTION: { retriable: false, reason: 'invalid-topic' },
  // e.g. a compacted topic refuses a message without a key
  INVALID_RECORD: { retriable: false, reason: 'invalid-record' },
  UNSUPPORTED_COMPRESSION_TYPE: { retriable: false, reason: 'unsupported-compression' },
  NOT_ENOUGH_REPLICAS: { retriable: true, reason: 'not-enough-replicas' },
  NOT_ENOUGH_REPLICAS_AFTER_APPEND: { retriable: true, reason: 'not-enough-replicas' },
  LEADER_NOT_AVAILABLE: { retriable: true, reason: 'leader-not-available' },
  NOT_LEADER_FOR_PARTITION: { retriable: true, reason: 'leader-not-available' },
  PREFERRED_LEADER_NOT_AVAILABLE: { retriable: true, reason: 'leader-not-available' },
  REQUEST_TIMED_OUT: { retriable: true, reason: 'timeout' },
  // Producer-state errors: a new producer id (the next write's producer) clears them.
  OUT_OF_ORDER_SEQUENCE_NUMBER: { retriable: true, reason: 'producer-state' },
  DUPLICATE_SEQUENCE_NUMBER: { retriable: true, reason: 'producer-state' },
  INVALID_PRODUCER_EPOCH: { retriable: true, reason: 'producer-state' },
  UNKNOWN_PRODUCER_ID: { retriable: true, reason: 'producer-state' },
  INVALID_PRODUCER_ID_MAPPING: { retriable: true, reason: 'producer-state' },
  PRODUCER_FENCED: { retriable: true, reason: 'producer-state' },
}

const ERROR_NAMES: Readonly<Record<string, { retriable: boolean; reason: string }>> = {
  KafkaJSSASLAuthenticationError: { retriable: false, reason: 'unauthorized' },
  KafkaJSConnectionError: { retriable: true, reason: 'unreachable' },
  KafkaJSConnectionClosedError: { retriable: true, reason: 'unreachable' },
  KafkaJSNoBrokerAvailableError: { retriable: true, reason: 'unreachable' },
  KafkaJSBrokerNotFound: { retriable: true, reason: 'unreachable' },
  KafkaJSRequestTimeoutError: { retriable: true, reason: 'timeout' },
  KafkaJSTimeout: { retriable: true, reason: 'timeout' },
  KafkaJSLockTimeout: { retriable: true, reason: 'timeout' },
  KafkaJSMetadataNotLoaded: { retriable: true, reason: 'metadata' },
  KafkaJSTopicMetadataNotLoaded: { retriable: true, reason: 'metadata' },
  KafkaJSStaleTopicMetadataAssignment: { retriable: true, reason: 'metadata' },
  KafkaJSServerDoesNotSupportApiKey: { retriable: false, reason: 'unsupported-broker' },
}

/** What a failed kafkajs call means for the records it carried. */
export interface KafkaFailure {
  /** `unknown-topic` and `too-large` need a second look (metadata, topic config) before they are final. */
  kind: 'unknown-topic' | 'too-large' | 'other'
  error: SinkError
}

/**
 * Maps a kafkajs error to a SinkError. kafkajs wraps the broker's answer (KafkaJSProtocolError with its
 * `type`) in KafkaJSNumberOfRetriesExceeded / KafkaJSNonRetriableError; the cause chain is searched for it.
 */
export function classifyKafkaError(err: unknown): KafkaFailure {
  if (err instanceof SinkError) return { kind: 'other', error: err }
  if (isProgrammingError(err))
    return {
      kind: 'other',
      error: permanentError(`internal error: ${(err as Error).message}`, 'internal', err),
    }
  const chain: { name?: unknown; type?: unknown; message?: unknown; cause?: unknown }[] = []
  for (let e: unknown = err; e !== null && typeof e === 'object' && chain.length < 8;) {
    const current = e as (typeof chain)[number]
    chain.push(current)
    e = current.cause
  }
  const root = chain.at(-1)
  const rootMessage = typeof root?.message === 'string' ? root.message : String(err)
  const protocol = chain.find((e) => typeof e.type === 'string')
  if (protocol) {
    const type = protocol.type as string
    const message = `kafka: ${type}: ${typeof protocol.message === 'string' ? protocol.message : ''}`.trim()
    if (type === 'UNKNOWN_TOPIC_OR_PARTITION')
      return { kind: 'unknown-topic', error: transientError(message, 'unknown-topic', err) }
    if (type === 'MESSAGE_TOO_LARGE' || type === 'RECORD_LIST_TOO_LARGE')
      return { kind: 'too-large', error: permanentError(message, 'record-too-large', err) }
    const known = ERROR_REASONS[type]
    if (known) return { kind: 'other', error: sinkError(message, known, err) }
    const retriable = (protocol as { retriable?: unknown }).retriable !== false
    return {
      kind: 'other',
      error: retriable
        ? transientError(message, 'kafka-error', err)
        : permanentError(message, 'kafka-rejected', err),
    }
  }
  for (const e of chain) {
    const known = typeof e.name === 'string' ? ERROR_NAMES[e.name] : undefined
    if (known) return { kind: 'other', error: sinkError(`kafka: ${rootMessage}`, known, err) }
  }
  // Anything else (a KafkaJSNonRetriableError such as "producer is disconnecting", a socket error): a new
  // producer on the next attempt may well succeed.
  return { kind: 'other', error: transientError(`kafka: ${rootMessage}`, 'kafka-error', err) }
}

function sinkError(
  message: string,
  known: { retriable: boolean; reason: string },
  cause: unknown,
): SinkError {
  return known.retriable
    ? transientError(message, known.reason, cause)
    : permanentError(message, known.reason, cause)
}

/**
 * Records are JSON for every vendor source (emnify, Azion JSON templates, json, ndjson). The exceptions are
 * Azion text templates (records with parsed `fields`) and `lines` streams: a payload that is not a JSON
 * object or array is labelled JSON only if it parses as a JSON value. Configure a `content-type` header to
 * set it for a stream yourself.
 */
export function contentTypeOf(record: SinkRecord): string {
  if (record.fields) return TEXT
  const payload = record.payload
  let i = 0
  while (
    i < payload.length &&
    (payload[i] === 0x20 || payload[i] === 0x09 || payload[i] === 0x0d || payload[i] === 0x0a)
  )
    i++
  const first = payload[i]
  if (first === 0x7b /* { */ || first === 0x5b /* [ */) return JSON_TYPE
  try {
    JSON.parse(payload.toString('utf8'))
    return JSON_TYPE
  } catch {
    return TEXT
  }
}
const JSON_TYPE = 'application/json'
const TEXT = 'text/plain; charset=utf-8'
const JSON_TYPE_BYTES = Buffer.from(JSON_TYPE)
const TEXT_BYTES = Buffer.from(TEXT)

/** Test and embedding hooks that are not part of the config file. */
export interface KafkaSinkOptions {
  /** Opens broker connections (kafkajs `socketFactory`); tests route them through a fault-injecting proxy. */
  socketFactory?: ISocketFactory
  /** Most estimated bytes per produce request and topic (default 1,000,000); tests use small records. */
  produceChunkBytes?: number
}

export function createKafkaSink(
  name: string,
  config: KafkaSinkConfig,
  context: SinkContext,
  options: KafkaSinkOptions = {},
): Sink {
  return new KafkaSink(name, config, context, options)
}

interface Outgoing {
  index: number
  message: Message
  /** Estimated bytes in a record batch (payload, key, headers, overhead), uncompressed. */
  bytes: number
}

interface Failed {
  index: number
  error: SinkError
}

class KafkaSink implements Sink {
  readonly type = 'kafka' as const
  readonly limits
  private readonly kafka: Kafka
  private readonly topic: RecordTemplate
  private readonly key: RecordTemplate | undefined
  private readonly headers: { name: string; template: RecordTemplate; nameBytes: number; constant?: Buffer }[]
  private readonly streamHeaders = new Map<string, Buffer>()
  private readonly compression: CompressionTypes
  private readonly producers: ClientSlot<Producer>
  private readonly admins: ClientSlot<Admin>
  /** Unkeyed messages → the slot that picks their partition (see the idempotence notes at the top). */
  private readonly stickySlots = new WeakMap<Message, number>()
  private nextSlot = randomInt(0, 0x7fffffff)
  /** Topics whose `max.message.bytes` turned out lower than the default: their chunk size in bytes. */
  private readonly chunkBytes = new Map<string, number>()
  private readonly inFlight = new Set<Promise<unknown>>()
  private readonly produceChunkBytes: number
  private closed = false

  constructor(
    readonly name: string,
    private readonly config: KafkaSinkConfig,
    context: SinkContext,
    options: KafkaSinkOptions,
  ) {
    const where = `sinks.${name}`
    this.limits = batchLimits(config, KAFKA_DEFAULTS)
    this.produceChunkBytes = options.produceChunkBytes ?? PRODUCE_CHUNK_BYTES
    const brokers = (Array.isArray(config.brokers) ? config.brokers : config.brokers.split(','))
      .map((b) => b.trim())
      .filter((b) => b !== '')
    if (brokers.length === 0) throw new Error(`${where}.brokers: no broker address given`)
    if (config.idempotent && config.acks !== -1)
      throw new Error(
        `${where}: an idempotent producer needs acks: -1 (all in-sync replicas); set idempotent: false to use acks: ${config.acks}`,
      )
    this.compression = compressionType(config.compression, where)
    this.topic = new RecordTemplate(config.topic)
    if (this.topic.constant && !validTopic(config.topic))
      throw new Error(`${where}.topic: "${config.topic}" is not a valid Kafka topic name`)
    this.key = config.key !== undefined && config.key !== '' ? new RecordTemplate(config.key) : undefined
    this.headers = Object.entries(config.headers ?? {}).map(([name, value]) => {
      const template = new RecordTemplate(value)
      const nameBytes = Buffer.byteLength(name) + HEADER_OVERHEAD_BYTES
      return template.constant
        ? { name, template, nameBytes, constant: Buffer.from(value) }
        : { name, template, nameBytes }
    })

    const logger = context.logger
    const clientConfig: KafkaConfig = {
      clientId: config.clientId,
      brokers,
      connectionTimeout: CONNECTION_TIMEOUT_MS,
      requestTimeout: config.timeoutMs + REQUEST_TIMEOUT_MARGIN_MS,
      retry: CLIENT_RETRY,
      logLevel: kafkajs().logLevel.WARN,
      logCreator: kafkajsLogCreator(logger),
    }
    const ssl = tlsOptions(config.ssl, where)
    if (ssl !== undefined) clientConfig.ssl = ssl
    if (config.sasl) clientConfig.sasl = { ...config.sasl } as SASLOptions
    if (options.socketFactory) clientConfig.socketFactory = options.socketFactory
    this.kafka = new (kafkajs().Kafka)(clientConfig)

    const stickySlots = this.stickySlots
    const createPartitioner: ICustomPartitioner = () => {
      const byKey = kafkajs().Partitioners.DefaultPartitioner()
      return (args) => {
        const slot = stickySlots.get(args.message)
        return slot === undefined ? byKey(args) : slot % args.partitionMetadata.length
      }
    }
    this.producers = new ClientSlot(
      () =>
        this.kafka.producer({
          idempotent: config.idempotent,
          // kafkajs: the idempotent producer needs one request in flight per connection.
          ...(config.idempotent ? { maxInFlightRequests: 1 } : {}),
          retry: config.idempotent ? IDEMPOTENT_PRODUCER_RETRY : PRODUCER_RETRY,
          createPartitioner,
          // Metadata requests may create a missing topic; the broker decides (auto.create.topics.enable).
          allowAutoTopicCreation: true,
        }),
      logger,
    )
    this.admins = new ClientSlot(() => this.kafka.admin({ retry: CLIENT_RETRY }), logger)
  }

  write(batch: readonly SinkRecord[], signal: AbortSignal): Promise<WriteResult> {
    if (this.closed) return Promise.reject(transientError('kafka sink is closed', 'closed'))
    if (batch.length === 0) return Promise.resolve(ALL_WRITTEN)
    if (signal.aborted) return Promise.reject(signal.reason as Error)
    const work = this.send(batch)
    const settled = work.then(
      () => undefined,
      () => undefined,
    )
    this.inFlight.add(settled)
    void settled.then(() => this.inFlight.delete(settled))
    return abortable(work, signal)
  }

  private async send(batch: readonly SinkRecord[]): Promise<WriteResult> {
    const failed: Failed[] = []
    const byTopic = new Map<string, Outgoing[]>()
    for (let index = 0; index < batch.length; index++) {
      const record = batch[index]!
      const topic = this.topic.render(record)
      if (!this.topic.constant && !validTopic(topic)) {
        failed.push({
          index,
          error: permanentError(
            `the topic template "${this.config.topic}" rendered an invalid Kafka topic name (${topic.length} characters)`,
            'invalid-topic',
          ),
        })
        continue
      }
      let group = byTopic.get(topic)
      if (!group) byTopic.set(topic, (group = []))
      group.push(this.toOutgoing(index, record))
    }
    if (byTopic.size > 0) {
      try {
        await this.producers.use(async (producer, retire) => {
          const results = await Promise.all(
            [...byTopic].map(([topic, group]) => this.sendTopic(producer, topic, group, retire)),
          )
          for (const r of results) failed.push(...r)
        }, alwaysRetire)
      } catch (err) {
        // The producer could not connect: every record that was to be sent failed the same way.
        const error = classifyKafkaError(err).error
        if (failed.length === 0) throw error
        for (const group of byTopic.values()) for (const o of group) failed.push({ index: o.index, error })
      }
    }
    return failed.length === 0 ? ALL_WRITTEN : { failed }
  }

  private toOutgoing(index: number, record: SinkRecord): Outgoing {
    // Header values and keys go to kafkajs as Buffers (it would convert strings on every send anyway); the
    // ones that repeat (stream, content type, constant headers) are made once.
    let stream = this.streamHeaders.get(record.stream)
    if (!stream) this.streamHeaders.set(record.stream, (stream = Buffer.from(record.stream)))
    const type = contentTypeOf(record) === JSON_TYPE ? JSON_TYPE_BYTES : TEXT_BYTES
    const headers: IHeaders = { stream, 'content-type': type }
    let bytes =
      record.payload.length + RECORD_OVERHEAD_BYTES + BUILTIN_HEADER_BYTES + stream.length + type.length
    if (record.id !== undefined) {
      const id = Buffer.from(record.id)
      headers['record-id'] = id
      bytes += id.length
    }
    for (const h of this.headers) {
      const value = h.constant ?? Buffer.from(h.template.render(record))
      if (value.length === 0) continue
      headers[h.name] = value
      bytes += h.nameBytes + value.length // a replaced built-in is counted twice: a harmless overestimate
    }
    const keyText = this.key?.render(record)
    const key = keyText ? Buffer.from(keyText) : null
    if (key) bytes += key.length
    return {
      index,
      bytes,
      message: { key, value: record.payload, headers, timestamp: String(record.receivedAtMs) },
    }
  }

  /** Sends one topic's records in chunks; resolves with the records that failed (never rejects). */
  private async sendTopic(
    producer: Producer,
    topic: string,
    group: Outgoing[],
    retire: () => void,
  ): Promise<Failed[]> {
    const limit = this.chunkBytes.get(topic) ?? this.produceChunkBytes
    let verdicts: Map<string, Promise<SinkError>> | undefined
    const results = await Promise.all(
      chunk(group, limit).map(async (part): Promise<Failed[]> => {
        const slot = (this.nextSlot = (this.nextSlot + 1) & 0x7fffffff)
        for (const o of part) if (o.message.key === null) this.stickySlots.set(o.message, slot)
        try {
          await producer.send({
            topic,
            messages: part.map((o) => o.message),
            acks: this.config.acks,
            timeout: this.config.timeoutMs,
            compression: this.compression,
          })
          return []
        } catch (err) {
          retire()
          const failure = classifyKafkaError(err)
          if (failure.kind === 'unknown-topic') {
            verdicts ??= new Map()
            let verdict = verdicts.get(topic)
            if (!verdict) verdicts.set(topic, (verdict = this.topicVerdict(topic, failure.error)))
            const error = await verdict
            return part.map((o) => ({ index: o.index, error }))
          }
          if (failure.kind === 'too-large') return this.tooLarge(topic, part, limit, failure.error)
          return part.map((o) => ({ index: o.index, error: failure.error }))
        }
      }),
    )
    return results.flat()
  }

  /**
   * The producer's metadata said UNKNOWN_TOPIC_OR_PARTITION (after the broker declined to create the
   * topic, when auto-creation is off). Admin metadata, which never creates topics, tells whether the topic
   * is missing (permanent) or the partition map was only stale (transient).
   */
  private async topicVerdict(topic: string, original: SinkError): Promise<SinkError> {
    try {
      await this.admins.use((admin) => admin.fetchTopicMetadata({ topics: [topic] }), retireUnlessAnswered)
      return transientError(
        `kafka: topic "${topic}" exists but a partition was unknown: ${original.message}`,
        'metadata',
        original,
      )
    } catch (err) {
      const failure = classifyKafkaError(err)
      if (failure.kind === 'unknown-topic')
        return permanentError(
          `kafka: topic "${topic}" does not exist and the broker did not create it`,
          'unknown-topic',
          err,
        )
      return failure.error
    }
  }

  /**
   * MESSAGE_TOO_LARGE / RECORD_LIST_TOO_LARGE: a one-record chunk is final. For a larger chunk the topic's
   * own `max.message.bytes` (lower than the default) decides: records over it fail permanently, the others
   * are retried in chunks that fit. Without permission to read topic configs, the chunk size halves per try.
   */
  private async tooLarge(
    topic: string,
    part: Outgoing[],
    limit: number,
    error: SinkError,
  ): Promise<Failed[]> {
    if (part.length === 1) return [{ index: part[0]!.index, error }]
    let recordLimit = Infinity
    try {
      const maxMessageBytes = await this.admins.use(
        (admin) => topicMaxMessageBytes(admin, topic),
        retireUnlessAnswered,
      )
      if (maxMessageBytes !== undefined) {
        recordLimit = maxMessageBytes - RECORD_BATCH_HEADER_BYTES
        this.chunkBytes.set(topic, Math.min(limit, recordLimit))
      } else this.chunkBytes.set(topic, Math.floor(limit / 2))
    } catch {
      this.chunkBytes.set(topic, Math.floor(limit / 2))
    }
    const retry = transientError(
      `kafka: a batch for topic "${topic}" was over the broker's size limit; resending in smaller batches`,
      'batch-too-large',
      error,
    )
    return part.map((o) => ({ index: o.index, error: o.bytes > recordLimit ? error : retry }))
  }

  async healthcheck(signal: AbortSignal): Promise<void> {
    try {
      await abortable(
        this.admins.use((admin) => admin.describeCluster(), retireUnlessAnswered),
        signal,
      )
    } catch (err) {
      if (signal.aborted) throw err
      throw classifyKafkaError(err).error
    }
  }

  async close(): Promise<void> {
    this.closed = true
    await Promise.all([...this.inFlight])
    await Promise.all([this.producers.close(), this.admins.close()])
  }
}

const alwaysRetire = (): boolean => true
/** An admin client that got an answer from the broker (even "no such topic") is healthy; keep it. */
const retireUnlessAnswered = (err: unknown): boolean => !hasProtocolType(err)

function hasProtocolType(err: unknown): boolean {
  for (let e: unknown = err, n = 0; e !== null && typeof e === 'object' && n < 8; n++) {
    if (typeof (e as { type?: unknown }).type === 'string') return true
    e = (e as { cause?: unknown }).cause
  }
  return false
}

async function topicMaxMessageBytes(admin: Admin, topic: string): Promise<number | undefined> {
  const answer = await admin.describeConfigs({
    resources: [
      { type: kafkajs().ConfigResourceTypes.TOPIC, name: topic, configNames: ['max.message.bytes'] },
    ],
    includeSynonyms: false,
  })
  const value = answer.resources[0]?.configEntries.find(
    (e) => e.configName === 'max.message.bytes',
  )?.configValue
  const n = Number(value)
  return Number.isSafeInteger(n) && n > 0 ? n : undefined
}

function chunk(group: Outgoing[], limit: number): Outgoing[][] {
  const parts: Outgoing[][] = []
  let current: Outgoing[] = []
  let bytes = 0
  for (const o of group) {
    if (current.length > 0 && bytes + o.bytes > limit) {
      parts.push(current)
      current = []
      bytes = 0
    }
    current.push(o)
    bytes += o.bytes
  }
  if (current.length > 0) parts.push(current)
  return parts
}

function validTopic(topic: string): boolean {
  return TOPIC_NAME.test(topic) && topic !== '.' && topic !== '..'
}

/**
 * kafkajs bundles gzip only (https://kafka.js.org/docs/producing#compression). zstd comes from node:zlib
 * where Node has it (22.15+); snappy and lz4 need a codec package registered in kafkajs' CompressionCodecs
 * by the embedding application (none is a dependency of streamgate).
 */
function compressionType(name: KafkaSinkConfig['compression'], where: string): CompressionTypes {
  const { CompressionTypes } = kafkajs()
  switch (name) {
    case 'none':
      return CompressionTypes.None
    case 'gzip':
      return CompressionTypes.GZIP
    case 'zstd':
      registerNodeZstd()
      return requireCodec(CompressionTypes.ZSTD, name, where)
    case 'snappy':
      return requireCodec(CompressionTypes.Snappy, name, where)
    case 'lz4':
      return requireCodec(CompressionTypes.LZ4, name, where)
  }
}

function requireCodec(type: CompressionTypes, name: string, where: string): CompressionTypes {
  let available: boolean
  try {
    const lookup = (kafkajs().CompressionCodecs as Record<number, (() => unknown) | undefined>)[type]
    available = typeof lookup === 'function' && lookup() != null
  } catch {
    available = false // kafkajs' placeholder codecs throw "… compression not implemented"
  }
  if (!available)
    throw new Error(
      `${where}.compression: "${name}" needs a codec that kafkajs does not bundle and none is installed` +
        (name === 'zstd' ? ' (Node 22.15+ has zstd built in)' : '') +
        '; use "gzip" or "none"',
    )
  return type
}

type ZstdZlib = {
  zstdCompress?: (buf: Buffer, cb: (err: Error | null, out: Buffer) => void) => void
  zstdDecompress?: (buf: Buffer, cb: (err: Error | null, out: Buffer) => void) => void
}

function registerNodeZstd(): void {
  const z = zlib as unknown as ZstdZlib
  const compress = z.zstdCompress
  const decompress = z.zstdDecompress
  if (!compress || !decompress) return
  const run = (fn: NonNullable<ZstdZlib['zstdCompress']>, buf: Buffer): Promise<Buffer> =>
    new Promise((resolve, reject) => fn(buf, (err, out) => (err ? reject(err) : resolve(out))))
  const codec = {
    compress: (encoder: { buffer: Buffer }) => run(compress, encoder.buffer),
    decompress: (buffer: Buffer) => run(decompress, buffer),
  }
  ;(kafkajs().CompressionCodecs as Record<number, () => unknown>)[kafkajs().CompressionTypes.ZSTD] = () =>
    codec
}

function tlsOptions(ssl: KafkaSinkConfig['ssl'], where: string): boolean | ConnectionOptions | undefined {
  if (ssl === undefined || ssl === false) return undefined
  if (ssl === true) return true
  const read = (key: 'caFile' | 'certFile' | 'keyFile'): string | undefined => {
    const path = ssl[key]
    if (path === undefined) return undefined
    try {
      return readFileSync(path, 'utf8')
    } catch (err) {
      throw new Error(
        `${where}.ssl.${key}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
        { cause: err },
      )
    }
  }
  const options: ConnectionOptions = { rejectUnauthorized: ssl.rejectUnauthorized ?? true }
  const ca = read('caFile')
  const cert = read('certFile')
  const key = read('keyFile')
  if (ca !== undefined) options.ca = ca
  if (cert !== undefined) options.cert = cert
  if (key !== undefined) options.key = key
  return options
}

/**
 * kafkajs logs through our pino logger, at warn (kafkajs' ERROR and WARN levels; nothing below). Only the
 * message, the namespace and a few safe fields are kept: never payloads, never SASL settings.
 */
function kafkajsLogCreator(logger: Logger): logCreator {
  return () =>
    ({ namespace, label, log }) => {
      const { message, broker, error, retryCount } = log as {
        message: string
        broker?: unknown
        error?: unknown
        retryCount?: unknown
      }
      if (SILENCED_KAFKAJS_WARNINGS.has(message)) return
      logger.warn(
        {
          kafkajs: namespace,
          kafkajsLevel: label,
          ...(typeof broker === 'string' ? { broker } : {}),
          ...(typeof error === 'string' ? { error } : {}),
          ...(typeof retryCount === 'number' ? { retryCount } : {}),
        },
        `kafkajs: ${message}`,
      )
    }
}

/** Rejects with the signal's reason once it aborts; the work itself goes on (close() waits for it). */
function abortable<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason as Error)
    if (signal.aborted) onAbort()
    else signal.addEventListener('abort', onAbort, { once: true })
    work.then(
      (value) => {
        signal.removeEventListener('abort', onAbort)
        resolve(value)
      },
      (err: Error) => {
        signal.removeEventListener('abort', onAbort)
        reject(err)
      },
    )
  })
}

interface Connectable {
  connect(): Promise<void>
  disconnect(): Promise<void>
}

interface Held<C> {
  client: C
  ready: Promise<void>
  users: number
  retired: boolean
  disconnected: boolean
}

/**
 * One kafkajs client (producer or admin) shared by concurrent calls, created and connected on first use.
 * A call that fails in a way that leaves the client suspect retires it: later calls get a new one, and the
 * old one is disconnected once its last call has finished (never under a send that is still running).
 */
class ClientSlot<C extends Connectable> {
  private current: Held<C> | undefined
  private readonly disconnecting = new Set<Promise<void>>()

  constructor(
    private readonly make: () => C,
    private readonly logger: Logger,
  ) {}

  async use<R>(
    fn: (client: C, retire: () => void) => Promise<R>,
    retireOn: (err: unknown) => boolean,
  ): Promise<R> {
    const held = (this.current ??= this.open())
    held.users++
    try {
      await held.ready
      return await fn(held.client, () => this.retire(held))
    } catch (err) {
      if (retireOn(err)) this.retire(held)
      throw err
    } finally {
      held.users--
      if (held.retired && held.users === 0) this.disconnect(held)
    }
  }

  async close(): Promise<void> {
    if (this.current) this.retire(this.current)
    await Promise.all([...this.disconnecting])
  }

  private open(): Held<C> {
    const client = this.make()
    const held: Held<C> = { client, ready: client.connect(), users: 0, retired: false, disconnected: false }
    held.ready.catch(() => this.retire(held))
    return held
  }

  private retire(held: Held<C>): void {
    if (this.current === held) this.current = undefined
    if (held.retired) return
    held.retired = true
    if (held.users === 0) this.disconnect(held)
  }

  private disconnect(held: Held<C>): void {
    if (held.disconnected) return
    held.disconnected = true
    const done = held.client
      .disconnect()
      .catch((err: unknown) =>
        this.logger.warn({ err: (err as Error).message }, 'kafka client disconnect failed'),
      )
      .finally(() => this.disconnecting.delete(done))
    this.disconnecting.add(done)
  }
}
