import type { KinesisSinkConfig } from '../../src/config/types.js'
import { KinesisSink } from '../../src/sinks/kinesis/sink.js'
import { createLogger } from '../../src/telemetry/logger.js'
import { FakeKinesis } from '../support/fakes/kinesis.js'
import { sinkConformance } from './sink-conformance.js'

// The kinesis sink against a FAKE Kinesis answering its SDK commands in-process (test/support/fakes/
// kinesis.ts says what it models); kinesis-local runs the same suite in test/integration/kinesis.test.ts.

const logger = createLogger('silent')

const config = (streamName: string, extra: Partial<KinesisSinkConfig> = {}): KinesisSinkConfig => ({
  type: 'kinesis',
  streamName,
  region: 'eu-central-1',
  // Never reached: the fake answers before the SDK would connect.
  endpoint: 'http://127.0.0.1:9',
  credentials: { accessKeyId: 'AKIDFAKE', secretAccessKey: 'fake-secret' },
  timeoutMs: 5_000,
  maxParallelCalls: 4,
  retry: { initialMs: 10, maxMs: 100, maxAttempts: 0 },
  ...extra,
})

sinkConformance(
  'kinesis (fake service)',
  async () => {
    const kinesis = new FakeKinesis(['events'])
    const sink = (name: string, stream: string, extra: Partial<KinesisSinkConfig> = {}): KinesisSink =>
      kinesis.attach(new KinesisSink(name, config(stream, extra), { logger }))
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
    }
  },
  { transient: true, partialFailure: true },
)
