import { readFileSync } from 'node:fs'
import type { KafkaSinkConfig } from '../../config/types.js'
import type { Logger } from '../../telemetry/logger.js'
import { createKafkajsClient } from './kafkajs-client.js'
import type { OutgoingMessage } from './messages.js'
import { createPlatformaticClient } from './platformatic-client.js'

// The one small interface between the kafka sink and a Kafka client library. The sink decides what goes
// where (topics, partitions by `route`, chunks, which producer); a client only sends, and answers the few
// admin questions the sink asks when a send failed. Two implementations: kafkajs (kafkajs-client.ts, the
// default) and @platformatic/kafka in a worker thread (platformatic-client.ts, `client: platformatic`).
// Their errors are mapped to SinkErrors by errors.ts `classifyKafkaError`.

export interface KafkaClient {
  /** How many producers the client keeps (`producers` setting); `send` takes one of them by index. */
  readonly producers: number
  /**
   * Sends messages to one topic through producer `producer` (0 ≤ producer < producers), after the sends
   * given to that producer before (one at a time per producer, in order: a key's records keep their
   * order). Resolves once the broker acknowledged all of them (acks); rejects otherwise, after which that
   * producer is replaced by a new one (a new producer id) for the next send.
   */
  send(producer: number, topic: string, messages: readonly OutgoingMessage[]): Promise<void>
  /** Whether the topic exists, by metadata that never creates it. */
  topicExists(topic: string): Promise<boolean>
  /** The topic's `max.message.bytes`, when the principal may read topic configs. */
  topicMaxMessageBytes(topic: string): Promise<number | undefined>
  /** One metadata round trip to the cluster (the health check). */
  ping(): Promise<void>
  /** Resolves when every connection is closed; calls made before have settled. */
  close(): Promise<void>
}

/** The client settings both implementations take, resolved from the sink's config. */
export interface KafkaClientSettings {
  /** `sinks.<name>`, for error messages. */
  where: string
  brokers: string[]
  clientId: string
  /** The broker's produce timeout (acks); the client gives up REQUEST_TIMEOUT_MARGIN_MS later. */
  timeoutMs: number
  acks: -1 | 0 | 1
  idempotent: boolean
  compression: KafkaSinkConfig['compression']
  producers: number
  tls?: { ca?: string; cert?: string; key?: string; rejectUnauthorized?: boolean }
  sasl?: KafkaSinkConfig['sasl']
  /** Test hook: connections to a key address ("host:port") go to the value address instead. */
  redirectBrokers?: Record<string, string>
  logger: Logger
}

/** A refused connection fails at once; this bounds connects to a host that does not answer. */
export const CONNECTION_TIMEOUT_MS = 5_000
/** The client waits this much longer than the broker's produce `timeout` before it gives up on a request. */
export const REQUEST_TIMEOUT_MARGIN_MS = 5_000

export function createKafkaClient(
  client: KafkaSinkConfig['client'],
  settings: KafkaClientSettings,
): KafkaClient {
  return client === 'platformatic' ? createPlatformaticClient(settings) : createKafkajsClient(settings)
}

/** TLS settings with the PEM files read (so a missing file fails at start-up, naming the key). */
export function tlsSettings(ssl: KafkaSinkConfig['ssl'], where: string): KafkaClientSettings['tls'] {
  if (ssl === undefined || ssl === false) return undefined
  if (ssl === true) return {}
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
  const tls: NonNullable<KafkaClientSettings['tls']> = { rejectUnauthorized: ssl.rejectUnauthorized ?? true }
  const ca = read('caFile')
  const cert = read('certFile')
  const key = read('keyFile')
  if (ca !== undefined) tls.ca = ca
  if (cert !== undefined) tls.cert = cert
  if (key !== undefined) tls.key = key
  return tls
}
