// Where a scenario's records go on the streamgate side: the file sink (default, no services), or real Kafka
// and S3 (MinIO) from scripts/backends. Backends already up (`npm run backends:up`, .backends/env) are reused;
// otherwise they are started for the run and stopped after it.

import { randomUUID } from 'node:crypto'
import { join } from 'node:path'
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectsCommand,
  ListObjectsV2Command,
  S3Client,
} from '@aws-sdk/client-s3'
import { Kafka, logLevel } from 'kafkajs'
import { backendsAnswer, readBackendsEnv, startAll, type BackendsEnv } from '../scripts/backends/index.js'

export type BenchSink = 'file' | 'kafka' | 'kafka-platformatic' | 's3'

export interface Backends {
  env(): Promise<BackendsEnv>
  close(): Promise<void>
}

/** Starts the backends on first use only (file-sink runs never touch them). */
export function lazyBackends(log: (line: string) => void): Backends {
  let env: Promise<BackendsEnv> | undefined
  let stop: (() => Promise<void>) | undefined
  return {
    env() {
      env ??= (async () => {
        const running = readBackendsEnv()
        if (running !== undefined && (await backendsAnswer(running))) {
          log('bench: using the backends of .backends/env')
          return running
        }
        log('bench: starting Kafka, MinIO and kinesis-local (first time: installs them, minutes)')
        const started = await startAll()
        stop = () => started.stopStarted()
        return started.env
      })()
      return env
    },
    async close() {
      await stop?.()
    },
  }
}

/**
 * The `sinks.out` config of a run, creating the Kafka topic or the S3 bucket it writes to. `bucket` names the
 * S3 bucket (default: the shared `streamgate-bench`, objects under the scenario's prefix).
 */
export async function sinkConfig(
  sink: BenchSink,
  dir: string,
  scenario: string,
  backends: Backends,
  bucket = 'streamgate-bench',
): Promise<Record<string, unknown>> {
  if (sink === 'file') return { type: 'file', dir: join(dir, 'out') }
  const env = await backends.env()
  if (sink === 'kafka' || sink === 'kafka-platformatic') {
    const topic = `bench-${scenario}-${randomUUID().slice(0, 8)}`
    const admin = new Kafka({
      clientId: 'streamgate-bench',
      brokers: env.KAFKA_BROKERS.split(','),
      logLevel: logLevel.NOTHING,
    }).admin()
    await admin.connect()
    try {
      await admin.createTopics({
        topics: [{ topic, numPartitions: 4, replicationFactor: 1 }],
        waitForLeaders: true,
      })
    } finally {
      await admin.disconnect()
    }
    // `kafka`: the sink's defaults (kafkajs, acks -1, idempotent, gzip, 50 ms linger, one producer).
    // `kafka-platformatic`: the fastest configuration measured in bench/RESULTS.md ("Kafka lane").
    const fast =
      sink === 'kafka-platformatic' ? { client: 'platformatic', compression: 'zstd', producers: 4 } : {}
    return { type: 'kafka', brokers: env.KAFKA_BROKERS.split(','), topic, ...fast }
  }
  const credentials = { accessKeyId: env.S3_ACCESS_KEY_ID, secretAccessKey: env.S3_SECRET_ACCESS_KEY }
  const client = new S3Client({
    endpoint: env.S3_ENDPOINT,
    region: env.S3_REGION,
    forcePathStyle: true,
    credentials: { ...credentials }, // the SDK writes its own keys into the object it is given
  })
  try {
    await client.send(new CreateBucketCommand({ Bucket: bucket }))
  } catch (err) {
    const name = (err as { name?: string }).name
    if (name !== 'BucketAlreadyOwnedByYou' && name !== 'BucketAlreadyExists') throw err
  } finally {
    client.destroy()
  }
  // Objects roll over every 2 s here (default 5 min) so that "delivered" is measurable within a run.
  return {
    type: 's3',
    bucket,
    endpoint: env.S3_ENDPOINT,
    region: env.S3_REGION,
    forcePathStyle: true,
    credentials,
    key: `${scenario}/{{uuid}}.ndjson.gz`,
    maxObjectAgeMs: 2000,
  }
}

/**
 * Removes what a run wrote to the shared backends: the Kafka topic of a `kafka` sink config, the objects and
 * the bucket of an `s3` one (only a bucket the run created for itself: `ownBucket`). Best effort: a failure is
 * returned as text for the log, never thrown.
 */
export async function removeSinkData(
  config: Record<string, unknown>,
  env: BackendsEnv,
  ownBucket: boolean,
): Promise<string | undefined> {
  try {
    if (config.type === 'kafka') {
      const admin = new Kafka({
        clientId: 'streamgate-bench',
        brokers: env.KAFKA_BROKERS.split(','),
        logLevel: logLevel.NOTHING,
      }).admin()
      await admin.connect()
      try {
        await admin.deleteTopics({ topics: [String(config.topic)], timeout: 30_000 })
      } finally {
        await admin.disconnect()
      }
    } else if (config.type === 's3' && ownBucket) {
      const bucket = String(config.bucket)
      const client = new S3Client({
        endpoint: env.S3_ENDPOINT,
        region: env.S3_REGION,
        forcePathStyle: true,
        credentials: { accessKeyId: env.S3_ACCESS_KEY_ID, secretAccessKey: env.S3_SECRET_ACCESS_KEY },
      })
      try {
        for (;;) {
          const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, MaxKeys: 1000 }))
          const keys = (page.Contents ?? []).flatMap((o) => (o.Key === undefined ? [] : [{ Key: o.Key }]))
          if (keys.length === 0) break
          await client.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys } }))
        }
        await client.send(new DeleteBucketCommand({ Bucket: bucket }))
      } finally {
        client.destroy()
      }
    }
    return undefined
  } catch (err) {
    return `could not remove the ${String(config.type)} data of the run: ${(err as Error).message}`
  }
}
