// MinIO, built from the Go module proxy into .backends/bin on first use, serving S3 on 127.0.0.1.
//
// The data dir (.backends/minio/data) is kept across stop/start, so fault tests can stop MinIO and find their
// objects after a restart. Clients must set `forcePathStyle: true` (see shared/backends.md).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import {
  BACKENDS_DIR,
  assertPortsFree,
  clearState,
  httpOk,
  isRunning,
  liveState,
  log,
  logFilePath,
  runInstall,
  spawnDetached,
  stopPid,
  waitFor,
  writeState,
} from './daemon.js'

/**
 * `go install github.com/minio/minio@latest` resolved to this pseudo-version (the repository publishes no
 * semver tags); pinned so every machine builds the same server. Override with STREAMGATE_MINIO_VERSION.
 */
export const MINIO_MODULE_VERSION = 'v0.0.0-20260212201848-7aac2a2c5b7c'
export const S3_DEFAULT_PORT = 19000
export const S3_DEFAULT_CONSOLE_PORT = 19001
export const S3_REGION = 'us-east-1'
/** Fixed test credentials (MinIO's root user); never used outside this machine. */
export const S3_ACCESS_KEY_ID = 'streamgate'
export const S3_SECRET_ACCESS_KEY = 'streamgate-secret'
const MINIO_STOP_GRACE_MS = 10_000
/** A cold build of MinIO takes minutes on two cores. */
const MINIO_INSTALL_TIMEOUT_MS = 20 * 60_000

const BIN_DIR = join(BACKENDS_DIR, 'bin')
const MINIO_BIN = join(BIN_DIR, 'minio')
const VERSION_MARKER = join(BIN_DIR, '.minio-version')
export const MINIO_DATA_DIR = join(BACKENDS_DIR, 'minio', 'data')

export interface S3Options {
  /** S3 API port, default 19000. */
  port?: number
  /** Web console port, default 19001. */
  consolePort?: number
  /** Readiness timeout, default 60 s. */
  timeoutMs?: number
}

export interface S3Handle {
  endpoint: string
  accessKeyId: string
  secretAccessKey: string
  region: string
  pid: number
  /** True when an already running server was found and reused. */
  reused: boolean
  stop(): Promise<void>
}

function minioVersion(): string {
  return process.env.STREAMGATE_MINIO_VERSION ?? MINIO_MODULE_VERSION
}

/** Builds the MinIO server binary into .backends/bin unless this version is already there. */
export async function installMinio(): Promise<void> {
  const version = minioVersion()
  if (existsSync(MINIO_BIN) && existsSync(VERSION_MARKER)) {
    if (readFileSync(VERSION_MARKER, 'utf8').trim() === version) return
  }
  mkdirSync(BIN_DIR, { recursive: true })
  log('s3', 'building MinIO: about 5 min on 2 cores with a cold Go cache, seconds once cached')
  await runInstall({
    name: 's3',
    what: `go install github.com/minio/minio@${version}`,
    command: 'go',
    args: ['install', `github.com/minio/minio@${version}`],
    cwd: BACKENDS_DIR,
    env: { ...process.env, GOBIN: BIN_DIR },
    timeoutMs: MINIO_INSTALL_TIMEOUT_MS,
  })
  writeFileSync(VERSION_MARKER, `${version}\n`)
}

/** True once MinIO answers both liveness and readiness (read/write quorum on its one drive). */
export async function s3Answers(endpoint: string): Promise<boolean> {
  return (await httpOk(`${endpoint}/minio/health/live`)) && (await httpOk(`${endpoint}/minio/health/ready`))
}

function handle(endpoint: string, pid: number, reused: boolean): S3Handle {
  return {
    endpoint,
    accessKeyId: S3_ACCESS_KEY_ID,
    secretAccessKey: S3_SECRET_ACCESS_KEY,
    region: S3_REGION,
    pid,
    reused,
    stop: () => stopS3(),
  }
}

/**
 * Starts MinIO (building it on first use), or reuses the one recorded in .backends/s3.pid if it answers.
 * Resolves once `GET /minio/health/live` is 200.
 */
export async function startS3(opts: S3Options = {}): Promise<S3Handle> {
  const port = opts.port ?? S3_DEFAULT_PORT
  const consolePort = opts.consolePort ?? S3_DEFAULT_CONSOLE_PORT
  const timeoutMs = opts.timeoutMs ?? 60_000
  await installMinio()

  const live = liveState('s3')
  if (live) {
    const endpoint = String(live.endpoint)
    try {
      await waitFor(() => s3Answers(endpoint), {
        what: `minio (running, pid ${live.pid})`,
        timeoutMs,
        alive: () => isRunning(live.pid, live.marker),
      })
      return handle(endpoint, live.pid, true)
    } catch (err) {
      log('s3', `the recorded MinIO does not answer, restarting it: ${(err as Error).message.split('\n')[0]}`)
      await stopS3()
    }
  }

  await assertPortsFree('s3', [port, consolePort])
  mkdirSync(MINIO_DATA_DIR, { recursive: true })
  const endpoint = `http://127.0.0.1:${port}`
  const pid = spawnDetached({
    name: 's3',
    command: MINIO_BIN,
    args: [
      'server',
      '--address',
      `127.0.0.1:${port}`,
      '--console-address',
      `127.0.0.1:${consolePort}`,
      MINIO_DATA_DIR,
    ],
    env: {
      ...process.env,
      MINIO_ROOT_USER: S3_ACCESS_KEY_ID,
      MINIO_ROOT_PASSWORD: S3_SECRET_ACCESS_KEY,
      MINIO_REGION: S3_REGION,
      MINIO_UPDATE: 'off',
    },
  })
  const marker = MINIO_DATA_DIR
  writeState('s3', { pid, marker, endpoint })
  try {
    await waitFor(() => s3Answers(endpoint), {
      what: `minio ${endpoint} (pid ${pid})`,
      timeoutMs,
      logPath: logFilePath('s3'),
      alive: () => isRunning(pid, marker),
    })
  } catch (err) {
    await stopPid(pid, marker, MINIO_STOP_GRACE_MS)
    clearState('s3')
    throw err
  }
  return handle(endpoint, pid, false)
}

/** Stops the MinIO recorded in .backends/s3.pid (SIGTERM, up to 10 s, SIGKILL). Keeps its data. */
export async function stopS3(): Promise<void> {
  const live = liveState('s3')
  if (live) await stopPid(live.pid, live.marker, MINIO_STOP_GRACE_MS)
  clearState('s3')
}

/** Stop, then start on the same ports with the same data. */
export async function restartS3(opts: S3Options = {}): Promise<S3Handle> {
  await stopS3()
  return startS3(opts)
}
