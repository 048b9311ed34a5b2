import { connect as netConnect } from 'node:net'
import { createRequire } from 'node:module'
import { connect as tlsConnect } from 'node:tls'
import type * as KafkaJs from 'kafkajs'
import type {
  Admin,
  CompressionTypes,
  ICustomPartitioner,
  ISocketFactory,
  Kafka,
  KafkaConfig,
  Message,
  Producer,
  RetryOptions,
  SASLOptions,
  logCreator,
} from 'kafkajs'
import type { Logger } from '../../telemetry/logger.js'
import {
  CONNECTION_TIMEOUT_MS,
  REQUEST_TIMEOUT_MARGIN_MS,
  type KafkaClient,
  type KafkaClientSettings,
} from './client.js'
import { kafkajsCompression } from './compression.js'
import { brokerAnswered } from './errors.js'
import { partitionOf, type OutgoingMessage } from './messages.js'

// kafkajs 2.2.4 behind the KafkaClient interface (the default client).
//
// kafkajs is loaded when the first kafka sink is built, not at start-up: it costs ~240 ms and ~12 MB of
// RSS that a gateway without a kafka sink never needs. It is CommonJS, so `require` loads it synchronously
// (the same module instance an `import` would give) and the sink factory stays synchronous.
//
// Retries belong to the delivery layer (src/pipeline/delivery.ts), not to kafkajs: the producer gets the
// fewest retries kafkajs allows (0, or 1 for the idempotent producer, which refuses fewer).
//
// Idempotence with kafkajs needs two precautions, because the broker recognises a resent batch by
// (producer id, partition, first sequence number) alone, never by its content:
//  - A failed produce request makes kafkajs roll back the sequence numbers of every partition in that
//    request (one partition's error fails the whole response), including partitions the broker did append,
//    and a timed-out request may have been appended too. The next batch to such a partition reuses sequence
//    numbers the broker has seen: with the same range it is acknowledged as a duplicate WITHOUT being
//    stored, otherwise refused as out of order. So after any failed send the producer is retired and the
//    next send gets a new one (a new producer id, fresh sequences).
//  - kafkajs' own retry re-partitions the messages. Its default partitioner spreads unkeyed messages
//    round-robin, so the retry would put different messages under the same sequence numbers. Here the
//    partition comes from each message's `route` (messages.ts: murmur2 of the key, or one slot per chunk),
//    so a retry rebuilds exactly the same batches.
// Broker source: https://github.com/apache/kafka/blob/3.9/storage/src/main/java/org/apache/kafka/storage/internals/log/ProducerStateEntry.java
// (findDuplicateBatch compares producer epoch and sequence range only).
//
// Where this client's CPU goes (bench/RESULTS.md, "Kafka lane on a quieter box", main thread during a
// zstd drain): kafkajs' per-record encoding 46 % (one Encoder per record and per header, each a zero-filled
// 512-byte Buffer.alloc, varints through Buffer.from, headers 18 % of it), GC 12 %, zstd's hand-off 11 %,
// CRC-32C 1.3 % (it runs over the compressed batch). kafkajs offers no seam for the record encoder (only
// codecs, partitioner, socket factory and logger), so that share stays; it caps this client at ~50k records
// per gateway CPU-second on Azion records. More producers did not help it measurably on 2 cores.

const requireModule = createRequire(import.meta.url)
let kafkajsModule: typeof KafkaJs | undefined
export function kafkajs(): typeof KafkaJs {
  if (!kafkajsModule) {
    installLinearGrouping()
    installNonNegativeSchedule()
    kafkajsModule = requireModule('kafkajs') as typeof KafkaJs
  }
  return kafkajsModule
}

/** kafkajs' own grouping of a send's messages by partition (src/producer/groupMessagesPerPartition.js). */
export const KAFKAJS_GROUPING_MODULE = 'kafkajs/src/producer/groupMessagesPerPartition.js'

interface GroupingArgs {
  topic: string
  partitionMetadata: readonly unknown[]
  messages: readonly Message[]
  partitioner: (args: { topic: string; partitionMetadata: readonly unknown[]; message: Message }) => number
}

/**
 * What kafkajs 2.2.4's groupMessagesPerPartition computes (each partition's messages, in send order, under
 * the partition number), in linear time. kafkajs' version copies the partition's array for every message
 * (`[...current, message]`): quadratic in the messages per partition of one send, ~1,600 for a 1 MB chunk,
 * where it took ~20 % of the gateway's CPU on the Kafka lane (bench/RESULTS.md, "Kafka lane").
 */
export function groupMessagesPerPartition({
  topic,
  partitionMetadata,
  messages,
  partitioner,
}: GroupingArgs): Record<number, Message[]> {
  const result: Record<number, Message[]> = {}
  if (partitionMetadata.length === 0) return result
  for (const message of messages) {
    const partition = partitioner({ topic, partitionMetadata, message })
    ;(result[partition] ??= []).push(message)
  }
  return result
}

/**
 * Puts `groupMessagesPerPartition` in place of kafkajs' module before kafkajs loads the producer that
 * requires it (kafkajs is unmaintained since 2.2.4, so the file does not move). When something else loaded
 * kafkajs first (a test's consumer), its producer keeps the original: slower, the same result.
 */
function installLinearGrouping(): void {
  const id = requireModule.resolve(KAFKAJS_GROUPING_MODULE)
  requireModule(id)
  const loaded = requireModule.cache[id]
  if (loaded) loaded.exports = groupMessagesPerPartition
}

/** kafkajs' per-broker request queue (src/network/requestQueue/index.js). */
export const KAFKAJS_REQUEST_QUEUE_MODULE = 'kafkajs/src/network/requestQueue/index.js'
/** kafkajs 2.2.4's CHECK_PENDING_REQUESTS_INTERVAL (the same file). */
const CHECK_PENDING_REQUESTS_INTERVAL_MS = 10

/** The fields of kafkajs' RequestQueue that scheduleCheckPendingRequests uses. */
export interface RequestQueueState {
  throttledUntil: number
  throttleCheckTimeoutId: NodeJS.Timeout | null
  pending: readonly unknown[]
  checkPendingRequests(): void
}

/**
 * kafkajs 2.2.4's RequestQueue.scheduleCheckPendingRequests with a delay that is never negative. Never
 * throttled (`throttledUntil` -1) and with nothing pending, it set a timer of `-1 - Date.now()` ms: Node 24
 * prints a TimeoutNegativeWarning for that (once per process: every gateway with a kafka sink or a Kafka
 * role, and every test file that uses one) and fires it after 1 ms, which a delay of 0 does as well
 * (tulios/kafkajs#1751). Otherwise the same steps as kafkajs'.
 */
export function scheduleCheckPendingRequests(this: RequestQueueState): void {
  let scheduleAt = this.throttledUntil - Date.now()
  if (this.throttleCheckTimeoutId) return
  if (this.pending.length > 0) scheduleAt = scheduleAt > 0 ? scheduleAt : CHECK_PENDING_REQUESTS_INTERVAL_MS
  this.throttleCheckTimeoutId = setTimeout(
    () => {
      this.throttleCheckTimeoutId = null
      this.checkPendingRequests()
    },
    Math.max(0, scheduleAt),
  )
}

function installNonNegativeSchedule(): void {
  const RequestQueue = requireModule(KAFKAJS_REQUEST_QUEUE_MODULE) as {
    prototype: { scheduleCheckPendingRequests: (this: RequestQueueState) => void }
  }
  RequestQueue.prototype.scheduleCheckPendingRequests = scheduleCheckPendingRequests
}

/** Connects and metadata: one quick retry inside kafkajs, then the error is ours to report. */
const CLIENT_RETRY: RetryOptions = { retries: 1, initialRetryTime: 100, maxRetryTime: 1_000 }
/** kafkajs refuses an idempotent producer with fewer than 1 retry. */
const IDEMPOTENT_PRODUCER_RETRY: RetryOptions = { retries: 1, initialRetryTime: 100, maxRetryTime: 1_000 }
const PRODUCER_RETRY: RetryOptions = { retries: 0 }

/** Warnings kafkajs prints that this client has dealt with (see the idempotence notes above). */
const SILENCED_KAFKAJS_WARNINGS = new Set([
  'Limiting retries for the idempotent producer may invalidate EoS guarantees',
])

export function createKafkajsClient(settings: KafkaClientSettings): KafkaClient {
  return new KafkajsClient(settings)
}

class KafkajsClient implements KafkaClient {
  readonly producers: number
  private readonly kafka: Kafka
  private readonly compression: CompressionTypes
  private readonly producerSlots: ClientSlot<Producer>[]
  private readonly admins: ClientSlot<Admin>

  constructor(private readonly settings: KafkaClientSettings) {
    this.compression = kafkajsCompression(kafkajs(), settings.compression, settings.where)
    this.producers = settings.producers
    const clientConfig: KafkaConfig = {
      clientId: settings.clientId,
      brokers: settings.brokers,
      connectionTimeout: CONNECTION_TIMEOUT_MS,
      requestTimeout: settings.timeoutMs + REQUEST_TIMEOUT_MARGIN_MS,
      retry: CLIENT_RETRY,
      logLevel: kafkajs().logLevel.WARN,
      logCreator: kafkajsLogCreator(settings.logger),
    }
    if (settings.tls) clientConfig.ssl = settings.tls
    if (settings.sasl) clientConfig.sasl = { ...settings.sasl } as SASLOptions
    if (settings.redirectBrokers)
      clientConfig.socketFactory = redirectingSocketFactory(settings.redirectBrokers)
    this.kafka = new (kafkajs().Kafka)(clientConfig)

    // Every message carries its route (messages.ts); the partition follows from it and the topic's
    // partition count, the same on every attempt.
    const createPartitioner: ICustomPartitioner =
      () =>
      ({ message, partitionMetadata }) =>
        partitionOf((message as unknown as OutgoingMessage).route, partitionMetadata.length)
    const logger = settings.logger
    this.producerSlots = Array.from(
      { length: settings.producers },
      () =>
        new ClientSlot(
          () =>
            this.kafka.producer({
              idempotent: settings.idempotent,
              // kafkajs: the idempotent producer needs one request in flight per connection.
              ...(settings.idempotent ? { maxInFlightRequests: 1 } : {}),
              retry: settings.idempotent ? IDEMPOTENT_PRODUCER_RETRY : PRODUCER_RETRY,
              createPartitioner,
              // Metadata requests may create a missing topic; the broker decides (auto.create.topics.enable).
              allowAutoTopicCreation: true,
            }),
          logger,
        ),
    )
    this.admins = new ClientSlot(() => this.kafka.admin({ retry: CLIENT_RETRY }), logger)
  }

  send(producer: number, topic: string, messages: readonly OutgoingMessage[]): Promise<void> {
    return this.producerSlots[producer]!.use(
      async (p) => {
        await p.send({
          topic,
          // kafkajs reads key, value, headers and timestamp (typed as a string, used as a number:
          // `timestamp - firstTimestamp`); the partitioner reads the route.
          messages: messages as unknown as Message[],
          acks: this.settings.acks,
          timeout: this.settings.timeoutMs,
          compression: this.compression,
        })
      },
      () => true,
    )
  }

  async topicExists(topic: string): Promise<boolean> {
    try {
      await this.admins.use((admin) => admin.fetchTopicMetadata({ topics: [topic] }), retireUnlessAnswered)
      return true
    } catch (err) {
      if (hasProtocolType(err, 'UNKNOWN_TOPIC_OR_PARTITION')) return false
      throw err
    }
  }

  topicMaxMessageBytes(topic: string): Promise<number | undefined> {
    return this.admins.use(async (admin) => {
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
    }, retireUnlessAnswered)
  }

  async ping(): Promise<void> {
    await this.admins.use((admin) => admin.describeCluster(), retireUnlessAnswered)
  }

  async close(): Promise<void> {
    await Promise.all([...this.producerSlots, this.admins].map((slot) => slot.close()))
  }
}

/** An admin client that got an answer from the broker (even "no such topic") is healthy; keep it. */
const retireUnlessAnswered = (err: unknown): boolean => !brokerAnswered(err)

function hasProtocolType(err: unknown, type: string): boolean {
  for (let e: unknown = err, n = 0; e !== null && typeof e === 'object' && n < 8; n++) {
    if ((e as { type?: unknown }).type === type) return true
    e = (e as { cause?: unknown }).cause
  }
  return false
}

/** Test hook: kafkajs' own socket factory, with connections to redirected addresses sent elsewhere. */
function redirectingSocketFactory(redirect: Record<string, string>): ISocketFactory {
  return ({ host, port, ssl, onConnect }) => {
    const to = redirect[`${host}:${port}`]
    let target = { host, port }
    if (to !== undefined) {
      const colon = to.lastIndexOf(':')
      target = { host: to.slice(0, colon), port: Number(to.slice(colon + 1)) }
    }
    const socket = ssl
      ? tlsConnect({ ...target, servername: host, ...ssl }, onConnect)
      : netConnect(target, onConnect)
    socket.setKeepAlive(true, 60_000)
    return socket
  }
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
 * One kafkajs client (producer or admin), created and connected on first use; calls on it run one after
 * another, in the order they were made. A call that fails in a way that leaves the client suspect retires
 * it: later calls get a new one, and the old one is disconnected once its last call has finished.
 */
class ClientSlot<C extends Connectable> {
  private current: Held<C> | undefined
  private tail: Promise<unknown> = Promise.resolve()
  private readonly disconnecting = new Set<Promise<void>>()

  constructor(
    private readonly make: () => C,
    private readonly logger: Logger,
  ) {}

  use<R>(fn: (client: C) => Promise<R>, retireOn: (err: unknown) => boolean): Promise<R> {
    const run = this.tail.then(() => this.run(fn, retireOn))
    this.tail = run.catch(() => undefined)
    return run
  }

  private async run<R>(fn: (client: C) => Promise<R>, retireOn: (err: unknown) => boolean): Promise<R> {
    const held = (this.current ??= this.open())
    held.users++
    try {
      await held.ready
      return await fn(held.client)
    } catch (err) {
      if (retireOn(err)) this.retire(held)
      throw err
    } finally {
      held.users--
      if (held.retired && held.users === 0) this.disconnect(held)
    }
  }

  async close(): Promise<void> {
    await this.tail
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
