import { gunzipSync } from 'node:zlib'
import type { S3SinkConfig } from '../../src/config/types.js'
import { S3_DEFAULT_KEY, S3_PART_BYTES, S3Sink } from '../../src/sinks/s3/sink.js'
import { createLogger } from '../../src/telemetry/logger.js'
import { FakeS3Server } from '../support/fakes/s3-http.js'
import { sinkConformance } from './sink-conformance.js'

// The s3 sink against a FAKE S3 on a loopback HTTP port (test/support/fakes/s3-http.ts says what it
// models); MinIO runs the same suite in test/integration/s3.test.ts.

const logger = createLogger('silent')

const config = (endpoint: string, bucket: string, extra: Partial<S3SinkConfig> = {}): S3SinkConfig => ({
  type: 's3',
  bucket,
  endpoint,
  region: 'us-east-1',
  forcePathStyle: true,
  credentials: { accessKeyId: 'AKIDFAKE', secretAccessKey: 'fake-secret' },
  key: S3_DEFAULT_KEY,
  compression: 'gzip',
  // 1 MiB objects, so that "a record over the limit" is a 1 MiB record, not a 64 MiB one.
  maxObjectBytes: 1024 * 1024,
  maxObjectRecords: 1_000_000,
  maxObjectAgeMs: 300_000,
  partBytes: S3_PART_BYTES,
  timeoutMs: 5_000,
  retry: { initialMs: 10, maxMs: 100, maxAttempts: 0 },
  ...extra,
})

sinkConformance(
  's3 (fake service over loopback HTTP)',
  async () => {
    const s3 = await FakeS3Server.start(['lake'])
    const sink = (name: string, bucket: string, extra: Partial<S3SinkConfig> = {}): S3Sink =>
      new S3Sink(name, config(s3.endpoint, bucket, extra), { logger })
    return {
      create: async (o) =>
        sink('s3-conf', 'lake', o?.maxBatchRecords ? { maxBatchRecords: o.maxBatchRecords } : {}),
      readBack: async () =>
        [...s3.objects]
          .filter(([key]) => key.startsWith('lake/'))
          .flatMap(([, body]) =>
            gunzipSync(body)
              .toString('utf8')
              .split('\n')
              .filter((l) => l !== ''),
          )
          .map((l) => Buffer.from(l)),
      createPermanentlyFailing: async () => sink('s3-missing', 'no-such-bucket'),
      createTransientlyFailing: async () => {
        s3.down = true
        return {
          sink: sink('s3-flaky', 'lake'),
          heal: async () => {
            s3.down = false
          },
        }
      },
      cleanup: () => s3.close(),
    }
  },
  // An object write is all or nothing: there is no partial failure by index to inject.
  { transient: true, partialFailure: false },
)
