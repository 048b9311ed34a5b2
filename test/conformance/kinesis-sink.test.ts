import type { KinesisSinkConfig } from '../../src/config/types.js'
import { KinesisSink } from '../../src/sinks/kinesis/sink.js'
import { createLogger } from '../../src/telemetry/logger.js'
import { FakeKinesis } from '../support/fakes/kinesis.js'
import { sinkConformance } from './sink-conformance.js'

// The kinesis sink against a FAKE Kinesis on a loopback port speaking the service's JSON protocol
// (test/support/fakes/kinesis.ts says what it models); kinesis-local runs the same suite in test/integration/kinesis.test.ts.

const logger = createLogger('silent')

const config = (
  endpoint: string,
  streamName: string,
  extra: Partial<KinesisSinkConfig> = {},
): KinesisSinkConfig => ({
  type: 'kinesis',
  streamName,
  endpoint,
  region: 'eu-central-1',
  credentials: { accessKeyId: 'AKIDFAKE', secretAccessKey: 'fake-secret' },
  timeoutMs: 5_000,
  maxParallelCalls: 4,
  retry: { initialMs: 10, maxMs: 100, maxAttempts: 0 },
  ...extra,
})

sinkConformance(
  'kinesis (fake service over loopback HTTP)',
  async () => {
    const kinesis = await FakeKinesis.start(['events'])
    const sink = (name: string, stream: string, extra: Partial<KinesisSinkConfig> = {}): KinesisSink =>
      new KinesisSink(name, config(kinesis.endpoint, stream, extra), { logger })
    return {
      create: async (o) =>
        sink('kinesis-conf', 'events', o?.maxBatchRecords ? { maxBatchRecords: o.maxBatchRecords } : {}),
      readBack: async () => kinesis.streams.get('events') ?? [],
      createPermanentlyFailing: async () => sink('kinesis-missing', 'no-such-stream'),
      createTransientlyFailing: async () => {
        kinesis.down = true
        return {
          sink: sink('kinesis-flaky', 'events'),
          heal: async () => {
            kinesis.down = false
          },
        }
      },
      injectPartialFailure: async () => kinesis.throttleEntries([1, 4, 7]),
      cleanup: () => kinesis.close(),
    }
  },
  { transient: true, partialFailure: true },
)
