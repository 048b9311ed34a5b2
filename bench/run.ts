// The benchmark harness: for each scenario, streamgate (dist/, a temp config and data dir) and the bare
// node:http baseline (bench/baseline-server.ts) run side by side on loopback, get the same load from the
// same generator for the same time, and the table shows streamgate/baseline ratios measured in this run
// (SPEC section 10, STYLE.md "Tests and benchmarks"). Absolute numbers on a shared 2-core machine are noise;
// ratios from one run are the signal.
//
//   npm run bench -- [--scenario NAME[,NAME]] [--duration S] [--connections N] [--rounds N] [--warmup S]
//                    [--generator auto|wrk|autocannon] [--install-wrk] [--threads N]
//                    [--half-load] [--rate R] [--json FILE] [--profile DIR] [--steps N] [--gateway-config JSON]
//
// Scenarios of kind sustained/fanout (bench/sustained.ts) run without a baseline: long runs whose figures are
// delivery against acceptance. See bench/README.md for what the numbers mean.

import { answerProblem } from './answers.js'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import {
  cpSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { cpus, freemem, totalmem } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import ts from 'typescript'
import { createGenerator, installWrk, wrkAvailable, type GeneratorName, type LoadGenerator } from './load.js'
import type { LoadResult, LoadSpec } from './load.js'
import { hasExited, makeTempDir, removeTempDir, stopChild, track } from './processes.js'
import { RssSampler, cpuSeconds, hwmBytes, processTree, waitForIdle } from './proc-stats.js'
import { freePort } from '../scripts/backends/daemon.js'
import { lazyBackends, sinkConfig, type Backends } from './sinks.js'
import { SCENARIOS, findScenario, type Scenario } from './scenarios.js'
import {
  runSustainedScenario,
  sustainedFailures,
  sustainedReport,
  type SustainedResult,
  deepMerge,
} from './sustained.js'
import { NODE_FLAGS } from '../src/runtime-flags.js'

const REPO = resolve(new URL('..', import.meta.url).pathname)
type TargetName = 'streamgate' | 'baseline'

// ---- options -------------------------------------------------------------------------------------------

const HELP = `usage: npm run bench -- [options]
  --scenario NAME[,NAME]   scenarios to run (repeatable); default: ${SCENARIOS.filter((s) => s.optIn !== true)
    .map((s) => s.name)
    .join(', ')}
                           with the real backends (started if not up): ${SCENARIOS.filter(
                             (s) => s.optIn === true,
                           )
                             .map((s) => s.name)
                             .join(', ')}
  --duration S             seconds of load per measured run (default 10; sustained/fanout: 60 per phase)
  --connections N          concurrent keep-alive connections (default 16; sustained/fanout: 32)
  --rounds N               measured runs per target, alternating order; medians are reported (default 2)
  --warmup S               seconds of unmeasured load per target before the rounds (default 2)
  --generator G            auto | wrk | autocannon (default auto: wrk if installed)
  --install-wrk            apt-get install wrk if it is missing (root or passwordless sudo)
  --threads N              wrk threads (default 1: leave the other core to the server)
  --half-load              after the rounds, p50/p99 at half of each target's own max req/s (fixed rate)
  --rate R                 like --half-load, at a fixed R requests/s for both targets
  --json FILE              also write the raw results as JSON
  --node-arg FLAG          a node flag for streamgate only, not the baseline (repeatable), e.g.
                           --node-arg=--max-semi-space-size=8 (NODE_OPTIONS would reach both)
  --profile DIR            run streamgate with --cpu-prof into DIR and print its top self-time functions
                           (profiling slows streamgate: do not quote those ratios)
  --steps N                sustained/fanout: fixed-rate runs in the search for the sustainable rate (default 4)
  --gateway-config JSON    merged over the generated streamgate config (every scenario), e.g.
                           '{"spool":{"maxBytes":268435456}}' or a later build's admission-control keys
`

interface Options {
  scenarios: Scenario[]
  durationS: number
  connections: number
  rounds: number
  warmupS: number
  generator: 'auto' | GeneratorName
  installWrk: boolean
  threads: number
  halfLoad: boolean
  rate: number | undefined
  json: string | undefined
  profileDir: string | undefined
  /** --node-arg: node flags for streamgate's process only. */
  nodeArgs: string[]
  /** --duration / --connections / --steps as given (sustained scenarios have their own defaults). */
  given: { durationS: number | undefined; connections: number | undefined; steps: number | undefined }
  gatewayConfig: Record<string, unknown> | undefined
}

function positive(name: string, value: string | undefined, fallback: number, integer = true): number {
  if (value === undefined) return fallback
  const n = Number(value)
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) {
    throw new UsageError(`--${name} must be a positive ${integer ? 'integer' : 'number'}, got "${value}"`)
  }
  return n
}

class UsageError extends Error {}

function parseOptions(argv: string[]): Options | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      scenario: { type: 'string', multiple: true },
      duration: { type: 'string' },
      connections: { type: 'string' },
      rounds: { type: 'string' },
      warmup: { type: 'string' },
      generator: { type: 'string' },
      'install-wrk': { type: 'boolean', default: false },
      threads: { type: 'string' },
      'half-load': { type: 'boolean', default: false },
      rate: { type: 'string' },
      json: { type: 'string' },
      profile: { type: 'string' },
      'node-arg': { type: 'string', multiple: true },
      steps: { type: 'string' },
      'gateway-config': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  })
  if (values.help) {
    process.stdout.write(HELP)
    return undefined
  }
  const names = (values.scenario ?? []).flatMap((s) => s.split(',')).filter(Boolean)
  const scenarios =
    names.length === 0 ? SCENARIOS.filter((s) => s.optIn !== true) : names.map((name) => findScenario(name))
  const unknown = names.filter((_, i) => scenarios[i] === undefined)
  if (unknown.length > 0) {
    throw new UsageError(
      `unknown scenario ${unknown.join(', ')}; known: ${SCENARIOS.map((s) => s.name).join(', ')}`,
    )
  }
  const generator = values.generator ?? 'auto'
  if (generator !== 'auto' && generator !== 'wrk' && generator !== 'autocannon') {
    throw new UsageError(`--generator must be auto, wrk or autocannon, got "${generator}"`)
  }
  return {
    scenarios: scenarios as Scenario[],
    durationS: positive('duration', values.duration, 10, false),
    connections: positive('connections', values.connections, 16),
    rounds: positive('rounds', values.rounds, 2),
    warmupS: values.warmup === '0' ? 0 : positive('warmup', values.warmup, 2, false),
    generator,
    installWrk: values['install-wrk'],
    threads: positive('threads', values.threads, 1),
    halfLoad: values['half-load'],
    rate: values.rate === undefined ? undefined : positive('rate', values.rate, 0, false),
    json: values.json,
    profileDir: values.profile === undefined ? undefined : resolve(values.profile),
    nodeArgs: values['node-arg'] ?? [],
    given: {
      durationS: values.duration === undefined ? undefined : positive('duration', values.duration, 10, false),
      connections:
        values.connections === undefined ? undefined : positive('connections', values.connections, 16),
      steps: values.steps === undefined ? undefined : positive('steps', values.steps, 3),
    },
    gatewayConfig: gatewayConfigOption(values['gateway-config']),
  }
}

function gatewayConfigOption(value: string | undefined): Record<string, unknown> | undefined {
  if (value === undefined) return undefined
  let parsed: unknown
  try {
    parsed = JSON.parse(value)
  } catch (err) {
    throw new UsageError(`--gateway-config must be JSON: ${(err as Error).message}`)
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new UsageError('--gateway-config must be a JSON object')
  }
  return parsed as Record<string, unknown>
}

// ---- targets -------------------------------------------------------------------------------------------

interface Target {
  name: TargetName
  child: ChildProcess
  pid: number
  url: string
  /** The last few KB of the child's stdout/stderr, for error messages. */
  output(): string
  /** Records the server counted since it started, and whether it still has records to deliver. */
  counters(): Promise<ServerCounters | undefined>
}

interface ServerCounters {
  records: number
  /** Records accepted but not yet delivered to every sink (streamgate only; 0 for the baseline). */
  lag: number
}

/** Sums a Prometheus counter/gauge over the series whose labels contain `labelFilter`. */
function sumMetric(text: string, name: string, labelFilter = ''): number | undefined {
  let sum: number | undefined
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || (line[name.length] !== '{' && line[name.length] !== ' ')) continue
    if (!line.includes(labelFilter)) continue
    const value = Number(line.slice(line.lastIndexOf(' ') + 1))
    if (Number.isFinite(value)) sum = (sum ?? 0) + value
  }
  return sum
}

async function fetchText(url: URL): Promise<string | undefined> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(5_000) })
    const text = await res.text()
    return res.ok ? text : undefined
  } catch {
    return undefined
  }
}

/** streamgate's own figures from GET /metrics (SPEC section 8); undefined if the names ever change. */
async function streamgateCounters(base: URL, streamId: string): Promise<ServerCounters | undefined> {
  const text = await fetchText(new URL('/metrics', base))
  if (text === undefined) return undefined
  const records = sumMetric(text, 'streamgate_records_accepted_total', `stream="${streamId}"`)
  if (records === undefined) return undefined
  return { records, lag: sumMetric(text, 'streamgate_sink_lag_records') ?? 0 }
}

async function baselineCounters(base: URL): Promise<ServerCounters | undefined> {
  const text = await fetchText(new URL('/stats', base))
  if (text === undefined) return undefined
  return { records: (JSON.parse(text) as { records: number }).records, lag: 0 }
}

function startTarget(name: TargetName, args: string[], port: number, streamId: string): Target {
  const child = track(spawn(process.execPath, args, { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] }))
  if (child.pid === undefined) throw new Error(`could not start ${name}`)
  let tail = ''
  const keep = (chunk: Buffer): void => {
    tail = (tail + chunk.toString()).slice(-4096)
  }
  child.stdout?.on('data', keep)
  child.stderr?.on('data', keep)
  const base = new URL(`http://127.0.0.1:${port}/`)
  return {
    name,
    child,
    pid: child.pid,
    url: new URL(`/ingest/${encodeURIComponent(streamId)}`, base).href,
    output: () => tail,
    counters: () => (name === 'streamgate' ? streamgateCounters(base, streamId) : baselineCounters(base)),
  }
}

async function waitHealthy(target: Target, timeoutMs = 20_000): Promise<void> {
  const health = new URL('/healthz', target.url)
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (hasExited(target.child)) {
      throw new Error(`${target.name} exited before it was healthy:\n${target.output()}`)
    }
    try {
      const res = await fetch(health, { signal: AbortSignal.timeout(1_000) })
      await res.arrayBuffer()
      if (res.ok) return
    } catch {
      // not listening yet
    }
    await sleep(100)
  }
  throw new Error(`${target.name} not healthy after ${timeoutMs} ms:\n${target.output()}`)
}

function streamgateConfig(
  scenario: Scenario,
  dir: string,
  sink: Record<string, unknown>,
  merged: Record<string, unknown> = {},
): object {
  return deepMerge(
    {
      server: { host: '127.0.0.1', port: 0 },
      log: { level: 'warn' },
      dataDir: dir,
      // The lag budget off: these scenarios measure how fast the gateway accepts, beside a baseline that
      // delivers nothing. With it on, a lane a few seconds behind within the run turned 40 % of the requests
      // into 503s (2026-12-04) and made every ratio "not comparable"; delivery keeping pace is what the
      // sustained and fanout scenarios measure, with admission on. --gateway-config can set it back.
      spool: { dir: join(dir, 'spool'), maxLagSeconds: 0 },
      sinks: { out: sink },
      streams: { [scenario.streamId]: { ...scenario.stream, sinks: ['out'] } },
    },
    merged,
  )
}

/**
 * The baseline, transpiled once per run to a plain .mjs and started with bare `node`: no loader thread, no
 * esbuild helper process and no transpiling in the measured process (tsx would add ~30 MB RSS).
 */
function transpileBaseline(dir: string): string {
  const source = readFileSync(join(REPO, 'bench/baseline-server.ts'), 'utf8')
  const out = ts.transpileModule(source, {
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
    fileName: 'baseline-server.ts',
  })
  const file = join(dir, 'baseline-server.mjs')
  writeFileSync(file, out.outputText)
  return file
}

// ---- checks and measurements ---------------------------------------------------------------------------

interface AnswerCheck {
  target: TargetName
  when: 'before' | 'after'
  ok: boolean
  detail: string
}

/** POSTs the body a few times and checks each answer is 200 with `accepted` = records per request. */
async function checkAnswers(
  target: Target,
  scenario: Scenario,
  body: Buffer,
  when: AnswerCheck['when'],
  samples = 3,
): Promise<AnswerCheck> {
  const problem = await answerProblem(target.url, scenario, body, samples)
  if (problem !== undefined) return { target: target.name, when, ok: false, detail: problem }
  return {
    target: target.name,
    when,
    ok: true,
    detail: `${samples}× 200, accepted ${scenario.recordsPerRequest}`,
  }
}

interface Measurement {
  target: TargetName
  round: number
  load: LoadResult
  reqPerS: number
  recordsPerS: number
  /** Server CPU while the generator ran. */
  cpuWindowS: number
  /** Server CPU from the start of the load until it had delivered everything and gone idle. */
  cpuS: number
  /** Records the server itself counted over the same span (undefined: it could not tell). */
  serverRecords: number | undefined
  recordsPerCpuS: number
  /** How rec/CPU-s was computed: server-counted records ÷ CPU until settled, or generator-counted ÷ window. */
  recordsPerCpuMethod: 'server' | 'window'
  peakRssBytes: number
  /** After the load stopped: until every accepted record was delivered to the sinks (0 for the baseline). */
  drainMs: number
}

/**
 * After a load run: until nothing is left to deliver (at most `maxMs`), then until the CPU is idle. Returns
 * how long delivery took after the load stopped (ms, 100 ms resolution): the end-to-end delivery lag.
 */
async function settle(target: Target, pids: readonly number[], maxMs = 60_000): Promise<number> {
  const started = performance.now()
  const deadline = Date.now() + maxMs
  let drainMs: number
  for (;;) {
    const counters = await target.counters()
    drainMs = performance.now() - started
    if (counters === undefined || counters.lag === 0 || Date.now() > deadline) break
    await sleep(100)
  }
  await waitForIdle(pids)
  return drainMs
}

/**
 * One measured run. rec/CPU-s is records the server counted ÷ the CPU it spent, both from just before the
 * load until the server has delivered everything and gone idle. That charges work a server defers past its
 * answer (the spool → sink lanes) and counts the requests still queued when the generator stops together with
 * their CPU — where generator-counted requests ÷ CPU would miss one or the other. If a server cannot report
 * its count, the fallback is generator-counted records ÷ CPU during the load window.
 */
async function measure(
  target: Target,
  scenario: Scenario,
  generator: LoadGenerator,
  spec: LoadSpec,
  round: number,
): Promise<Measurement> {
  const pids = processTree(target.pid)
  await settle(target, pids)
  const before = await target.counters()
  const cpu0 = cpuSeconds(pids)
  const sampler = new RssSampler(pids)
  const load = await generator.run(spec)
  const cpuWindowS = cpuSeconds(pids) - cpu0
  const drainMs = await settle(target, pids)
  const cpuS = cpuSeconds(pids) - cpu0
  const peakRssBytes = sampler.stop()
  const after = await target.counters()
  const serverRecords = before && after ? after.records - before.records : undefined
  const reqPerS = load.requests / load.durationS
  const generatorRecords = load.requests * scenario.recordsPerRequest
  const byServer = serverRecords !== undefined && cpuS > 0
  return {
    target: target.name,
    round,
    load,
    reqPerS,
    recordsPerS: reqPerS * scenario.recordsPerRequest,
    cpuWindowS,
    cpuS,
    serverRecords,
    recordsPerCpuS: byServer ? serverRecords / cpuS : cpuWindowS > 0 ? generatorRecords / cpuWindowS : 0,
    recordsPerCpuMethod: byServer ? 'server' : 'window',
    peakRssBytes,
    drainMs,
  }
}

interface TargetSummary {
  target: TargetName
  reqPerS: number
  recordsPerS: number
  recordsPerCpuS: number
  p50Ms: number
  p99Ms: number
  peakRssBytes: number
  /** Median time from the end of the load until everything was delivered. */
  drainMs: number
  /** Largest relative distance of a round's req/s from the median. */
  spread: number
  non2xx: number
  errors: number
  errorDetail: string
  hwmBytes: number
}

interface FixedRateRun {
  target: TargetName
  rate: number
  reqPerS: number
  p50Ms: number
  p99Ms: number
  maxMs: number
  peakRssBytes: number
  non2xx: number
  errors: number
  errorDetail: string
}

interface ScenarioResult {
  name: string
  description: string
  streamId: string
  recordsPerRequest: number
  bodyBytes: number
  checks: AnswerCheck[]
  rounds: Measurement[]
  summary: TargetSummary[]
  ratio: { reqPerS: number; recordsPerCpuS: number; p99: number; peakRss: number }
  fixedRate: FixedRateRun[]
  profileTop?: string[]
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2
}

function summarise(target: Target, rounds: Measurement[]): TargetSummary {
  const mine = rounds.filter((m) => m.target === target.name)
  const reqPerS = median(mine.map((m) => m.reqPerS))
  return {
    target: target.name,
    reqPerS,
    recordsPerS: median(mine.map((m) => m.recordsPerS)),
    recordsPerCpuS: median(mine.map((m) => m.recordsPerCpuS)),
    p50Ms: median(mine.map((m) => m.load.latencyMs.p50)),
    p99Ms: median(mine.map((m) => m.load.latencyMs.p99)),
    peakRssBytes: Math.max(...mine.map((m) => m.peakRssBytes)),
    drainMs: median(mine.map((m) => m.drainMs)),
    spread: Math.max(...mine.map((m) => (reqPerS > 0 ? Math.abs(m.reqPerS - reqPerS) / reqPerS : 0))),
    non2xx: mine.reduce((n, m) => n + m.load.non2xx, 0),
    errors: mine.reduce((n, m) => n + m.load.errors, 0),
    errorDetail: mine
      .map((m) => m.load.errorDetail)
      .filter(Boolean)
      .join('; '),
    hwmBytes: hwmBytes(target.pid),
  }
}

// ---- profiles ------------------------------------------------------------------------------------------

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[]
  samples: number[]
  timeDeltas: number[]
}

/**
 * Top self-time functions of a V8 .cpuprofile, then self time by script (node: internals and V8's
 * pseudo-frames such as "(garbage collector)" grouped as they are), idle time excluded. Time spent inside a
 * builtin like JSON.parse is charged to the JavaScript function that called it.
 */
function summariseProfile(file: string, top = 15): string[] {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile
  const frameOf = new Map(profile.nodes.map((n) => [n.id, n.callFrame]))
  const byFunction = new Map<string, number>()
  const byScript = new Map<string, number>()
  const add = (map: Map<string, number>, key: string, us: number): void => {
    map.set(key, (map.get(key) ?? 0) + us)
  }
  let total = 0
  profile.samples.forEach((id, i) => {
    const frame = frameOf.get(id)
    if (frame === undefined || frame.functionName === '(idle)') return
    // file:///…/build/dist/x.js (the snapshot) and file:///…/node_modules/y.js read as dist/x.js, node_modules/y.js
    const script = frame.url
      ? frame.url.replace(/^file:\/\/.*?\/(?=(dist|node_modules)\/)/, '')
      : frame.functionName || '(native)'
    const where = frame.url ? ` ${script}:${frame.lineNumber + 1}` : ''
    const us = profile.timeDeltas[i] ?? 0
    add(byFunction, `${frame.functionName || '(anonymous)'}${where}`, us)
    add(byScript, script.startsWith('node:') ? 'node: internals' : script, us)
    total += us
  })
  const lines = (map: Map<string, number>, n: number): string[] =>
    [...map.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(
        ([key, us]) =>
          `${((100 * us) / total).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(0).padStart(6)} ms  ${key}`,
      )
  return [
    `busy ${(total / 1e6).toFixed(1)} s; by function:`,
    ...lines(byFunction, top),
    'by script:',
    ...lines(byScript, 10),
  ]
}

// ---- one scenario --------------------------------------------------------------------------------------

/**
 * Fixed-rate runs of bodies this large use the open-loop generator, smaller ones autocannon. At half load
 * (2026-12-05) autocannon put the bare server's p99 on 0.9 MB bodies at 127 ms where the open loop measured
 * 8–16 ms; on ~1 KB bodies at 6–10k req/s the open loop's node:http client took the CPU itself (p50 95 ms
 * for streamgate, 78 ms p99 for the bare server) where autocannon measured 12–19 / 2 ms.
 */
const OPEN_LOOP_MIN_BODY_BYTES = 64 * 1024

async function runScenario(
  scenario: Scenario,
  index: number,
  options: Options,
  generator: LoadGenerator,
  /** The generator of the --half-load / --rate runs, by body size (OPEN_LOOP_MIN_BODY_BYTES). */
  fixedRateGenerator: (bodyBytes: number) => LoadGenerator,
  baselineScript: string,
  gatewayCli: string,
  backends: Backends,
): Promise<ScenarioResult> {
  const dir = makeTempDir(`streamgate-bench-${scenario.name}-`)
  const targets: Target[] = []
  try {
    const body = scenario.generate()
    const bodyFile = join(dir, 'body')
    writeFileSync(bodyFile, body)
    const configFile = join(dir, 'streamgate.json')
    const sink = await sinkConfig(scenario.sink ?? 'file', dir, scenario.name, backends)
    writeFileSync(
      configFile,
      JSON.stringify(streamgateConfig(scenario, dir, sink, options.gatewayConfig), null, 2),
    )
    log(
      `\n== ${scenario.name}: ${scenario.description}\n   body ${formatBytes(body.length)}, ` +
        `${scenario.recordsPerRequest} record(s) per request`,
    )

    const profileArgs =
      options.profileDir === undefined
        ? []
        : [
            '--cpu-prof',
            '--cpu-prof-dir',
            options.profileDir,
            '--cpu-prof-name',
            `streamgate-${scenario.name}.cpuprofile`,
          ]
    const [sgPort, blPort] = [await freePort(), await freePort()]
    const gateway = startTarget(
      'streamgate',
      [
        ...NODE_FLAGS,
        ...options.nodeArgs,
        ...profileArgs,
        gatewayCli,
        'serve',
        '--config',
        configFile,
        '--port',
        String(sgPort),
      ],
      sgPort,
      scenario.streamId,
    )
    targets.push(gateway)
    const routes = JSON.stringify({ [scenario.streamId]: scenario.baselineParse })
    const baseline = startTarget(
      'baseline',
      [baselineScript, '--port', String(blPort), '--routes', routes],
      blPort,
      scenario.streamId,
    )
    targets.push(baseline)
    await Promise.all(targets.map((t) => waitHealthy(t)))

    const checks: AnswerCheck[] = []
    for (const target of targets) checks.push(await checkAnswers(target, scenario, body, 'before'))
    for (const c of checks.filter((c) => !c.ok)) log(`   !! ${c.target} answers wrong: ${c.detail}`)

    const spec = (target: Target, durationS: number): LoadSpec => ({
      url: target.url,
      headers: scenario.headers,
      bodyFile,
      connections: options.connections,
      durationS,
    })
    // ABBA: the order flips every round and every scenario, so drift on a shared machine hits both targets.
    const order = (round: number): Target[] => ((index + round) % 2 === 0 ? targets : [...targets].reverse())

    if (options.warmupS > 0) {
      for (const target of order(0)) {
        const warm = await generator.run(spec(target, options.warmupS))
        log(`   warm-up ${target.name}: ${formatInt(warm.requests / warm.durationS)} req/s`)
      }
    }
    const rounds: Measurement[] = []
    for (let round = 0; round < options.rounds; round++) {
      for (const target of order(round)) {
        const m = await measure(target, scenario, generator, spec(target, options.durationS), round)
        rounds.push(m)
        const bad = m.load.non2xx + m.load.errors
        log(
          `   round ${round + 1}/${options.rounds} ${target.name.padEnd(10)} ${formatInt(m.reqPerS).padStart(8)} req/s ` +
            `${formatInt(m.recordsPerCpuS).padStart(10)} rec/CPU-s  p99 ${formatMs(m.load.latencyMs.p99)}` +
            `  cpu ${m.cpuWindowS.toFixed(2)} s + ${(m.cpuS - m.cpuWindowS).toFixed(2)} s to settle` +
            (m.recordsPerCpuMethod === 'window' ? ' (no server count: rec/CPU-s from the load window)' : '') +
            (bad > 0 ? `  !! ${m.load.non2xx} non-2xx, ${m.load.errors} errors ${m.load.errorDetail}` : ''),
        )
      }
    }
    for (const target of targets) checks.push(await checkAnswers(target, scenario, body, 'after'))
    for (const c of checks.filter((c) => !c.ok && c.when === 'after')) {
      log(`   !! ${c.target} answers wrong after the load: ${c.detail}`)
    }
    const summary = targets.map((t) => summarise(t, rounds))

    const fixedRate: FixedRateRun[] = []
    if (options.halfLoad || options.rate !== undefined) {
      const fixed = fixedRateGenerator(body.length)
      for (const target of order(options.rounds)) {
        const max = summary.find((s) => s.target === target.name)?.reqPerS ?? 0
        const rate = options.rate ?? Math.max(1, Math.round(max / 2))
        const pids = processTree(target.pid)
        await settle(target, pids)
        const sampler = new RssSampler(pids)
        const load = await fixed.run({ ...spec(target, options.durationS), overallRate: rate })
        const run: FixedRateRun = {
          target: target.name,
          rate,
          reqPerS: load.requests / load.durationS,
          p50Ms: load.latencyMs.p50,
          p99Ms: load.latencyMs.p99,
          maxMs: load.latencyMs.max,
          peakRssBytes: sampler.stop(),
          non2xx: load.non2xx,
          errors: load.errors,
          errorDetail: load.errorDetail,
        }
        fixedRate.push(run)
        log(
          `   fixed rate ${target.name.padEnd(10)} ${formatInt(rate)} req/s asked, ${formatInt(run.reqPerS)} done, ` +
            `p50 ${formatMs(run.p50Ms)} p99 ${formatMs(run.p99Ms)}`,
        )
      }
    }

    const [sg, bl] = [summary[0], summary[1]] as [TargetSummary, TargetSummary]
    const result: ScenarioResult = {
      name: scenario.name,
      description: scenario.description,
      streamId: scenario.streamId,
      recordsPerRequest: scenario.recordsPerRequest,
      bodyBytes: body.length,
      checks,
      rounds,
      summary,
      ratio: {
        reqPerS: sg.reqPerS / bl.reqPerS,
        recordsPerCpuS: sg.recordsPerCpuS / bl.recordsPerCpuS,
        p99: sg.p99Ms / bl.p99Ms,
        peakRss: sg.peakRssBytes / bl.peakRssBytes,
      },
      fixedRate,
    }

    await Promise.all(targets.map((t) => stopChild(t.child, 10_000)))
    if (options.profileDir !== undefined) {
      const file = join(options.profileDir, `streamgate-${scenario.name}.cpuprofile`)
      if (existsSync(file)) {
        result.profileTop = summariseProfile(file)
        log(`   profile ${file}; top self time:\n${result.profileTop.map((l) => `     ${l}`).join('\n')}`)
      } else {
        log(`   !! no profile written (${readdirSync(options.profileDir).join(', ')})`)
      }
    }
    return result
  } finally {
    await Promise.all(targets.map((t) => stopChild(t.child, 5_000)))
    removeTempDir(dir)
  }
}

// ---- output --------------------------------------------------------------------------------------------

function log(line: string): void {
  process.stderr.write(`${line}\n`)
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}

function formatInt(n: number): string {
  return Math.round(n).toLocaleString('en-US')
}

function formatMs(ms: number): string {
  return `${ms < 10 ? ms.toFixed(2) : ms.toFixed(1)} ms`
}

function formatBytes(n: number): string {
  return n >= 1024 * 1024
    ? `${(n / 1024 / 1024).toFixed(n >= 10 * 1024 * 1024 ? 0 : 1)} MB`
    : `${(n / 1024).toFixed(1)} KB`
}

function formatRatio(r: number): string {
  return Number.isFinite(r) ? `${r.toFixed(2)}×` : 'n/a'
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: string[]): string =>
    `| ${cells.map((c, i) => (i < 2 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join(' | ')} |`
  const rule = `|${widths.map((w, i) => (i < 2 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`
  return [line(header), rule, ...rows.map(line)].join('\n')
}

function errorsCell(s: TargetSummary, checks: AnswerCheck[]): string {
  const parts: string[] = []
  if (s.non2xx > 0) parts.push(`${s.non2xx} non-2xx`)
  if (s.errors > 0) parts.push(`${s.errors} errors`)
  if (checks.some((c) => c.target === s.target && !c.ok)) parts.push('WRONG ANSWERS')
  return parts.length === 0 ? '0' : parts.join(', ')
}

function answeredRecords(m: Measurement, r: ScenarioResult): number {
  return (m.load.requests - m.load.non2xx) * r.recordsPerRequest
}

/** Everything that makes a run's figures not comparable: errors, wrong answers, miscounts. */
function failuresOf(results: ScenarioResult[]): string[] {
  return results.flatMap((r) => [
    ...r.rounds
      .filter((m) => m.serverRecords !== undefined && m.serverRecords < answeredRecords(m, r))
      .map(
        (m) =>
          `${r.name} ${m.target} round ${m.round + 1}: the server counted ${m.serverRecords} records, ` +
          `fewer than the ${answeredRecords(m, r)} its 2xx answers add up to`,
      ),
    ...r.summary
      .filter((s) => s.non2xx + s.errors > 0)
      .map((s) => `${r.name} ${s.target}: ${s.non2xx} non-2xx, ${s.errors} errors ${s.errorDetail}`),
    ...r.checks.filter((c) => !c.ok).map((c) => `${r.name} ${c.target} (${c.when} the load): ${c.detail}`),
    ...r.fixedRate
      .filter((f) => f.non2xx + f.errors > 0)
      .map(
        (f) => `${r.name} ${f.target} fixed rate: ${f.non2xx} non-2xx, ${f.errors} errors ${f.errorDetail}`,
      ),
  ])
}

function report(
  results: ScenarioResult[],
  generator: GeneratorName,
  options: Options,
  source: { commit: string; dirtySrcFiles: number },
): string {
  const rows: string[][] = []
  for (const r of results) {
    for (const s of r.summary) {
      rows.push([
        r.name,
        s.target,
        formatInt(s.reqPerS),
        formatInt(s.recordsPerS),
        formatInt(s.recordsPerCpuS),
        formatMs(s.p50Ms),
        formatMs(s.p99Ms),
        formatBytes(s.peakRssBytes),
        s.target === 'streamgate' ? formatMs(s.drainMs) : '',
        `±${(s.spread * 100).toFixed(0)}%`,
        errorsCell(s, r.checks),
      ])
    }
    rows.push([
      r.name,
      '**ratio sg/base**',
      `**${formatRatio(r.ratio.reqPerS)}**`,
      formatRatio(r.ratio.reqPerS),
      `**${formatRatio(r.ratio.recordsPerCpuS)}**`,
      '',
      formatRatio(r.ratio.p99),
      formatRatio(r.ratio.peakRss),
      '',
      '',
      '',
    ])
  }
  const lines = [
    `source: ${source.commit}${source.dirtySrcFiles > 0 ? ` + ${source.dirtySrcFiles} uncommitted src/schemas changes` : ''}`,
    `generator: ${generator} (${options.connections} connections, ${options.durationS} s × ${options.rounds} rounds per target, ` +
      `${options.warmupS} s warm-up; medians of the rounds; ± = largest distance of a round's req/s from the median)`,
    'rec/CPU-s: records the server counted ÷ its CPU seconds, from the start of the load until it had delivered everything',
    'drain: after the load stopped, until the sinks had every accepted record (end-to-end delivery lag; 100 ms steps)',
    '',
    table(
      [
        'scenario',
        'target',
        'req/s',
        'records/s',
        'rec/CPU-s',
        'p50',
        'p99',
        'peak RSS',
        'drain',
        'rounds',
        'errors',
      ],
      rows,
    ),
  ]
  const fixed = results.flatMap((r) => r.fixedRate.map((f) => ({ r, f })))
  if (fixed.length > 0) {
    lines.push(
      '',
      `fixed rate (bodies ≥ 64 KiB: open loop, node:http, each connection on its own schedule, latency from the scheduled time; smaller: autocannon, latency corrected for coordinated omission): ${options.rate !== undefined ? `${options.rate} req/s` : "half of each target's own max req/s"}`,
      '',
      table(
        ['scenario', 'target', 'asked req/s', 'done req/s', 'p50', 'p99', 'max', 'peak RSS', 'errors'],
        fixed.map(({ r, f }) => [
          r.name,
          f.target,
          formatInt(f.rate),
          formatInt(f.reqPerS),
          formatMs(f.p50Ms),
          formatMs(f.p99Ms),
          formatMs(f.maxMs),
          formatBytes(f.peakRssBytes),
          f.non2xx + f.errors === 0 ? '0' : `${f.non2xx} non-2xx, ${f.errors} errors`,
        ]),
      ),
    )
  }
  const failures = failuresOf(results)
  if (failures.length > 0) {
    lines.push('', 'RUNS WITH ERRORS (their figures are not comparable):', ...failures.map((f) => `  - ${f}`))
  }
  return lines.join('\n')
}

function machine(): Record<string, string | number> {
  return {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memTotalGiB: Math.round(totalmem() / 2 ** 30),
    memFreeGiB: Math.round(freemem() / 2 ** 30),
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
  }
}

/** Which source the figures are for: the commit, and how many files under src/ differ from it. */
function sourceState(): { commit: string; dirtySrcFiles: number } {
  const git = (...args: string[]): string =>
    spawnSync('git', args, { cwd: REPO, encoding: 'utf8' }).stdout?.trim() ?? ''
  const status = git('status', '--porcelain', '--', 'src', 'schemas')
  return {
    commit: git('rev-parse', '--short', 'HEAD') || 'unknown',
    dirtySrcFiles: status === '' ? 0 : status.split('\n').length,
  }
}

/** A fingerprint of dist/ (names, sizes, mtimes of the .js files). */
function distFingerprint(): string {
  const hash = createHash('sha1')
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) =>
      a.name.localeCompare(b.name),
    )) {
      const path = join(dir, entry.name)
      if (entry.isDirectory()) walk(path)
      else if (entry.name.endsWith('.js')) {
        const st = statSync(path)
        hash.update(`${path}\0${st.size}\0${st.mtimeMs}\n`)
      }
    }
  }
  walk(join(REPO, 'dist'))
  return hash.digest('hex')
}

/**
 * Copies dist/ (and schemas/, which dist/config/load.js finds at ../../schemas) to `dir` and returns the
 * copy's cli.js. Others build in the same checkout; without the copy, a rebuild mid-run would make later
 * scenarios measure a different gateway than earlier ones. `node_modules` is a symlink, so packages resolve
 * as in the repo; package.json is copied for `"type": "module"`. A copy racing a build is retried.
 */
function snapshotBuild(dir: string): string {
  for (let attempt = 0; ; attempt++) {
    const before = distFingerprint()
    cpSync(join(REPO, 'dist'), join(dir, 'dist'), { recursive: true })
    if (distFingerprint() === before) break
    if (attempt === 5) throw new Error('dist/ keeps changing (someone is building); try again')
    spawnSync('sleep', ['2'])
  }
  cpSync(join(REPO, 'schemas'), join(dir, 'schemas'), { recursive: true })
  cpSync(join(REPO, 'package.json'), join(dir, 'package.json'))
  symlinkSync(join(REPO, 'node_modules'), join(dir, 'node_modules'), 'dir')
  return join(dir, 'dist', 'cli.js')
}

/** What the sustained/fanout section of the report measured, and how it judges lag. */
function sustainedHeader(source: { commit: string; dirtySrcFiles: number }, options: Options): string {
  return [
    `SUSTAINED LOAD — source: ${source.commit}${source.dirtySrcFiles > 0 ? ` + ${source.dirtySrcFiles} uncommitted src/schemas changes` : ''}; ` +
      `generator: autocannon (child process); ${options.given.durationS ?? 60} s per phase, ` +
      `${options.given.connections ?? 32} connections at full load; machine ${JSON.stringify(machine())}`,
    'accepted: streamgate_records_accepted_total; delivered: streamgate_sink_records_delivered_total (per lane);',
    "lag: streamgate_sink_lag_records, scraped every 1 s; lag at end in records / seconds of that lane's delivery;",
    'lag growth: least-squares slope of the lag over the second half; lag bounded = growth ≤ 5 % of accepted rec/s',
    "and lag at end ≤ 5 s of delivery; drain: from the end of the load until the lane's lag was 0;",
    '503 p99 / 2xx p99: answer latency by status (autocannon, per response); sustainable rate: delivered rec/s of',
    'the highest fixed rate at which every lane stayed bounded, ≥ 99 % of answers were 2xx and the rate was kept.',
  ].join('\n')
}

// ---- main ----------------------------------------------------------------------------------------------

function chooseGenerator(options: Options): GeneratorName {
  if (options.generator === 'autocannon') return 'autocannon'
  if (wrkAvailable()) return 'wrk'
  if (options.installWrk && installWrk()) return 'wrk'
  if (options.generator === 'wrk') {
    throw new UsageError('--generator wrk: wrk is not installed (try --install-wrk)')
  }
  log('bench: wrk not found, using autocannon in a child process (pass --install-wrk to apt-get install wrk)')
  return 'autocannon'
}

async function main(): Promise<number> {
  const options = parseOptions(process.argv.slice(2))
  if (options === undefined) return 0
  if (!existsSync(join(REPO, 'dist/cli.js'))) {
    throw new UsageError('dist/cli.js is missing: run `npm run build` (npm run bench does)')
  }
  if (options.profileDir !== undefined) mkdirSync(options.profileDir, { recursive: true })
  const generatorName = chooseGenerator(options)
  const workDir = makeTempDir('streamgate-bench-')
  const backends = lazyBackends(log)
  const generator = createGenerator(generatorName, workDir, options.threads)
  let fixed: LoadGenerator | undefined
  const fixedRateGenerator = (): LoadGenerator =>
    (fixed ??= generatorName === 'autocannon' ? generator : createGenerator('autocannon', workDir))
  // --half-load / --rate: large bodies from node:http on its own schedule per connection
  // (bench/open-loop-child.ts), small ones from autocannon (OPEN_LOOP_MIN_BODY_BYTES).
  let openLoop: LoadGenerator | undefined
  const halfLoadGenerator = (bodyBytes: number): LoadGenerator =>
    bodyBytes >= OPEN_LOOP_MIN_BODY_BYTES
      ? (openLoop ??= createGenerator('open-loop', workDir))
      : fixedRateGenerator()
  const started = new Date()
  const source = sourceState()
  log(
    `bench: load generator ${generatorName}; source ${source.commit}` +
      `${source.dirtySrcFiles > 0 ? ` + ${source.dirtySrcFiles} uncommitted src/schemas changes` : ''}; ` +
      JSON.stringify(machine()),
  )
  try {
    const baselineScript = transpileBaseline(workDir)
    const gatewayCli = snapshotBuild(join(workDir, 'build'))
    const results: ScenarioResult[] = []
    const sustained: SustainedResult[] = []
    for (const [index, scenario] of options.scenarios.entries()) {
      if (scenario.kind !== undefined) {
        sustained.push(
          await runSustainedScenario(
            scenario,
            {
              durationS: options.given.durationS ?? 60,
              connections: options.given.connections ?? 32,
              steps: options.given.steps ?? 4,
              warmupS: options.warmupS,
              gatewayConfig: options.gatewayConfig,
            },
            fixedRateGenerator(),
            gatewayCli,
            backends,
            log,
          ),
        )
        continue
      }
      results.push(
        await runScenario(
          scenario,
          index,
          options,
          generator,
          halfLoadGenerator,
          baselineScript,
          gatewayCli,
          backends,
        ),
      )
    }
    if (results.length > 0) process.stdout.write(`\n${report(results, generatorName, options, source)}\n`)
    if (sustained.length > 0) {
      process.stdout.write(
        `\n${sustainedHeader(source, options)}\n${sustainedReport(sustained)}\n` +
          (sustainedFailures(sustained).length > 0
            ? `\nRUNS WITH ERRORS:\n${sustainedFailures(sustained)
                .map((f) => `  - ${f}`)
                .join('\n')}\n`
            : ''),
      )
    }
    log(`bench: done in ${((Date.now() - started.getTime()) / 1000).toFixed(0)} s`)
    if (options.json !== undefined) {
      const { scenarios: _scenarios, ...rest } = options
      writeFileSync(
        options.json,
        `${JSON.stringify({ date: started.toISOString(), machine: machine(), source, generator: generatorName, options: rest, results, sustained }, null, 2)}\n`,
      )
      log(`bench: raw results in ${options.json}`)
    }
    return failuresOf(results).length + sustainedFailures(sustained).length > 0 ? 1 : 0
  } finally {
    await generator.close()
    if (fixed !== undefined && fixed !== generator) await fixed.close()
    await openLoop?.close()
    await backends.close()
    removeTempDir(workDir)
  }
}

main().then(
  (code) => {
    process.exitCode = code
  },
  (err: unknown) => {
    process.stderr.write(err instanceof UsageError ? `bench: ${err.message}\n` : `${(err as Error).stack}\n`)
    process.exitCode = err instanceof UsageError ? 2 : 1
  },
)
