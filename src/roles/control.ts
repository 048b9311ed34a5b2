import { randomUUID } from 'node:crypto'
import type { Consumer, Kafka, Producer } from 'kafkajs'
import type { ClusterConfig } from '../config/types.js'
import type { Gateway } from '../pipeline/gateway.js'
import type { Logger } from '../telemetry/logger.js'
import { controlTopic } from './kafka.js'

// Pause and resume of a stream through the management API of any deliver node apply to every deliver node
// (SPEC section 9): the node that sees a stream's pause state change (its API, its config) writes it to the
// compacted control topic `<prefix>-control` (key: the stream, value: {"paused": true|false}), and every
// deliver node reads that topic from the beginning in a consumer group of its own and applies what it
// reads. Compaction keeps the last state per stream, so a node that starts later learns the current one.
// Last writer wins; nothing else (restart, config changes) goes through it.

const POLL_MS = 250

export class ControlChannel {
  private readonly consumer: Consumer
  private readonly producer: Producer
  /** The pause state per stream as this node last applied or published it. */
  private readonly known = new Map<string, boolean>()
  private timer: NodeJS.Timeout | undefined
  private publishing = false

  constructor(
    kafka: Kafka,
    private readonly cluster: ClusterConfig,
    private readonly gateway: Gateway,
    private readonly logger: Logger,
  ) {
    this.consumer = kafka.consumer({ groupId: `${controlTopic(cluster)}-${randomUUID()}` })
    this.producer = kafka.producer({ allowAutoTopicCreation: false })
  }

  private pausedHere(stream: string): boolean {
    return this.gateway.state(stream)?.status === 2
  }

  async start(): Promise<void> {
    // What this node starts with is not news: only changes after this are published.
    for (const stream of this.gateway.topology.streamIds()) this.known.set(stream, this.pausedHere(stream))
    await this.producer.connect()
    await this.consumer.connect()
    await this.consumer.subscribe({ topics: [controlTopic(this.cluster)], fromBeginning: true })
    await this.consumer.run({
      eachMessage: ({ message }) => {
        const stream = message.key?.toString('utf8')
        if (!stream || !message.value) return Promise.resolve()
        let paused: unknown
        try {
          paused = (JSON.parse(message.value.toString('utf8')) as { paused?: unknown }).paused
        } catch {
          return Promise.resolve()
        }
        if (typeof paused !== 'boolean') return Promise.resolve()
        this.known.set(stream, paused)
        if (this.gateway.topology.stream(stream) !== undefined && this.pausedHere(stream) !== paused) {
          this.gateway.setStatus(stream, paused ? 2 : 1)
          this.logger.info({ stream, paused }, 'stream pause state applied from the cluster')
        }
        return Promise.resolve()
      },
    })
    this.timer = setInterval(() => void this.publishChanges(), POLL_MS)
    this.timer.unref()
  }

  /** Publishes the streams whose pause state changed on this node since it was last applied or published. */
  private async publishChanges(): Promise<void> {
    if (this.publishing) return
    this.publishing = true
    try {
      const changed: [string, boolean][] = []
      for (const stream of this.gateway.topology.streamIds()) {
        const paused = this.pausedHere(stream)
        if (this.known.get(stream) !== paused) changed.push([stream, paused])
      }
      if (changed.length === 0) return
      await this.producer.send({
        topic: controlTopic(this.cluster),
        acks: -1,
        messages: changed.map(([stream, paused]) => ({
          key: stream,
          value: JSON.stringify({ paused, at: new Date().toISOString() }),
        })),
      })
      for (const [stream, paused] of changed) {
        this.known.set(stream, paused)
        this.logger.info({ stream, paused }, 'stream pause state published to the cluster')
      }
    } catch (err) {
      // Tried again at the next poll: the change is still there to see.
      this.logger.warn({ err: (err as Error).message }, 'the pause state could not be published')
    } finally {
      this.publishing = false
    }
  }

  async stop(): Promise<void> {
    clearInterval(this.timer)
    await Promise.allSettled([this.consumer.disconnect(), this.producer.disconnect()])
  }
}
