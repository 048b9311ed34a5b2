// kinesis-local (kinesis-mock, the emulator LocalStack uses; an npm devDependency) on two free ports.
//
// It listens on all interfaces, not only 127.0.0.1: it has no bind-address option. Streams live in memory
// (a restart loses them) and are namespaced per region and account, so the gateway and the tests must use
// KINESIS_REGION and the fake credentials below. Clients must use `new NodeHttpHandler()`: the SDK's default
// HTTP/2 handler fails a 500-record PutRecords against it (see shared/backends.md).
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import {
  BACKENDS_DIR,
  clearState,
  freePort,
  httpOk,
  isRunning,
  liveState,
  log,
  logFilePath,
  portIsFree,
  spawnDetached,
  stopPid,
  waitFor,
  writeState,
} from './daemon.js'

export const KINESIS_REGION = 'us-east-1'
/**
 * Fake, AWS-shaped credentials. kinesis-mock maps an access key id that is not a 12-digit account id to its
 * default account (000000000000), so every client using these sees the same streams.
 */
export const KINESIS_ACCESS_KEY_ID = 'AKIAIOSFODNN7EXAMPLE'
export const KINESIS_SECRET_ACCESS_KEY = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY'
/** Its streams are in memory, so there is nothing to flush; it takes ~4 s to honour SIGTERM. */
const KINESIS_STOP_GRACE_MS = 3_000
/** Stream state changes (CREATING → ACTIVE, …) take 500 ms by default; tests want them near-instant. */
const KINESIS_OPERATION_DURATION = '10ms'

const KINESIS_MAIN = createRequire(import.meta.url).resolve('kinesis-local/main.js')
const KINESIS_CERT = join(dirname(KINESIS_MAIN), 'server.json')

export interface KinesisOptions {
  /** Readiness timeout, default 60 s. */
  timeoutMs?: number
}

export interface KinesisHandle {
  /** `http://127.0.0.1:<plain port>` */
  endpoint: string
  region: string
  accessKeyId: string
  secretAccessKey: string
  pid: number
  /** True when an already running emulator was found and reused. */
  reused: boolean
  stop(): Promise<void>
}

export async function kinesisAnswers(endpoint: string): Promise<boolean> {
  return httpOk(`${endpoint}/healthcheck`)
}

function handle(endpoint: string, pid: number, reused: boolean): KinesisHandle {
  return {
    endpoint,
    region: KINESIS_REGION,
    accessKeyId: KINESIS_ACCESS_KEY_ID,
    secretAccessKey: KINESIS_SECRET_ACCESS_KEY,
    pid,
    reused,
    stop: () => stopKinesis(),
  }
}

/** The ports used last time if they are still free (a restart keeps the endpoint), else two new ones. */
async function pickPorts(previous: Record<string, unknown> | undefined): Promise<[number, number]> {
  const plain = Number(previous?.plainPort)
  const tls = Number(previous?.tlsPort)
  if (plain > 0 && tls > 0 && (await portIsFree(plain)) && (await portIsFree(tls))) return [plain, tls]
  const first = await freePort()
  let second = await freePort()
  while (second === first) second = await freePort()
  return [first, second]
}

/** Remembered across stop/start (and processes) so a restarted emulator keeps its endpoint when it can. */
const PORTS_FILE = join(BACKENDS_DIR, 'kinesis-ports.json')

function lastPorts(): Record<string, unknown> | undefined {
  try {
    return JSON.parse(readFileSync(PORTS_FILE, 'utf8')) as Record<string, unknown>
  } catch {
    return undefined
  }
}

/**
 * Starts kinesis-local, or reuses the one recorded in .backends/kinesis.pid if it answers.
 * Resolves once `GET /healthcheck` on the plain port is 200.
 */
export async function startKinesis(opts: KinesisOptions = {}): Promise<KinesisHandle> {
  const timeoutMs = opts.timeoutMs ?? 60_000
  const live = liveState('kinesis')
  if (live) {
    const endpoint = String(live.endpoint)
    try {
      await waitFor(() => kinesisAnswers(endpoint), {
        what: `kinesis-local (running, pid ${live.pid})`,
        timeoutMs,
        alive: () => isRunning(live.pid, live.marker),
      })
      return handle(endpoint, live.pid, true)
    } catch (err) {
      log(
        'kinesis',
        `the recorded emulator does not answer, restarting it: ${(err as Error).message.split('\n')[0]}`,
      )
      await stopKinesis()
    }
  }

  const [plainPort, tlsPort] = await pickPorts(lastPorts())
  const endpoint = `http://127.0.0.1:${plainPort}`
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    KINESIS_MOCK_CERT_PATH: KINESIS_CERT,
    KINESIS_MOCK_PLAIN_PORT: String(plainPort),
    KINESIS_MOCK_TLS_PORT: String(tlsPort),
    LOG_LEVEL: 'WARN',
    AWS_REGION: KINESIS_REGION,
  }
  // An empty INITIALIZE_STREAMS makes it refuse to start; an inherited one would create surprise streams.
  delete env.INITIALIZE_STREAMS
  for (const op of [
    'CREATE_STREAM',
    'DELETE_STREAM',
    'UPDATE_SHARD_COUNT',
    'MERGE_SHARDS',
    'SPLIT_SHARD',
    'REGISTER_STREAM_CONSUMER',
    'DEREGISTER_STREAM_CONSUMER',
    'START_STREAM_ENCRYPTION',
    'STOP_STREAM_ENCRYPTION',
    'UPDATE_STREAM_MODE',
  ]) {
    env[`${op}_DURATION`] = KINESIS_OPERATION_DURATION
  }
  mkdirSync(BACKENDS_DIR, { recursive: true })
  const pid = spawnDetached({ name: 'kinesis', command: process.execPath, args: [KINESIS_MAIN], env })
  const marker = KINESIS_MAIN
  writeState('kinesis', { pid, marker, endpoint })
  writeFileSync(PORTS_FILE, `${JSON.stringify({ plainPort, tlsPort })}\n`)
  try {
    await waitFor(() => kinesisAnswers(endpoint), {
      what: `kinesis-local ${endpoint} (pid ${pid})`,
      timeoutMs,
      logPath: logFilePath('kinesis'),
      alive: () => isRunning(pid, marker),
    })
  } catch (err) {
    await stopPid(pid, marker, KINESIS_STOP_GRACE_MS)
    clearState('kinesis')
    throw err
  }
  return handle(endpoint, pid, false)
}

/** Stop, then start (on the same ports when they are still free). Streams are not kept. */
export async function restartKinesis(opts: KinesisOptions = {}): Promise<KinesisHandle> {
  await stopKinesis()
  return startKinesis(opts)
}

/** Stops the emulator recorded in .backends/kinesis.pid. Its streams are in memory and are lost. */
export async function stopKinesis(): Promise<void> {
  const live = liveState('kinesis')
  if (live) await stopPid(live.pid, live.marker, KINESIS_STOP_GRACE_MS)
  clearState('kinesis')
}
