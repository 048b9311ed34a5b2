import { abortable } from '../abortable.js'
import type { KafkaSinkConfig } from '../../config/types.js'
import { permanentError, transientError, type SinkError } from '../../errors.js'
import { RecordTemplate } from '../../records/template.js'
import {
  ALL_WRITTEN,
  batchLimits,
  type Sink,
  type SinkContext,
  type SinkRecord,
  type WriteResult,
} from '../sink.js'
import { createKafkaClient, tlsSettings, type KafkaClient } from './client.js'
import { classifyKafkaError } from './errors.js'
import { MessageBuilder, type OutgoingMessage } from './messages.js'

// The kafka sink: each record becomes one message (messages.ts says how), records are grouped by topic (the
// `topic` template rendered per record), each topic's messages are cut into sends of at most ~1 MB, and
// every send goes to one of the client's producers: unkeyed messages of one send share a partition and a
// producer, keyed messages go to the producer of their key, so a key's records keep their order while
// several sends are in flight at once (`producers`). Which library talks to Kafka is the `client` setting
// (client.ts); what their errors mean is errors.ts. Every failed send is reported per record (by index) as a
// SinkError that says whether retrying can help; the delivery layer (src/pipeline/delivery.ts) retries.

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
 * Both clients put all messages of one partition in one send into a single record batch, which must stay
 * under the broker's `message.max.bytes`. Sends are cut into chunks of at most this many (estimated,
 * uncompressed) bytes, so a batch never exceeds the default limit even with compression `none`.
 */
const PRODUCE_CHUNK_BYTES = 1_000_000
/** A record batch's fixed header (v2 format). */
const RECORD_BATCH_HEADER_BYTES = 61

const KAFKA_DEFAULTS = {
  maxBatchRecords: 10_000,
  maxBatchBytes: 8 * 1024 * 1024,
  lingerMs: 50,
  maxRecordBytes: KAFKA_MAX_RECORD_BYTES,
  // The lane reads and builds the next batch while this one is sent. Writes may overlap: each producer
  // sends in the order it was given sends, so a key's records keep their order (unless a send is retried).
  maxInFlightBatches: 2,
}

/** Kafka topic names: https://github.com/apache/kafka/blob/3.9/clients/src/main/java/org/apache/kafka/common/internals/Topic.java */
const TOPIC_NAME = /^[a-zA-Z0-9._-]{1,249}$/

/** Test and embedding hooks that are not part of the config file. */
export interface KafkaSinkOptions {
  /** Connections to a key address ("host:port") go to the value address; tests route them through a proxy. */
  redirectBrokers?: Record<string, string>
  /** Most estimated bytes per produce request and topic (default 1,000,000); tests use small records. */
  produceChunkBytes?: number
  /** The client to send with instead of the one `client` names (test/support/fakes/kafka-client.ts). */
  client?: KafkaClient
}

export function createKafkaSink(
  name: string,
  config: KafkaSinkConfig,
  context: SinkContext,
  options: KafkaSinkOptions = {},
): Sink {
  return new KafkaSink(name, config, context, options)
}

interface Failed {
  index: number
  error: SinkError
}

class KafkaSink implements Sink {
  readonly type = 'kafka' as const
  readonly limits
  private readonly client: KafkaClient
  private readonly topic: RecordTemplate
  private readonly messages: MessageBuilder
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
    this.topic = new RecordTemplate(config.topic)
    if (this.topic.constant && !validTopic(config.topic))
      throw new Error(`${where}.topic: "${config.topic}" is not a valid Kafka topic name`)
    this.messages = new MessageBuilder(config)
    const tls = tlsSettings(config.ssl, where)
    this.client =
      options.client ??
      createKafkaClient(config.client, {
        where,
        brokers,
        clientId: config.clientId,
        timeoutMs: config.timeoutMs,
        acks: config.acks,
        idempotent: config.idempotent,
        compression: config.compression,
        producers: config.producers,
        ...(tls ? { tls } : {}),
        ...(config.sasl ? { sasl: config.sasl } : {}),
        ...(options.redirectBrokers ? { redirectBrokers: options.redirectBrokers } : {}),
        logger: context.logger,
      })
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
    const byTopic = new Map<string, OutgoingMessage[]>()
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
      group.push(this.messages.build(index, record))
    }
    const results = await Promise.all([...byTopic].map(([topic, group]) => this.sendTopic(topic, group)))
    for (const r of results) failed.push(...r)
    if (failed.length === batch.length && failed.length > 0) {
      // Nothing went out, for one transient cause (the broker is unreachable, credentials refused): the
      // whole write failed, so the delivery layer reports it as the sink's last error and the circuit
      // counts it. Each send of a split write fails with its own error object: they are compared by what
      // they mean. Permanent failures stay per record (each record may be dead-lettered for its own reason).
      const first = failed[0]!.error
      if (first.retriable && failed.every((f) => f.error.retriable && f.error.reason === first.reason))
        throw first
    }
    return failed.length === 0 ? ALL_WRITTEN : { failed }
  }

  /** Sends one topic's messages; resolves with the records that failed (never rejects). */
  private async sendTopic(topic: string, group: OutgoingMessage[]): Promise<Failed[]> {
    const limit = this.chunkBytes.get(topic) ?? this.produceChunkBytes
    let verdict: Promise<SinkError> | undefined
    const producers = this.client.producers
    const sends: { producer: number; part: OutgoingMessage[] }[] = []
    for (const part of this.messages.chunk(group, limit)) {
      if (producers === 1) {
        sends.push({ producer: 0, part })
        continue
      }
      const byProducer = new Map<number, OutgoingMessage[]>()
      for (const m of part) {
        const producer = (m.route & 0x7fffffff) % producers
        let list = byProducer.get(producer)
        if (!list) byProducer.set(producer, (list = []))
        list.push(m)
      }
      for (const [producer, list] of byProducer) sends.push({ producer, part: list })
    }
    const results = await Promise.all(
      sends.map(async ({ producer, part }): Promise<Failed[]> => {
        try {
          await this.client.send(producer, topic, part)
          return []
        } catch (err) {
          const failure = classifyKafkaError(err)
          if (failure.kind === 'unknown-topic') {
            const error = await (verdict ??= this.topicVerdict(topic, failure.error))
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
    let exists: boolean
    try {
      exists = await this.client.topicExists(topic)
    } catch (err) {
      return classifyKafkaError(err).error
    }
    return exists
      ? transientError(
          `kafka: topic "${topic}" exists but a partition was unknown: ${original.message}`,
          'metadata',
          original,
        )
      : permanentError(
          `kafka: topic "${topic}" does not exist and the broker did not create it`,
          'unknown-topic',
          original,
        )
  }

  /**
   * MESSAGE_TOO_LARGE / RECORD_LIST_TOO_LARGE: a one-record send is final. For a larger one the topic's
   * own `max.message.bytes` (lower than the default) decides: records over it fail permanently, the others
   * are retried in chunks that fit. Without permission to read topic configs, the chunk size halves per try.
   */
  private async tooLarge(
    topic: string,
    part: OutgoingMessage[],
    limit: number,
    error: SinkError,
  ): Promise<Failed[]> {
    if (part.length === 1) return [{ index: part[0]!.index, error }]
    let recordLimit = Infinity
    try {
      const maxMessageBytes = await this.client.topicMaxMessageBytes(topic)
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
      await abortable(this.client.ping(), signal)
    } catch (err) {
      if (signal.aborted) throw err
      throw classifyKafkaError(err).error
    }
  }

  async close(): Promise<void> {
    this.closed = true
    await Promise.all([...this.inFlight])
    await this.client.close()
  }
}

function validTopic(topic: string): boolean {
  return TOPIC_NAME.test(topic) && topic !== '.' && topic !== '..'
}
