// The Kafka lane alone: how fast a gateway drains a full spool into the real broker, and how many records it
// delivers per CPU-second of the gateway process (all its threads: the lane, the client, the client's
// worker thread and zlib's thread pool; /proc/<pid>/stat). Issue 14's target: ≥ 100k records/s and ≥ 100k
// records per gateway CPU-second, acks=all, idempotent producer.
//
//   npx tsx bench/kafka-lane.ts [--records 200000] [--runs 3] [--variants LIST] [--build NAME=DIR] [--profile DIR]
//
// Per run and variant, in a fresh temp dir and a fresh 4-partition topic:
//   1. starts `node dist/cli.js serve` (a copy of dist/ taken at the start) with one Azion NDJSON stream
//      (template 86, the azion-ndjson-2000 bodies of bench/scenarios.ts, ~440 B records) that is *paused*
//      (status 2: it accepts into the spool and delivers nothing) and one kafka sink;
//   2. POSTs --records records (bodies of 2,000) and waits until the gateway is idle;
//   3. resumes the stream (PATCH /api/v1/streams/…) and polls the topic's offsets until it holds them all;
//   4. reports records ÷ drain time and records ÷ the gateway's CPU seconds over the drain, checks that the
//      gateway's lag is 0 and the topic holds no duplicates, then stops the gateway and deletes the topic.
// Variants run interleaved (run 1 of each, then run 2 of each, …) so a busy moment of a shared machine hits
// them alike; medians are printed. The broker runs on the same machine and competes for its cores.
//
// A variant is `[build:]client/compression[/producers]`, e.g. `kafkajs/gzip`, `platformatic/zstd/4`. The
// build is this tree's dist/ unless prefixed: --build NAME=DIR (repeatable; DIR/dist/cli.js, e.g. a clean
// export of an older commit, built) makes `NAME:kafkajs/gzip` run that build. `client` and `producers` are
// written to the config only when they are not the defaults (kafkajs, 1), so builds that predate those
// keys run the default variants.

import { spawn } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { cpSync, existsSync, symlinkSync, writeFileSync } from 'node:fs'
import { cpus, loadavg } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { Kafka, logLevel } from 'kafkajs'
import { freePort } from '../scripts/backends/daemon.js'
import { hasExited, makeTempDir, removeTempDir, stopChild, track } from './processes.js'
import { RssSampler, cpuSeconds, processTree, waitForIdle } from './proc-stats.js'
import { findScenario } from './scenarios.js'
import { lazyBackends } from './sinks.js'
import { NODE_FLAGS } from '../src/runtime-flags.js'

const REPO = resolve(new URL('..', import.meta.url).pathname)
const STREAM = 'azion-ndjson'
const ADMIN_TOKEN = 'bench-kafka-lane-admin-token-3f9c2a71'
const PARTITIONS = 4

interface Variant {
  label: string
  /** `this` or a --build NAME. */
  build: string
  client: 'kafkajs' | 'platformatic'
  compression: 'none' | 'gzip' | 'zstd' | 'lz4' | 'snappy'
  producers: number
}

interface RunResult {
  drainMs: number
  cpuS: number
  stored: number
  /** Highest RSS of the gateway during the drain. */
  peakRss: number
}

function parseVariant(spec: string): Variant {
  const colon = spec.indexOf(':')
  const [client, compression, producers] = spec.slice(colon + 1).split('/')
  if (client !== 'kafkajs' && client !== 'platformatic') throw new Error(`variant ${spec}: client?`)
  if (!['none', 'gzip', 'zstd', 'lz4', 'snappy'].includes(compression ?? ''))
    throw new Error(`variant ${spec}: compression?`)
  return {
    label: spec,
    build: colon < 0 ? 'this' : spec.slice(0, colon),
    client,
    compression: compression as Variant['compression'],
    producers: producers === undefined ? 1 : Number(producers),
  }
}

/** dist/ copied, so that a rebuild during the run does not change what is measured. */
function snapshot(from: string, dir: string): string {
  cpSync(join(from, 'dist'), join(dir, 'dist'), { recursive: true })
  cpSync(join(from, 'schemas'), join(dir, 'schemas'), { recursive: true })
  cpSync(join(from, 'package.json'), join(dir, 'package.json'))
  symlinkSync(join(REPO, 'node_modules'), join(dir, 'node_modules'), 'dir')
  return join(dir, 'dist', 'cli.js')
}

function sumMetric(text: string, name: string): number | undefined {
  let sum: number | undefined
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || (line[name.length] !== '{' && line[name.length] !== ' ')) continue
    const value = Number(line.slice(line.lastIndexOf(' ') + 1))
    if (Number.isFinite(value)) sum = (sum ?? 0) + value
  }
  return sum
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

async function oneRun(
  variant: Variant,
  cli: string,
  brokers: string[],
  body: Buffer,
  records: number,
  perRequest: number,
  profileDir: string | undefined,
): Promise<RunResult> {
  const dir = makeTempDir('streamgate-kafka-lane-')
  const topic = `bench-lane-${randomUUID().slice(0, 8)}`
  const admin = new Kafka({ clientId: 'bench-lane', brokers, logLevel: logLevel.NOTHING }).admin()
  await admin.connect()
  let gateway: ReturnType<typeof spawn> | undefined
  try {
    await admin.createTopics({
      topics: [{ topic, numPartitions: PARTITIONS, replicationFactor: 1 }],
      waitForLeaders: true,
    })
    const scenario = findScenario('azion-ndjson-2000')!
    const sink: Record<string, unknown> = {
      type: 'kafka',
      brokers,
      topic,
      compression: variant.compression,
    }
    if (variant.client !== 'kafkajs') sink.client = variant.client
    if (variant.producers !== 1) sink.producers = variant.producers
    const configFile = join(dir, 'streamgate.json')
    writeFileSync(
      configFile,
      JSON.stringify({
        server: { host: '127.0.0.1', port: 0 },
        admin: { token: ADMIN_TOKEN },
        log: { level: 'warn' },
        dataDir: dir,
        spool: { dir: join(dir, 'spool') },
        sinks: { out: sink },
        streams: { [STREAM]: { ...scenario.stream, sinks: ['out'], status: 2 } },
      }),
    )
    const port = await freePort()
    let output = ''
    gateway = track(
      spawn(
        process.execPath,
        [
          ...NODE_FLAGS,
          ...(profileDir
            ? ['--cpu-prof', '--cpu-prof-dir', join(profileDir, variant.label.replace(/[/:]/g, '-'))]
            : []),
          cli,
          'serve',
          '--config',
          configFile,
          '--port',
          String(port),
        ],
        {
          cwd: dir,
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      ),
    )
    const keep = (c: Buffer): void => void (output = (output + c.toString()).slice(-4096))
    gateway.stdout!.on('data', keep)
    gateway.stderr!.on('data', keep)
    const base = `http://127.0.0.1:${port}`
    for (let deadline = Date.now() + 30_000; ;) {
      if (hasExited(gateway)) throw new Error(`gateway exited:\n${output}`)
      const ok = await fetch(`${base}/healthz`).then(
        (r) => r.ok,
        () => false,
      )
      if (ok) break
      if (Date.now() > deadline) throw new Error(`gateway not healthy:\n${output}`)
      await sleep(100)
    }
    // Fill the spool; two requests at a time.
    const requests = Math.ceil(records / perRequest)
    let next = 0
    const post = async (): Promise<void> => {
      while (next < requests) {
        next++
        const res = await fetch(`${base}/ingest/${STREAM}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...scenario.headers },
          body,
        })
        const text = await res.text()
        if (!res.ok) throw new Error(`ingest answered ${res.status}: ${text}`)
      }
    }
    await Promise.all([post(), post()])
    const pids = processTree(gateway.pid!)
    await waitForIdle(pids, { windowMs: 500, maxMs: 30_000 })
    // The platformatic client's thread loads in the background after start; it has by now.

    const lag = async (): Promise<number> => {
      const text = await (await fetch(`${base}/metrics`)).text()
      return sumMetric(text, 'streamgate_sink_lag_records') ?? NaN
    }
    const before = await lag()
    if (before !== requests * perRequest)
      throw new Error(`lag ${before} before the drain, expected ${requests * perRequest}`)
    const cpu0 = cpuSeconds(pids)
    const rss = new RssSampler(pids)
    const t0 = performance.now()
    const resumed = await fetch(`${base}/api/v1/streams/${STREAM}`, {
      method: 'PATCH',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/merge-patch+json' },
      body: JSON.stringify({ status: { id: 1 } }),
    })
    if (!resumed.ok) throw new Error(`resume answered ${resumed.status}: ${await resumed.text()}`)
    // The end of the drain is read from the topic's offsets (the broker's CPU, not the gateway's): polling
    // the gateway's /metrics this often would cost it a quarter of its CPU.
    const stored = async (): Promise<number> =>
      (await admin.fetchTopicOffsets(topic)).reduce((sum, p) => sum + Number(p.high) - Number(p.low), 0)
    for (let deadline = Date.now() + 600_000; ;) {
      if ((await stored()) >= records) break
      if (Date.now() > deadline) throw new Error('the lane did not drain within 10 minutes')
      await sleep(20)
    }
    const drainMs = performance.now() - t0
    const cpuS = cpuSeconds(pids) - cpu0
    const peakRss = rss.stop()
    // The gateway's own view: every record acknowledged (lag 0); and no more in the topic than were sent.
    for (let deadline = Date.now() + 30_000; (await lag()) !== 0; await sleep(100))
      if (Date.now() > deadline) throw new Error('the topic is complete but the lane still has a lag')
    return { drainMs, cpuS, stored: await stored(), peakRss }
  } finally {
    if (gateway) await stopChild(gateway)
    await admin.deleteTopics({ topics: [topic] }).catch(() => undefined)
    await admin.disconnect()
    removeTempDir(dir)
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      records: { type: 'string', default: '200000' },
      runs: { type: 'string', default: '3' },
      variants: {
        type: 'string',
        default: 'kafkajs/gzip,platformatic/gzip,kafkajs/zstd,platformatic/zstd,platformatic/zstd/4',
      },
      build: { type: 'string', multiple: true, default: [] },
      profile: { type: 'string' },
    },
  })
  const variants = values.variants.split(',').map(parseVariant)
  const builds = new Map(
    values.build.map((b) => [b.slice(0, b.indexOf('=')), resolve(b.slice(b.indexOf('=') + 1))] as const),
  )
  for (const v of variants)
    if (v.build !== 'this' && !builds.has(v.build)) throw new Error(`${v.label}: no --build ${v.build}=DIR`)
  const backends = lazyBackends((line) => console.log(line))
  const env = await backends.env()
  const brokers = env.KAFKA_BROKERS.split(',')
  const scenario = findScenario('azion-ndjson-2000')!
  const body = scenario.generate()
  const perRequest = scenario.recordsPerRequest
  const records = Math.ceil(Number(values.records) / perRequest) * perRequest
  const runs = Number(values.runs)

  const snapshots = makeTempDir('streamgate-kafka-lane-builds-')
  if (!existsSync(join(REPO, 'dist/cli.js'))) throw new Error('build first: npm run build')
  const cli: Record<string, string> = { this: snapshot(REPO, join(snapshots, 'this')) }
  for (const [name, from] of builds) cli[name] = snapshot(from, join(snapshots, name))

  console.log(
    `kafka lane: drain ${records} records (${(body.length / perRequest).toFixed(0)} B each, bodies of ${perRequest}) ` +
      `from a paused stream's spool into a ${PARTITIONS}-partition topic, acks -1, idempotent; brokers ${brokers.join(',')}; ` +
      `node ${process.version}, ${cpus().length} cores; ${runs} runs per variant, interleaved`,
  )
  const results = new Map<string, RunResult[]>()
  try {
    for (let run = 1; run <= runs; run++) {
      for (const v of variants) {
        const load = loadavg()[0]!.toFixed(1)
        const r = await oneRun(v, cli[v.build]!, brokers, body, records, perRequest, values.profile)
        if (r.stored !== records)
          throw new Error(`${v.label}: the topic holds ${r.stored} of ${records} records`)
        results.set(v.label, [...(results.get(v.label) ?? []), r])
        console.log(
          `  run ${run} ${v.label.padEnd(24)} ${Math.round(records / (r.drainMs / 1000))
            .toString()
            .padStart(7)} records/s  ${Math.round(records / r.cpuS)
            .toString()
            .padStart(
              7,
            )} records/CPU-s  (drain ${(r.drainMs / 1000).toFixed(1)} s, CPU ${r.cpuS.toFixed(2)} s, peak RSS ${Math.round(r.peakRss / 2 ** 20)} MB, load ${load})`,
        )
      }
    }
  } finally {
    removeTempDir(snapshots)
    await backends.close()
  }
  console.log('\nvariant                   records/s   records/CPU-s   peak RSS   (medians)')
  for (const v of variants) {
    const rs = results.get(v.label)!
    const rate = median(rs.map((r) => records / (r.drainMs / 1000)))
    const perCpu = median(rs.map((r) => records / r.cpuS))
    const rss = median(rs.map((r) => r.peakRss))
    console.log(
      `${v.label.padEnd(24)} ${String(Math.round(rate)).padStart(10)}   ${String(Math.round(perCpu)).padStart(13)}   ${String(Math.round(rss / 2 ** 20)).padStart(5)} MB`,
    )
  }
}

await main()
