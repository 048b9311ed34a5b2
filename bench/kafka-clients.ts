// Producer throughput and CPU cost of kafkajs 2.2.4 against @platformatic/kafka 1.35, used bare and through
// streamgate's kafka sink (`sink-kafkajs`, `sink-platformatic`: the sink's two clients), on the same workload
// and broker (the test broker of scripts/backends, KAFKA_BROKERS or 127.0.0.1:19092; start it with
// `npm run backends:up`). bench/kafka-lane.ts measures the whole delivery lane of a running gateway instead.
//
//   npx tsx bench/kafka-clients.ts [--records 200000] [--batch 1000] [--runs 3]
//
// Workload: Azion-like HTTP request records of ~500 bytes (seeded, the same bytes every run), sent the way
// the kafka sink sends them: one batch of 1,000 at a time, awaited before the next, acks=-1, idempotent
// producer, a key and the sink's three headers per message, to a fresh 4-partition topic; gzip and none.
// Every (client, compression, run) is its own child process, so CPU time (user + system, from
// process.cpuUsage, including zlib's thread pool and the platformatic client's worker thread) belongs to
// that client alone; connecting and one warm-up
// batch are excluded. The broker runs on the same machine and competes for its cores: compare the clients
// with each other, not with figures from elsewhere. After each run the topic's offsets are checked: every
// record must be stored. Prints the median of the runs.

import { spawn } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { Kafka, CompressionTypes, Partitioners, logLevel } from 'kafkajs'
import { Producer as PlatformaticProducer, type MessageToProduce } from '@platformatic/kafka'
import { prng } from './scenarios.js'
import type { SinkRecord } from '../src/records/record.js'
import { createKafkaSink } from '../src/sinks/kafka/sink.js'
import { createLogger } from '../src/telemetry/logger.js'

type Client = 'kafkajs' | 'platformatic' | 'sink-kafkajs' | 'sink-platformatic'
type Compression = 'gzip' | 'none'

interface RunResult {
  client: Client
  compression: Compression
  records: number
  wallMs: number
  cpuMs: number
  stored: number
}

const BROKERS = (process.env.KAFKA_BROKERS ?? '127.0.0.1:19092').split(',')
const PARTITIONS = 4

function argValue(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? Number(process.argv[i + 1]) : fallback
}

// ---- workload -------------------------------------------------------------------------------------------

interface Msg {
  key: Buffer
  value: Buffer
  headers: Record<string, Buffer>
}

/** Azion "HTTP requests" records (template 2's variables, JSON): ~500 bytes each. */
function workload(n: number): Msg[] {
  const r = prng(0x5eed)
  const int = (lo: number, hi: number): number => lo + Math.floor(r() * (hi - lo + 1))
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!
  const hex = (len: number): string =>
    Array.from({ length: len }, () => '0123456789abcdef'[int(0, 15)]).join('')
  const hosts = ['www.example.com', 'api.example.com', 'static.example.net', 'shop.example.org']
  const paths = ['/', '/index.html', '/api/v1/items', '/static/app.js', '/img/logo.png', '/checkout?step=2']
  const agents = [
    'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36',
    'Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148',
    'curl/8.5.0',
  ]
  const contentType = Buffer.from('application/json')
  const stream = Buffer.from('azion-http')
  const out: Msg[] = []
  const start = Date.UTC(2026, 10, 23, 10, 0, 0)
  for (let i = 0; i < n; i++) {
    const id = hex(32)
    const host = pick(hosts)
    const record = {
      time: new Date(start + i * 7).toISOString(),
      request_id: id,
      host,
      request_method: pick(['GET', 'GET', 'GET', 'POST', 'HEAD']),
      request_uri: pick(paths),
      status: String(pick([200, 200, 200, 304, 404, 500])),
      bytes_sent: String(int(200, 90_000)),
      request_time: (r() * 2).toFixed(3),
      upstream_response_time: (r() * 1.5).toFixed(3),
      remote_addr: `${int(1, 223)}.${int(0, 255)}.${int(0, 255)}.${int(1, 254)}`,
      http_user_agent: pick(agents),
      http_referer: r() < 0.5 ? '-' : `https://${pick(hosts)}${pick(paths)}`,
      geoloc_country_name: pick(['Brazil', 'Germany', 'United States', 'Japan']),
      ssl_protocol: pick(['TLSv1.3', 'TLSv1.2']),
      upstream_cache_status: pick(['HIT', 'MISS', 'EXPIRED', '-']),
    }
    out.push({
      key: Buffer.from(host),
      value: Buffer.from(JSON.stringify(record)),
      headers: { stream, 'content-type': contentType, 'record-id': Buffer.from(id) },
    })
  }
  return out
}

// ---- one run (child process) -----------------------------------------------------------------------------

async function runChild(
  client: Client,
  compression: Compression,
  records: number,
  batch: number,
): Promise<void> {
  const messages = workload(records + batch)
  const warmup = messages.slice(records)
  const batches: Msg[][] = []
  for (let i = 0; i < records; i += batch) batches.push(messages.slice(i, i + batch))
  const topic = `bench-kafka-${client}-${compression}-${randomUUID().slice(0, 8)}`
  const kafka = new Kafka({ clientId: 'bench-admin', brokers: BROKERS, logLevel: logLevel.NOTHING })
  const admin = kafka.admin()
  await admin.connect()
  await admin.createTopics({
    waitForLeaders: true,
    topics: [{ topic, numPartitions: PARTITIONS, replicationFactor: 1 }],
  })

  // Messages are built in each client's own shape before the clock starts.
  let sendAll: () => Promise<void>
  let warm: () => Promise<unknown>
  let close: () => Promise<void>
  if (client === 'kafkajs') {
    const producer = new Kafka({
      clientId: 'bench-kafkajs',
      brokers: BROKERS,
      logLevel: logLevel.NOTHING,
    }).producer({
      idempotent: true,
      maxInFlightRequests: 1,
      createPartitioner: Partitioners.DefaultPartitioner,
    })
    await producer.connect()
    const type = compression === 'gzip' ? CompressionTypes.GZIP : CompressionTypes.None
    const send = (messages: Msg[]): Promise<unknown> =>
      producer.send({ topic, acks: -1, compression: type, messages })
    warm = () => send(warmup)
    sendAll = async () => {
      for (const b of batches) await send(b)
    }
    close = () => producer.disconnect()
  } else if (client === 'sink-kafkajs' || client === 'sink-platformatic') {
    // streamgate's kafka sink with either client: the same records as SinkRecords; the sink renders the
    // key from the record and adds the three headers itself.
    const sink = createKafkaSink(
      'bench',
      {
        type: 'kafka',
        brokers: BROKERS,
        topic,
        key: '{{host}}',
        acks: -1,
        idempotent: true,
        compression,
        client: client === 'sink-kafkajs' ? 'kafkajs' : 'platformatic',
        producers: 1,
        clientId: 'bench-sink',
        timeoutMs: 30_000,
        retry: { initialMs: 100, maxMs: 1_000, maxAttempts: 0 },
      },
      { logger: createLogger('warn') },
    )
    const now = Date.now()
    const asRecords = (msgs: Msg[]): SinkRecord[] =>
      msgs.map((m) => ({
        stream: 'azion-http',
        id: m.headers['record-id']!.toString(),
        payload: m.value,
        receivedAtMs: now,
      }))
    const write = async (records: SinkRecord[]): Promise<void> => {
      const result = await sink.write(records, AbortSignal.timeout(60_000))
      if (result.failed.length > 0) throw result.failed[0]!.error
    }
    const shaped = batches.map(asRecords)
    warm = () => write(asRecords(warmup))
    sendAll = async () => {
      for (const b of shaped) await write(b)
    }
    close = () => sink.close()
  } else {
    const producer = new PlatformaticProducer({
      clientId: 'bench-platformatic',
      bootstrapBrokers: BROKERS,
      idempotent: true,
      acks: -1,
      ...(compression === 'gzip' ? { compression: 'gzip' as const } : {}),
    })
    // With the default (no-op) serialisers header names must be Buffers too, hence a Map.
    const shape = (msgs: Msg[]): MessageToProduce[] =>
      msgs.map((m) => ({
        topic,
        key: m.key,
        value: m.value,
        headers: new Map(Object.entries(m.headers).map(([k, v]) => [Buffer.from(k), v])),
      }))
    const shaped = batches.map(shape)
    warm = () => producer.send({ messages: shape(warmup) })
    sendAll = async () => {
      for (const b of shaped) await producer.send({ messages: b })
    }
    close = () => producer.close()
  }

  await warm()
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  await sendAll()
  const wallMs = performance.now() - t0
  const cpu = process.cpuUsage(cpu0)
  await close()

  const offsets = await admin.fetchTopicOffsets(topic)
  const stored = offsets.reduce((sum, p) => sum + Number(p.high) - Number(p.low), 0) - warmup.length
  await admin.deleteTopics({ topics: [topic] })
  await admin.disconnect()
  const result: RunResult = {
    client,
    compression,
    records,
    wallMs,
    cpuMs: (cpu.user + cpu.system) / 1000,
    stored,
  }
  process.stdout.write(`${JSON.stringify(result)}\n`)
}

function runInChild(
  client: Client,
  compression: Compression,
  records: number,
  batch: number,
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [
        ...process.execArgv,
        import.meta.filename,
        '--child',
        client,
        compression,
        String(records),
        String(batch),
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    )
    let out = ''
    child.stdout.on('data', (c: Buffer) => (out += c.toString()))
    child.on('error', reject)
    child.on('exit', (code) => {
      const line = out.trim().split('\n').at(-1)
      if (code !== 0 || !line) reject(new Error(`${client}/${compression} run exited with ${code}`))
      else resolve(JSON.parse(line) as RunResult)
    })
  })
}

// ---- driver ---------------------------------------------------------------------------------------------

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

async function main(): Promise<void> {
  if (process.argv.includes('--child')) {
    const i = process.argv.indexOf('--child')
    const [client, compression, records, batch] = process.argv.slice(i + 1)
    await runChild(client as Client, compression as Compression, Number(records), Number(batch))
    return
  }
  const records = argValue('records', 200_000)
  const batch = argValue('batch', 1_000)
  const runs = argValue('runs', 3)
  const combos: [Client, Compression][] = [
    ['kafkajs', 'gzip'],
    ['platformatic', 'gzip'],
    ['sink-kafkajs', 'gzip'],
    ['sink-platformatic', 'gzip'],
    ['kafkajs', 'none'],
    ['platformatic', 'none'],
    ['sink-kafkajs', 'none'],
    ['sink-platformatic', 'none'],
  ]
  const sample = workload(1000)
  const avg = sample.reduce((s, m) => s + m.value.length, 0) / sample.length
  console.log(
    `kafka producer benchmark: ${records} records (~${Math.round(avg)} B), batches of ${batch}, acks=-1, idempotent, ` +
      `${PARTITIONS} partitions, brokers ${BROKERS.join(',')}, node ${process.version}, ${runs} runs (median)`,
  )
  const results = new Map<string, RunResult[]>()
  // Interleaved, so that a slow moment of the shared machine does not hit one client only.
  for (let run = 1; run <= runs; run++) {
    for (const [client, compression] of combos) {
      const r = await runInChild(client, compression, records, batch)
      if (r.stored !== records)
        throw new Error(`${client}/${compression}: ${r.stored} of ${records} records stored`)
      const key = `${client}/${compression}`
      results.set(key, [...(results.get(key) ?? []), r])
      console.log(
        `  run ${run} ${key.padEnd(20)} ${Math.round((records / r.wallMs) * 1000)} records/s, cpu ${Math.round(r.cpuMs)} ms`,
      )
    }
  }
  console.log('\nclient/compression     records/s   CPU s   records per CPU-s   (median of runs)')
  for (const [client, compression] of combos) {
    const rs = results.get(`${client}/${compression}`)!
    const rate = median(rs.map((r) => (records / r.wallMs) * 1000))
    const cpuS = median(rs.map((r) => r.cpuMs / 1000))
    const perCpu = median(rs.map((r) => records / (r.cpuMs / 1000)))
    console.log(
      `${`${client}/${compression}`.padEnd(22)} ${String(Math.round(rate)).padStart(9)}   ${cpuS.toFixed(2).padStart(5)}   ${String(Math.round(perCpu)).padStart(17)}`,
    )
  }
}

await main()
