// `npm run backends:down`: stop the servers recorded in .backends/*.pid (SIGTERM, grace period, SIGKILL).
// Idempotent: stale PID files are removed. Kafka's and MinIO's data stay in .backends/ for the next `up`,
// unless `npm run backends:down -- --wipe` is given.
import { stopAll, wipeBackendsData } from './index.js'

const wipe = process.argv.includes('--wipe')
try {
  await (wipe ? wipeBackendsData() : stopAll())
  process.stderr.write(`[backends] down${wipe ? ' (data wiped)' : ''}\n`)
} catch (err) {
  process.stderr.write(`[backends] ${err instanceof Error ? err.message : String(err)}\n`)
  process.exit(1)
}
