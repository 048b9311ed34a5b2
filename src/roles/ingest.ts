import type { Admin, Kafka, Message, Producer, TopicMessages } from 'kafkajs'
import type { ClusterConfig } from '../config/types.js'
import { problem } from '../errors.js'
import type { StreamRuntime, ProcessOutcome } from '../pipeline/stream.js'
import type { HandOff } from '../pipeline/hand-off.js'
import type { SinkRecord } from '../records/record.js'
import { kafkajs } from '../sinks/kafka/kafkajs-client.js'
import { murmur2 } from '../sinks/kafka/messages.js'
import type { Logger } from '../telemetry/logger.js'
import type { Metrics } from '../telemetry/metrics.js'
import { clusterClient, deadLetterTopic, ensureTopics, recordHeaders, recordsTopic } from './kafka.js'

// The ingest role's hand-off (SPEC section 9): where a gateway with role `all` spools the accepted records
// of a request, an ingest node writes them to the stream's Kafka topic and resolves only once Kafka
// acknowledged them (acks=all, idempotent producer). The request then answers 200; if Kafka does not
// acknowledge within cluster.kafka.timeoutMs (unreachable, slow, a topic without leader) it answers 503 with
// Retry-After (the status table's spool-full row) and the vendor sends again: at least once, never lost.
//
// Concurrent requests share one producer: while one produce request is in flight, the next requests' records
// queue and go together in the next one (kafkajs with an idempotent producer wants one request in flight).
// A produce request that fails retires the producer (a new producer id for the next one): kafkajs rolls
// back the sequence numbers of every partition of a failed request, and the broker would take a later batch
// with reused numbers for a duplicate and drop it (see src/sinks/kafka/kafkajs-client.ts).
//
// Partitions: a record with an id is keyed by it (murmur2, the Java client's choice, so a given id always
// lands in the same partition); records without one go to one partition per chunk, round robin, so one
// request's records stay in order and in few partitions.

/** At most this much record data per chunk of a request (one chunk: one partition for unkeyed records)… */
const CHUNK_BYTES = 256 * 1024
/** …and per produce request: under the broker's default message.max.bytes (1 MiB) for any one partition. */
const SEND_BYTES = 768 * 1024

interface Chunk {
  topic: string
  messages: Message[]
  bytes: number
  resolve(): void
  reject(err: unknown): void
}

export class KafkaHandOff implements HandOff {
  private readonly kafka: Kafka
  private producer: Producer | undefined
  private producerReady: Promise<void> | undefined
  private admin: Admin | undefined
  /** Each topic's partition count once it is known to exist (a failed look-up is forgotten). */
  private readonly topics = new Map<string, Promise<number>>()
  private readonly queue: Chunk[] = []
  private sending = false
  private nextPartition = Math.floor(Math.random() * 1_000)
  private closed = false

  constructor(
    private readonly cluster: ClusterConfig,
    private readonly deps: { logger: Logger; metrics: Metrics },
  ) {
    this.kafka = clusterClient(cluster, 'ingest', deps.logger)
  }

  /** Creates the topics of these streams now (a start-up with Kafka down only logs: requests answer 503). */
  async prepare(streams: readonly string[]): Promise<void> {
    try {
      await Promise.all(
        streams.flatMap((s) => [
          this.partitions(recordsTopic(this.cluster, s)),
          this.partitions(deadLetterTopic(this.cluster, s)),
        ]),
      )
    } catch (err) {
      this.deps.logger.warn({ err: (err as Error).message }, 'the cluster topics cannot be prepared yet')
    }
  }

  async accept(stream: StreamRuntime, outcome: ProcessOutcome): Promise<void> {
    if (outcome.records.length === 0 && outcome.deadLetters.length === 0) return
    if (this.closed) throw unavailable('this node is shutting down')
    const timeoutMs = this.cluster.kafka.timeoutMs
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`Kafka did not acknowledge within ${timeoutMs} ms`)),
        timeoutMs,
      )
    })
    try {
      const work = this.write(stream.id, outcome)
      // The write goes on after a time-out (its records may still be stored: the vendor's retry is then a
      // duplicate, never a loss); only the answer stops waiting.
      work.catch(() => undefined)
      await Promise.race([work, timeout])
    } catch (err) {
      this.deps.logger.warn(
        { stream: stream.id, err: (err as Error).message },
        'records not acknowledged by Kafka; answering 503',
      )
      this.deps.metrics.spoolRefused(stream.id)
      throw unavailable(`the records were not acknowledged by Kafka (${(err as Error).message})`)
    } finally {
      clearTimeout(timer)
    }
    if (outcome.deadLetters.length > 0)
      this.deps.metrics.deadLetter(stream.id, 'invalid', outcome.deadLetters.length)
  }

  private async write(stream: string, outcome: ProcessOutcome): Promise<void> {
    const parts: Promise<void>[] = []
    if (outcome.records.length > 0) {
      const topic = recordsTopic(this.cluster, stream)
      const partitions = await this.partitions(topic)
      parts.push(...this.enqueue(topic, partitions, outcome.records))
    }
    if (outcome.deadLetters.length > 0) {
      const topic = deadLetterTopic(this.cluster, stream)
      const partitions = await this.partitions(topic)
      parts.push(...this.enqueue(topic, partitions, outcome.deadLetters))
    }
    await Promise.all(parts)
  }

  /** Writes records (SinkRecords: value, id, time) to a topic; resolves once Kafka acknowledged them all. */
  async writeRecords(topic: string, records: readonly SinkRecord[]): Promise<void> {
    const partitions = await this.partitions(topic)
    await Promise.all(this.enqueue(topic, partitions, records))
  }

  private enqueue(topic: string, partitions: number, records: readonly SinkRecord[]): Promise<void>[] {
    const done: Promise<void>[] = []
    let messages: Message[] = []
    let bytes = 0
    const flush = (): void => {
      const chunk = { topic, messages, bytes } as Chunk
      const unkeyed = this.nextPartition++ % partitions
      for (const m of chunk.messages) if (m.key === undefined) m.partition = unkeyed
      done.push(
        new Promise<void>((resolve, reject) => {
          chunk.resolve = resolve
          chunk.reject = reject
        }),
      )
      this.queue.push(chunk)
      messages = []
      bytes = 0
    }
    for (const record of records) {
      if (messages.length > 0 && bytes + record.payload.length > CHUNK_BYTES) flush()
      const message: Message = { value: record.payload, headers: recordHeaders(record) }
      if (record.id !== undefined) {
        const key = Buffer.from(record.id)
        message.key = key
        message.partition = (murmur2(key) & 0x7fffffff) % partitions
      }
      messages.push(message)
      bytes += record.payload.length
    }
    if (messages.length > 0) flush()
    void this.pump()
    return done
  }

  /** One produce request at a time, each carrying every chunk queued meanwhile (up to SEND_BYTES). */
  private async pump(): Promise<void> {
    if (this.sending) return
    this.sending = true
    try {
      while (this.queue.length > 0) {
        const batch: Chunk[] = [this.queue.shift()!]
        let bytes = batch[0]!.bytes
        while (this.queue.length > 0 && bytes + this.queue[0]!.bytes <= SEND_BYTES) {
          const next = this.queue.shift()!
          batch.push(next)
          bytes += next.bytes
        }
        try {
          await this.send(batch)
          for (const chunk of batch) chunk.resolve()
        } catch (err) {
          this.retireProducer()
          for (const chunk of batch) chunk.reject(err)
        }
      }
    } finally {
      this.sending = false
    }
  }

  private async send(batch: readonly Chunk[]): Promise<void> {
    const byTopic = new Map<string, Message[]>()
    for (const chunk of batch) {
      const list = byTopic.get(chunk.topic)
      if (list) list.push(...chunk.messages)
      else byTopic.set(chunk.topic, [...chunk.messages])
    }
    const topicMessages: TopicMessages[] = [...byTopic].map(([topic, messages]) => ({ topic, messages }))
    const producer = await this.connectedProducer()
    await producer.sendBatch({ topicMessages, acks: -1, timeout: this.cluster.kafka.timeoutMs })
  }

  private async connectedProducer(): Promise<Producer> {
    if (!this.producer) {
      const producer = this.kafka.producer({
        idempotent: true,
        maxInFlightRequests: 1,
        // kafkajs refuses an idempotent producer with fewer than 1 retry.
        retry: { retries: 1, initialRetryTime: 100, maxRetryTime: 1_000 },
        allowAutoTopicCreation: false,
        // Every message carries its partition (enqueue): the partitioner is never asked.
        createPartitioner: kafkajs().Partitioners.DefaultPartitioner,
      })
      this.producer = producer
      this.producerReady = producer.connect()
    }
    await this.producerReady
    return this.producer
  }

  private retireProducer(): void {
    const old = this.producer
    this.producer = undefined
    this.producerReady = undefined
    if (old)
      old.disconnect().catch((err: unknown) => {
        this.deps.logger.warn({ err: (err as Error).message }, 'kafka producer disconnect failed')
      })
  }

  /** The topic's partition count; creates the topic when it is missing. */
  private partitions(topic: string): Promise<number> {
    let known = this.topics.get(topic)
    if (!known) {
      known = (async () => {
        const admin = await this.connectedAdmin()
        const counts = await ensureTopics(admin, this.cluster, [topic], this.cluster.kafka.timeoutMs)
        return counts.get(topic)!
      })()
      this.topics.set(topic, known)
      known.catch(() => {
        if (this.topics.get(topic) === known) this.topics.delete(topic)
        // A failed connect leaves the admin suspect: the next look-up connects a new one.
        const admin = this.admin
        this.admin = undefined
        admin?.disconnect().catch(() => undefined)
      })
    }
    return known
  }

  private adminReady: Promise<Admin> | undefined
  /** The last readiness probe and when it started (performance.now()). */
  private probe: { at: number; result: Promise<string | undefined> } | undefined

  /**
   * Why this node cannot take records now, or undefined: /readyz of an ingest node answers 503 while its
   * Kafka cluster does not answer, so a load balancer sends the vendor's requests to a node that can store
   * them. One metadata call per READY_PROBE_MS at most, whatever the poll rate.
   */
  ready(): Promise<string | undefined> {
    if (this.closed) return Promise.resolve('this node is shutting down')
    const now = performance.now()
    if (!this.probe || now - this.probe.at >= READY_PROBE_MS)
      this.probe = { at: now, result: this.reachable() }
    return this.probe.result
  }

  private async reachable(): Promise<string | undefined> {
    const limitMs = Math.min(this.cluster.kafka.timeoutMs, READY_PROBE_MS)
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${limitMs} ms`)), limitMs)
    })
    try {
      await Promise.race([this.connectedAdmin().then((admin) => admin.describeCluster()), timeout])
      return undefined
    } catch (err) {
      // A failed connect leaves the admin suspect: the next look-up connects a new one.
      const admin = this.admin
      this.admin = undefined
      admin?.disconnect().catch(() => undefined)
      return `the Kafka cluster does not answer (${(err as Error).message})`
    } finally {
      clearTimeout(timer)
    }
  }

  private connectedAdmin(): Promise<Admin> {
    if (!this.admin || !this.adminReady) {
      const admin = this.kafka.admin({ retry: { retries: 1, initialRetryTime: 100, maxRetryTime: 1_000 } })
      this.admin = admin
      this.adminReady = admin.connect().then(() => admin)
      this.adminReady.catch(() => undefined)
    }
    return this.adminReady
  }

  async close(): Promise<void> {
    this.closed = true
    // Chunks already queued still go out: their requests are waiting for the answer.
    while (this.sending || this.queue.length > 0) await new Promise((r) => setTimeout(r, 20))
    await Promise.allSettled([this.producer?.disconnect(), this.admin?.disconnect()])
  }
}

/** Readiness probes of the Kafka cluster: at most one per this long, each waiting at most this long. */
const READY_PROBE_MS = 2_000

function unavailable(detail: string): Error {
  return problem('spool-full', `${detail}; retry shortly`, { headers: { 'retry-after': '5' } })
}
