// `server.workers: 2` against `server.workers: 1` (src/cluster/), same build, same machine, same run.
//
//   npm run build && npx tsx bench/workers.ts [--scenario azion-ndjson-2000] [--workers 2] [--duration 10]
//                                             [--rounds 1] [--connections 16] [--generator wrk|autocannon]
//
// Each round measures A B B A (then B A A B), so drift on the shared box hits both alike.
// Both gateways run side by side (each with its own temp dir: fsync'd spool, file sink), started from a copy
// of dist/ taken at the start. Per run,
// as bench/run.ts does: records the server counted (GET /metrics, which a cluster answers summed over its
// workers) ÷ the load window = records/s, and ÷ the CPU of the whole process tree (primary + workers), from
// just before the load until every record is delivered and the tree is idle = records per CPU-second.
// Prints medians and the ratio workers:N / workers:1.

import { spawn } from 'node:child_process'
import { cpSync, symlinkSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { createGenerator, wrkAvailable, type GeneratorName, type LoadGenerator } from './load.js'
import { cpuSeconds, processTree, waitForIdle } from './proc-stats.js'
import { makeTempDir, removeTempDir, stopChild, track } from './processes.js'
import { findScenario, type Scenario } from './scenarios.js'
import { NODE_FLAGS } from '../src/runtime-flags.js'

const REPO = join(import.meta.dirname, '..')

interface Target {
  label: string
  workers: number
  pid: number
  base: string
  stop(): Promise<void>
}

interface Run {
  label: string
  recordsPerS: number
  recordsPerCpuS: number
  p99Ms: number
  cpuS: number
}

const { values } = parseArgs({
  options: {
    scenario: { type: 'string', default: 'azion-ndjson-2000' },
    workers: { type: 'string', default: '2' },
    duration: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '1' },
    connections: { type: 'string', default: '16' },
    generator: { type: 'string' },
  },
})

const scenario = findScenario(values.scenario)
if (!scenario) throw new Error(`unknown scenario ${values.scenario}`)
const durationS = Number(values.duration)
const rounds = Number(values.rounds)
const connections = Number(values.connections)
const generatorName = (values.generator ?? (wrkAvailable() ? 'wrk' : 'autocannon')) as GeneratorName

async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  await new Promise((resolve) => server.close(resolve))
  return port
}

async function metrics(base: string): Promise<{ records: number; lag: number }> {
  const text = await (await fetch(`${base}/metrics`, { signal: AbortSignal.timeout(10_000) })).text()
  const sum = (name: string, filter = ''): number =>
    text
      .split('\n')
      .filter((l) => l.startsWith(name) && l.includes(filter))
      .reduce((s, l) => s + Number(l.slice(l.lastIndexOf(' ') + 1)), 0)
  return {
    records: sum('streamgate_records_accepted_total{', `stream="${scenario!.streamId}"`),
    lag: sum('streamgate_sink_lag_records{'),
  }
}

async function startTarget(dist: string, s: Scenario, workers: number, root: string): Promise<Target> {
  const dir = join(root, `w${workers}`)
  const port = await freePort()
  const config = join(root, `w${workers}.json`)
  writeFileSync(
    config,
    JSON.stringify({
      server: { host: '127.0.0.1', port, workers },
      log: { level: 'warn' },
      dataDir: dir,
      // The lag budget off, as in bench/run.ts: this measures how fast requests are accepted; with it on,
      // a worker a few seconds behind refused ~2,000 requests of an 8 s run (2026-12-04) and mixed 503s in.
      spool: { dir: join(dir, 'spool'), maxLagSeconds: 0 },
      sinks: { out: { type: 'file', dir: join(dir, 'out') } },
      streams: { [s.streamId]: { ...s.stream, sinks: ['out'] } },
    }),
  )
  const child = track(
    spawn(process.execPath, [...NODE_FLAGS, join(dist, 'cli.js'), 'serve', '--config', config], {
      cwd: REPO,
      stdio: ['ignore', 'inherit', 'inherit'],
    }),
  )
  const base = `http://127.0.0.1:${port}`
  const deadline = Date.now() + 60_000
  for (;;) {
    try {
      await metrics(base)
      if (workers === 1 || processTree(child.pid!).length > workers) break
    } catch {
      if (Date.now() > deadline) throw new Error(`workers: ${workers} did not start`)
    }
    await new Promise((r) => setTimeout(r, 200))
  }
  return {
    label: `workers: ${workers}`,
    workers,
    pid: child.pid!,
    base,
    stop: () => stopChild(child, 15_000),
  }
}

async function settle(target: Target, pids: readonly number[]): Promise<void> {
  const deadline = Date.now() + 60_000
  while ((await metrics(target.base)).lag > 0 && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 100))
  await waitForIdle(pids)
}

async function measure(
  target: Target,
  generator: LoadGenerator,
  bodyFile: string,
  s: Scenario,
): Promise<Run> {
  const pids = processTree(target.pid)
  await settle(target, pids)
  const before = await metrics(target.base)
  const cpu0 = cpuSeconds(pids)
  const load = await generator.run({
    url: `${target.base}/ingest/${encodeURIComponent(s.streamId)}`,
    headers: s.headers,
    bodyFile,
    connections,
    durationS,
  })
  await settle(target, pids)
  const cpuS = cpuSeconds(pids) - cpu0
  const after = await metrics(target.base)
  const records = after.records - before.records
  if (load.non2xx > 0 || load.errors > 0)
    console.error(`${target.label}: ${load.non2xx} non-2xx, ${load.errors} errors ${load.errorDetail}`)
  return {
    label: target.label,
    recordsPerS: records / load.durationS,
    recordsPerCpuS: records / cpuS,
    p99Ms: load.latencyMs.p99,
    cpuS,
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  const m = Math.floor(s.length / 2)
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

async function main(): Promise<void> {
  const root = makeTempDir('streamgate-bench-workers-')
  const dist = join(root, 'dist')
  cpSync(join(REPO, 'dist'), dist, { recursive: true })
  cpSync(join(REPO, 'schemas'), join(root, 'schemas'), { recursive: true })
  cpSync(join(REPO, 'package.json'), join(root, 'package.json'))
  symlinkSync(join(REPO, 'node_modules'), join(root, 'node_modules'), 'dir')
  const bodyFile = join(root, 'body')
  writeFileSync(bodyFile, scenario!.generate())
  const generator = createGenerator(generatorName, root)
  const targets: Target[] = []
  try {
    targets.push(await startTarget(dist, scenario!, 1, root))
    targets.push(await startTarget(dist, scenario!, Number(values.workers), root))
    const runs: Run[] = []
    // Warm-up, unmeasured.
    for (const t of targets)
      await generator.run({
        url: `${t.base}/ingest/${encodeURIComponent(scenario!.streamId)}`,
        headers: scenario!.headers,
        bodyFile,
        connections,
        durationS: 2,
      })
    for (let r = 0; r < rounds; r++) {
      const order = r % 2 === 0 ? [0, 1, 1, 0] : [1, 0, 0, 1]
      for (const ti of order) {
        const run = await measure(targets[ti]!, generator, bodyFile, scenario!)
        runs.push(run)
        console.log(
          `${run.label}: ${Math.round(run.recordsPerS)} records/s, ${Math.round(run.recordsPerCpuS)} records/CPU-s, ` +
            `p99 ${run.p99Ms.toFixed(1)} ms, ${run.cpuS.toFixed(1)} CPU-s`,
        )
      }
    }
    const summary = targets.map((t) => {
      const mine = runs.filter((r) => r.label === t.label)
      return {
        label: t.label,
        recordsPerS: median(mine.map((r) => r.recordsPerS)),
        recordsPerCpuS: median(mine.map((r) => r.recordsPerCpuS)),
        p99Ms: median(mine.map((r) => r.p99Ms)),
      }
    })
    console.log(
      `\n${scenario!.name}, ${generatorName} -c${connections}, ${durationS} s × ${rounds * 2} runs per target (medians):`,
    )
    console.log('| target | records/s | records per CPU-s | p99 ms |\n|---|---|---|---|')
    for (const s of summary)
      console.log(
        `| ${s.label} | ${Math.round(s.recordsPerS)} | ${Math.round(s.recordsPerCpuS)} | ${s.p99Ms.toFixed(1)} |`,
      )
    const [one, many] = summary
    console.log(
      `\nratio ${many!.label} / ${one!.label}: ${(many!.recordsPerS / one!.recordsPerS).toFixed(2)}× records/s, ` +
        `${(many!.recordsPerCpuS / one!.recordsPerCpuS).toFixed(2)}× records per CPU-s`,
    )
  } finally {
    await Promise.all(targets.map((t) => t.stop()))
    await generator.close()
    removeTempDir(root)
  }
}

await main()
