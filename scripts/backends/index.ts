// The three real backends behind streamgate's sinks, started together, described by `.backends/env`.
//
// `.backends/env` holds `KEY=value` lines (no quotes needed for these values), so a shell can load it with
// `set -a; . .backends/env; set +a`. The same keys go into process.env and vitest's provide('backends').
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { BACKENDS_DIR } from './daemon.js'
import {
  KAFKA_DATA_DIR,
  kafkaAnswers,
  restartKafka,
  startKafka,
  stopKafka,
  type KafkaHandle,
  type KafkaOptions,
} from './kafka.js'
import {
  kinesisAnswers,
  restartKinesis,
  startKinesis,
  stopKinesis,
  type KinesisHandle,
  type KinesisOptions,
} from './kinesis.js'
import { MINIO_DATA_DIR, restartS3, s3Answers, startS3, stopS3, type S3Handle, type S3Options } from './s3.js'

export { restartKafka, startKafka, stopKafka, type KafkaHandle, type KafkaOptions }
export { restartS3, startS3, stopS3, type S3Handle, type S3Options }
export { restartKinesis, startKinesis, stopKinesis, type KinesisHandle, type KinesisOptions }

export const BACKENDS_ENV_FILE = join(BACKENDS_DIR, 'env')

export const BACKENDS_ENV_KEYS = [
  'KAFKA_BROKERS',
  'S3_ENDPOINT',
  'S3_ACCESS_KEY_ID',
  'S3_SECRET_ACCESS_KEY',
  'S3_REGION',
  'KINESIS_ENDPOINT',
  'AWS_REGION',
  'AWS_ACCESS_KEY_ID',
  'AWS_SECRET_ACCESS_KEY',
] as const

export type BackendsEnvKey = (typeof BACKENDS_ENV_KEYS)[number]
/** Where the backends are and how to sign in; `AWS_*` are the Kinesis region and credentials. */
export type BackendsEnv = Record<BackendsEnvKey, string>

export interface RunningBackends {
  env: BackendsEnv
  kafka: KafkaHandle
  s3: S3Handle
  kinesis: KinesisHandle
  /** Stops only the backends this call started (not the reused ones). */
  stopStarted(): Promise<void>
}

export function backendsEnvOf(kafka: KafkaHandle, s3: S3Handle, kinesis: KinesisHandle): BackendsEnv {
  return {
    KAFKA_BROKERS: kafka.brokers,
    S3_ENDPOINT: s3.endpoint,
    S3_ACCESS_KEY_ID: s3.accessKeyId,
    S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
    S3_REGION: s3.region,
    KINESIS_ENDPOINT: kinesis.endpoint,
    AWS_REGION: kinesis.region,
    AWS_ACCESS_KEY_ID: kinesis.accessKeyId,
    AWS_SECRET_ACCESS_KEY: kinesis.secretAccessKey,
  }
}

const SHELL_SAFE = /^[A-Za-z0-9_./:,@+=-]*$/

export function formatBackendsEnv(env: BackendsEnv): string {
  const lines = BACKENDS_ENV_KEYS.map((key) => {
    const value = env[key]
    return `${key}=${SHELL_SAFE.test(value) ? value : `'${value.replaceAll("'", `'\\''`)}'`}`
  })
  return `# Written by scripts/backends (npm run backends:up). Load with: set -a; . .backends/env; set +a\n${lines.join('\n')}\n`
}

export function writeBackendsEnv(env: BackendsEnv, path = BACKENDS_ENV_FILE): void {
  mkdirSync(BACKENDS_DIR, { recursive: true })
  writeFileSync(path, formatBackendsEnv(env))
}

/** Parses `.backends/env`; undefined if the file is missing, an error if a key is missing. */
export function readBackendsEnv(path = BACKENDS_ENV_FILE): BackendsEnv | undefined {
  if (!existsSync(path)) return undefined
  const found = new Map<string, string>()
  for (const raw of readFileSync(path, 'utf8').split('\n')) {
    const line = raw.trim().replace(/^export\s+/, '')
    if (line === '' || line.startsWith('#')) continue
    const eq = line.indexOf('=')
    if (eq <= 0) throw new Error(`${path}: not a KEY=value line: ${line}`)
    let value = line.slice(eq + 1)
    if (value.startsWith("'") && value.endsWith("'") && value.length >= 2) {
      value = value.slice(1, -1).replaceAll(`'\\''`, "'")
    }
    found.set(line.slice(0, eq), value)
  }
  const env: Partial<BackendsEnv> = {}
  for (const key of BACKENDS_ENV_KEYS) {
    const value = found.get(key)
    if (value === undefined) throw new Error(`${path}: ${key} is missing`)
    env[key] = value
  }
  return env as BackendsEnv
}

/** One quick probe of each backend named in `env`; true only if all three answer. */
export async function backendsAnswer(env: BackendsEnv): Promise<boolean> {
  const probes = await Promise.allSettled([
    kafkaAnswers(env.KAFKA_BROKERS),
    s3Answers(env.S3_ENDPOINT),
    kinesisAnswers(env.KINESIS_ENDPOINT),
  ])
  return probes.every((p) => p.status === 'fulfilled' && p.value)
}

export interface StartAllOptions {
  kafka?: KafkaOptions
  s3?: S3Options
  kinesis?: KinesisOptions
}

/**
 * Starts (or reuses, when their PID files point at live, answering servers) Kafka, MinIO and kinesis-local
 * in parallel and writes `.backends/env`. If one fails, the ones this call started are stopped again and
 * the error names every failure.
 */
export async function startAll(opts: StartAllOptions = {}): Promise<RunningBackends> {
  const [kafka, s3, kinesis] = await Promise.allSettled([
    startKafka(opts.kafka),
    startS3(opts.s3),
    startKinesis(opts.kinesis),
  ])
  const handles = [kafka, s3, kinesis]
  const started = handles.flatMap((h) => (h.status === 'fulfilled' && !h.value.reused ? [h.value] : []))
  const stopStarted = async (): Promise<void> => {
    if (started.length === 0) return
    rmSync(BACKENDS_ENV_FILE, { force: true }) // it would describe a stopped backend
    await Promise.all(started.map((h) => h.stop()))
  }
  if (kafka.status === 'rejected' || s3.status === 'rejected' || kinesis.status === 'rejected') {
    await stopStarted()
    const failures = (['kafka', 's3', 'kinesis'] as const).flatMap((name, i) => {
      const h = handles[i]
      return h?.status === 'rejected'
        ? [`${name}: ${h.reason instanceof Error ? h.reason.message : String(h.reason)}`]
        : []
    })
    throw new Error(`could not start the test backends:\n${failures.join('\n\n')}`)
  }
  const env = backendsEnvOf(kafka.value, s3.value, kinesis.value)
  writeBackendsEnv(env)
  return { env, kafka: kafka.value, s3: s3.value, kinesis: kinesis.value, stopStarted }
}

/** Stops all three by their PID files (data of Kafka and MinIO is kept) and removes `.backends/env`. */
export async function stopAll(): Promise<void> {
  rmSync(BACKENDS_ENV_FILE, { force: true })
  await Promise.all([stopKafka(), stopS3(), stopKinesis()])
}

/** Deletes Kafka's and MinIO's data (topics, buckets); only while they are stopped. */
export async function wipeBackendsData(): Promise<void> {
  await stopAll()
  rmSync(KAFKA_DATA_DIR, { recursive: true, force: true })
  rmSync(MINIO_DATA_DIR, { recursive: true, force: true })
}
