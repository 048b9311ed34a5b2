// `npm run backends:up`: start (or reuse) Kafka, MinIO and kinesis-local, leave them running detached, and
// print `.backends/env`. Idempotent: live, answering servers recorded in .backends/*.pid are reused.
import { readFileSync } from 'node:fs'
import { BACKENDS_ENV_FILE, startAll } from './index.js'

const started = Date.now()
try {
  const running = await startAll()
  for (const [name, h] of [
    ['kafka', running.kafka],
    ['s3', running.s3],
    ['kinesis', running.kinesis],
  ] as const) {
    process.stderr.write(`[backends:${name}] ${h.reused ? 'already running' : 'started'} (pid ${h.pid})\n`)
  }
  process.stderr.write(
    `[backends] up in ${((Date.now() - started) / 1000).toFixed(1)} s; ${BACKENDS_ENV_FILE}:\n`,
  )
  process.stdout.write(readFileSync(BACKENDS_ENV_FILE, 'utf8'))
  process.exit(0)
} catch (err) {
  process.stderr.write(`[backends] ${err instanceof Error ? err.message : String(err)}\n`)
  process.exit(1)
}
