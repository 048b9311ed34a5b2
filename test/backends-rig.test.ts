// Proves the backends started by test/backends.setup.ts are the real thing: Kafka with idempotent producers,
// the admin API, no auto-created topics and data that survives a broker restart; S3 that returns the bytes it
// was given (also after a restart); Kinesis that takes a full 500-record PutRecords and gives it back.
import { randomBytes } from 'node:crypto'
import { setTimeout as delay } from 'node:timers/promises'
import {
  CreateStreamCommand,
  DeleteStreamCommand,
  DescribeStreamSummaryCommand,
  GetRecordsCommand,
  GetShardIteratorCommand,
  KinesisClient,
  ListShardsCommand,
  PutRecordsCommand,
} from '@aws-sdk/client-kinesis'
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3'
import { NodeHttpHandler } from '@smithy/node-http-handler'
import { Kafka, logLevel, type KafkaMessage } from 'kafkajs'
import { describe, expect, inject, it } from 'vitest'
import { kafkaAnswers, startKafka, stopKafka } from '../scripts/backends/kafka.js'
import { startS3, stopS3 } from '../scripts/backends/s3.js'

const backends = inject('backends')

function uniqueName(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`
}

/** Polls `probe` until it returns a value; throws after `timeoutMs` with the last error. */
async function pollUntil<T>(
  what: string,
  timeoutMs: number,
  probe: () => Promise<T | undefined>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let lastError: unknown
  while (Date.now() < deadline) {
    try {
      const value = await probe()
      if (value !== undefined) return value
    } catch (err) {
      lastError = err
    }
    await delay(100)
  }
  throw new Error(`${what}: not done after ${timeoutMs} ms`, { cause: lastError })
}

it('exposes the backends through inject() and process.env', () => {
  expect(backends.KAFKA_BROKERS).toMatch(/^127\.0\.0\.1:\d+$/)
  expect(process.env.KAFKA_BROKERS).toBe(backends.KAFKA_BROKERS)
  expect(process.env.KINESIS_ENDPOINT).toBe(backends.KINESIS_ENDPOINT)
})

describe('kafka', () => {
  function kafka(): Kafka {
    return new Kafka({
      clientId: 'backends-rig',
      brokers: backends.KAFKA_BROKERS.split(','),
      logLevel: logLevel.ERROR,
    })
  }

  async function createTopic(client: Kafka, topic: string): Promise<void> {
    const admin = client.admin()
    await admin.connect()
    try {
      expect(
        await admin.createTopics({
          topics: [{ topic, numPartitions: 1, replicationFactor: 1 }],
          waitForLeaders: true,
        }),
      ).toBe(true)
    } finally {
      await admin.disconnect()
    }
  }

  /** Tests delete what they created, so restarts do not slow down as the kept log dir grows. */
  async function deleteTopic(client: Kafka, topic: string): Promise<void> {
    const admin = client.admin()
    await admin.connect()
    try {
      await admin.deleteTopics({ topics: [topic] })
    } finally {
      await admin.disconnect()
    }
  }

  async function produceIdempotent(client: Kafka, topic: string, value: string): Promise<void> {
    const producer = client.producer({ idempotent: true, maxInFlightRequests: 1 })
    await producer.connect()
    try {
      const [meta] = await producer.send({ topic, acks: -1, messages: [{ key: 'k', value }] })
      expect(meta?.errorCode).toBe(0)
    } finally {
      await producer.disconnect()
    }
  }

  /** Reads `topic` from the beginning with a fresh group until a message arrives. */
  async function consumeFirst(client: Kafka, topic: string, timeoutMs = 30_000): Promise<KafkaMessage> {
    const consumer = client.consumer({ groupId: uniqueName('rig-group') })
    await consumer.connect()
    try {
      await consumer.subscribe({ topic, fromBeginning: true })
      return await new Promise<KafkaMessage>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no message on ${topic} in ${timeoutMs} ms`)),
          timeoutMs,
        )
        consumer
          .run({
            eachMessage: async ({ message }) => {
              clearTimeout(timer)
              resolve(message)
            },
          })
          .catch(reject)
      })
    } finally {
      await consumer.disconnect()
    }
  }

  it('creates a topic, produces idempotently and consumes the message back', async () => {
    const client = kafka()
    const topic = uniqueName('rig-topic')
    const value = `hello ${topic}`
    await createTopic(client, topic)
    await produceIdempotent(client, topic, value)
    const message = await consumeFirst(client, topic)
    expect(message.value?.toString()).toBe(value)
    expect(message.key?.toString()).toBe('k')
    await deleteTopic(client, topic)
  })

  it('does not auto-create topics: producing to a missing topic fails', async () => {
    const client = new Kafka({
      clientId: 'backends-rig',
      brokers: backends.KAFKA_BROKERS.split(','),
      logLevel: logLevel.NOTHING,
      retry: { retries: 1, initialRetryTime: 100 },
    })
    const producer = client.producer()
    await producer.connect()
    try {
      await expect(
        producer.send({ topic: uniqueName('rig-missing'), messages: [{ value: 'x' }] }),
      ).rejects.toThrow(/does not host this topic-partition|UNKNOWN_TOPIC|not exist/i)
    } finally {
      await producer.disconnect()
    }
  })

  it('keeps a topic and its messages across a broker stop and restart', async () => {
    const topic = uniqueName('rig-durable')
    const value = `survives ${topic}`
    await createTopic(kafka(), topic)
    await produceIdempotent(kafka(), topic, value)

    await stopKafka()
    await expect(kafkaAnswers(backends.KAFKA_BROKERS)).rejects.toThrow()

    const restarted = await startKafka()
    expect(restarted.reused).toBe(false)
    expect(restarted.brokers).toBe(backends.KAFKA_BROKERS)
    const message = await consumeFirst(kafka(), topic)
    expect(message.value?.toString()).toBe(value)
    await deleteTopic(kafka(), topic)
  })
})

describe('s3', () => {
  function s3(): S3Client {
    return new S3Client({
      endpoint: backends.S3_ENDPOINT,
      region: backends.S3_REGION,
      credentials: { accessKeyId: backends.S3_ACCESS_KEY_ID, secretAccessKey: backends.S3_SECRET_ACCESS_KEY },
      forcePathStyle: true,
    })
  }

  async function getBytes(client: S3Client, Bucket: string, Key: string): Promise<Buffer> {
    const res = await client.send(new GetObjectCommand({ Bucket, Key }))
    if (res.Body === undefined) throw new Error('GetObject returned no body')
    return Buffer.from(await res.Body.transformToByteArray())
  }

  it('creates a bucket and returns the exact bytes it stored', async () => {
    const client = s3()
    const Bucket = uniqueName('rig-bucket')
    const Key = 'dir/object.bin'
    const body = randomBytes(1024 * 1024 + 17)
    try {
      await client.send(new CreateBucketCommand({ Bucket }))
      await client.send(new PutObjectCommand({ Bucket, Key, Body: body }))
      expect((await getBytes(client, Bucket, Key)).equals(body)).toBe(true)
      await client.send(new DeleteObjectCommand({ Bucket, Key }))
      await client.send(new DeleteBucketCommand({ Bucket }))
    } finally {
      client.destroy()
    }
  })

  it('keeps objects across a MinIO stop and restart', async () => {
    const Bucket = uniqueName('rig-durable')
    const Key = 'kept.bin'
    const body = randomBytes(4096)
    const before = s3()
    await before.send(new CreateBucketCommand({ Bucket }))
    await before.send(new PutObjectCommand({ Bucket, Key, Body: body }))
    before.destroy()

    await stopS3()
    const restarted = await startS3()
    expect(restarted.reused).toBe(false)
    expect(restarted.endpoint).toBe(backends.S3_ENDPOINT)

    const after = s3()
    try {
      expect((await getBytes(after, Bucket, Key)).equals(body)).toBe(true)
      await after.send(new DeleteObjectCommand({ Bucket, Key }))
      await after.send(new DeleteBucketCommand({ Bucket }))
    } finally {
      after.destroy()
    }
  })
})

describe('kinesis', () => {
  const RECORDS = 500 // KINESIS_MAX_RECORDS_PER_CALL

  it('creates a stream, takes a 500-record PutRecords and gives every record back', async () => {
    const client = new KinesisClient({
      endpoint: backends.KINESIS_ENDPOINT,
      region: backends.AWS_REGION,
      credentials: {
        accessKeyId: backends.AWS_ACCESS_KEY_ID,
        secretAccessKey: backends.AWS_SECRET_ACCESS_KEY,
      },
      requestHandler: new NodeHttpHandler(),
    })
    const StreamName = uniqueName('rig-stream')
    try {
      await client.send(new CreateStreamCommand({ StreamName, ShardCount: 2 }))
      await pollUntil('stream ACTIVE', 30_000, async () => {
        const res = await client.send(new DescribeStreamSummaryCommand({ StreamName }))
        return res.StreamDescriptionSummary?.StreamStatus === 'ACTIVE' ? true : undefined
      })

      const sent = Array.from({ length: RECORDS }, (_, i) => `record-${i}-${randomBytes(8).toString('hex')}`)
      const put = await client.send(
        new PutRecordsCommand({
          StreamName,
          Records: sent.map((data, i) => ({ Data: Buffer.from(data), PartitionKey: `pk-${i}` })),
        }),
      )
      expect(put.FailedRecordCount ?? 0).toBe(0)
      expect(put.Records).toHaveLength(RECORDS)

      const shards = (await client.send(new ListShardsCommand({ StreamName }))).Shards ?? []
      expect(shards).toHaveLength(2)
      const received: string[] = []
      for (const shard of shards) {
        let iterator = (
          await client.send(
            new GetShardIteratorCommand({
              StreamName,
              ShardId: shard.ShardId,
              ShardIteratorType: 'TRIM_HORIZON',
            }),
          )
        ).ShardIterator
        // Read the shard until it is caught up (MillisBehindLatest 0 and an empty page).
        await pollUntil(`records of ${shard.ShardId}`, 30_000, async () => {
          const page = await client.send(new GetRecordsCommand({ ShardIterator: iterator, Limit: 1000 }))
          iterator = page.NextShardIterator
          for (const r of page.Records ?? []) received.push(Buffer.from(r.Data ?? []).toString())
          return (page.Records ?? []).length === 0 && page.MillisBehindLatest === 0 ? true : undefined
        })
      }
      expect(received.sort()).toEqual([...sent].sort())
    } finally {
      await client.send(new DeleteStreamCommand({ StreamName })).catch(() => undefined)
      client.destroy()
    }
  })
})
