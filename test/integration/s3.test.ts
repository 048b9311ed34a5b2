// The s3 sink against MinIO of scripts/backends/s3.ts. Every test writes to its own bucket.
import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes, randomUUID } from 'node:crypto'
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gunzipSync } from 'node:zlib'
import {
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  ListPartsCommand,
  AbortMultipartUploadCommand,
  DeleteBucketCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  S3Client,
  S3ServiceException,
  type ServiceInputTypes,
  type ServiceOutputTypes,
} from '@aws-sdk/client-s3'
import { NodeHttpHandler } from '@smithy/node-http-handler'
import type { InitializeMiddleware } from '@smithy/types'
import { afterAll, describe, expect, inject, it } from 'vitest'
import type { S3SinkConfig } from '../../src/config/types.js'
import type { SinkError } from '../../src/errors.js'
import { deliver } from '../../src/pipeline/delivery.js'
import { parseDeadLetter } from '../../src/records/dead-letter.js'
import type { SinkRecord } from '../../src/records/record.js'
import {
  S3_DEFAULT_KEY,
  S3_MIN_PART_BYTES,
  S3_PART_BYTES,
  S3Sink,
  createS3Sink,
} from '../../src/sinks/s3/sink.js'
import { createLogger } from '../../src/telemetry/logger.js'
import { Metrics } from '../../src/telemetry/metrics.js'
import { records, sinkConformance } from '../conformance/sink-conformance.js'
import { readNdjsonLines, startGateway, waitFor } from '../support/gateway.js'
import { send } from '../support/http.js'
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js'

const backends = inject('backends')
const endpoint = backends.S3_ENDPOINT
const region = backends.S3_REGION
const credentials = { accessKeyId: backends.S3_ACCESS_KEY_ID, secretAccessKey: backends.S3_SECRET_ACCESS_KEY }
const logger = createLogger('silent')
// A copy of the credentials: the SDK writes bookkeeping ($source) into the object it is given.
const admin = new S3Client({
  endpoint,
  region,
  credentials: { ...credentials },
  forcePathStyle: true,
  requestHandler: new NodeHttpHandler(),
})
const createdBuckets: string[] = []
const proxies: TcpProxy[] = []

afterAll(async () => {
  await Promise.allSettled(createdBuckets.map((b) => removeBucket(b)))
  await Promise.allSettled(proxies.map((p) => p.close()))
  admin.destroy()
})

const unique = (prefix: string): string => `${prefix}-${randomUUID().slice(0, 8)}`

async function createBucket(): Promise<string> {
  const Bucket = unique('sg-s3')
  await admin.send(new CreateBucketCommand({ Bucket }))
  createdBuckets.push(Bucket)
  return Bucket
}

async function removeBucket(Bucket: string): Promise<void> {
  const keys = (await listObjects(Bucket)).map((o) => ({ Key: o.key }))
  if (keys.length > 0) await admin.send(new DeleteObjectsCommand({ Bucket, Delete: { Objects: keys } }))
  await admin.send(new DeleteBucketCommand({ Bucket }))
}

async function listObjects(Bucket: string): Promise<{ key: string; size: number; etag: string }[]> {
  const out: { key: string; size: number; etag: string }[] = []
  let ContinuationToken: string | undefined
  do {
    const page = await admin.send(new ListObjectsV2Command({ Bucket, ContinuationToken }))
    for (const o of page.Contents ?? []) out.push({ key: o.Key!, size: o.Size!, etag: o.ETag! })
    ContinuationToken = page.NextContinuationToken
  } while (ContinuationToken)
  return out
}

interface StoredObject {
  key: string
  etag: string
  contentType: string | undefined
  contentEncoding: string | undefined
  metadata: Record<string, string> | undefined
  /** The object's bytes after gunzip when it is gzip-encoded. */
  ndjson: Buffer
  lines: string[]
}

async function readObjects(Bucket: string): Promise<StoredObject[]> {
  const out: StoredObject[] = []
  for (const { key, etag } of await listObjects(Bucket)) {
    const got = await admin.send(new GetObjectCommand({ Bucket, Key: key }))
    const raw = Buffer.from(await got.Body!.transformToByteArray())
    const ndjson = got.ContentEncoding === 'gzip' ? gunzipSync(raw) : raw
    const text = ndjson.toString('utf8')
    expect(text.endsWith('\n')).toBe(true)
    out.push({
      key,
      etag,
      contentType: got.ContentType,
      contentEncoding: got.ContentEncoding,
      metadata: got.Metadata,
      ndjson,
      lines: text.slice(0, -1).split('\n'),
    })
  }
  return out
}

const sinkConfig = (bucket: string, extra: Partial<S3SinkConfig> = {}): S3SinkConfig => ({
  type: 's3',
  bucket,
  region,
  endpoint,
  forcePathStyle: true,
  credentials: { ...credentials },
  key: S3_DEFAULT_KEY,
  compression: 'gzip',
  maxObjectBytes: 64 * 1024 * 1024,
  maxObjectRecords: 1_000_000,
  maxObjectAgeMs: 300_000,
  partBytes: S3_PART_BYTES,
  timeoutMs: 10_000,
  retry: { initialMs: 10, maxMs: 100, maxAttempts: 0 },
  ...extra,
})

sinkConformance(
  's3',
  async () => {
    const bucket = await createBucket()
    return {
      create: async (o) =>
        createS3Sink(
          's3-out',
          // 1 MiB objects, so that "a record over the limit" is a 1 MiB record, not a 64 MiB one.
          sinkConfig(bucket, {
            maxObjectBytes: 1024 * 1024,
            ...(o?.maxBatchRecords ? { maxBatchRecords: o.maxBatchRecords } : {}),
          }),
          { logger },
        ),
      readBack: async () => (await readObjects(bucket)).flatMap((o) => o.lines.map((l) => Buffer.from(l))),
      createPermanentlyFailing: async () =>
        createS3Sink('s3-missing', sinkConfig(unique('sg-no-such-bucket')), { logger }),
      createTransientlyFailing: async () => {
        const proxy = await startTcpProxy('127.0.0.1', Number(new URL(endpoint).port))
        proxies.push(proxy)
        proxy.pause()
        const sink = createS3Sink(
          's3-flaky',
          sinkConfig(bucket, { endpoint: `http://127.0.0.1:${proxy.port}`, timeoutMs: 2_000 }),
          { logger },
        )
        return { sink, heal: async () => proxy.resume() }
      },
      cleanup: async () => {
        await removeBucket(bucket).catch(() => undefined)
      },
    }
  },
  // An object write is all or nothing: there is no partial failure by index to inject.
  { transient: true, partialFailure: false },
)

const rec = (stream: string, payload: string, receivedAtMs = Date.now()): SinkRecord => ({
  stream,
  payload: Buffer.from(payload),
  receivedAtMs,
})

const deliveryOptions = (dead: { records: SinkRecord[]; error: SinkError }[] = []) => ({
  retry: { initialMs: 10, maxMs: 100, maxAttempts: 0 },
  signal: AbortSignal.timeout(120_000),
  metrics: new Metrics({ defaultMetrics: false }),
  logger,
  deadLetter: async (recs: SinkRecord[], error: SinkError) => void dead.push({ records: recs, error }),
})

describe('s3 sink', () => {
  it('one object per write: gzip NDJSON of the exact bytes, key from the first record, headers set', async () => {
    const bucket = await createBucket()
    const sink = createS3Sink('s', sinkConfig(bucket), { logger })
    const at = Date.UTC(2026, 10, 23, 7, 59, 59)
    const payloads = [
      '{"id":9007199254740993,"text":"grüße \\u00e9","n":1.50}',
      '{"id":2,"nested":{"a":[1,2,{"b":null}]}}',
      '"just a string"',
    ]
    const batch = payloads.map((p, i) => rec('emnify-usage', p, at + i * 3_600_000))
    expect((await sink.write(batch, AbortSignal.timeout(30_000))).failed).toEqual([])
    await sink.close()
    const objects = await readObjects(bucket)
    expect(objects).toHaveLength(1)
    const [o] = objects
    expect(o!.key).toMatch(
      /^emnify-usage\/dt=2026-11-23\/hour=07\/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.ndjson\.gz$/,
    )
    expect(o!.contentType).toBe('application/x-ndjson')
    expect(o!.contentEncoding).toBe('gzip')
    expect(o!.metadata).toEqual({ records: '3' })
    expect(o!.ndjson.equals(Buffer.from(payloads.map((p) => `${p}\n`).join('')))).toBe(true)
  })

  it('a batch that mixes streams becomes one object per stream; compression none drops .gz', async () => {
    const bucket = await createBucket()
    const sink = createS3Sink('s', sinkConfig(bucket, { compression: 'none' }), { logger })
    const batch = [rec('a', '{"s":"a","n":1}'), rec('b', '{"s":"b","n":1}'), rec('a', '{"s":"a","n":2}')]
    expect((await sink.write(batch, AbortSignal.timeout(30_000))).failed).toEqual([])
    await sink.close()
    const objects = (await readObjects(bucket)).sort((x, y) => x.key.localeCompare(y.key))
    expect(objects.map((o) => o.key.split('/')[0])).toEqual(['a', 'b'])
    for (const o of objects) {
      expect(o.key.endsWith('.ndjson')).toBe(true)
      expect(o.contentEncoding).toBeUndefined()
    }
    expect(objects[0]!.lines).toEqual(['{"s":"a","n":1}', '{"s":"a","n":2}'])
    expect(objects[1]!.lines).toEqual(['{"s":"b","n":1}'])
  })

  it('rolls over by size and by record count at the delivery layer; the objects hold exactly the records', async () => {
    const bucket = await createBucket()
    const bySize = createS3Sink('s', sinkConfig(bucket, { maxObjectBytes: 10_000 }), { logger })
    const sized = records(100, 'size', 200)
    const totalBytes = sized.reduce((n, r) => n + r.payload.length, 0)
    await deliver(bySize, sized, deliveryOptions())
    await bySize.close()
    let objects = await readObjects(bucket)
    expect(objects.length).toBeGreaterThanOrEqual(Math.ceil(totalBytes / 10_000))
    // Payload bytes per object (the newlines are not counted, as in the delivery layer's batching).
    for (const o of objects) expect(o.ndjson.length - o.lines.length).toBeLessThanOrEqual(10_000)
    expect(objects.flatMap((o) => o.lines).sort()).toEqual(sized.map((r) => r.payload.toString()).sort())

    const bucket2 = await createBucket()
    const byCount = createS3Sink('s', sinkConfig(bucket2, { maxObjectRecords: 7 }), { logger })
    const counted = records(50, 'count')
    await deliver(byCount, counted, deliveryOptions())
    await byCount.close()
    objects = await readObjects(bucket2)
    expect(objects.map((o) => o.lines.length).sort((a, b) => a - b)).toEqual([1, 7, 7, 7, 7, 7, 7, 7])
    expect(objects.flatMap((o) => o.lines).sort()).toEqual(counted.map((r) => r.payload.toString()).sort())
  })

  it('a 20 MiB object goes multipart and round-trips byte for byte', async () => {
    const bucket = await createBucket()
    const sink = createS3Sink('s', sinkConfig(bucket, { compression: 'none' }), { logger })
    const batch = records(20 * 1024, 'mp', 1000)
    const bytes = batch.reduce((n, r) => n + r.payload.length + 1, 0)
    expect(bytes).toBeGreaterThan(S3_PART_BYTES)
    expect((await sink.write(batch, AbortSignal.timeout(120_000))).failed).toEqual([])
    await sink.close()
    const objects = await readObjects(bucket)
    expect(objects).toHaveLength(1)
    // A multipart object's ETag is "<md5 of the part md5s>-<number of parts>".
    expect(objects[0]!.etag).toMatch(new RegExp(`-${Math.ceil(bytes / S3_PART_BYTES)}"$`))
    expect(
      objects[0]!.ndjson.equals(Buffer.concat(batch.flatMap((r) => [r.payload, Buffer.from('\n')]))),
    ).toBe(true)
  })

  it('a multipart upload that fails half-way is aborted: no object, no upload left behind', async () => {
    const bucket = await createBucket()
    const sink = createS3Sink('s', sinkConfig(bucket, { compression: 'none' }), { logger }) as S3Sink
    let parts = 0
    const failSecondPart: InitializeMiddleware<ServiceInputTypes, ServiceOutputTypes> =
      (next, context) => async (args) => {
        if (context.commandName === 'UploadPartCommand' && ++parts === 2)
          throw new S3ServiceException({
            name: 'InternalError',
            $fault: 'server',
            $metadata: { httpStatusCode: 500 },
            message: 'injected: We encountered an internal error. Please try again.',
          })
        return next(args)
      }
    sink.client.middlewareStack.add(failSecondPart, { step: 'initialize', name: 'testFailSecondPart' })
    const batch = records(20 * 1024, 'abort', 1000)
    const error = (await sink
      .write(batch, AbortSignal.timeout(120_000))
      .catch((e: unknown) => e)) as SinkError
    expect(error).toMatchObject({ retriable: true, reason: 'server-error' })
    await sink.close()
    expect(parts).toBeGreaterThanOrEqual(2)
    expect(await listObjects(bucket)).toEqual([])
    const uploads = await admin.send(new ListMultipartUploadsCommand({ Bucket: bucket }))
    expect(uploads.Uploads ?? []).toEqual([])
  })

  it('maps failures: missing bucket and bad credentials are permanent, an outage transient', async () => {
    const missing = createS3Sink('s', sinkConfig(unique('sg-missing')), { logger })
    for (const attempt of [
      () => missing.write(records(1), AbortSignal.timeout(30_000)),
      () => missing.healthcheck(AbortSignal.timeout(30_000)),
    ])
      expect(await attempt().catch((e: unknown) => e)).toMatchObject({
        retriable: false,
        reason: 'unknown-bucket',
      })
    await missing.close()

    const bucket = await createBucket()
    const ok = createS3Sink('s', sinkConfig(bucket), { logger })
    await expect(ok.healthcheck(AbortSignal.timeout(30_000))).resolves.toBeUndefined()
    await ok.close()

    for (const creds of [
      { accessKeyId: 'nobody', secretAccessKey: 'wrong-secret' },
      { accessKeyId: credentials.accessKeyId, secretAccessKey: 'wrong-secret' },
    ]) {
      const denied = createS3Sink('s', sinkConfig(bucket, { credentials: creds }), { logger })
      expect(
        await denied.write(records(1), AbortSignal.timeout(30_000)).catch((e: unknown) => e),
      ).toMatchObject({
        retriable: false,
        reason: 'unauthorized',
      })
      expect(await denied.healthcheck(AbortSignal.timeout(30_000)).catch((e: unknown) => e)).toMatchObject({
        retriable: false,
        reason: 'unauthorized',
      })
      await denied.close()
    }

    const proxy = await startTcpProxy('127.0.0.1', Number(new URL(endpoint).port))
    proxies.push(proxy)
    proxy.pause()
    const down = createS3Sink(
      's',
      sinkConfig(bucket, { endpoint: `http://127.0.0.1:${proxy.port}`, timeoutMs: 2_000 }),
      { logger },
    )
    expect(await down.write(records(1), AbortSignal.timeout(30_000)).catch((e: unknown) => e)).toMatchObject({
      retriable: true,
      reason: 'network',
    })
    await down.close()
    expect(await listObjects(bucket)).toEqual([])
  })
})

describe('s3 sink through the gateway', () => {
  const s3Sink = (bucket: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
    type: 's3',
    bucket,
    region,
    endpoint,
    forcePathStyle: true,
    credentials: { ...credentials },
    retry: { initialMs: 50, maxMs: 500 },
    ...extra,
  })

  it('delivers /ingest records byte for byte into time-partitioned gzip NDJSON objects', async () => {
    const bucket = await createBucket()
    const gw = await startGateway({
      sinks: { lake: s3Sink(bucket, { maxObjectAgeMs: 200 }), dlq: { type: 'file', dir: '{dir}/dlq' } },
      streams: { 'emnify-usage': { source: 'ndjson', sinks: ['lake'], deadLetter: 'dlq' } },
    })
    try {
      const lines = Array.from(
        { length: 30 },
        (_, i) =>
          `{"id":${9007199254740993n + BigInt(i)},"sim":{"iccid":"8988303${i}"},"cost":0.10,"t":"ü${i}"}`,
      )
      const before = new Date()
      const res = await send(`${gw.url}/ingest/emnify-usage`, { body: lines.join('\r\n') })
      expect(res.status).toBe(200)
      expect(res.json()).toMatchObject({ accepted: 30 })
      const objects = await waitFor(
        async () => {
          const got = await readObjects(bucket)
          return got.flatMap((o) => o.lines).length >= lines.length && got
        },
        30_000,
        'objects in the bucket',
      )
      expect(objects.flatMap((o) => o.lines).sort()).toEqual([...lines].sort())
      const after = new Date()
      const partition = (d: Date): string =>
        `emnify-usage/dt=${d.toISOString().slice(0, 10)}/hour=${d.toISOString().slice(11, 13)}/`
      for (const o of objects) {
        expect([partition(before), partition(after)]).toContain(o.key.slice(0, partition(before).length))
        expect(o.key).toMatch(/\/[0-9a-f-]{36}\.ndjson\.gz$/)
        expect(o.contentEncoding).toBe('gzip')
      }
      expect(readNdjsonLines(`${gw.dir}/dlq`)).toEqual([])
    } finally {
      await gw.close()
    }
  })

  it('rolls over by age: records of requests within maxObjectAgeMs share one object, written after it', async () => {
    const bucket = await createBucket()
    const ageMs = 2_000
    const gw = await startGateway({
      sinks: { lake: s3Sink(bucket, { maxObjectAgeMs: ageMs }) },
      streams: { s: { source: 'ndjson', durability: 'spool', sinks: ['lake'] } },
    })
    try {
      const started = Date.now()
      expect((await send(`${gw.url}/ingest/s`, { body: '{"req":1,"n":1}\n{"req":1,"n":2}' })).status).toBe(
        200,
      )
      expect((await send(`${gw.url}/ingest/s`, { body: '{"req":2,"n":1}' })).status).toBe(200)
      // Checked well before the age is reached (the two requests took a few ms).
      if (Date.now() - started < ageMs / 2) expect(await listObjects(bucket)).toEqual([])
      const objects = await waitFor(
        async () => {
          const got = await readObjects(bucket)
          return got.length > 0 && got
        },
        30_000,
        'the object',
      )
      expect(Date.now() - started).toBeGreaterThanOrEqual(ageMs - 50)
      expect(objects).toHaveLength(1)
      expect(objects[0]!.lines).toEqual(['{"req":1,"n":1}', '{"req":1,"n":2}', '{"req":2,"n":1}'])
    } finally {
      await gw.close()
    }
  })

  it('a durability none stream writes every request as its own object', async () => {
    const bucket = await createBucket()
    const gw = await startGateway({
      sinks: { lake: s3Sink(bucket) },
      streams: { s: { source: 'ndjson', durability: 'none', sinks: ['lake'] } },
    })
    try {
      expect((await send(`${gw.url}/ingest/s`, { body: '{"req":1}' })).status).toBe(200)
      expect((await send(`${gw.url}/ingest/s`, { body: '{"req":2}\n{"req":2,"n":2}' })).status).toBe(200)
      // durability none answers only once the object exists: no polling needed.
      const objects = await readObjects(bucket)
      expect(objects.map((o) => o.lines.length).sort()).toEqual([1, 2])
    } finally {
      await gw.close()
    }
  })

  it('a missing bucket dead-letters the records with reason unknown-bucket', async () => {
    const bucket = unique('sg-missing')
    const gw = await startGateway({
      sinks: { lake: s3Sink(bucket, { maxObjectAgeMs: 100 }), dlq: { type: 'file', dir: '{dir}/dlq' } },
      streams: { s: { source: 'ndjson', sinks: ['lake'], deadLetter: 'dlq' } },
    })
    try {
      const lines = ['{"a":1}', '{"a":2,"big":12345678901234567890}']
      expect((await send(`${gw.url}/ingest/s`, { body: lines.join('\n') })).json()).toMatchObject({
        accepted: 2,
      })
      const dead = await waitFor(
        () => {
          const got = readNdjsonLines(`${gw.dir}/dlq`)
          return got.length >= 2 && got
        },
        30_000,
        'dead letters',
      )
      const envelopes = dead.map((l) => parseDeadLetter(l)!)
      expect(envelopes.map((e) => e.raw).sort()).toEqual([...lines].sort())
      for (const e of envelopes)
        expect(e).toMatchObject({ stream: 's', sink: 'lake', reason: 'unknown-bucket' })
    } finally {
      await gw.close()
    }
  })
})

describe('s3 objects in constant memory', () => {
  /** NDJSON of `n` records `{"id":"<prefix>-<i>","p":"<random base64>"}` (gzip keeps ~¾ of them). */
  const noisyRecords = (prefix: string, from: number, n: number, bytes = 900): string[] =>
    Array.from(
      { length: n },
      (_, i) =>
        `{"id":"${prefix}-${from + i}","p":"${randomBytes(bytes).toString('base64').slice(0, bytes)}"}`,
    )

  const idsIn = (objects: StoredObject[]): string[] =>
    objects.flatMap((o) => o.lines.map((l) => (JSON.parse(l) as { id: string }).id))

  async function uploadsInProgress(Bucket: string): Promise<{ key: string; uploadId: string }[]> {
    const page = await admin.send(new ListMultipartUploadsCommand({ Bucket }))
    return (page.Uploads ?? []).map((u) => ({ key: u.Key!, uploadId: u.UploadId! }))
  }

  it('several streams, each its own lane and object, roll over into multipart objects; every record once, no upload left', async () => {
    const bucket = await createBucket()
    const streams = ['a', 'b', 'c']
    const gw = await startGateway({
      sinks: {
        lake: {
          type: 's3',
          bucket,
          region,
          endpoint,
          forcePathStyle: true,
          credentials: { ...credentials },
          // 12 MiB objects of ~75 % compressible records: ~9 MiB of gzip, two parts of 5 MiB each.
          maxObjectBytes: 12 * 1024 * 1024,
          partBytes: S3_MIN_PART_BYTES,
          maxObjectAgeMs: 1_500,
          retry: { initialMs: 50, maxMs: 500 },
        },
      },
      // Paused while the records are posted (a slow machine must not roll objects by age before they are
      // full); resumed together, every stream's lane then fills and rolls its objects at the same time.
      streams: Object.fromEntries(
        streams.map((id) => [id, { source: 'ndjson', status: 2, sinks: ['lake'] }]),
      ),
    })
    try {
      const posted: string[] = []
      // ~26 MiB per stream, the streams interleaved: two full objects each, and the rest by age.
      for (let round = 0; round < 26; round++)
        for (const id of streams) {
          const lines = noisyRecords(id, round * 1_000, 1_000)
          const res = await send(`${gw.url}/ingest/${id}`, { body: lines.join('\n') })
          expect(res.status, res.text).toBe(200)
          posted.push(...lines.map((l) => (JSON.parse(l) as { id: string }).id))
        }
      expect(await listObjects(bucket)).toEqual([])
      for (const id of streams) gw.gateway.setStatus(id, 1)
      await waitFor(
        () => [...gw.gateway.topology.lanes()].flatMap(([, lanes]) => lanes).every((lane) => lane.lag === 0),
        120_000,
        'every lane caught up',
      )
      const objects = await readObjects(bucket)
      expect(idsIn(objects).sort()).toEqual([...posted].sort())
      for (const id of streams) {
        const own = objects.filter((o) => o.key.startsWith(`${id}/`))
        // Each object holds one stream's records only.
        for (const o of own) expect(idsIn([o]).every((r) => r.startsWith(`${id}-`))).toBe(true)
        const multipart = own.filter((o) => /-(\d+)"$/.test(o.etag))
        expect(multipart.length).toBeGreaterThanOrEqual(2)
        for (const o of multipart) expect(Number(/-(\d+)"$/.exec(o.etag)![1])).toBeGreaterThanOrEqual(2)
        for (const o of own) expect(o.ndjson.length).toBeLessThanOrEqual(12 * 1024 * 1024 + 1_000 * 27)
      }
      expect(await uploadsInProgress(bucket)).toEqual([])
    } finally {
      await gw.close()
    }
  }, 180_000)

  it('a part that fails while a lane stages an object: the upload is aborted, its records go again, nothing lost', async () => {
    const bucket = await createBucket()
    const gw = await startGateway({
      sinks: {
        lake: {
          type: 's3',
          bucket,
          region,
          endpoint,
          forcePathStyle: true,
          credentials: { ...credentials },
          compression: 'none',
          maxObjectBytes: 12 * 1024 * 1024,
          partBytes: S3_MIN_PART_BYTES,
          maxObjectAgeMs: 1_000,
          retry: { initialMs: 50, maxMs: 500 },
        },
      },
      // Paused while posting, so that the lane stages its first object from a backlog and rolls it by size
      // (12 MiB: parts 1 and 2 of 5 MiB) however slowly the records arrive.
      streams: { s: { source: 'ndjson', status: 2, sinks: ['lake'] } },
    })
    try {
      let parts = 0
      const failSecondPart: InitializeMiddleware<ServiceInputTypes, ServiceOutputTypes> =
        (next, context) => async (args) => {
          if (context.commandName === 'UploadPartCommand' && ++parts === 2)
            throw new S3ServiceException({
              name: 'InternalError',
              $fault: 'server',
              $metadata: { httpStatusCode: 500 },
              message: 'injected: We encountered an internal error. Please try again.',
            })
          return next(args)
        }
      const sink = gw.gateway.topology.sink('lake') as S3Sink
      sink.client.middlewareStack.add(failSecondPart, { step: 'initialize', name: 'testFailSecondPart' })
      const posted: string[] = []
      for (let i = 0; i < 14; i++) {
        const lines = noisyRecords('s', i * 1_000, 1_000)
        expect((await send(`${gw.url}/ingest/s`, { body: lines.join('\n') })).status).toBe(200)
        posted.push(...lines.map((l) => (JSON.parse(l) as { id: string }).id))
      }
      gw.gateway.setStatus('s', 1)
      const lane = gw.gateway.topology.lanesOf('s').find((l) => l.sinkName === 'lake')!
      await waitFor(() => lane.lag === 0, 120_000, 'the lane caught up')
      expect(parts).toBeGreaterThanOrEqual(2)
      expect(lane.lastError).toMatchObject({ reason: 'server-error' })
      const objects = await readObjects(bucket)
      // Every record in a complete object; none twice (the failed object never became visible).
      expect(idsIn(objects).sort()).toEqual([...posted].sort())
      expect(await uploadsInProgress(bucket)).toEqual([])
    } finally {
      await gw.close()
    }
  }, 180_000)

  it('SIGKILL mid-upload: after the restart the orphaned upload is aborted (no other writer’s), every acknowledged record lands in complete objects', async () => {
    const bucket = await createBucket()
    const dir = mkdtempSync(join(tmpdir(), 'sg-s3-crash-'))
    const cli = join(import.meta.dirname, '..', '..', 'dist', 'cli.js')
    const configFile = (ageMs: number): string => {
      const file = join(dir, `config-${ageMs}.json`)
      writeFileSync(
        file,
        JSON.stringify({
          server: { host: '127.0.0.1', port: 0 },
          dataDir: dir,
          spool: { dir: join(dir, 'spool') },
          log: { level: 'info' },
          sinks: {
            lake: {
              type: 's3',
              bucket,
              region,
              endpoint,
              forcePathStyle: true,
              credentials: { ...credentials },
              partBytes: S3_MIN_PART_BYTES,
              maxObjectAgeMs: ageMs,
              retry: { initialMs: 50, maxMs: 500 },
            },
          },
          streams: { s: { source: 'ndjson', sinks: ['lake'] } },
        }),
      )
      return file
    }
    const children: ChildProcess[] = []
    const serve = async (file: string, log: string): Promise<{ child: ChildProcess; url: string }> => {
      const fd = openSync(join(dir, log), 'a')
      const child = spawn(process.execPath, [cli, 'serve', '--config', file], {
        env: { PATH: process.env.PATH },
        stdio: ['ignore', fd, fd],
      })
      closeSync(fd)
      children.push(child)
      const port = await waitFor(
        () => /"port":(\d+)/.exec(readFileSync(join(dir, log), 'utf8'))?.[1],
        30_000,
        'the listening log line',
      )
      return { child, url: `http://127.0.0.1:${port}` }
    }
    try {
      // First run: objects would roll over after 10 minutes, so the one being written is mid-upload.
      const first = await serve(configFile(600_000), 'first.log')
      const acked: string[] = []
      for (let i = 0; i < 10; i++) {
        const lines = noisyRecords('s', i * 1_000, 1_000)
        const res = await send(`${first.url}/ingest/s`, { body: lines.join('\n') })
        expect(res.status, res.text).toBe(200)
        acked.push(...lines.map((l) => (JSON.parse(l) as { id: string }).id))
      }
      const orphan = await waitFor(
        async () => {
          const [upload] = await uploadsInProgress(bucket)
          if (!upload) return undefined
          const parts = await admin.send(
            new ListPartsCommand({ Bucket: bucket, Key: upload.key, UploadId: upload.uploadId }),
          )
          return (parts.Parts ?? []).length > 0 && upload
        },
        60_000,
        'a multipart upload with a part uploaded',
      )
      const exited = new Promise((r) => first.child.once('exit', r))
      first.child.kill('SIGKILL')
      await exited
      expect(await uploadsInProgress(bucket)).toEqual([orphan])
      expect(await listObjects(bucket)).toEqual([])
      // The record the first run kept of its upload, beside the spool.
      expect(readdirSync(join(dir, 'spool', 'sinks', 'lake', 'multipart-uploads'))).toHaveLength(1)
      // Another writer's upload under the same prefix must survive the restart.
      const otherKey = `${orphan.key.slice(0, orphan.key.lastIndexOf('/'))}/another-writer.ndjson.gz`
      const other = await admin.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: otherKey }))

      const second = await serve(configFile(1_000), 'second.log')
      const objects = await waitFor(
        async () => {
          const got = await readObjects(bucket)
          return idsIn(got).length >= acked.length && got
        },
        120_000,
        'the records sent again after the restart',
      )
      expect(idsIn(objects).sort()).toEqual([...acked].sort())
      expect(await uploadsInProgress(bucket)).toEqual([{ key: otherKey, uploadId: other.UploadId! }])
      expect(readdirSync(join(dir, 'spool', 'sinks', 'lake', 'multipart-uploads'))).toEqual([])
      expect(readFileSync(join(dir, 'second.log'), 'utf8')).toContain('aborted multipart uploads')
      const stopped = new Promise((r) => second.child.once('exit', r))
      second.child.kill('SIGTERM')
      await stopped
      await admin.send(
        new AbortMultipartUploadCommand({ Bucket: bucket, Key: otherKey, UploadId: other.UploadId! }),
      )
    } finally {
      for (const child of children)
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
      rmSync(dir, { recursive: true, force: true })
    }
  }, 240_000)
})
