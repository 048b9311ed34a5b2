// The kafka sink against the real single-node broker of scripts/backends/kafka.ts (auto.create.topics.enable
// is off there, so a missing topic is a real failure). Every test uses its own topics.
import { randomUUID } from 'node:crypto'
import type { Admin, KafkaMessage } from 'kafkajs'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import type { KafkaSinkConfig } from '../../src/config/types.js'
import type { SinkError } from '../../src/errors.js'
import { deliver } from '../../src/pipeline/delivery.js'
import { parseDeadLetter } from '../../src/records/dead-letter.js'
import type { SinkRecord } from '../../src/records/record.js'
import { kafkajs } from '../../src/sinks/kafka/kafkajs-client.js'
import { murmur2, partitionOf } from '../../src/sinks/kafka/messages.js'
import { createKafkaSink, KAFKA_MAX_RECORD_BYTES, type KafkaSinkOptions } from '../../src/sinks/kafka/sink.js'
import type { Sink, WriteResult } from '../../src/sinks/sink.js'
import { createLogger } from '../../src/telemetry/logger.js'
import { Metrics } from '../../src/telemetry/metrics.js'
import { records, sinkConformance } from '../conformance/sink-conformance.js'
import { createTopicsWithLeaders } from '../support/kafka-topics.js'
import { fixture, readNdjsonLines, startGateway, waitFor } from '../support/gateway.js'
import { send } from '../support/http.js'
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js'

const brokers = inject('backends').KAFKA_BROKERS
// kafkajs as the sink loads it (with its linear message grouping, kafkajs-client.ts), for the test's consumer.
const { Kafka, logLevel } = kafkajs()
/**
 * Every test runs once per client. STREAMGATE_TEST_KAFKA_CLIENTS=platformatic (or kafkajs) runs one only.
 */
const CLIENTS = (process.env.STREAMGATE_TEST_KAFKA_CLIENTS ?? 'kafkajs,platformatic')
  .split(',')
  .map((c) => c.trim()) as KafkaSinkConfig['client'][]
const [brokerHost, brokerPort] = ((): [string, number] => {
  const first = brokers.split(',')[0]!
  const colon = first.lastIndexOf(':')
  return [first.slice(0, colon), Number(first.slice(colon + 1))]
})()
const logger = createLogger('silent')
const client = new Kafka({
  clientId: 'streamgate-test',
  brokers: brokers.split(','),
  logLevel: logLevel.NOTHING,
})
let admin: Admin
const createdTopics: string[] = []

beforeAll(async () => {
  admin = client.admin()
  await admin.connect()
})

afterAll(async () => {
  if (createdTopics.length > 0) await admin.deleteTopics({ topics: createdTopics }).catch(() => undefined)
  await admin.disconnect()
})

const unique = (prefix: string): string => `${prefix}-${randomUUID().slice(0, 8)}`

async function createTopics(
  topics: string[],
  config: Record<string, string> = {},
  numPartitions = 4,
): Promise<void> {
  await createTopicsWithLeaders(
    admin,
    topics.map((topic) => ({
      topic,
      numPartitions,
      replicationFactor: 1,
      configEntries: Object.entries(config).map(([name, value]) => ({ name, value })),
    })),
  )
  createdTopics.push(...topics)
}

interface Read {
  topic: string
  partition: number
  message: KafkaMessage
}

/**
 * Everything the topics hold now: the high watermarks are read first, then a consumer (fresh group, from
 * the beginning) reads until it has reached them all.
 */
async function readTopics(topics: string[], timeoutMs = 30_000): Promise<Read[]> {
  const ends = new Map<string, number>()
  for (const topic of topics) {
    for (const p of await admin.fetchTopicOffsets(topic))
      if (Number(p.high) > Number(p.low)) ends.set(`${topic}/${p.partition}`, Number(p.high))
  }
  if (ends.size === 0) return []
  const consumer = client.consumer({ groupId: unique('sg-test-read'), maxWaitTimeInMs: 100 })
  const got: Read[] = []
  try {
    await consumer.connect()
    await consumer.subscribe({ topics, fromBeginning: true })
    const pending = new Set(ends.keys())
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`readTopics: timed out; still waiting for ${[...pending].join(', ')}`)),
        timeoutMs,
      )
      consumer
        .run({
          eachMessage: async ({ topic, partition, message }) => {
            const key = `${topic}/${partition}`
            const end = ends.get(key)
            if (end === undefined || Number(message.offset) >= end) return
            got.push({ topic, partition, message })
            if (Number(message.offset) === end - 1) pending.delete(key)
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
  return got
}

const values = (read: Read[]): Buffer[] => read.map((r) => r.message.value!)
/** The idempotent producer id of a message's record batch (kafkajs decodes it, its types do not show it). */
const producerId = (r: Read): string =>
  (r.message as KafkaMessage & { batchContext: { producerId: string } }).batchContext.producerId
const sortedText = (bufs: readonly Buffer[]): string[] => bufs.map((b) => b.toString('utf8')).sort()
const header = (m: KafkaMessage, name: string): string | undefined => m.headers?.[name]?.toString()

function sinkConfig(
  client: KafkaSinkConfig['client'],
  topic: string,
  extra: Partial<KafkaSinkConfig> = {},
): KafkaSinkConfig {
  return {
    type: 'kafka',
    brokers,
    topic,
    acks: -1,
    idempotent: true,
    compression: 'gzip',
    client,
    producers: 1,
    clientId: 'streamgate-test',
    timeoutMs: 30_000,
    retry: { initialMs: 10, maxMs: 100, maxAttempts: 0 },
    ...extra,
  }
}

/** Every broker connection of the sink goes through the proxy (the broker advertises its own address). */
function viaProxy(proxy: TcpProxy): KafkaSinkOptions {
  return { redirectBrokers: { [`${brokerHost}:${brokerPort}`]: `127.0.0.1:${proxy.port}` } }
}

/**
 * The conformance suite asks for the sink first and for the partial failure afterwards. This wrapper lets
 * `injectPartialFailure` point it at a second kafka sink (see there); every write is still a real kafka
 * sink's write to the real broker.
 */
class Repointable implements Sink {
  constructor(public inner: Sink) {}
  get name(): string {
    return this.inner.name
  }
  get type(): Sink['type'] {
    return this.inner.type
  }
  get limits(): Sink['limits'] {
    return this.inner.limits
  }
  write(batch: readonly SinkRecord[], signal: AbortSignal): Promise<WriteResult> {
    return this.inner.write(batch, signal)
  }
  healthcheck(signal: AbortSignal): Promise<void> {
    return this.inner.healthcheck(signal)
  }
  close(): Promise<void> {
    return this.inner.close()
  }
}

for (const client of CLIENTS) {
  sinkConformance(
    `kafka (${client})`,
    async () => {
      const base = unique('sg-conf')
      await createTopics([base])
      const topics = [base]
      const sinks: Sink[] = []
      const proxies: TcpProxy[] = []
      const track = <S extends Sink>(s: S): S => (sinks.push(s), s)
      return {
        create: async (o) =>
          new Repointable(
            track(
              createKafkaSink(
                'kafka-out',
                sinkConfig(client, base, o?.maxBatchRecords ? { maxBatchRecords: o.maxBatchRecords } : {}),
                { logger },
              ),
            ),
          ),
        readBack: async () => values(await readTopics(topics)),
        // Auto-creation is off on the test broker: the topic stays missing.
        createPermanentlyFailing: async () =>
          track(createKafkaSink('kafka-missing', sinkConfig(client, `${base}-missing`), { logger })),
        // The broker is fine; the proxy in front of it refuses every connection until healed.
        createTransientlyFailing: async () => {
          const proxy = await startTcpProxy(brokerHost, brokerPort)
          proxies.push(proxy)
          proxy.pause()
          const sink = track(
            createKafkaSink('kafka-proxied', sinkConfig(client, base), { logger }, viaProxy(proxy)),
          )
          return { sink, heal: async () => proxy.resume() }
        },
        // A real per-index failure from a single broker: the topic accepts record batches of at most 680 bytes
        // (max.message.bytes). Uncompressed, the conformance records take ~124 bytes each in a batch with a
        // 61-byte header: 4 records (557 bytes) fit, 6 (805) do not. The sink cuts the 10 records into sends of
        // 6 and 4 (produceChunkBytes 950, ~153 estimated bytes each); the broker refuses the first with
        // MESSAGE_TOO_LARGE and stores the second. The sink reports the 6 as retriable (`batch-too-large`),
        // reads the topic's max.message.bytes and sends the retried 6 in batches that fit.
        injectPartialFailure: async (sink) => {
          const target = sink as Repointable
          const small = `${base}-small`
          await createTopics([small], { 'max.message.bytes': '680' }, 1)
          topics.push(small)
          await target.inner.close()
          target.inner = track(
            createKafkaSink(
              'kafka-out',
              sinkConfig(client, small, { compression: 'none' }),
              { logger },
              { produceChunkBytes: 950 },
            ),
          )
        },
        cleanup: async () => {
          await Promise.all(sinks.map((s) => s.close()))
          await Promise.all(proxies.map((p) => p.close()))
        },
      }
    },
    { transient: true, partialFailure: true },
  )

  describe(`kafka sink against a real broker (${client})`, () => {
    it('reports failures by index for the failing topics only, and delivers the rest', async () => {
      const ok = unique('sg-multi-ok')
      const missing = unique('sg-multi-missing')
      const tiny = unique('sg-multi-tiny') // no record fits
      const snug = unique('sg-multi-snug') // one record fits, three in one batch do not
      await createTopics([ok])
      await createTopics([tiny], { 'max.message.bytes': '200' })
      await createTopics([snug], { 'max.message.bytes': '300' })
      const sink = createKafkaSink('kafka-multi', sinkConfig(client, '{{t}}', { compression: 'none' }), {
        logger,
      })
      const now = Date.now() - 60_000
      const topicOf = [ok, missing, tiny, ok, snug, missing, ok, snug, 'bad topic!', snug]
      const batch: SinkRecord[] = topicOf.map((t, i) => ({
        stream: 'multi',
        id: `m-${i}`,
        receivedAtMs: now + i,
        payload: Buffer.from(`{"t":"${t}","i":${i}${t === tiny ? `,"pad":"${'x'.repeat(300)}"` : ''}}`),
      }))
      try {
        const result = await sink.write(batch, AbortSignal.timeout(60_000))
        const reasons = Object.fromEntries(
          result.failed.map((f) => [f.index, `${f.error.reason}/${f.error.retriable ? 'retry' : 'final'}`]),
        )
        expect(reasons).toEqual({
          1: 'unknown-topic/final',
          5: 'unknown-topic/final',
          2: 'record-too-large/final',
          4: 'batch-too-large/retry',
          7: 'batch-too-large/retry',
          9: 'batch-too-large/retry',
          8: 'invalid-topic/final',
        })
        expect(result.failed.find((f) => f.index === 1)!.error.message).toContain(missing)

        // The retry of the snug topic's records fits now (the sink read the topic's max.message.bytes).
        const retry = [4, 7, 9].map((i) => batch[i]!)
        expect((await sink.write(retry, AbortSignal.timeout(60_000))).failed).toEqual([])
        expect(sortedText(values(await readTopics([snug])))).toEqual(sortedText(retry.map((r) => r.payload)))

        const got = await readTopics([ok])
        expect(sortedText(values(got))).toEqual(sortedText([0, 3, 6].map((i) => batch[i]!.payload)))
        for (const r of got) {
          const i = Number(header(r.message, 'record-id')!.slice(2))
          expect(r.message.timestamp).toBe(String(now + i))
          expect(header(r.message, 'stream')).toBe('multi')
          expect(header(r.message, 'content-type')).toBe('application/json')
          expect(r.message.key).toBeNull()
        }
        expect(await readTopics([tiny])).toEqual([])
      } finally {
        await sink.close()
      }
    })

    it('recovers after the broker was unreachable: the write fails transiently, the next one is delivered', async () => {
      const topic = unique('sg-outage')
      await createTopics([topic])
      const proxy = await startTcpProxy(brokerHost, brokerPort)
      const sink = createKafkaSink(
        'kafka-outage',
        sinkConfig(client, topic, { compression: 'none' }),
        { logger },
        viaProxy(proxy),
      )
      try {
        const before = records(5, 'before')
        expect((await sink.write(before, AbortSignal.timeout(30_000))).failed).toEqual([])
        await sink.healthcheck(AbortSignal.timeout(10_000))

        proxy.pause() // resets the open connections too
        const during = records(5, 'during')
        const failure = await sink.write(during, AbortSignal.timeout(30_000)).then(
          (r) => r.failed[0]?.error,
          (err: SinkError) => err,
        )
        expect(failure?.retriable).toBe(true)
        expect(failure?.reason).toBe('unreachable')
        await expect(sink.healthcheck(AbortSignal.timeout(10_000))).rejects.toMatchObject({ retriable: true })

        proxy.resume()
        const after = records(5, 'after')
        expect((await sink.write(after, AbortSignal.timeout(30_000))).failed).toEqual([])
        await sink.healthcheck(AbortSignal.timeout(10_000))
        const got = await readTopics([topic])
        expect(sortedText(values(got))).toEqual(sortedText([...before, ...after].map((r) => r.payload)))
        // After a failed send the sink produces under a new producer id (see src/sinks/kafka/kafkajs-client.ts).
        const idOf = (prefix: string): Set<string> =>
          new Set(got.filter((r) => r.message.value!.toString().includes(`"${prefix}-`)).map(producerId))
        const [first, second] = [idOf('before'), idOf('after')]
        expect(first.size).toBe(1)
        expect(second.size).toBe(1)
        expect([...first][0]).not.toBe('-1')
        expect([...second][0]).not.toBe([...first][0])
      } finally {
        await sink.close()
        await proxy.close()
      }
    })

    it('splits batches to fit a topic with a lower max.message.bytes and dead-letters only the record that cannot fit', async () => {
      const topic = unique('sg-small-max')
      await createTopics([topic], { 'max.message.bytes': '4096' })
      const sink = createKafkaSink('kafka-small', sinkConfig(client, topic, { compression: 'none' }), {
        logger,
      })
      const small = records(12, 'small', 900)
      const big: SinkRecord = {
        ...small[0]!,
        id: 'big',
        payload: Buffer.from(`{"id":"big","pad":"${'b'.repeat(6000)}"}`),
      }
      const dead: { ids: (string | undefined)[]; error: SinkError }[] = []
      try {
        await deliver(sink, [...small.slice(0, 6), big, ...small.slice(6)], {
          retry: { initialMs: 10, maxMs: 100, maxAttempts: 10 },
          signal: AbortSignal.timeout(60_000),
          metrics: new Metrics({ defaultMetrics: false }),
          logger,
          deadLetter: async (recs, error) => {
            dead.push({ ids: recs.map((r) => r.id), error })
          },
        })
      } finally {
        await sink.close()
      }
      expect(dead).toHaveLength(1)
      expect(dead[0]!.ids).toEqual(['big'])
      expect(dead[0]!.error.reason).toBe('record-too-large')
      expect(dead[0]!.error.retriable).toBe(false)
      expect(sortedText(values(await readTopics([topic])))).toEqual(sortedText(small.map((r) => r.payload)))
    })

    it('sends the unkeyed records of one write to one partition and keyed records by key', async () => {
      const topic = unique('sg-partitions')
      await createTopics([topic])
      const sink = createKafkaSink('kafka-parts', sinkConfig(client, topic, { key: '{{k}}' }), { logger })
      const unkeyed = records(40, 'unkeyed')
      const keyed: SinkRecord[] = Array.from({ length: 40 }, (_, i) => ({
        stream: 'parts',
        receivedAtMs: Date.now(),
        payload: Buffer.from(`{"k":"key-${i % 4}","i":${i}}`),
      }))
      try {
        expect((await sink.write(unkeyed, AbortSignal.timeout(30_000))).failed).toEqual([])
        expect((await sink.write(keyed, AbortSignal.timeout(30_000))).failed).toEqual([])
        expect((await sink.write(keyed, AbortSignal.timeout(30_000))).failed).toEqual([])
      } finally {
        await sink.close()
      }
      const got = await readTopics([topic])
      const unkeyedParts = new Set(got.filter((r) => r.message.key === null).map((r) => r.partition))
      expect(got.filter((r) => r.message.key === null)).toHaveLength(40)
      expect(unkeyedParts.size).toBe(1)
      const partitionOfKey = new Map<string, Set<number>>()
      for (const r of got.filter((x) => x.message.key !== null)) {
        const k = r.message.key!.toString()
        partitionOfKey.set(k, (partitionOfKey.get(k) ?? new Set()).add(r.partition))
      }
      expect([...partitionOfKey.keys()].sort()).toEqual(['key-0', 'key-1', 'key-2', 'key-3'])
      // Each key in the partition Java's and kafkajs' default partitioner would pick, with either client.
      for (const [k, parts] of partitionOfKey)
        expect([...parts]).toEqual([partitionOf(murmur2(Buffer.from(k)), 4)])
      // One idempotent producer, connected once, served all three writes.
      expect(new Set(got.map(producerId)).size).toBe(1)
    })

    it("with several producers in flight, keeps every key's records in order and stores each once", async () => {
      const topic = unique('sg-producers')
      await createTopics([topic])
      const sink = createKafkaSink(
        'kafka-producers',
        sinkConfig(client, topic, { key: '{{k}}', producers: 4, compression: 'none' }),
        { logger },
        // Small sends, so that every write keeps several producers busy at once.
        { produceChunkBytes: 2_000 },
      )
      const keys = 24
      let n = 0
      const write = (count: number): SinkRecord[] =>
        Array.from({ length: count }, () => {
          const i = n++
          return {
            stream: 'order',
            receivedAtMs: Date.now(),
            payload: Buffer.from(`{"k":"key-${i % keys}","i":${i},"pad":"${'p'.repeat(i % 50)}"}`),
          }
        })
      const writes = [write(300), write(300), write(300)]
      try {
        // Writes overlap too, as a lane with several batches in flight would make them.
        const results = await Promise.all(writes.map((w) => sink.write(w, AbortSignal.timeout(60_000))))
        for (const r of results) expect(r.failed).toEqual([])
      } finally {
        await sink.close()
      }
      const got = await readTopics([topic])
      expect(sortedText(values(got))).toEqual(sortedText(writes.flat().map((r) => r.payload)))
      const byKey = new Map<string, number[]>()
      const offsets = (r: Read): number => Number(r.message.offset)
      for (const r of [...got].sort((a, b) => offsets(a) - offsets(b))) {
        const { k, i } = JSON.parse(r.message.value!.toString()) as { k: string; i: number }
        byKey.set(k, [...(byKey.get(k) ?? []), i])
      }
      expect(byKey.size).toBe(keys)
      for (const sequence of byKey.values()) expect(sequence).toEqual([...sequence].sort((a, b) => a - b))
      // The records went out through several producers (each its own producer id).
      expect(new Set(got.map(producerId)).size).toBeGreaterThan(1)
    })

    it('close() waits for a write that is still in flight', async () => {
      const topic = unique('sg-close')
      await createTopics([topic])
      const sink = createKafkaSink('kafka-close', sinkConfig(client, topic), { logger })
      const batch = records(200, 'close', 200)
      let written = false
      const writing = sink.write(batch, AbortSignal.timeout(30_000)).then((r) => {
        written = true
        return r
      })
      await sink.close()
      expect(written).toBe(true)
      expect((await writing).failed).toEqual([])
      await expect(sink.write(records(1), AbortSignal.timeout(1_000))).rejects.toMatchObject({
        reason: 'closed',
        retriable: true,
      })
      expect(await readTopics([topic])).toHaveLength(200)
    })
  })

  describe(`kafka sink end to end through /ingest (${client})`, () => {
    const text = (name: string): string => fixture(`emnify/${name}`).toString('utf8').trim()

    it('delivers emnify events byte for byte with key, headers and per-stream topics; dead-letters too-large records and missing topics', async () => {
      const prefix = unique('sg-e2e')
      const stream = unique('emnify')
      const orphan = unique('orphan') // its topic is never created
      await createTopics([`${prefix}-${stream}`])
      const gw = await startGateway({
        sinks: {
          kafka: {
            type: 'kafka',
            client,
            brokers,
            topic: `${prefix}-{{stream}}`,
            key: '{{sim.iccid}}',
            headers: { 'x-event-type': '{{event_type.description}}', 'x-relay': 'streamgate-test' },
            retry: { initialMs: 50, maxMs: 500, maxAttempts: 0 },
          },
          dl: { type: 'file', dir: '{dir}/dead-letter' },
        },
        streams: {
          // dedupe off: the neighbour below is a sample the first bulk already carried.
          [stream]: {
            source: 'emnify',
            recordType: 'event',
            sinks: ['kafka'],
            deadLetter: 'dl',
            dedupe: false,
          },
          [orphan]: { source: 'emnify', recordType: 'event', sinks: ['kafka'], deadLetter: 'dl' },
        },
      })
      const deadDir = `${gw.dir}/dead-letter`
      try {
        const events = [
          text('event-update-location.json'),
          text('event-bigint-id.json'),
          text('event-user-auth-failed.json'),
        ]
        // Pretty-printed on purpose: the records are the exact element texts, whitespace around them is not.
        const body = `[\n  ${events.join(',\n  ')}\n]\n`
        const ok = await send(`${gw.url}/ingest/${stream}`, {
          headers: { 'content-type': 'application/json' },
          body,
        })
        expect(ok.status).toBe(200)
        expect(ok.json()).toMatchObject({ accepted: 3, rejected: 0 })
        const topic = `${prefix}-${stream}`
        const got = await waitFor(
          async () => {
            const r = await readTopics([topic])
            return r.length >= 3 ? r : undefined
          },
          30_000,
          'three events in Kafka',
        )
        expect(sortedText(values(got))).toEqual(sortedText(events.map((e) => Buffer.from(e))))
        const byId = new Map(got.map((r) => [header(r.message, 'record-id'), r.message]))
        expect([...byId.keys()].sort()).toEqual(['13096831909', '176777623', '9007199254740993'])
        const big = byId.get('9007199254740993')!
        expect(big.value!.toString()).toContain('"id":9007199254740993')
        const located = byId.get('176777623')!
        expect(located.key!.toString()).toBe('3590376990354243198')
        expect(big.key).toBeNull() // a user event has no sim: no key
        for (const m of byId.values()) {
          expect(header(m, 'stream')).toBe(stream)
          expect(header(m, 'content-type')).toBe('application/json')
          expect(header(m, 'x-relay')).toBe('streamgate-test')
        }
        expect(header(located, 'x-event-type')).toBe('Update location')
        expect(header(big, 'x-event-type')).toBe('User authentication failed')

        // A record over the sink's limit goes to the dead-letter sink; its neighbour is delivered.
        const padded = `{"id":555000111,"alert":false,"timestamp":"2026-11-23T10:00:00.000Z","event_type":{"id":1,"description":"Update location"},"pad":"${'p'.repeat(KAFKA_MAX_RECORD_BYTES)}"}`
        const neighbour = text('event-delete-pdp.json')
        const mixed = await send(`${gw.url}/ingest/${stream}`, {
          headers: { 'content-type': 'application/json' },
          body: `[${padded},${neighbour}]`,
        })
        expect(mixed.status).toBe(200)
        const tooLarge = await waitFor(
          () =>
            readNdjsonLines(deadDir)
              .map((l) => parseDeadLetter(l)!)
              .find((d) => d.reason === 'record-too-large'),
          30_000,
          'the too-large record in the dead-letter sink',
        )
        expect(tooLarge.raw).toBe(padded)
        expect(tooLarge.stream).toBe(stream)
        expect(tooLarge.sink).toBe('kafka')
        await waitFor(async () => (await readTopics([topic])).length >= 4, 30_000, 'the neighbour in Kafka')
        expect(sortedText(values(await readTopics([topic])))).toEqual(
          sortedText([...events, neighbour].map((e) => Buffer.from(e))),
        )

        // The orphan stream's topic does not exist (auto-create is off): still 200, records dead-lettered.
        const lost = await send(`${gw.url}/ingest/${orphan}`, {
          headers: { 'content-type': 'application/json' },
          body: `[${events[0]},${events[1]}]`,
        })
        expect(lost.status).toBe(200)
        expect(lost.json()).toMatchObject({ accepted: 2 })
        const unknown = await waitFor(
          () => {
            const letters = readNdjsonLines(deadDir)
              .map((l) => parseDeadLetter(l)!)
              .filter((d) => d.reason === 'unknown-topic')
            return letters.length >= 2 ? letters : undefined
          },
          30_000,
          'the orphan records in the dead-letter sink',
        )
        expect(unknown.map((d) => d.raw).sort()).toEqual([events[0], events[1]].sort())
        for (const d of unknown) {
          expect(d.stream).toBe(orphan)
          expect(d.sink).toBe('kafka')
          expect(d.errors?.[0]?.message).toContain(`${prefix}-${orphan}`)
        }
      } finally {
        await gw.close()
      }
    })
  })
}
