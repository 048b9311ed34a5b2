// Load generators behind one interface: wrk (C, epoll, cheap on CPU — preferred, since it shares the
// 2 cores with the server under test), autocannon (Node; run in a child process, see autocannon-child.ts)
// and open-loop (node:http at a fixed rate, each connection on its own schedule; open-loop-child.ts). wrk
// cannot hold a rate (wrk2 is not packaged in Debian): the half-load and --rate runs of run.ts use open-loop
// for bodies of 64 KiB and more, autocannon (`overallRate`) for smaller ones and for the sustained
// scenarios' fixed-rate steps.

import { fork, spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Result as AutocannonResult } from 'autocannon'
import { track, stopChild } from './processes.js'

export type GeneratorName = 'wrk' | 'autocannon' | 'open-loop'

export interface LoadSpec {
  url: string
  /** Sent on every request, next to the body. */
  headers: Readonly<Record<string, string>>
  bodyFile: string
  connections: number
  durationS: number
  /** Fixed total request rate (autocannon only). Without it: as fast as the server answers (closed loop). */
  overallRate?: number
  /** Also report latency per status code (autocannon only): how fast refusals (503) are, apart from 200s. */
  byStatus?: boolean
}

/** Latency of the answers with one status code (ms, autocannon's per-response times). */
export interface StatusLatency {
  count: number
  p50: number
  p99: number
  max: number
}

export interface LoadResult {
  generator: GeneratorName
  /** Wall time the generator measured over. */
  durationS: number
  /** Completed requests, whatever their status. */
  requests: number
  non2xx: number
  /** Connection errors, resets and timeouts. */
  errors: number
  errorDetail: string
  latencyMs: { p50: number; p99: number; max: number; mean: number }
  /** With `byStatus`: latency per status code ("200", "503", …). */
  byStatus?: Record<string, StatusLatency>
}

export interface LoadGenerator {
  readonly name: GeneratorName
  run(spec: LoadSpec): Promise<LoadResult>
  close(): Promise<void>
}

// ---- wrk ----------------------------------------------------------------------------------------------

export function wrkAvailable(): boolean {
  const out = spawnSync('wrk', ['--version'], { encoding: 'utf8' })
  return out.error === undefined && /^wrk \S+ \[/m.test(`${out.stdout}${out.stderr}`)
}

/**
 * Tries `apt-get install wrk` (Debian package "wrk"): directly as root, else through non-interactive sudo.
 * Never prompts; returns whether wrk is usable afterwards.
 */
export function installWrk(): boolean {
  const asRoot = process.getuid?.() === 0
  const aptGet = (...args: string[]): boolean =>
    spawnSync(asRoot ? 'apt-get' : 'sudo', [...(asRoot ? [] : ['-n', 'apt-get']), ...args], {
      stdio: 'inherit',
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      timeout: 300_000,
    }).status === 0
  process.stderr.write(`bench: installing wrk with ${asRoot ? 'apt-get' : 'sudo -n apt-get'}\n`)
  const install = (): boolean => aptGet('install', '-y', '--no-install-recommends', 'wrk')
  // A stale package index is the usual reason the first attempt fails.
  return (install() || (aptGet('update') && install())) && wrkAvailable()
}

/** A Lua string literal; only printable ASCII is expected in bench headers and paths. */
function luaString(s: string): string {
  if (!/^[\x20-\x7e]*$/.test(s)) throw new Error(`not printable ASCII: ${JSON.stringify(s)}`)
  return `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`
}

/** wrk prints this line from `done()`; the harness parses it. Latencies are in microseconds. */
const WRK_DONE = `
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_WRK {"duration_us":%d,"requests":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,' ..
    '"p50_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\\n',
    summary.duration, summary.requests, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max, latency.mean))
end
`

interface WrkSummary {
  duration_us: number
  requests: number
  connect: number
  read: number
  write: number
  status: number
  timeout: number
  p50_us: number
  p99_us: number
  max_us: number
  mean_us: number
}

class Wrk implements LoadGenerator {
  readonly name = 'wrk'
  private scripts = 0
  constructor(
    private readonly workDir: string,
    private readonly threads: number,
  ) {}

  async run(spec: LoadSpec): Promise<LoadResult> {
    if (spec.overallRate !== undefined) throw new Error('wrk cannot hold a fixed rate; use autocannon')
    if (spec.byStatus === true) throw new Error('wrk cannot time answers per status; use autocannon')
    const script = join(this.workDir, `wrk-${this.scripts++}.lua`)
    const headerLines = Object.entries({ 'content-type': 'application/json', ...spec.headers })
      .map(([k, v]) => `wrk.headers[${luaString(k)}] = ${luaString(v)}`)
      .join('\n')
    writeFileSync(
      script,
      `wrk.method = "POST"
local f = assert(io.open(${luaString(spec.bodyFile)}, "rb"))
wrk.body = f:read("*a")
f:close()
${headerLines}
${WRK_DONE}`,
    )
    const args = [
      `-t${Math.min(this.threads, spec.connections)}`,
      `-c${spec.connections}`,
      `-d${spec.durationS}s`,
      '--timeout',
      '10s',
      '-s',
      script,
      spec.url,
    ]
    const child = track(spawn('wrk', args, { stdio: ['ignore', 'pipe', 'pipe'] }))
    let out = ''
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()))
    child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString()))
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
    const line = /^BENCH_WRK (.*)$/m.exec(out)?.[1]
    if (code !== 0 || line === undefined) throw new Error(`wrk failed (exit ${code}):\n${out}`)
    const s = JSON.parse(line) as WrkSummary
    const errors = s.connect + s.read + s.write + s.timeout
    return {
      generator: 'wrk',
      durationS: s.duration_us / 1e6,
      requests: s.requests,
      non2xx: s.status, // wrk counts answers with status > 399
      errors,
      errorDetail:
        errors === 0 ? '' : `connect ${s.connect}, read ${s.read}, write ${s.write}, timeout ${s.timeout}`,
      latencyMs: { p50: s.p50_us / 1e3, p99: s.p99_us / 1e3, max: s.max_us / 1e3, mean: s.mean_us / 1e3 },
    }
  }

  async close(): Promise<void> {}
}

// ---- autocannon (in a child process) -------------------------------------------------------------------

export interface AutocannonRun {
  url: string
  headers: Record<string, string>
  bodyFile: string
  connections: number
  durationS: number
  timeoutS: number
  overallRate?: number
  byStatus?: boolean
}

export type ParentMessage = { kind: 'run'; id: number; options: AutocannonRun }
export type ChildMessage =
  | { kind: 'ready' }
  | { kind: 'result'; id: number; result: AutocannonResult; byStatus?: Record<string, StatusLatency> }
  | { kind: 'error'; id: number; message: string }

/**
 * A load generator's own process (autocannon-child.ts, open-loop-child.ts), forked with an IPC channel: one
 * `run` message per load run, answered by `result` or `error`. tsx is only the module loader of the child:
 * it transpiles once at start, then the generator runs as is.
 */
class GeneratorProcess<Options, Answer extends { kind: 'result'; id: number }> {
  private child: ChildProcess | undefined
  private ready: Promise<void> | undefined
  private nextId = 0
  private readonly pending = new Map<number, { resolve: (a: Answer) => void; reject: (e: Error) => void }>()

  constructor(
    private readonly script: string,
    private readonly name: string,
  ) {}

  private start(): Promise<void> {
    const child = track(
      fork(new URL(this.script, import.meta.url).pathname, [], {
        execArgv: ['--import', 'tsx'],
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      }),
    )
    this.child = child
    return new Promise((resolve, reject) => {
      child.on(
        'message',
        (message: { kind: 'ready' } | Answer | { kind: 'error'; id: number; message: string }) => {
          if (message.kind === 'ready') return resolve()
          const waiter = this.pending.get(message.id)
          this.pending.delete(message.id)
          if (message.kind === 'result') waiter?.resolve(message)
          else waiter?.reject(new Error(`${this.name}: ${(message as { message: string }).message}`))
        },
      )
      child.once('exit', (code) => {
        const err = new Error(`${this.name} child exited (${code})`)
        reject(err)
        for (const waiter of this.pending.values()) waiter.reject(err)
        this.pending.clear()
        this.child = undefined
        this.ready = undefined
      })
    })
  }

  async run(options: Options): Promise<Answer> {
    this.ready ??= this.start()
    await this.ready
    const id = this.nextId++
    return new Promise<Answer>((resolve, reject) => {
      this.pending.set(id, { resolve, reject })
      this.child?.send({ kind: 'run', id, options })
    })
  }

  async close(): Promise<void> {
    if (this.child) {
      this.child.disconnect()
      await stopChild(this.child, 2_000)
    }
  }
}

class Autocannon implements LoadGenerator {
  readonly name = 'autocannon'
  private readonly process = new GeneratorProcess<AutocannonRun, Extract<ChildMessage, { kind: 'result' }>>(
    './autocannon-child.ts',
    'autocannon',
  )

  async run(spec: LoadSpec): Promise<LoadResult> {
    const { result, byStatus } = await this.process.run({
      url: spec.url,
      headers: { 'content-type': 'application/json', ...spec.headers },
      bodyFile: spec.bodyFile,
      connections: spec.connections,
      durationS: spec.durationS,
      timeoutS: 10,
      ...(spec.overallRate !== undefined ? { overallRate: spec.overallRate } : {}),
      ...(spec.byStatus === true ? { byStatus: true } : {}),
    })
    const errors = result.errors + result.timeouts + result.resets
    const codes = Object.entries(result.statusCodeStats)
      .filter(([code]) => !code.startsWith('2'))
      .map(([code, { count }]) => `${code}×${count}`)
    return {
      generator: 'autocannon',
      durationS: result.duration,
      requests: result.requests.total,
      non2xx: result.non2xx,
      errors,
      errorDetail: [
        errors > 0 ? `errors ${result.errors}, timeouts ${result.timeouts}, resets ${result.resets}` : '',
        codes.length > 0 ? `status ${codes.join(' ')}` : '',
      ]
        .filter(Boolean)
        .join('; '),
      latencyMs: {
        p50: result.latency.p50,
        p99: result.latency.p99,
        max: result.latency.max,
        mean: result.latency.mean,
      },
      ...(byStatus !== undefined ? { byStatus } : {}),
    }
  }

  close(): Promise<void> {
    return this.process.close()
  }
}

// ---- open loop (in a child process) --------------------------------------------------------------------

export interface OpenLoopRun {
  url: string
  headers: Record<string, string>
  bodyFile: string
  connections: number
  durationS: number
  /** Requests per second over all connections. */
  rate: number
  timeoutS: number
}

export type OpenLoopResult = Omit<LoadResult, 'generator' | 'byStatus'> & {
  byStatus: Record<string, StatusLatency>
}
export type OpenLoopParentMessage = { kind: 'run'; id: number; options: OpenLoopRun }
export type OpenLoopChildMessage =
  | { kind: 'ready' }
  | { kind: 'result'; id: number; result: OpenLoopResult }
  | { kind: 'error'; id: number; message: string }

/**
 * Fixed-rate runs only (`overallRate` required): each connection sends on its own schedule and latency
 * counts from the scheduled time (open-loop-child.ts). Answers are timed per status always.
 */
class OpenLoop implements LoadGenerator {
  readonly name = 'open-loop'
  private readonly process = new GeneratorProcess<
    OpenLoopRun,
    Extract<OpenLoopChildMessage, { kind: 'result' }>
  >('./open-loop-child.ts', 'open-loop')

  async run(spec: LoadSpec): Promise<LoadResult> {
    if (spec.overallRate === undefined) throw new Error('the open-loop generator needs a rate (overallRate)')
    const { result } = await this.process.run({
      url: spec.url,
      headers: { 'content-type': 'application/json', ...spec.headers },
      bodyFile: spec.bodyFile,
      connections: spec.connections,
      durationS: spec.durationS,
      rate: spec.overallRate,
      timeoutS: 10,
    })
    const { byStatus, ...rest } = result
    return { generator: 'open-loop', ...rest, ...(spec.byStatus === true ? { byStatus } : {}) }
  }

  close(): Promise<void> {
    return this.process.close()
  }
}

export function createGenerator(name: GeneratorName, workDir: string, threads = 1): LoadGenerator {
  if (name === 'wrk') return new Wrk(workDir, threads)
  return name === 'open-loop' ? new OpenLoop() : new Autocannon()
}
