// The roles of SPEC section 9 against the all-in-one gateway, on this one machine (README, Operations:
// ingest and deliver roles). Bounded, loopback only.
//
//   npm run build && npx tsx bench/roles.ts [--records 50000] [--batch 500] [--posters 4] [--modes all,1+1,2+2]
//
// Per mode, the built CLI runs as child processes (role all: one gateway; N+M: N ingest and M deliver nodes
// on the shared Kafka broker at 127.0.0.1:19092, a fresh topic prefix each run); `--posters` clients post
// `--records` NDJSON records in `--batch`-record requests, round robin over the ingest nodes, each request
// again until it is answered 200. An HTTP sink delivers to an in-process relay. Figures per mode:
//   ingest/s     records acknowledged ÷ the time until the last 200
//   delivered/s  records at the relay ÷ the time until the last one arrived (from the first post)
//   lag p50/p99  relay arrival − the moment its request was sent, per record
// Plus the bare node:http baseline (a server that reads the body, splits and parses the lines, answers 200)
// under the same posters, measured in the same run: ingest/s ÷ baseline/s is the ratio to quote.
// Honest about the box: Kafka (a JVM), the nodes, the relay and the posters all share its cores, and other
// work on it shows in the load average printed at the start and the end.

import { spawn, type ChildProcess } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { loadavg } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import { makeTempDir, removeTempDir, stopChild, track } from './processes.js'
import { NODE_FLAGS } from '../src/runtime-flags.js'

const REPO = join(import.meta.dirname, '..')
const CLI = join(REPO, 'dist', 'cli.js')
const BROKERS = process.env.KAFKA_BROKERS ?? '127.0.0.1:19092'
const TOKEN = 'bench-roles-token'

const { values } = parseArgs({
  options: {
    records: { type: 'string', default: '50000' },
    batch: { type: 'string', default: '500' },
    posters: { type: 'string', default: '4' },
    modes: { type: 'string', default: 'all,1+1,2+2' },
  },
})
const RECORDS = Number(values.records)
const BATCH = Number(values.batch)
const POSTERS = Number(values.posters)

/** Counts records (NDJSON lines) and their lag: arrival − the `t` the poster wrote into each record. */
class Relay {
  received = 0
  lastAt = 0
  readonly lags: number[] = []
  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  static async start(): Promise<Relay> {
    const server = createServer((req, res) => {
      const chunks: Buffer[] = []
      req.on('data', (c: Buffer) => chunks.push(c))
      req.on('end', () => {
        const now = Date.now()
        for (const line of Buffer.concat(chunks).toString('utf8').split('\n')) {
          if (line.length === 0) continue
          relay.lags.push(now - (JSON.parse(line) as { t: number }).t)
          relay.received++
        }
        relay.lastAt = now
        res.end('ok')
      })
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const relay = new Relay(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}/in`)
    return relay
  }

  close(): Promise<void> {
    this.server.closeAllConnections()
    return new Promise((resolve) => this.server.close(() => resolve()))
  }
}

async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return port
}

async function waitReady(url: string, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 60_000
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`a node exited during start (${child.exitCode})`)
    const ok = await fetch(`${url}/readyz`).then(
      (r) => r.ok,
      () => false,
    )
    if (ok) return
    await sleep(100)
  }
  throw new Error(`${url} not ready`)
}

/** Posts every record; resolves with the time of the last 200 (ms since `start`). */
async function post(urls: readonly string[], start: number): Promise<number> {
  let next = 0
  const batches = Math.ceil(RECORDS / BATCH)
  const poster = async (): Promise<void> => {
    for (;;) {
      const b = next++
      if (b >= batches) return
      const n = Math.min(BATCH, RECORDS - b * BATCH)
      const url = urls[b % urls.length]!
      for (;;) {
        const t = Date.now()
        let body = ''
        for (let i = 0; i < n; i++) body += `{"id":"b-${b}-${i}","t":${t},"pad":"${'x'.repeat(60)}"}\n`
        const res = await fetch(`${url}/ingest/app`, {
          method: 'POST',
          body,
          headers: { 'content-type': 'application/x-ndjson', authorization: `Bearer ${TOKEN}` },
        }).catch(() => undefined)
        await res?.arrayBuffer()
        if (res?.status === 200) break
        await sleep(100)
      }
    }
  }
  await Promise.all(Array.from({ length: POSTERS }, () => poster()))
  return Date.now() - start
}

function quantile(sorted: readonly number[], q: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!
}

interface Result {
  mode: string
  ingestPerS: number
  deliveredPerS: number
  lagP50: number
  lagP99: number
}

async function runMode(mode: string, dir: string): Promise<Result> {
  const relay = await Relay.start()
  const [ingestN, deliverN] = mode === 'all' ? [1, 0] : mode.split('+').map(Number)
  const prefix = `bench-${randomUUID().slice(0, 8)}`
  const config = {
    server: { host: '127.0.0.1', port: 0 },
    dataDir: join(dir, prefix),
    spool: { dir: join(dir, prefix, 'spool') },
    log: { level: 'warn' },
    ...(mode === 'all'
      ? {}
      : {
          cluster: {
            kafka: { brokers: BROKERS },
            topicPrefix: prefix,
            partitions: 6,
            sessionTimeoutMs: 6_000,
          },
        }),
    sinks: {
      relay: { type: 'http', url: relay.url },
      'dead-letter': { type: 'file', dir: join(dir, prefix, 'dead-letter') },
    },
    streams: {
      app: { source: 'ndjson', auth: { headers: { Authorization: `Bearer ${TOKEN}` } }, sinks: ['relay'] },
    },
  }
  const file = join(dir, `${prefix}.json`)
  writeFileSync(file, JSON.stringify(config))
  const nodes: { child: ChildProcess; url: string; role: string }[] = []
  const roles: string[] =
    mode === 'all'
      ? ['all']
      : [...Array<string>(ingestN!).fill('ingest'), ...Array<string>(deliverN!).fill('deliver')]
  try {
    for (const role of roles) {
      const port = await freePort()
      const child = track(
        spawn(
          process.execPath,
          [...NODE_FLAGS, CLI, 'serve', '--config', file, '--role', role, '--port', String(port)],
          {
            stdio: ['ignore', 'ignore', 'inherit'],
            env: { PATH: process.env.PATH },
          },
        ),
      )
      const url = `http://127.0.0.1:${port}`
      nodes.push({ child, url, role })
      await waitReady(url, child)
    }
    const ingestUrls = nodes.filter((n) => n.role !== 'deliver').map((n) => n.url)
    const start = Date.now()
    const ingestMs = await post(ingestUrls, start)
    const deadline = Date.now() + 180_000
    while (relay.received < RECORDS && Date.now() < deadline) await sleep(50)
    if (relay.received < RECORDS) throw new Error(`${mode}: only ${relay.received} of ${RECORDS} delivered`)
    const lags = [...relay.lags].sort((a, b) => a - b)
    return {
      mode,
      ingestPerS: RECORDS / (ingestMs / 1000),
      deliveredPerS: RECORDS / ((relay.lastAt - start) / 1000),
      lagP50: quantile(lags, 0.5),
      lagP99: quantile(lags, 0.99),
    }
  } finally {
    await Promise.all(nodes.map((n) => stopChild(n.child)))
    await relay.close()
  }
}

/** The bare node:http baseline under the same posters: records/s acknowledged. */
async function baseline(): Promise<number> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      let n = 0
      for (const line of Buffer.concat(chunks).toString('utf8').split('\n'))
        if (line.length > 0) {
          JSON.parse(line)
          n++
        }
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify({ accepted: n }))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  try {
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    const ms = await post([url], Date.now())
    return RECORDS / (ms / 1000)
  } finally {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  }
}

const dir = makeTempDir('streamgate-bench-roles-')
try {
  const load0 = loadavg()
  const base = await baseline()
  const results: Result[] = []
  for (const mode of values.modes.split(',')) results.push(await runMode(mode.trim(), dir))
  const base2 = await baseline()
  const load1 = loadavg()
  const baseMedian = (base + base2) / 2
  const fmt = (n: number): string => Math.round(n).toLocaleString('en-US')
  console.log(
    `records ${RECORDS}, batch ${BATCH}, posters ${POSTERS}; load average ${load0.map((l) => l.toFixed(1)).join(' ')} → ${load1.map((l) => l.toFixed(1)).join(' ')}`,
  )
  console.log(`baseline (bare node:http) ${fmt(base)} and ${fmt(base2)} records/s (mean ${fmt(baseMedian)})`)
  console.log('mode   ingest/s  ×baseline  delivered/s  lag p50 ms  lag p99 ms')
  for (const r of results)
    console.log(
      `${r.mode.padEnd(5)} ${fmt(r.ingestPerS).padStart(9)} ${(r.ingestPerS / baseMedian).toFixed(2).padStart(9)}  ${fmt(r.deliveredPerS).padStart(11)} ${fmt(r.lagP50).padStart(11)} ${fmt(r.lagP99).padStart(11)}`,
    )
} finally {
  removeTempDir(dir)
}
