import type { Consumer, EachBatchPayload, Kafka } from 'kafkajs'
import type { ClusterConfig, RetryConfig } from '../config/types.js'
import type { SinkError } from '../errors.js'
import { deliver } from '../pipeline/delivery.js'
import { DEFAULT_DEAD_LETTER_SINK, type Gateway } from '../pipeline/gateway.js'
import { deadLetterRecord } from '../records/dead-letter.js'
import type { SinkRecord } from '../records/record.js'
import type { Logger } from '../telemetry/logger.js'
import type { Metrics } from '../telemetry/metrics.js'
import { ControlChannel } from './control.js'
import { KafkaHandOff } from './ingest.js'
import {
  clusterClient,
  controlTopic,
  deadLetterTopic,
  ensureTopics,
  recordOf,
  recordsTopic,
  sinkGroup,
} from './kafka.js'

// The deliver role (SPEC section 9): one kafkajs consumer group per sink, `<prefix>-<sink>`, subscribed to
// the topics of the streams that route to it (and to the dead-letter topics of the streams whose dead-letter
// sink it is). Each fetched batch of a partition becomes SinkRecords and goes through the same delivery as a
// spool lane (src/pipeline/delivery.ts: the sink's batch limits, retries with backoff, its circuit breaker,
// dead letters); only once the sink confirmed are the batch's offsets resolved and committed. A crash or a
// rebalance before that hands the partition to another member, which reads from the last committed offset:
// at least once, never skipped. Kafka's group membership is the whole of the failover.
//
// A paused stream (status 2, the management API of any deliver node: src/roles/control.ts shares it through
// the control topic) pauses its topics in this node's consumers: its records wait in Kafka, and reading
// goes on from the last delivered offset once it is resumed.

const DEFAULT_RETRY: RetryConfig = { initialMs: 200, maxMs: 30_000, maxAttempts: 0 }
/** Heartbeats while a batch waits for its sink (retries, an open circuit): well under the session timeout. */
const HEARTBEAT_MS = 3_000
/** How often paused streams are looked at. */
const PAUSE_CHECK_MS = 500

interface Source {
  stream: string
  /** The stream's dead-letter topic (its records are dead-letter envelopes already). */
  deadLetter: boolean
}

interface Group {
  sink: string
  consumer: Consumer
  sources: Map<string, Source>
  paused: Set<string>
}

export class KafkaDelivery {
  private readonly kafka: Kafka
  private readonly groups: Group[] = []
  /** Records a sink refused for good go to the stream's dead-letter topic through this producer. */
  private readonly deadLetters: KafkaHandOff
  private timer: NodeJS.Timeout | undefined
  private readonly control: ControlChannel
  /** Group joins seen (each one a rebalance of some group): the figure the tests and operators look at. */
  rebalances = 0

  constructor(
    private readonly gateway: Gateway,
    private readonly cluster: ClusterConfig,
    private readonly deps: { logger: Logger; metrics: Metrics },
  ) {
    this.kafka = clusterClient(cluster, 'deliver', deps.logger)
    this.deadLetters = new KafkaHandOff(cluster, deps)
    this.control = new ControlChannel(this.kafka, cluster, gateway, deps.logger)
  }

  /** Which topics each sink's group reads, from the running config. */
  private plan(): Map<string, Map<string, Source>> {
    const plan = new Map<string, Map<string, Source>>()
    const add = (sink: string, topic: string, source: Source): void => {
      let sources = plan.get(sink)
      if (!sources) plan.set(sink, (sources = new Map<string, Source>()))
      sources.set(topic, source)
    }
    for (const [stream, config] of Object.entries(this.gateway.config.streams)) {
      for (const sink of config.sinks)
        add(sink, recordsTopic(this.cluster, stream), { stream, deadLetter: false })
      add(config.deadLetter ?? DEFAULT_DEAD_LETTER_SINK, deadLetterTopic(this.cluster, stream), {
        stream,
        deadLetter: true,
      })
    }
    return plan
  }

  async start(): Promise<void> {
    const plan = this.plan()
    const admin = this.kafka.admin()
    await admin.connect()
    try {
      await ensureTopics(admin, this.cluster, [
        controlTopic(this.cluster),
        ...new Set([...plan.values()].flatMap((sources) => [...sources.keys()])),
      ])
    } finally {
      await admin.disconnect()
    }
    for (const [sink, sources] of plan) {
      const groupId = sinkGroup(this.cluster, sink)
      const consumer = this.kafka.consumer({
        groupId,
        sessionTimeout: this.cluster.sessionTimeoutMs,
        retry: { retries: 5, initialRetryTime: 300, maxRetryTime: 5_000 },
      })
      const group: Group = { sink, consumer, sources, paused: new Set() }
      consumer.on(consumer.events.GROUP_JOIN, (event) => {
        this.rebalances++
        this.deps.metrics.clusterRebalanced(groupId)
        this.deps.logger.info(
          {
            group: groupId,
            sink,
            memberId: event.payload.memberId,
            leader: event.payload.isLeader,
            assignment: event.payload.memberAssignment,
          },
          'consumer group rebalanced: partitions assigned',
        )
      })
      consumer.on(consumer.events.CRASH, (event) => {
        this.deps.logger.error(
          { group: groupId, sink, err: event.payload.error.message, restart: event.payload.restart },
          'consumer crashed',
        )
      })
      await consumer.connect()
      // A new group starts at the beginning: records written before any deliver node ran are delivered too.
      await consumer.subscribe({ topics: [...sources.keys()], fromBeginning: true })
      await consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: 1,
        eachBatch: (payload) => this.batch(group, payload),
      })
      this.groups.push(group)
      this.deps.logger.info(
        { group: groupId, sink, topics: [...sources.keys()] },
        'delivering from Kafka to the sink',
      )
    }
    await this.control.start()
    this.timer = setInterval(() => this.applyPauses(), PAUSE_CHECK_MS)
    this.timer.unref()
  }

  private isPaused(stream: string): boolean {
    return this.gateway.state(stream)?.status === 2
  }

  /** Pauses the topics of paused streams and resumes the rest (records then are read again from Kafka). */
  private applyPauses(): void {
    for (const group of this.groups)
      for (const [topic, source] of group.sources) {
        const paused = this.isPaused(source.stream)
        if (paused && !group.paused.has(topic)) {
          group.paused.add(topic)
          group.consumer.pause([{ topic }])
        } else if (!paused && group.paused.has(topic)) {
          group.paused.delete(topic)
          group.consumer.resume([{ topic }])
        }
      }
  }

  private async batch(group: Group, payload: EachBatchPayload): Promise<void> {
    const { batch } = payload
    const source = group.sources.get(batch.topic)
    if (!source || batch.messages.length === 0 || !payload.isRunning() || payload.isStale()) return
    if (this.isPaused(source.stream)) {
      // Not resolved: read again from here once the stream is resumed.
      group.paused.add(batch.topic)
      group.consumer.pause([{ topic: batch.topic }])
      return
    }
    const sink = this.gateway.topology.sink(group.sink)
    if (!sink) throw new Error(`sink ${group.sink} is not configured any more`)
    const records = batch.messages.map((m) => recordOf(m, source.stream))
    const abort = new AbortController()
    const beat = setInterval(() => {
      payload.heartbeat().catch((err: unknown) => {
        // The partition was taken away (rebalance): stop; its new owner delivers from the last commit.
        abort.abort(err)
      })
    }, HEARTBEAT_MS)
    try {
      await deliver(sink, records, {
        retry: this.gateway.config.sinks[group.sink]?.retry ?? DEFAULT_RETRY,
        signal: abort.signal,
        circuit: this.gateway.topology.circuit(group.sink),
        metrics: this.deps.metrics,
        logger: this.deps.logger,
        deadLetter: (failed, error) => this.deadLetter(source, group.sink, failed, error),
      })
    } finally {
      clearInterval(beat)
    }
    payload.resolveOffset(batch.lastOffset())
    await payload.commitOffsetsIfNecessary(payload.uncommittedOffsets())
    await payload.heartbeat()
  }

  /** Records the sink refused for good: to the stream's dead-letter topic (its dead-letter sink's group). */
  private async deadLetter(
    source: Source,
    sinkName: string,
    records: SinkRecord[],
    error: SinkError,
  ): Promise<void> {
    if (source.deadLetter) {
      // The dead-letter sink itself refused them: nowhere left to put them. Log loudly (no payloads).
      this.deps.logger.error(
        { stream: source.stream, sink: sinkName, records: records.length, reason: error.reason },
        'dead-letter sink rejected records; they are dropped',
      )
      this.deps.metrics.sinkFailed(sinkName, `dropped-${error.reason}`, records.length)
      return
    }
    const now = Date.now()
    const letters = records.map((r) =>
      deadLetterRecord(
        source.stream,
        r.payload,
        { reason: error.reason, sink: sinkName, errors: [{ message: error.message }] },
        r.receivedAtMs,
        now,
      ),
    )
    await this.deadLetters.writeRecords(deadLetterTopic(this.cluster, source.stream), letters)
    this.deps.metrics.deadLetter(source.stream, error.reason, letters.length)
  }

  /** Leaves the groups (their partitions go to the other members at once) after the batches in progress. */
  async stop(): Promise<void> {
    clearInterval(this.timer)
    await this.control.stop()
    await Promise.allSettled(this.groups.map((g) => g.consumer.disconnect()))
    await this.deadLetters.close()
  }
}
