import type { KafkaSinkConfig } from '../../src/config/types.js'
import { createKafkaSink } from '../../src/sinks/kafka/sink.js'
import { createLogger } from '../../src/telemetry/logger.js'
import { FakeKafkaCluster } from '../support/fakes/kafka-client.js'
import { sinkConformance } from './sink-conformance.js'

// The kafka sink against a FAKE cluster at its client interface (test/support/fakes/kafka-client.ts says
// what it models): the sink's batching, chunking, error mapping and partial failures by index run for real;
// the real broker runs the same suite in test/integration/kafka.test.ts.

const logger = createLogger('silent')

const config = (topic: string, extra: Partial<KafkaSinkConfig> = {}): KafkaSinkConfig => ({
  type: 'kafka',
  brokers: '127.0.0.1:9',
  topic,
  acks: -1,
  idempotent: true,
  compression: 'gzip',
  client: 'kafkajs',
  producers: 1,
  clientId: 'streamgate-conformance',
  timeoutMs: 5_000,
  retry: { initialMs: 10, maxMs: 100, maxAttempts: 0 },
  ...extra,
})

sinkConformance(
  'kafka (fake cluster)',
  async () => {
    const cluster = new FakeKafkaCluster(['events'])
    return {
      create: async (o) =>
        createKafkaSink(
          'kafka-conf',
          config('events', o?.maxBatchRecords ? { maxBatchRecords: o.maxBatchRecords } : {}),
          { logger },
          // Small produce requests, so a batch is several sends and one of them can fail alone.
          { client: cluster.client(), produceChunkBytes: 400 },
        ),
      readBack: async () => (cluster.topics.get('events') ?? []).map((m) => m.value),
      createPermanentlyFailing: async () =>
        createKafkaSink('kafka-bad', config('no-such-topic'), { logger }, { client: cluster.client() }),
      createTransientlyFailing: async () => {
        cluster.down = true
        return {
          sink: createKafkaSink('kafka-flaky', config('events'), { logger }, { client: cluster.client() }),
          heal: async () => {
            cluster.down = false
          },
        }
      },
      injectPartialFailure: async () => cluster.failNextSends('NOT_LEADER_FOR_PARTITION'),
    }
  },
  { transient: true, partialFailure: true },
)
