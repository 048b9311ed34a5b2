// Fault injection: SPEC §2's promise ("a record once acknowledged is delivered to every sink of its stream at
// least once, across crashes and restarts") and §5's ("one slow or broken sink never stalls the other sinks
// of the same stream") checked against the real backends of scripts/backends.
//
//  1. Crashes: the built gateway (dist/cli.js) runs as a child process and is SIGKILLed at random moments
//     while producers post records; it restarts on the same spool and port each time. Every id whose request
//     got a 2xx must end up in Kafka and at the HTTP relay target (duplicates are allowed and counted).
//  2. Sink outages: Kafka and MinIO are stopped for ~30 s under a steady load; the HTTP relay target keeps
//     receiving meanwhile, the breakers of the dead sinks open, and after the restart every acknowledged
//     record reaches Kafka and S3. The backends are restarted in `finally`, on the same addresses.
import { spawn, type ChildProcess } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gunzipSync } from 'node:zlib'
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  S3Client,
} from '@aws-sdk/client-s3'
import { NodeHttpHandler } from '@smithy/node-http-handler'
import { Kafka, logLevel, type Admin } from 'kafkajs'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import { startKafka, startS3, stopKafka, stopS3 } from '../../scripts/backends/index.js'
import { readNdjsonLines, startGateway, waitFor } from '../support/gateway.js'
import { freePort } from '../../scripts/backends/daemon.js'
import { send } from '../support/http.js'
import { HttpTargetMock } from '../support/mocks/http-target.js'
import { createTopicsWithLeaders } from '../support/kafka-topics.js'

const CLI = join(import.meta.dirname, '..', '..', 'dist', 'cli.js')
const backends = inject('backends')
const brokers = backends.KAFKA_BROKERS
/** The kafka sink's client under test: STREAMGATE_TEST_KAFKA_CLIENT=platformatic runs these with the other one. */
const kafkaClient = process.env.STREAMGATE_TEST_KAFKA_CLIENT === 'platformatic' ? 'platformatic' : 'kafkajs'
const s3 = {
  endpoint: backends.S3_ENDPOINT,
  region: backends.S3_REGION,
  credentials: { accessKeyId: backends.S3_ACCESS_KEY_ID, secretAccessKey: backends.S3_SECRET_ACCESS_KEY },
}
const kafka = new Kafka({
  clientId: 'streamgate-faults',
  brokers: brokers.split(','),
  logLevel: logLevel.NOTHING,
})
let admin: Admin
const topics: string[] = []
const buckets: string[] = []
let s3Admin: S3Client
let dir: string

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'streamgate-faults-'))
  admin = kafka.admin()
  await admin.connect()
  s3Admin = new S3Client({
    ...s3,
    credentials: { ...s3.credentials },
    forcePathStyle: true,
    requestHandler: new NodeHttpHandler(),
  })
})

afterAll(async () => {
  if (topics.length > 0) await admin.deleteTopics({ topics }).catch(() => undefined)
  await admin.disconnect().catch(() => undefined)
  await Promise.allSettled(buckets.map((b) => removeBucket(b)))
  s3Admin.destroy()
  rmSync(dir, { recursive: true, force: true })
})

const unique = (prefix: string): string => `${prefix}-${randomUUID().slice(0, 8)}`
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
const between = (lo: number, hi: number): number => lo + Math.floor(Math.random() * (hi - lo))

async function createTopic(): Promise<string> {
  const topic = unique('sg-faults')
  await createTopicsWithLeaders(admin, [{ topic, numPartitions: 4, replicationFactor: 1 }])
  topics.push(topic)
  return topic
}

/** Message count of the topic now (sum of the partitions' high watermarks; the topics are never trimmed). */
async function topicSize(topic: string): Promise<number> {
  const offsets = await admin.fetchTopicOffsets(topic)
  return offsets.reduce((sum, p) => sum + Number(p.high) - Number(p.low), 0)
}

/** The ids of every message the topic holds now, read with a fresh consumer group up to the high watermarks. */
async function readTopicIds(topic: string, timeoutMs = 120_000): Promise<string[]> {
  const ends = new Map<number, number>()
  for (const p of await admin.fetchTopicOffsets(topic))
    if (Number(p.high) > Number(p.low)) ends.set(p.partition, Number(p.high))
  if (ends.size === 0) return []
  const consumer = kafka.consumer({
    groupId: unique('sg-faults-read'),
    maxWaitTimeInMs: 100,
    maxBytes: 16 << 20,
  })
  const ids: string[] = []
  try {
    await consumer.connect()
    await consumer.subscribe({ topics: [topic], fromBeginning: true })
    const pending = new Set(ends.keys())
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`reading ${topic}: timed out, partitions ${[...pending].join(',')} short`)),
        timeoutMs,
      )
      consumer
        .run({
          eachBatchAutoResolve: true,
          eachBatch: async ({ batch }) => {
            const end = ends.get(batch.partition)
            if (end === undefined) return
            for (const m of batch.messages) {
              if (Number(m.offset) >= end) break
              ids.push(idOf(m.value!.toString('utf8')))
              if (Number(m.offset) === end - 1) pending.delete(batch.partition)
            }
            if (pending.size === 0) {
              clearTimeout(timer)
              resolve()
            }
          },
        })
        .catch(reject)
    })
  } finally {
    await consumer.disconnect()
  }
  return ids
}

async function createBucket(): Promise<string> {
  const Bucket = unique('sg-faults')
  await s3Admin.send(new CreateBucketCommand({ Bucket }))
  buckets.push(Bucket)
  return Bucket
}

async function listKeys(Bucket: string): Promise<string[]> {
  const keys: string[] = []
  let ContinuationToken: string | undefined
  do {
    const page = await s3Admin.send(new ListObjectsV2Command({ Bucket, ContinuationToken }))
    for (const o of page.Contents ?? []) keys.push(o.Key!)
    ContinuationToken = page.NextContinuationToken
  } while (ContinuationToken)
  return keys
}

async function removeBucket(Bucket: string): Promise<void> {
  const keys = await listKeys(Bucket)
  for (let i = 0; i < keys.length; i += 1000)
    await s3Admin.send(
      new DeleteObjectsCommand({
        Bucket,
        Delete: { Objects: keys.slice(i, i + 1000).map((Key) => ({ Key })) },
      }),
    )
  await s3Admin.send(new DeleteBucketCommand({ Bucket }))
}

/** Ids in the bucket's objects; each object is read once (objects never change) and remembered in `seen`. */
async function readBucketIds(Bucket: string, seen: Map<string, string[]>): Promise<string[]> {
  for (const key of await listKeys(Bucket)) {
    if (seen.has(key)) continue
    const got = await s3Admin.send(new GetObjectCommand({ Bucket, Key: key }))
    const raw = Buffer.from(await got.Body!.transformToByteArray())
    const text = (got.ContentEncoding === 'gzip' ? gunzipSync(raw) : raw).toString('utf8')
    seen.set(
      key,
      text
        .split('\n')
        .filter((l) => l !== '')
        .map(idOf),
    )
  }
  return [...seen.values()].flat()
}

/** Every record posted here is `{"id":"<id>",...}` with a unique id. */
function idOf(line: string): string {
  return (JSON.parse(line) as { id: string }).id
}

function record(id: string): string {
  return `{"id":"${id}","at":${Date.now()},"pad":"${'x'.repeat(40)}"}`
}

/** Tally of delivered ids against the acknowledged ones. */
function tally(
  acked: ReadonlySet<string>,
  delivered: readonly string[],
): { missing: string[]; duplicates: number; unknown: number } {
  const counts = new Map<string, number>()
  for (const id of delivered) counts.set(id, (counts.get(id) ?? 0) + 1)
  let duplicates = 0
  let unknown = 0
  for (const [id, n] of counts) {
    duplicates += n - 1
    if (!acked.has(id)) unknown++
  }
  return { missing: [...acked].filter((id) => !counts.has(id)), duplicates, unknown }
}

/** The stream's lanes' lag (records not yet delivered), from the gateway's /metrics. */
async function laneLags(url: string, stream: string): Promise<number[]> {
  const res = await send(`${url}/metrics`, { method: 'GET' })
  const lag = new RegExp(`^streamgate_sink_lag_records\\{stream="${stream}",sink="[^"]+"\\} (\\d+)$`, 'gm')
  return [...res.text.matchAll(lag)].map((m) => Number(m[1]))
}

/** dist/cli.js serve as a child process; its output goes to a log file (kept for the failure message). */
class GatewayProcess {
  private child: ChildProcess | undefined
  private exited: Promise<void> = Promise.resolve()
  starts = 0

  constructor(
    private readonly configFile: string,
    readonly port: number,
    readonly logFile: string,
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`
  }

  async start(): Promise<void> {
    const fd = openSync(this.logFile, 'a')
    const child = spawn(process.execPath, [CLI, 'serve', '--config', this.configFile], {
      env: { PATH: process.env.PATH },
      stdio: ['ignore', fd, fd],
    })
    closeSync(fd)
    this.child = child
    this.starts++
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()))
    let dead = false
    void this.exited.then(() => (dead = true))
    await waitFor(
      async () => {
        if (dead) throw new Error(`the gateway exited during start:\n${this.logTail()}`)
        return (await send(`${this.url}/readyz`, { method: 'GET' }).catch(() => undefined))?.status === 200
      },
      60_000,
      `gateway start #${this.starts} (readyz)`,
    )
  }

  /** SIGKILL: no shutdown code runs, whatever was in flight is cut. */
  async kill(): Promise<void> {
    this.child?.kill('SIGKILL')
    await this.exited
  }

  async stop(): Promise<void> {
    this.child?.kill('SIGTERM')
    const stopped = await Promise.race([this.exited.then(() => true), sleep(20_000).then(() => false)])
    if (!stopped) await this.kill()
  }

  logTail(lines = 40): string {
    try {
      return readFileSync(this.logFile, 'utf8').split('\n').slice(-lines).join('\n')
    } catch {
      return '(no log)'
    }
  }
}

/**
 * Posts `batches` (NDJSON bodies of records with unique ids) in order, each until it is answered 2xx (as a
 * vendor's streamer retries): connection refused/reset while the gateway is down or being killed, and 503,
 * are retried after a pause. Every id of a 2xx answer goes into `acked`.
 */
async function produce(
  url: string,
  batches: readonly string[][],
  acked: Set<string>,
  o: { pauseMs: [number, number]; stats: { failedRequests: number }; cancelled: () => boolean },
): Promise<void> {
  for (const ids of batches) {
    const body = ids.map(record).join('\n') + '\n'
    for (;;) {
      if (o.cancelled()) return
      const res = await send(url, { body, headers: { 'content-type': 'application/x-ndjson' } }).catch(
        () => undefined,
      )
      if (res && res.status >= 200 && res.status <= 299) {
        expect(res.json()).toMatchObject({ accepted: ids.length })
        for (const id of ids) acked.add(id)
        break
      }
      o.stats.failedRequests++
      await sleep(between(50, 250))
    }
    await sleep(between(...o.pauseMs))
  }
}

describe('fault injection', () => {
  it(
    'conservation under crashes: 50,000 records, the gateway SIGKILLed at random moments, nothing acknowledged is lost',
    { timeout: 300_000 },
    async () => {
      const started = Date.now()
      const TOTAL = 50_000
      const PER_REQUEST = 500
      const MIN_KILLS = 5
      const topic = await createTopic()
      const target = await HttpTargetMock.start()
      // A slowish relay target (and small Kafka batches) keep deliveries in flight most of the time, so the
      // kills also land between a sink's write and the lane's cursor update, not only between requests.
      for (let i = 0; i < 10_000; i++) target.delayNext(between(20, 200))
      const work = mkdtempSync(join(dir, 'crash-'))
      const port = await freePort()
      const configFile = join(work, 'streamgate.yaml')
      // JSON is YAML.
      writeFileSync(
        configFile,
        JSON.stringify({
          server: { host: '127.0.0.1', port },
          dataDir: work,
          // Small segments: roll-over and segment garbage collection happen under the kills too.
          spool: { dir: join(work, 'spool'), segmentBytes: 256 * 1024 },
          log: { level: 'warn' },
          sinks: {
            kafka: {
              type: 'kafka',
              client: kafkaClient,
              brokers,
              topic,
              maxBatchRecords: 200,
              retry: { initialMs: 50, maxMs: 1000, maxAttempts: 0 },
            },
            relay: {
              type: 'http',
              url: `${target.url}/in`,
              retry: { initialMs: 50, maxMs: 1000, maxAttempts: 0 },
            },
            dl: { type: 'file', dir: join(work, 'dead-letter') },
          },
          streams: { conserve: { source: 'ndjson', sinks: ['kafka', 'relay'], deadLetter: 'dl' } },
        }),
      )
      const gw = new GatewayProcess(configFile, port, join(work, 'gateway.log'))
      const acked = new Set<string>()
      const stats = { failedRequests: 0 }
      let cancelled = false
      const batches = Array.from({ length: TOTAL / PER_REQUEST }, (_, b) =>
        Array.from({ length: PER_REQUEST }, (_, i) => `c-${String(b * PER_REQUEST + i).padStart(6, '0')}`),
      )
      try {
        await gw.start()
        // Two producers, each with every other batch, pausing a little between requests so that the
        // production spans the kills.
        let producing = true
        const producers = Promise.all(
          [0, 1].map((p) =>
            produce(
              `${gw.url}/ingest/conserve`,
              batches.filter((_, i) => i % 2 === p),
              acked,
              {
                pauseMs: [100, 400],
                stats,
                cancelled: () => cancelled,
              },
            ),
          ),
        ).finally(() => (producing = false))
        // The killer: random uptimes, at least MIN_KILLS kills, and on while the producers run.
        const ackedAtKills: number[] = []
        while (ackedAtKills.length < MIN_KILLS || (producing && ackedAtKills.length < 20)) {
          await sleep(between(400, 2500))
          ackedAtKills.push(acked.size)
          await gw.kill()
          await gw.start()
        }
        await producers
        const producedMs = Date.now() - started
        expect(acked.size).toBe(TOTAL)

        // Delivery: first the gateway's own view (every lane's lag 0), then every acknowledged id at the
        // HTTP target and in Kafka. A lane that skipped records also reaches lag 0: the count below says so.
        await waitFor(
          async () => {
            const lags = await laneLags(gw.url, 'conserve')
            return lags.length === 3 && lags.every((l) => l === 0)
          },
          120_000,
          'every lane of the stream at lag 0',
        ).catch((err: Error) => {
          throw new Error(`${err.message}\n${gw.logTail()}`)
        })
        const targetIds = (): string[] => target.deliveredLines().map(idOf)
        const complete = async (): Promise<boolean> =>
          (await topicSize(topic)) >= TOTAL && tally(acked, targetIds()).missing.length === 0
        await waitFor(complete, 15_000, 'the last deliveries to show').catch(() => undefined)
        const kafkaIds = await readTopicIds(topic)
        const inKafka = tally(acked, kafkaIds)
        const atTarget = tally(acked, targetIds())
        const deadLetters = readNdjsonLines(join(work, 'dead-letter'))
        console.log(
          `[faults] crash test: ${ackedAtKills.length} SIGKILLs (acknowledged records at each: ${ackedAtKills.join(', ')}), ` +
            `${stats.failedRequests} failed requests retried by the producers, produced in ${(producedMs / 1000).toFixed(1)} s; ` +
            `kafka: ${kafkaIds.length} messages, ${inKafka.duplicates} duplicates; ` +
            `http target: ${atTarget.duplicates} duplicates; dead letters: ${deadLetters.length}; ` +
            `total ${((Date.now() - started) / 1000).toFixed(1)} s`,
        )
        expect(ackedAtKills.length).toBeGreaterThanOrEqual(MIN_KILLS)
        expect({
          missingInKafka: inKafka.missing.length,
          missingAtHttpTarget: atTarget.missing.length,
          firstMissing: [...inKafka.missing, ...atTarget.missing].slice(0, 5),
          neverSent: inKafka.unknown + atTarget.unknown,
          deadLetters: deadLetters.length,
        }).toEqual({
          missingInKafka: 0,
          missingAtHttpTarget: 0,
          firstMissing: [],
          neverSent: 0,
          deadLetters: 0,
        })
      } finally {
        cancelled = true
        await gw.stop()
        await target.close()
      }
    },
  )

  it(
    'sink outages: Kafka and MinIO down for 30 s under load; the HTTP relay keeps delivering, nothing acknowledged is lost',
    { timeout: 420_000 },
    async () => {
      const started = Date.now()
      const OUTAGE_MS = 30_000
      const topic = await createTopic()
      const bucket = await createBucket()
      const target = await HttpTargetMock.start()
      const retry = { initialMs: 100, maxMs: 2000, maxAttempts: 0 }
      // Short cool-downs so the test does not wait minutes after the restart; the breaker is still exercised.
      const circuit = { failureThreshold: 3, openMs: 1000, maxOpenMs: 4000 }
      const gw = await startGateway({
        sinks: {
          kafka: { type: 'kafka', client: kafkaClient, brokers, topic, retry, circuit, timeoutMs: 10_000 },
          lake: {
            type: 's3',
            bucket,
            ...s3,
            forcePathStyle: true,
            maxObjectAgeMs: 1000,
            timeoutMs: 10_000,
            retry,
            circuit,
          },
          relay: { type: 'http', url: `${target.url}/in`, retry, circuit },
          dl: { type: 'file', dir: '{dir}/dead-letter' },
        },
        streams: { steady: { source: 'ndjson', sinks: ['kafka', 'lake', 'relay'], deadLetter: 'dl' } },
      })
      const acked = new Set<string>()
      /** When each batch was acknowledged, for "everything acknowledged before T is at the target". */
      const ackLog: { at: number; ids: string[] }[] = []
      let producing = true
      let n = 0
      const producer = (async () => {
        while (producing) {
          const ids = Array.from({ length: 50 }, () => `o-${String(n++).padStart(7, '0')}`)
          const res = await send(`${gw.url}/ingest/steady`, { body: ids.map(record).join('\n') }).catch(
            () => undefined,
          )
          if (res?.status === 200) {
            for (const id of ids) acked.add(id)
            ackLog.push({ at: Date.now(), ids })
          }
          await sleep(100)
        }
      })()
      const targetIds = (): Set<string> => new Set(target.deliveredLines().map(idOf))
      const laneCircuits = (): Record<string, string> =>
        Object.fromEntries(gw.gateway.topology.lanesOf('steady').map((l) => [l.sinkName, l.circuit.state]))
      const seenStates = new Map<string, Set<string>>()
      const timings = { stopMs: 0, startMs: 0 }
      let during = { ackedInOutage: 0, targetGrowth: 0, checks: 0 }
      try {
        await waitFor(() => acked.size >= 1000, 30_000, 'load before the outage')
        // Stop both; Kafka's controlled shutdown takes a few seconds.
        const stopping = Date.now()
        await Promise.all([stopKafka(), stopS3()])
        const outageStart = Date.now()
        timings.stopMs = outageStart - stopping
        const ackedAtStart = acked.size
        const targetAtStart = targetIds().size
        while (Date.now() - outageStart < OUTAGE_MS) {
          await sleep(2000)
          for (const [sink, state] of Object.entries(laneCircuits()))
            (seenStates.get(sink) ?? seenStates.set(sink, new Set()).get(sink)!).add(state)
          // The HTTP relay is not held up: everything acknowledged more than 5 s ago is at the target.
          const got = targetIds()
          const cutoff = Date.now() - 5000
          const late = ackLog
            .filter((a) => a.at < cutoff)
            .flatMap((a) => a.ids)
            .filter((id) => !got.has(id))
          expect(late.length, `acknowledged > 5 s ago, not at the HTTP target during the outage`).toBe(0)
          during.checks++
        }
        during = {
          ...during,
          ackedInOutage: acked.size - ackedAtStart,
          targetGrowth: targetIds().size - targetAtStart,
        }
      } finally {
        // Always (a stop that failed half-way may have left one down); a running one is reused. Same ports,
        // same data: the addresses in .backends/env stay right for the test files after this one.
        const starting = Date.now()
        const [k, m] = await Promise.all([startKafka(), startS3()])
        timings.startMs = Date.now() - starting
        expect(k.brokers).toBe(brokers)
        expect(m.endpoint).toBe(s3.endpoint)
      }
      const restartedAt = Date.now()
      // The test's own admin client lost its connections with the broker.
      await admin.disconnect().catch(() => undefined)
      admin = kafka.admin()
      await admin.connect()
      try {
        await sleep(3000)
        producing = false
        await producer
        const metrics = (await gw.metrics.render()).body
        const opened = (sink: string): number =>
          Number(
            new RegExp(`streamgate_sink_circuit_opened_total\\{sink="${sink}"\\} (\\d+)`).exec(
              metrics,
            )?.[1] ?? 0,
          )

        const s3Seen = new Map<string, string[]>()
        // The gateway's own view first (nothing pending in any lane), then what the backends hold.
        await waitFor(() => gw.gateway.pendingRecords('steady') === 0, 180_000, 'every lane at lag 0')
        const caughtUpMs = Date.now() - restartedAt
        await waitFor(
          async () =>
            (await topicSize(topic)) >= acked.size &&
            tally(acked, await readBucketIds(bucket, s3Seen)).missing.length === 0,
          15_000,
          'the last deliveries to show',
        ).catch(() => undefined)
        const inKafka = tally(acked, await readTopicIds(topic))
        const inS3 = tally(acked, await readBucketIds(bucket, s3Seen))
        const atTarget = tally(acked, target.deliveredLines().map(idOf))
        console.log(
          `[faults] outage test: ${acked.size} acknowledged, ${during.ackedInOutage} during the ${OUTAGE_MS / 1000} s outage ` +
            `(stopping Kafka and MinIO took ${(timings.stopMs / 1000).toFixed(1)} s, restarting them ${(timings.startMs / 1000).toFixed(1)} s) ` +
            `(HTTP target got ${during.targetGrowth} meanwhile, ${during.checks} checks); circuit opened: kafka ${opened('kafka')}, ` +
            `s3 ${opened('lake')}, relay ${opened('relay')}; states seen ${JSON.stringify(Object.fromEntries([...seenStates].map(([k, v]) => [k, [...v]])))}; ` +
            `duplicates: kafka ${inKafka.duplicates}, s3 ${inS3.duplicates}, http ${atTarget.duplicates}; ` +
            `caught up ${(caughtUpMs / 1000).toFixed(1)} s after the restart; total ${((Date.now() - started) / 1000).toFixed(1)} s`,
        )
        expect(during.ackedInOutage).toBeGreaterThan(1000) // ingest never depended on the dead sinks
        expect(during.targetGrowth).toBeGreaterThanOrEqual(during.ackedInOutage - 1000)
        expect(opened('kafka')).toBeGreaterThanOrEqual(1)
        expect(opened('lake')).toBeGreaterThanOrEqual(1)
        expect(opened('relay')).toBe(0)
        expect({
          missingInKafka: inKafka.missing.length,
          missingInS3: inS3.missing.length,
          missingAtHttpTarget: atTarget.missing.length,
          firstMissing: [...inKafka.missing, ...inS3.missing, ...atTarget.missing].slice(0, 5),
          neverSent: inKafka.unknown + inS3.unknown + atTarget.unknown,
          deadLetters: readNdjsonLines(`${gw.dir}/dead-letter`).length,
        }).toEqual({
          missingInKafka: 0,
          missingInS3: 0,
          missingAtHttpTarget: 0,
          firstMissing: [],
          neverSent: 0,
          deadLetters: 0,
        })
        expect(Object.values(laneCircuits()).every((s) => s === 'closed')).toBe(true)
      } finally {
        producing = false
        await producer
        await gw.close()
        await target.close()
      }
    },
  )
})
