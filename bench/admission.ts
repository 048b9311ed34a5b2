// Sustained overload, before/after admission control (issue 17): 2,000-record Azion NDJSON batches
// (bench/scenarios.ts azion-ndjson-2000) pushed by N keep-alive connections in a closed loop for D seconds
// into one stream with the fsync'd spool (defaults: 1 GiB, fsync always) and a file sink. Each build named
// runs in turn, as `node <build>/dist/cli.js serve`, same config, same body, same generator.
//
// Per run, from the gateway's /metrics scraped every second: records accepted and delivered over the window
// (and per half), the lane's lag at the end (records, and seconds of the window's delivery rate); from the
// generator (this process, node:http, one socket per connection): answers by status and the latency of the
// 200s and of the 503s (from the first byte written to the whole answer read). After the load, the drain:
// time until the lag is 0, and every acknowledged record counted in the sink's files.
//
//   npm run build && npx tsx bench/admission.ts --build before=/tmp/sg-main --build after=. [--duration 60]
//     [--connections 32] [--spool '{"maxLagSeconds":4}'] (spool keys for builds that know them: `after` only)
//     [--stream pause='{"backpressure":"pause"}'] (stream keys per label; the same build may run under two
//     labels: --build refuse=. --build pause=. --build pause2=. --stream pause=… --stream pause2=…)
//     [--sink small='{"maxBatchRecords":2000}'] (file sink keys per label)
//     [--expect LABEL] (that label's clients send `Expect: 100-continue` and upload only after 100 Continue)
//     [--rate R] (open loop: R requests/s over all connections, each on its own schedule, a refusal not
//     retried at once; latency from the scheduled time. Without it, each connection sends as soon as it has
//     its answer: a refused sender retries at once, so refusals run as fast as the gateway can answer them)

import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { Agent, request } from 'node:http'
import { loadavg } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { freePort } from '../scripts/backends/daemon.js'
import { makeTempDir, removeTempDir, stopChild, track } from './processes.js'
import { findScenario } from './scenarios.js'
import { NODE_FLAGS } from '../src/runtime-flags.js'

const { values } = parseArgs({
  options: {
    build: { type: 'string', multiple: true },
    duration: { type: 'string', default: '60' },
    connections: { type: 'string', default: '32' },
    spool: { type: 'string', multiple: true },
    stream: { type: 'string', multiple: true },
    sink: { type: 'string', multiple: true },
    expect: { type: 'string', multiple: true },
    'node-arg': { type: 'string', multiple: true },
    rate: { type: 'string' },
  },
})
const builds = (values.build ?? ['after=.']).map((b) => {
  const [label, dir] = b.includes('=') ? [b.slice(0, b.indexOf('=')), b.slice(b.indexOf('=') + 1)] : [b, b]
  return { label, dir: resolve(dir) }
})
/** Extra keys per label: --spool after='{"maxLagSeconds":4}', --stream pause='{"backpressure":"pause"}'. */
const perLabel = (given: string[] | undefined): Map<string, Record<string, unknown>> =>
  new Map(
    (given ?? []).map((s) => {
      const at = s.indexOf('=')
      return [s.slice(0, at), JSON.parse(s.slice(at + 1)) as Record<string, unknown>]
    }),
  )
const spoolExtra = perLabel(values.spool)
const streamExtra = perLabel(values.stream)
/** File sink keys per label: --sink small='{"maxBatchRecords":2000}'. */
const sinkExtra = perLabel(values.sink)
/** Labels whose clients ask for 100 Continue before uploading. */
const expectLabels = new Set(values.expect ?? [])
const durationS = Number(values.duration)
/** Extra node flags for the gateway, e.g. --node-arg=--cpu-prof --node-arg=--cpu-prof-dir=/tmp/prof. */
const nodeArgs = values['node-arg'] ?? []
const connections = Number(values.connections)
/**
 * With --rate R: an open-loop load of R requests/s in all, spread over the connections (each sends on its own
 * schedule, not as soon as its last answer came), so a refusal is not retried at once. Latency then counts
 * from the scheduled time (a request sent late because its connection was still busy waited that long too).
 */
const ratePerS = values.rate === undefined ? undefined : Number(values.rate)
if (ratePerS !== undefined && !(ratePerS > 0)) throw new Error('--rate: requests per second, > 0')
const scenario = findScenario('azion-ndjson-2000')!
const body = scenario.generate()

interface Sample {
  t: number
  accepted: number
  delivered: number
  lag: number
  cpuS: number
  /** prom-client's event-loop delay p99 of the gateway, over its last sampling window. */
  loopP99S: number
}

function metric(text: string, name: string): number {
  let sum = 0
  for (const line of text.split('\n')) if (line.startsWith(name)) sum += Number(line.split(' ').at(-1))
  return sum
}

function get(url: string): Promise<string> {
  return new Promise((ok, fail) => {
    request(url, { method: 'GET', agent: false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => ok(Buffer.concat(chunks).toString()))
      res.on('error', fail)
    })
      .on('error', fail)
      .end()
  })
}

async function sample(base: string, started: number): Promise<Sample> {
  const text = await get(`${base}/metrics`)
  return {
    t: (performance.now() - started) / 1000,
    accepted: metric(text, 'streamgate_records_accepted_total{'),
    delivered: metric(text, 'streamgate_sink_records_delivered_total{sink="out"}'),
    lag: metric(text, 'streamgate_sink_lag_records{stream="azion-ndjson",sink="out"}'),
    cpuS: metric(text, 'process_cpu_seconds_total '),
    loopP99S: metric(text, 'nodejs_eventloop_lag_p99_seconds '),
  }
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!
}

/**
 * One connection: POST, read the whole answer, POST again, until `until` — at once (closed loop), or with
 * `schedule` at its next slot (open loop, latency from the slot).
 */
async function connectionLoop(
  url: string,
  agent: Agent,
  until: number,
  out: { status: number; ms: number; reason?: string }[],
  expectContinue = false,
  schedule?: { first: number; intervalMs: number },
): Promise<void> {
  let slot = schedule?.first ?? 0
  while (performance.now() < until) {
    if (schedule) {
      const wait = slot - performance.now()
      if (wait > 0) await new Promise((r) => setTimeout(r, wait))
      if (slot >= until) break
    }
    const t0 = schedule ? slot : performance.now()
    if (schedule) slot += schedule.intervalMs
    let reason: string | undefined
    const status = await new Promise<number>((ok) => {
      const req = request(
        url,
        {
          method: 'POST',
          agent,
          headers: {
            ...scenario.headers,
            'content-type': 'application/x-ndjson',
            'content-length': body.length,
            ...(expectContinue ? { expect: '100-continue' } : {}),
          },
        },
        (res) => {
          // A refusal's problem names its reason (high-water, lag-budget) or its type (overloaded …).
          const chunks: Buffer[] = []
          if (res.statusCode === 503) res.on('data', (c: Buffer) => chunks.push(c))
          else res.resume()
          res.on('end', () => {
            // Refused before 100 Continue: the body was never sent; the server closes the connection.
            if (expectContinue && !req.writableEnded) req.destroy()
            if (chunks.length > 0) {
              try {
                const p = JSON.parse(Buffer.concat(chunks).toString()) as { reason?: string; type?: string }
                reason = p.reason ?? p.type?.split('/').at(-1)
              } catch {
                reason = 'unparsable'
              }
            }
            ok(res.statusCode ?? 0)
          })
          res.on('error', () => ok(-1))
        },
      )
      req.on('error', () => ok(-1))
      if (expectContinue) {
        req.on('continue', () => req.end(body))
        req.flushHeaders()
      } else req.end(body)
    })
    out.push({ status, ms: performance.now() - t0, ...(reason ? { reason } : {}) })
  }
}

async function runOne(label: string, dir: string): Promise<string> {
  const work = makeTempDir(`sg-admission-${label}-`)
  const port = await freePort()
  const config = {
    server: { host: '127.0.0.1', port },
    log: { level: 'warn' },
    dataDir: work,
    spool: { dir: join(work, 'spool'), ...spoolExtra.get(label) },
    sinks: { out: { type: 'file', dir: join(work, 'out'), ...sinkExtra.get(label) } },
    streams: { [scenario.streamId]: { ...scenario.stream, ...streamExtra.get(label), sinks: ['out'] } },
  }
  const configFile = join(work, 'config.json')
  writeFileSync(configFile, JSON.stringify(config))
  const child: ChildProcess = track(
    spawn(
      process.execPath,
      [...NODE_FLAGS, ...nodeArgs, join(dir, 'dist', 'cli.js'), 'serve', '--config', configFile],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    ),
  )
  const logs: string[] = []
  child.stderr!.on('data', (d: Buffer) => logs.push(d.toString()))
  const base = `http://127.0.0.1:${port}`
  for (let i = 0; ; i++) {
    try {
      await get(`${base}/healthz`)
      break
    } catch {
      if (i > 100) throw new Error(`${label}: the gateway did not start\n${logs.join('')}`)
      await new Promise((r) => setTimeout(r, 100))
    }
  }
  try {
    const started = performance.now()
    const samples: Sample[] = [await sample(base, started)]
    const until = started + durationS * 1000
    const answers: { status: number; ms: number; reason?: string }[] = []
    const agent = new Agent({ keepAlive: true, maxSockets: connections })
    // Open loop: connection i sends every connections / rate seconds, the connections staggered evenly.
    const intervalMs = ratePerS === undefined ? 0 : (connections / ratePerS) * 1000
    const loops = Array.from({ length: connections }, (_, i) =>
      connectionLoop(
        `${base}/ingest/${scenario.streamId}`,
        agent,
        until,
        answers,
        expectLabels.has(label),
        ratePerS === undefined ? undefined : { first: started + (i * intervalMs) / connections, intervalMs },
      ),
    )
    const sampler = setInterval(() => {
      sample(base, started).then(
        (s) => samples.push(s),
        () => undefined,
      )
    }, 1000)
    await new Promise((r) => setTimeout(r, durationS * 1000))
    clearInterval(sampler)
    const end = await sample(base, started)
    await Promise.all(loops)
    agent.destroy()
    // The drain: until the lane has nothing left.
    let drained = end
    while (drained.lag > 0 && drained.t < durationS + 600) {
      await new Promise((r) => setTimeout(r, 500))
      drained = await sample(base, started)
    }
    const inFiles = Number(
      spawnSync('sh', ['-c', `cat ${join(work, 'out')}/*.ndjson | wc -l`], {
        encoding: 'utf8',
      }).stdout.trim(),
    )

    const first = samples[0]!
    const mid = samples.reduce((a, b) =>
      Math.abs(b.t - durationS / 2) < Math.abs(a.t - durationS / 2) ? b : a,
    )
    const window = end.t - first.t
    const acceptedRate = (end.accepted - first.accepted) / window
    const deliveredRate = (end.delivered - first.delivered) / window
    const firstHalf = (mid.delivered - first.delivered) / (mid.t - first.t)
    const secondHalf = (end.delivered - mid.delivered) / (end.t - mid.t)
    const ok = answers
      .filter((a) => a.status === 200)
      .map((a) => a.ms)
      .sort((a, b) => a - b)
    const refused = answers
      .filter((a) => a.status === 503)
      .map((a) => a.ms)
      .sort((a, b) => a - b)
    const reasons = new Map<string, number>()
    for (const a of answers)
      if (a.status === 503) reasons.set(a.reason ?? '?', (reasons.get(a.reason ?? '?') ?? 0) + 1)
    const other = answers.filter((a) => a.status !== 200 && a.status !== 503).length
    const loop = samples.map((x) => x.loopP99S * 1000).sort((a, b) => a - b)
    const cores = (end.cpuS - first.cpuS) / window
    const series = samples
      .filter((_, i) => i % 5 === 0)
      .map((s) => `${Math.round(s.t)}s:${Math.round(s.lag / 1000)}k`)
      .join(' ')
    const f = (n: number): string => Math.round(n).toLocaleString('en-US')
    const ms = (n: number): string => (Number.isNaN(n) ? '–' : `${n.toFixed(1)} ms`)
    return [
      `${label}: ${dir}`,
      `  accepted ${f(acceptedRate)} rec/s, delivered ${f(deliveredRate)} rec/s over ${window.toFixed(1)} s: delivered/accepted ${(deliveredRate / acceptedRate).toFixed(2)}×`,
      `  delivered 1st half ${f(firstHalf)} rec/s, 2nd half ${f(secondHalf)} rec/s: 2nd/1st ${(secondHalf / firstHalf).toFixed(2)}×`,
      `  lag at end ${f(end.lag)} records = ${(end.lag / deliveredRate).toFixed(1)} s of delivery; lag (every 5 s) ${series}`,
      `  answers: ${ok.length} × 200 (p50 ${ms(percentile(ok, 50))}, p99 ${ms(percentile(ok, 99))}), ${refused.length} × 503 (p50 ${ms(percentile(refused, 50))}, p99 ${ms(percentile(refused, 99))}; ${[...reasons].map(([r, n]) => `${n} ${r}`).join(', ') || 'none'}), ${other} other`,
      `  gateway: ${cores.toFixed(2)} CPU cores on average; event-loop delay p99 (per 1 s sample) median ${percentile(loop, 50).toFixed(0)} ms, max ${loop.at(-1)?.toFixed(0)} ms; load average ${loadavg()
        .map((l) => l.toFixed(1))
        .join(' ')}`,
      `  drain: lag 0 at ${drained.t.toFixed(1)} s (${(drained.t - end.t).toFixed(1)} s after the load); accepted ${f(drained.accepted)}, delivered ${f(drained.delivered)}, lines in the sink ${f(inFiles)}${inFiles >= drained.accepted ? ' (every acknowledged record is there)' : ' — MISSING RECORDS'}`,
    ].join('\n')
  } finally {
    await stopChild(child, 10_000)
    removeTempDir(work)
  }
}

const started = new Date().toISOString()
const reports: string[] = []
for (const { label, dir } of builds) {
  process.stderr.write(`running ${label} (${dir}) for ${durationS} s…\n`)
  reports.push(await runOne(label, dir))
  process.stderr.write(`${reports.at(-1)}\n`)
}
console.log(
  `# ${started}: ${durationS} s, ${connections} connections${ratePerS === undefined ? ' (closed loop)' : `, open loop at ${ratePerS} requests/s`}, ${scenario.name} (${body.length} bytes, ${scenario.recordsPerRequest} records) → file sink, fsync'd spool\n${reports.join('\n')}`,
)
