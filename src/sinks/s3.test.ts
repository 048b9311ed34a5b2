import { S3ServiceException } from '@aws-sdk/client-s3'
import { describe, expect, it } from 'vitest'
import type { S3SinkConfig } from '../config/types.js'
import { createLogger } from '../telemetry/logger.js'
import { S3_DEFAULT_KEY, S3Sink, classifyS3Error } from './s3.js'

const logger = createLogger('silent')

const config = (extra: Partial<S3SinkConfig> = {}): S3SinkConfig => ({
  type: 's3',
  bucket: 'unit',
  region: 'us-east-1',
  forcePathStyle: true,
  key: S3_DEFAULT_KEY,
  compression: 'gzip',
  maxObjectBytes: 64 * 1024 * 1024,
  maxObjectRecords: 1_000_000,
  maxObjectAgeMs: 300_000,
  timeoutMs: 1_000,
  retry: { initialMs: 1, maxMs: 1, maxAttempts: 0 },
  ...extra,
})

describe('s3 sink limits', () => {
  it('are the roll-over settings: one batch is one object', () => {
    const sink = new S3Sink(
      's',
      config({ maxObjectBytes: 1000, maxObjectRecords: 10, maxObjectAgeMs: 1234 }),
      {
        logger,
      },
    )
    expect(sink.limits).toEqual({
      maxBatchBytes: 1000,
      maxBatchRecords: 10,
      lingerMs: 1234,
      maxRecordBytes: 1000,
    })
  })

  it('the common batch keys can lower them, never raise them', () => {
    const lowered = new S3Sink('s', config({ maxBatchBytes: 500, maxBatchRecords: 50, lingerMs: 100 }), {
      logger,
    })
    expect(lowered.limits).toMatchObject({ maxBatchBytes: 500, maxBatchRecords: 50, lingerMs: 100 })
    const raised = new S3Sink(
      's',
      config({ maxBatchBytes: 1e12, maxBatchRecords: 1e9, lingerMs: 1e9, maxObjectAgeMs: 1234 }),
      { logger },
    )
    expect(raised.limits).toMatchObject({
      maxBatchBytes: 64 * 1024 * 1024,
      maxBatchRecords: 1_000_000,
      lingerMs: 1234,
    })
  })

  it('refuses a key template without {{uuid}} (objects would overwrite each other)', () => {
    expect(
      () => new S3Sink('lake', config({ key: '{{stream}}/{{yyyy}}/{{HH}}.ndjson' }), { logger }),
    ).toThrow('sinks.lake.key must contain {{uuid}}')
    expect(() => new S3Sink('lake', config({ key: 'x/{{ uuid }}' }), { logger })).not.toThrow()
  })
})

const serviceError = (name: string, status: number): Error =>
  new S3ServiceException({
    name,
    $fault: status >= 500 ? 'server' : 'client',
    $metadata: { httpStatusCode: status },
    message: name,
  })

describe('classifyS3Error', () => {
  it.each([
    ['NoSuchBucket', 404, false, 'unknown-bucket'],
    ['NotFound', 404, false, 'unknown-bucket'],
    ['AccessDenied', 403, false, 'unauthorized'],
    ['InvalidAccessKeyId', 403, false, 'unauthorized'],
    ['SignatureDoesNotMatch', 403, false, 'unauthorized'],
    ['Forbidden', 403, false, 'unauthorized'],
    ['PermanentRedirect', 301, false, 'wrong-region'],
    ['SlowDown', 503, true, 'throttled'],
    ['ServiceUnavailable', 503, true, 'unavailable'],
    ['InternalError', 500, true, 'server-error'],
    ['RequestTimeout', 400, true, 'timeout'],
    ['ExpiredToken', 400, true, 'credentials-expired'],
    ['BadDigest', 400, true, 'corrupted-in-transit'],
    ['SomethingNew', 502, true, 'server-error'],
    ['SomethingNew', 400, false, 'rejected'],
  ] as const)('%s (%i) → retriable %s, %s', (name, status, retriable, reason) => {
    expect(classifyS3Error(serviceError(name, status))).toMatchObject({ retriable, reason })
  })

  it('network failures are transient; programming errors are not', () => {
    expect(classifyS3Error(Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }))).toMatchObject({
      retriable: true,
      reason: 'network',
    })
    expect(classifyS3Error(new RangeError('bad'))).toMatchObject({ retriable: false, reason: 'internal' })
  })
})
