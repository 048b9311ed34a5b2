// Delivery benchmarks: how fast, and in how much memory, a backlog in the spool reaches a real sink.
//
//   npx tsx bench/delivery.ts --sink s3                   # 4 streams × 160 MiB into MinIO, 64 MiB objects
//   npx tsx bench/delivery.ts --sink kinesis              # 1 stream × 24 MiB into kinesis-local, 4 shards
//   npx tsx bench/delivery.ts --sink kinesis --set maxParallelCalls=1 --dist /tmp/old/dist
//   npx tsx bench/delivery.ts --sink s3 --live 8                  # posted at 8 MB/s while delivering
//   npx tsx bench/delivery.ts --sink s3 --node-arg=--max-semi-space-size=8   # a node flag, gateway only
//
// 1. fill: `node <dist>/cli.js serve` with every stream paused (status 2) takes the backlog: the Azion
//    template-86 NDJSON body of the azion-ndjson-2000 scenario (2,000 records, ~0.9 MB), posted round-robin
//    over the streams until each holds --mib MiB; then it is stopped (SIGTERM).
// 2. drain: a fresh process on the same spool with the streams running delivers the backlog. Measured
//    from its spawn until every lane's `streamgate_sink_lag_records` is 0: records/s, MB/s, and peak RSS
//    (VmRSS of the process tree, sampled every 100 ms) — every stream's lane rolling objects at once.
// With --live <MB/s> there is no split: one gateway, streams running, takes the records at that rate while
// it delivers them (steady state: every stream's object filling and rolling over at about the same time),
// peak RSS over the whole run, and how long delivery trailed the last post.
// 3. checks what arrived: S3 objects (count, sizes, parts from the ETag) and uploads left in progress;
//    the sink's delivered count from /metrics.
//
// The backends are those of `npm run backends:up` (.backends/env); MinIO, kinesis-local and the gateway
// share this machine's cores. kinesis-local is an emulator (kinesis-mock): its records/s say how the
// sink's calls overlap, not what AWS would take. Each run uses a fresh bucket prefix / stream.

import { spawn, type ChildProcess } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import {
  CreateStreamCommand,
  DeleteStreamCommand,
  DescribeStreamSummaryCommand,
  KinesisClient,
} from '@aws-sdk/client-kinesis'
import {
  CreateBucketCommand,
  DeleteObjectsCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  S3Client,
} from '@aws-sdk/client-s3'
import { NodeHttpHandler } from '@smithy/node-http-handler'
import { backendsAnswer, readBackendsEnv, type BackendsEnv } from '../scripts/backends/index.js'
import { processTree, rssBytes } from './proc-stats.js'
import { makeTempDir, removeTempDir, stopChild, track } from './processes.js'
import { findScenario } from './scenarios.js'
import { NODE_FLAGS } from '../src/runtime-flags.js'

const REPO = resolve(import.meta.dirname, '..')

interface Options {
  sink: 's3' | 'kinesis' | 'file'
  dist: string
  streams: number
  mib: number
  shards: number
  /** spool.segmentBytes in MiB (default: the spool's 64). */
  segmentMib?: number
  /** MB/s: one gateway takes the records at this rate while it delivers them (no fill/drain split). */
  live?: number
  set: Record<string, unknown>
  /** Node flags for the gateway only (not this script): `--node-arg=--max-semi-space-size=8`. */
  nodeArgs: string[]
  json?: string
}

function options(): Options {
  const { values } = parseArgs({
    options: {
      sink: { type: 'string' },
      dist: { type: 'string' },
      streams: { type: 'string' },
      mib: { type: 'string' },
      shards: { type: 'string' },
      'segment-mib': { type: 'string' },
      live: { type: 'string' },
      set: { type: 'string', multiple: true },
      'node-arg': { type: 'string', multiple: true },
      json: { type: 'string' },
    },
  })
  const sink = (['s3', 'kinesis', 'file'] as const).find((s) => s === values.sink)
  if (!sink) throw new Error('--sink s3, kinesis or file')
  const set: Record<string, unknown> = {}
  for (const kv of values.set ?? []) {
    const eq = kv.indexOf('=')
    set[kv.slice(0, eq)] = JSON.parse(kv.slice(eq + 1)) as unknown
  }
  return {
    sink,
    dist: resolve(values.dist ?? join(REPO, 'dist')),
    streams: Number(values.streams ?? (sink === 'kinesis' ? 1 : 4)),
    mib: Number(values.mib ?? (sink === 'kinesis' ? 24 : 160)),
    shards: Number(values.shards ?? 4),
    ...(values['segment-mib'] !== undefined ? { segmentMib: Number(values['segment-mib']) } : {}),
    ...(values.live !== undefined ? { live: Number(values.live) } : {}),
    set,
    nodeArgs: values['node-arg'] ?? [],
    ...(values.json !== undefined ? { json: values.json } : {}),
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** The sink config of the run, creating its bucket or stream. */
async function sinkConfig(
  o: Options,
  env: BackendsEnv,
  run: string,
  dir: string,
): Promise<Record<string, unknown>> {
  // The file sink: what delivery costs with no network and no SDK (the spool's share of the figures).
  if (o.sink === 'file') return { type: 'file', dir: join(dir, 'out'), ...o.set }
  if (o.sink === 's3') {
    const credentials = { accessKeyId: env.S3_ACCESS_KEY_ID, secretAccessKey: env.S3_SECRET_ACCESS_KEY }
    const client = new S3Client({
      endpoint: env.S3_ENDPOINT,
      region: env.S3_REGION,
      forcePathStyle: true,
      credentials: { ...credentials },
    })
    try {
      await client.send(new CreateBucketCommand({ Bucket: 'streamgate-bench' })).catch((err: unknown) => {
        if (!/BucketAlready/.test((err as Error).name)) throw err
      })
    } finally {
      client.destroy()
    }
    // The defaults but for the key: 64 MiB objects, gzip, 5 minutes, 8 MiB parts.
    return {
      type: 's3',
      bucket: 'streamgate-bench',
      endpoint: env.S3_ENDPOINT,
      region: env.S3_REGION,
      forcePathStyle: true,
      credentials,
      key: `${run}/{{stream}}/{{uuid}}.ndjson.gz`,
      ...o.set,
    }
  }
  const StreamName = run
  const client = kinesisAdmin(env)
  try {
    await client.send(new CreateStreamCommand({ StreamName, ShardCount: o.shards }))
    for (let i = 0; i < 300; i++) {
      const s = await client.send(new DescribeStreamSummaryCommand({ StreamName }))
      if (s.StreamDescriptionSummary?.StreamStatus === 'ACTIVE') break
      await sleep(100)
    }
  } finally {
    client.destroy()
  }
  return {
    type: 'kinesis',
    streamName: StreamName,
    endpoint: env.KINESIS_ENDPOINT,
    region: env.AWS_REGION,
    credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY },
    ...o.set,
  }
}

function kinesisAdmin(env: BackendsEnv): KinesisClient {
  return new KinesisClient({
    // HTTP/1.1: kinesis-local answers the SDK's default HTTP/2 handler with protocol errors.
    requestHandler: new NodeHttpHandler(),
    endpoint: env.KINESIS_ENDPOINT,
    region: env.AWS_REGION,
    credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY },
  })
}

interface Gateway {
  child: ChildProcess
  url: string
  startedAt: number
}

const started: ChildProcess[] = []

async function serve(
  o: Options,
  dir: string,
  name: string,
  config: object,
  spawned?: (pid: number) => void,
): Promise<Gateway> {
  const file = join(dir, `${name}.json`)
  writeFileSync(file, JSON.stringify(config))
  const log = join(dir, `${name}.log`)
  const fd = openSync(log, 'a')
  const startedAt = performance.now()
  const child = track(
    spawn(
      process.execPath,
      [...NODE_FLAGS, ...o.nodeArgs, join(o.dist, 'cli.js'), 'serve', '--config', file],
      {
        cwd: REPO,
        stdio: ['ignore', fd, fd],
      },
    ),
  )
  closeSync(fd)
  started.push(child)
  spawned?.(child.pid!)
  for (let i = 0; i < 600; i++) {
    const port = /"port":(\d+)/.exec(readFileSync(log, 'utf8'))?.[1]
    if (port !== undefined) return { child, url: `http://127.0.0.1:${port}`, startedAt }
    if (child.exitCode !== null) break
    await sleep(50)
  }
  throw new Error(`${name}: the gateway did not start:\n${readFileSync(log, 'utf8').slice(-2000)}`)
}

async function post(url: string, body: Buffer, headers: Record<string, string>): Promise<void> {
  for (;;) {
    const res = await fetch(url, {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/x-ndjson', ...headers },
    })
    await res.arrayBuffer()
    if (res.ok) return
    if (res.status !== 503) throw new Error(`POST ${url}: ${res.status}`)
    await sleep(200)
  }
}

function metric(text: string, name: string): number[] {
  const re = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm')
  return [...text.matchAll(re)].map((m) => Number(m[1]))
}

/** Polls /metrics until every lane's lag is 0; the memory gauges' highest values and records delivered. */
async function untilDelivered(
  gw: Gateway,
  lanes: number,
): Promise<{ memory: Record<string, number>; delivered: number }> {
  const memory: Record<string, number> = {}
  let lag = Infinity
  let delivered = 0
  while (lag > 0) {
    await sleep(200)
    const text = await fetch(`${gw.url}/metrics`)
      .then((r) => r.text())
      .catch(() => '')
    const lags = metric(text, 'streamgate_sink_lag_records')
    if (lags.length >= lanes) lag = lags.reduce((a, b) => a + b, 0)
    delivered = metric(text, 'streamgate_sink_records_delivered_total').reduce((a, b) => a + b, 0)
    for (const name of MEMORY_METRICS)
      memory[name] = Math.max(
        memory[name] ?? 0,
        metric(text, name).reduce((a, b) => a + b, 0),
      )
    if (gw.child.exitCode !== null) throw new Error('the gateway exited while delivering')
  }
  return { memory, delivered }
}

const MEMORY_METRICS = [
  'nodejs_heap_size_total_bytes',
  'nodejs_heap_size_used_bytes',
  'nodejs_external_memory_bytes',
  // V8's spaces (prom-client's per-space gauges), to tell the young generation from the old.
  ...['new', 'old', 'large_object', 'new_large_object', 'code'].map(
    (space) => `nodejs_heap_space_size_total_bytes\\{space="${space}"\\}`,
  ),
] as const

const mb = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(0)} MB`

async function main(): Promise<void> {
  const o = options()
  // The file sink needs no backend; an s3 or kinesis run does (the env is read only for those).
  const env = o.sink === 'file' ? ({} as BackendsEnv) : readBackendsEnv()
  if (env === undefined || (o.sink !== 'file' && !(await backendsAnswer(env))))
    throw new Error('the backends do not answer: npm run backends:up')
  const scenario = findScenario('azion-ndjson-2000')!
  const body = scenario.generate()
  const run = `bench-${o.sink}-${randomUUID().slice(0, 8)}`
  const dir = makeTempDir('sg-bench-delivery-')
  const streams = Array.from({ length: o.streams }, (_, i) => `azion-${i}`)
  const sink = await sinkConfig(o, env, run, dir)
  const config = (status: 1 | 2): object => ({
    server: { host: '127.0.0.1', port: 0 },
    // info: the listening line (with the port) and start-up; nothing per request.
    log: { level: 'info' },
    dataDir: dir,
    spool: {
      dir: join(dir, 'spool'),
      maxBytes: 8 * 1024 ** 3,
      ...(o.segmentMib !== undefined ? { segmentBytes: o.segmentMib * 1024 * 1024 } : {}),
    },
    sinks: { out: sink },
    streams: Object.fromEntries(streams.map((id) => [id, { ...scenario.stream, status, sinks: ['out'] }])),
  })
  try {
    const bodies = Math.ceil((o.mib * 1024 * 1024) / body.length)
    const records = bodies * streams.length * scenario.recordsPerRequest
    const bytes = bodies * streams.length * body.length
    const result: Record<string, unknown> = {
      sink: o.sink,
      dist: o.dist,
      set: o.set,
      nodeArgs: o.nodeArgs,
      segmentMib: o.segmentMib ?? 64,
      streams: streams.length,
      records,
      bytes,
    }
    const postAll = async (url: string, perBodyMs = 0): Promise<number> => {
      const start = performance.now()
      let k = 0
      for (let i = 0; i < bodies; i++)
        for (const id of streams) {
          const wait = start + k++ * perBodyMs - performance.now()
          if (wait > 0) await sleep(wait)
          await post(`${url}/ingest/${id}`, body, scenario.headers)
        }
      return (performance.now() - start) / 1000
    }
    if (o.live !== undefined) {
      // One gateway, streams running, the records posted at --live MB/s while the lanes deliver them.
      let pid: number | undefined
      let peak = 0
      const sampler = setInterval(() => {
        if (pid !== undefined) peak = Math.max(peak, rssBytes(processTree(pid)))
      }, 100)
      const gw = await serve(o, dir, 'live', config(1), (p) => (pid = p))
      const postSeconds = await postAll(gw.url, (body.length / (o.live * 1024 * 1024)) * 1000)
      const afterPosts = performance.now()
      const { memory, delivered } = await untilDelivered(gw, streams.length)
      const tailSeconds = (performance.now() - afterPosts) / 1000
      clearInterval(sampler)
      await stopChild(gw.child, 30_000)
      Object.assign(result, {
        liveMBps: o.live,
        postSeconds,
        postedMBps: bytes / 1024 / 1024 / postSeconds,
        tailSeconds,
        livePeakRss: peak,
        delivered,
        memory,
      })
      process.stdout.write(
        `live: ${records} records (${mb(bytes)}) posted over ${postSeconds.toFixed(1)} s ` +
          `(${(bytes / 1024 / 1024 / postSeconds).toFixed(1)} MB/s), delivered ${tailSeconds.toFixed(1)} s after the last; ` +
          `peak RSS ${mb(peak)}\n`,
      )
    } else {
      // 1. fill
      const fill = await serve(o, dir, 'fill', config(2))
      let fillPeak = 0
      const fillSampler = setInterval(
        () => (fillPeak = Math.max(fillPeak, rssBytes(processTree(fill.child.pid!)))),
        100,
      )
      const fillSeconds = await postAll(fill.url)
      clearInterval(fillSampler)
      await stopChild(fill.child, 30_000)
      process.stdout.write(
        `fill: ${records} records, ${mb(bytes)} over ${streams.length} stream(s) in ${fillSeconds.toFixed(1)} s, peak RSS ${mb(fillPeak)}\n`,
      )

      // 2. drain. Sampled from the spawn: start-up (the spool's recovery, through a window) until the
      // listening line, then delivery.
      let startupPeak = 0
      let peak = 0
      let drainPid: number | undefined
      let listening = false
      const sampler = setInterval(() => {
        if (drainPid === undefined) return
        const rss = rssBytes(processTree(drainPid))
        if (listening) peak = Math.max(peak, rss)
        else startupPeak = Math.max(startupPeak, rss)
      }, 100)
      const drain = await serve(o, dir, 'drain', config(1), (pid) => (drainPid = pid))
      listening = true
      const pid = drain.child.pid!
      const { memory, delivered } = await untilDelivered(drain, streams.length)
      const drainSeconds = (performance.now() - drain.startedAt) / 1000
      clearInterval(sampler)
      peak = Math.max(peak, rssBytes(processTree(pid)))
      const hwm = Number(/^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0)
      await stopChild(drain.child, 30_000)
      Object.assign(result, {
        fillSeconds,
        fillPeakRss: fillPeak,
        drainSeconds,
        recordsPerSecond: records / drainSeconds,
        mbPerSecond: bytes / 1024 / 1024 / drainSeconds,
        drainStartupPeakRss: startupPeak,
        drainPeakRss: peak,
        drainVmHwm: hwm * 1024,
        delivered,
        memory,
      })
      process.stdout.write(
        `drain: ${records} records (${mb(bytes)}) in ${drainSeconds.toFixed(1)} s from spawn: ` +
          `${Math.round(records / drainSeconds)} records/s, ${(bytes / 1024 / 1024 / drainSeconds).toFixed(1)} MB/s; ` +
          `peak RSS while delivering ${mb(peak)}, during start-up ${mb(startupPeak)} (VmHWM ${mb(hwm * 1024)})\n`,
      )
    }

    // 3. what arrived
    if (o.sink === 's3') {
      const client = new S3Client({
        endpoint: env.S3_ENDPOINT,
        region: env.S3_REGION,
        forcePathStyle: true,
        credentials: { accessKeyId: env.S3_ACCESS_KEY_ID, secretAccessKey: env.S3_SECRET_ACCESS_KEY },
      })
      try {
        const objects: { key: string; size: number; parts: number }[] = []
        let ContinuationToken: string | undefined
        do {
          const page = await client.send(
            new ListObjectsV2Command({ Bucket: 'streamgate-bench', Prefix: `${run}/`, ContinuationToken }),
          )
          for (const obj of page.Contents ?? [])
            objects.push({
              key: obj.Key!,
              size: obj.Size ?? 0,
              parts: Number(/-(\d+)"$/.exec(obj.ETag ?? '')?.[1] ?? 1),
            })
          ContinuationToken = page.NextContinuationToken
        } while (ContinuationToken)
        const uploads = await client.send(
          new ListMultipartUploadsCommand({ Bucket: 'streamgate-bench', Prefix: `${run}/` }),
        )
        result.objects = objects.length
        result.objectBytes = objects.reduce((n, x) => n + x.size, 0)
        result.largestObject = Math.max(...objects.map((x) => x.size))
        result.multipartObjects = objects.filter((x) => x.parts > 1).length
        result.uploadsInProgress = (uploads.Uploads ?? []).length
        // The bench's objects go again (the bucket is shared by every run).
        for (let i = 0; i < objects.length; i += 1000)
          await client.send(
            new DeleteObjectsCommand({
              Bucket: 'streamgate-bench',
              Delete: { Objects: objects.slice(i, i + 1000).map((x) => ({ Key: x.key })) },
            }),
          )
      } finally {
        client.destroy()
      }
    } else if (o.sink === 'kinesis') {
      const client = kinesisAdmin(env)
      await client.send(new DeleteStreamCommand({ StreamName: run })).catch(() => undefined)
      client.destroy()
    }
    process.stdout.write(`${JSON.stringify(result)}\n`)
    if (o.json !== undefined) writeFileSync(o.json, JSON.stringify(result, null, 2))
  } finally {
    await Promise.all(started.map((child) => stopChild(child, 5_000)))
    removeTempDir(dir)
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`)
  process.exitCode = 1
})
