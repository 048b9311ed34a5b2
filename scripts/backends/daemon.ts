// Process plumbing shared by the backend scripts: detached spawn with a log file, PID + state files under
// `.backends/`, stop by PID (SIGTERM, grace period, SIGKILL), readiness polls that always time out with the
// tail of the server's log, and install commands with a heartbeat.
import { spawn } from 'node:child_process'
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import { createServer } from 'node:net'
import { dirname, join, resolve } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
export const BACKENDS_DIR = join(REPO_ROOT, '.backends')

const MAX_LOG_BYTES = 20 * 1024 * 1024

export type BackendName = 'kafka' | 's3' | 'kinesis'

export function log(name: string, message: string): void {
  process.stderr.write(`[backends:${name}] ${message}\n`)
}

export function pidFilePath(name: BackendName): string {
  return join(BACKENDS_DIR, `${name}.pid`)
}

function stateFilePath(name: BackendName): string {
  return join(BACKENDS_DIR, `${name}.json`)
}

export function logFilePath(name: BackendName): string {
  return join(BACKENDS_DIR, `${name}.log`)
}

/** What a running backend needs to be found again by another process (`up` → tests → `down`). */
export interface DaemonState {
  pid: number
  /** A string that must appear in /proc/<pid>/cmdline, so a reused PID is never mistaken for ours. */
  marker: string
  [key: string]: unknown
}

export function writeState(name: BackendName, state: DaemonState): void {
  mkdirSync(BACKENDS_DIR, { recursive: true })
  writeFileSync(pidFilePath(name), `${state.pid}\n`)
  writeFileSync(stateFilePath(name), `${JSON.stringify(state, null, 2)}\n`)
}

export function readState(name: BackendName): DaemonState | undefined {
  try {
    const state = JSON.parse(readFileSync(stateFilePath(name), 'utf8')) as DaemonState
    const pid = Number.parseInt(readFileSync(pidFilePath(name), 'utf8').trim(), 10)
    return Number.isInteger(pid) && pid > 0 ? { ...state, pid } : undefined
  } catch {
    return undefined
  }
}

export function clearState(name: BackendName): void {
  rmSync(pidFilePath(name), { force: true })
  rmSync(stateFilePath(name), { force: true })
}

/** True while `pid` runs and is ours (its command line contains `marker`); zombies count as gone. */
export function isRunning(pid: number, marker: string): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // Field 3 is the state; the command name before it is in parentheses and may contain spaces.
    const stateChar = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3)
    if (stateChar === 'Z' || stateChar === 'X') return false
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(marker)
  } catch {
    return false
  }
}

/** The live process recorded for `name`, or undefined after removing a stale PID file. */
export function liveState(name: BackendName): DaemonState | undefined {
  const state = readState(name)
  if (state && isRunning(state.pid, state.marker)) return state
  if (state || existsSync(pidFilePath(name))) clearState(name)
  return undefined
}

export interface SpawnSpec {
  name: BackendName
  command: string
  args: string[]
  env?: NodeJS.ProcessEnv
  cwd?: string
}

/**
 * Starts a server that outlives this process: its own process group, stdio appended to
 * `.backends/<name>.log`, unref'd. Returns the PID.
 */
export function spawnDetached(spec: SpawnSpec): number {
  mkdirSync(BACKENDS_DIR, { recursive: true })
  const logPath = logFilePath(spec.name)
  // Restarts append; keep one older generation once the log gets big.
  if (existsSync(logPath) && statSync(logPath).size > MAX_LOG_BYTES) renameSync(logPath, `${logPath}.1`)
  const fd = openSync(logPath, 'a')
  try {
    writeFileSync(fd, `\n--- ${new Date().toISOString()} starting ${spec.command} ${spec.args.join(' ')}\n`)
    const child = spawn(spec.command, spec.args, {
      cwd: spec.cwd ?? REPO_ROOT,
      env: spec.env ?? process.env,
      detached: true,
      stdio: ['ignore', fd, fd],
    })
    // A spawn error (ENOENT) arrives asynchronously; without a listener it would crash this process.
    child.on('error', (err) => log(spec.name, `spawn error: ${err.message}`))
    child.unref()
    if (child.pid === undefined) throw new Error(`${spec.name}: could not spawn ${spec.command}`)
    return child.pid
  } finally {
    closeSync(fd)
  }
}

/** SIGTERM the process group, wait up to `graceMs`, then SIGKILL. Resolves once the process is gone. */
export async function stopPid(pid: number, marker: string, graceMs: number): Promise<void> {
  if (!isRunning(pid, marker)) return
  signal(pid, 'SIGTERM')
  const deadline = Date.now() + graceMs
  while (Date.now() < deadline) {
    if (!isRunning(pid, marker)) return
    await delay(100)
  }
  signal(pid, 'SIGKILL')
  const killDeadline = Date.now() + 5_000
  while (isRunning(pid, marker)) {
    if (Date.now() > killDeadline) throw new Error(`process ${pid} survived SIGKILL`)
    await delay(50)
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig) // the whole group: spawnDetached made the server a group leader
  } catch {
    try {
      process.kill(pid, sig)
    } catch {
      // already gone
    }
  }
}

/** The last `lines` lines of a log, preceded by its last warnings and errors (chatty servers bury them). */
export function tailFile(path: string, lines = 30): string {
  let all: string[]
  try {
    all = readFileSync(path, 'utf8').split('\n')
  } catch {
    return `(no log at ${path})`
  }
  const tail = all.slice(-lines)
  const problems = all
    .slice(0, -lines)
    .filter((line) => /\b(WARN|WARNING|ERROR|FATAL)\b|Exception/.test(line))
    .slice(-15)
  return problems.length > 0 ? [...problems, '...', ...tail].join('\n') : tail.join('\n')
}

export interface WaitOptions {
  what: string
  timeoutMs: number
  intervalMs?: number
  /** Log whose tail goes into the timeout error. */
  logPath?: string
  /** Fails fast when the server process has died. */
  alive?: () => boolean
}

/** Polls `probe` until it resolves true; throws with the last probe error and the log tail on timeout. */
export async function waitFor(probe: () => Promise<boolean>, opts: WaitOptions): Promise<void> {
  const started = Date.now()
  let lastError = ''
  for (;;) {
    try {
      if (await probe()) return
    } catch (err) {
      lastError = err instanceof Error ? err.message : String(err)
    }
    const died = opts.alive !== undefined && !opts.alive()
    if (died || Date.now() - started > opts.timeoutMs) {
      const why = died ? 'the process exited' : `not ready after ${opts.timeoutMs} ms`
      const tail = opts.logPath ? `\n--- tail of ${opts.logPath}:\n${tailFile(opts.logPath)}` : ''
      throw new Error(`${opts.what}: ${why}${lastError ? ` (last error: ${lastError})` : ''}${tail}`)
    }
    await delay(opts.intervalMs ?? 250)
  }
}

/** GET `url` and report whether it answered 200. */
export async function httpOk(url: string, timeoutMs = 2_000): Promise<boolean> {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) })
  await res.arrayBuffer()
  return res.status === 200
}

/** True if nothing listens on 127.0.0.1:`port`. */
export async function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolvePromise) => {
    const srv = createServer()
    srv.once('error', () => resolvePromise(false))
    srv.listen({ port, host: '127.0.0.1', exclusive: true }, () => srv.close(() => resolvePromise(true)))
  })
}

export async function freePort(): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const srv = createServer()
    srv.once('error', reject)
    srv.listen({ port: 0, host: '127.0.0.1' }, () => {
      const address = srv.address()
      if (address === null || typeof address === 'string') return reject(new Error('no port'))
      srv.close(() => resolvePromise(address.port))
    })
  })
}

export async function assertPortsFree(name: BackendName, ports: number[]): Promise<void> {
  for (const port of ports) {
    if (!(await portIsFree(port))) {
      throw new Error(
        `${name}: port 127.0.0.1:${port} is taken by another process (not ours: no live PID file)`,
      )
    }
  }
}

export interface InstallSpec {
  name: BackendName
  what: string
  command: string
  args: string[]
  cwd: string
  env?: NodeJS.ProcessEnv
  timeoutMs: number
}

/**
 * Runs an install command with its output in `.backends/<name>-install.log`, printing a heartbeat every 30 s,
 * and throws with the log tail if it fails or times out.
 */
export async function runInstall(spec: InstallSpec): Promise<void> {
  mkdirSync(BACKENDS_DIR, { recursive: true })
  const logPath = join(BACKENDS_DIR, `${spec.name}-install.log`)
  const fd = openSync(logPath, 'a')
  writeFileSync(fd, `\n--- ${new Date().toISOString()} ${spec.command} ${spec.args.join(' ')}\n`)
  const started = Date.now()
  log(spec.name, `${spec.what} (first run only; output in ${logPath})`)
  try {
    const child = spawn(spec.command, spec.args, {
      cwd: spec.cwd,
      env: spec.env ?? process.env,
      stdio: ['ignore', fd, fd],
    })
    const heartbeat = setInterval(() => {
      log(spec.name, `${spec.what}: still running (${Math.round((Date.now() - started) / 1000)} s)`)
    }, 30_000)
    const timer = setTimeout(() => child.kill('SIGKILL'), spec.timeoutMs)
    const code = await new Promise<number | string>((resolvePromise) => {
      child.once('error', (err) => resolvePromise(err.message))
      child.once('exit', (exitCode, sig) => resolvePromise(exitCode ?? sig ?? 'unknown'))
    }).finally(() => {
      clearInterval(heartbeat)
      clearTimeout(timer)
    })
    const seconds = ((Date.now() - started) / 1000).toFixed(1)
    if (code !== 0) {
      const timedOut = Date.now() - started >= spec.timeoutMs
      throw new Error(
        `${spec.name}: ${spec.what} failed (${timedOut ? `timed out after ${spec.timeoutMs} ms` : `exit ${code}`}, ${seconds} s)` +
          `\n--- tail of ${logPath}:\n${tailFile(logPath)}`,
      )
    }
    log(spec.name, `${spec.what}: done in ${seconds} s`)
  } finally {
    closeSync(fd)
  }
}
