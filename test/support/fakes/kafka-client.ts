import type { KafkaClient } from '../../../src/sinks/kafka/client.js'
import type { OutgoingMessage } from '../../../src/sinks/kafka/messages.js'

// A FAKE Kafka cluster at the sink's client interface (src/sinks/kafka/client.ts), for the conformance
// suite in the unit/http projects where no broker runs. It models only what the sink sees through that
// interface: topics that exist or not, sends that the "broker" acknowledges (kept per topic, in order), and
// failures thrown the way kafkajs throws them (a KafkaJSProtocolError carrying the broker's error name as
// `type`, a KafkaJSConnectionError when the cluster is unreachable), so the sink's own error mapping
// (src/sinks/kafka/errors.ts) runs unchanged. No partitions, replication, compression or wire protocol:
// the real broker covers those in test/integration/kafka.test.ts.

export class FakeKafkaCluster {
  readonly topics = new Map<string, OutgoingMessage[]>()
  /** While true every call fails as an unreachable cluster does. */
  down = false
  private failNext: string[] = []

  constructor(topics: string[] = []) {
    for (const t of topics) this.topics.set(t, [])
  }

  /** The next sends fail with these broker error names (e.g. NOT_LEADER_FOR_PARTITION), one each. */
  failNextSends(...errorNames: string[]): void {
    this.failNext.push(...errorNames)
  }

  client(producers = 1): KafkaClient {
    let closed = false
    const reachable = (): void => this.reachable()
    const failNext = (): string | undefined => this.failNext.shift()
    const topics = this.topics
    return {
      producers,
      async send(_producer: number, topic: string, messages: readonly OutgoingMessage[]): Promise<void> {
        if (closed) throw kafkajsError('KafkaJSNonRetriableError', 'the producer is disconnected')
        reachable()
        const failure = failNext()
        if (failure) throw protocolError(failure, `the broker answered ${failure}`, true)
        const log = topics.get(topic)
        if (!log)
          throw protocolError(
            'UNKNOWN_TOPIC_OR_PARTITION',
            'This server does not host this topic-partition',
            true,
          )
        log.push(...messages)
      },
      async topicExists(topic: string): Promise<boolean> {
        reachable()
        return topics.has(topic)
      },
      async topicMaxMessageBytes(): Promise<number | undefined> {
        reachable()
        return 1_048_588
      },
      async ping(): Promise<void> {
        reachable()
      },
      async close(): Promise<void> {
        closed = true
      },
    }
  }

  private reachable(): void {
    if (this.down) throw kafkajsError('KafkaJSConnectionError', 'Connection error: connect ECONNREFUSED')
  }
}

function kafkajsError(name: string, message: string): Error {
  const err = new Error(message)
  err.name = name
  return err
}

function protocolError(type: string, message: string, retriable: boolean): Error {
  return Object.assign(kafkajsError('KafkaJSProtocolError', message), { type, retriable })
}
