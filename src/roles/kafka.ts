import type { Admin, IHeaders, Kafka, KafkaConfig, KafkaMessage, SASLOptions, logCreator } from 'kafkajs'
import type { ClusterConfig } from '../config/types.js'
import type { SinkRecord } from '../records/record.js'
import { tlsSettings } from '../sinks/kafka/client.js'
import { kafkajs } from '../sinks/kafka/kafkajs-client.js'
import type { Logger } from '../telemetry/logger.js'

// What the ingest and deliver roles (SPEC section 9) share: the names of their topics and groups, the
// headers a record travels with, the kafkajs client and the creation of missing topics.
//
//   <prefix>-<stream>               the stream's accepted records (value: the original bytes)
//   <prefix>-<stream>-dead-letter   its dead letters (value: the dead-letter envelope, records/dead-letter.ts)
//   <prefix>-control                the pause state per stream (compacted, one partition)
//   <prefix>-<sink>                 the consumer group that delivers to that sink

/** The topic of a stream's accepted records. */
export function recordsTopic(cluster: ClusterConfig, stream: string): string {
  return `${cluster.topicPrefix}-${stream}`
}

/** The topic of a stream's dead letters (invalid records, records a sink refused). */
export function deadLetterTopic(cluster: ClusterConfig, stream: string): string {
  return `${cluster.topicPrefix}-${stream}-dead-letter`
}

/** The compacted topic of each stream's pause state, read by every deliver node (src/roles/control.ts). */
export function controlTopic(cluster: ClusterConfig): string {
  return `${cluster.topicPrefix}-control`
}

/** The consumer group that delivers to a sink. */
export function sinkGroup(cluster: ClusterConfig, sink: string): string {
  return `${cluster.topicPrefix}-${sink}`
}

/** Headers every message of the roles carries (the value is the record's bytes, untouched). */
export const HEADER_STREAM = 'streamgate-stream'
export const HEADER_RECORD_ID = 'streamgate-record-id'
/** When the ingest node accepted the record: milliseconds since the epoch, decimal. */
export const HEADER_INGEST_TIME = 'streamgate-ingest-time'

export function recordHeaders(record: SinkRecord): IHeaders {
  const headers: IHeaders = {
    [HEADER_STREAM]: record.stream,
    [HEADER_INGEST_TIME]: String(record.receivedAtMs),
  }
  if (record.id !== undefined) headers[HEADER_RECORD_ID] = record.id
  return headers
}

function headerText(headers: IHeaders | undefined, name: string): string | undefined {
  const value = headers?.[name]
  const one = Array.isArray(value) ? value[0] : value
  if (one === undefined) return undefined
  return typeof one === 'string' ? one : one.toString('utf8')
}

/**
 * A consumed message back as the record it was at ingest. `stream` is the topic's stream (a message without
 * the header, written by something else, still belongs to it); without an ingest time, the broker's.
 */
export function recordOf(message: KafkaMessage, stream: string): SinkRecord {
  const id = headerText(message.headers, HEADER_RECORD_ID)
  const time = Number(headerText(message.headers, HEADER_INGEST_TIME))
  return {
    stream: headerText(message.headers, HEADER_STREAM) ?? stream,
    payload: message.value ?? Buffer.alloc(0),
    ...(id !== undefined ? { id } : {}),
    receivedAtMs: Number.isFinite(time) && time > 0 ? time : Number(message.timestamp),
  }
}

/** Connects and metadata: one quick retry inside kafkajs; the roles decide what a failure means. */
const CLIENT_RETRY = { retries: 1, initialRetryTime: 100, maxRetryTime: 1_000 }

export function clusterClient(cluster: ClusterConfig, role: string, logger: Logger): Kafka {
  const k = cluster.kafka
  const brokers = (Array.isArray(k.brokers) ? k.brokers : k.brokers.split(','))
    .map((b) => b.trim())
    .filter((b) => b.length > 0)
  const config: KafkaConfig = {
    clientId: `${k.clientId}-${role}`,
    brokers,
    connectionTimeout: 5_000,
    requestTimeout: k.timeoutMs + 5_000,
    retry: CLIENT_RETRY,
    logLevel: kafkajs().logLevel.WARN,
    logCreator: logTo(logger),
  }
  const tls = tlsSettings(k.ssl, 'cluster.kafka')
  if (tls) config.ssl = tls
  if (k.sasl) config.sasl = { ...k.sasl } as SASLOptions
  return new (kafkajs().Kafka)(config)
}

/** kafkajs' warnings and errors as log lines (message and namespace only: never payloads or secrets). */
function logTo(logger: Logger): logCreator {
  return () =>
    ({ namespace, label, log }) => {
      const { message, error } = log as { message: string; error?: unknown }
      // The ingest producer needs idempotence with kafkajs' least retries (src/roles/ingest.ts).
      if (message === 'Limiting retries for the idempotent producer may invalidate EoS guarantees') return
      logger.warn(
        { kafkajs: namespace, kafkajsLevel: label, ...(typeof error === 'string' ? { error } : {}) },
        `kafkajs: ${message}`,
      )
    }
}

/**
 * Creates the topics that are missing (with the cluster's partitions and replication factor) and answers
 * every topic's partition count. A fresh broker may answer the wait for leaders with
 * UNKNOWN_TOPIC_OR_PARTITION before it hosts the new partitions: then the leaders are polled, bounded.
 */
export async function ensureTopics(
  admin: Admin,
  cluster: ClusterConfig,
  topics: readonly string[],
  timeoutMs = 30_000,
): Promise<Map<string, number>> {
  const existing = new Set(await admin.listTopics())
  const missing = topics.filter((t) => !existing.has(t))
  if (missing.length > 0) {
    try {
      await admin.createTopics({
        waitForLeaders: true,
        topics: missing.map((topic) =>
          topic === controlTopic(cluster)
            ? {
                topic,
                numPartitions: 1,
                replicationFactor: cluster.replicationFactor,
                configEntries: [{ name: 'cleanup.policy', value: 'compact' }],
              }
            : { topic, numPartitions: cluster.partitions, replicationFactor: cluster.replicationFactor },
        ),
      })
    } catch (err) {
      const type = (err as { type?: unknown }).type
      // Another node created them at the same moment, or the broker is slow to host them: both are fine.
      if (type !== 'UNKNOWN_TOPIC_OR_PARTITION' && type !== 'TOPIC_ALREADY_EXISTS') throw err
    }
  }
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      const { topics: meta } = await admin.fetchTopicMetadata({ topics: [...topics] })
      if (meta.every((t) => t.partitions.length > 0 && t.partitions.every((p) => p.leader >= 0)))
        return new Map(meta.map((t) => [t.name, t.partitions.length]))
    } catch (err) {
      if (Date.now() >= deadline) throw err
    }
    if (Date.now() >= deadline) throw new Error(`topics ${topics.join(', ')} have no leaders`)
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
}
