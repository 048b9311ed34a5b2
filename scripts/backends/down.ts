// `npm run backends:down`: stop the servers recorded in .backends/*.pid (SIGTERM, grace period, SIGKILL).
// Idempotent: stale PID files are removed. Kafka's and MinIO's data stay in .backends/ for the next `up`.
import { stopAll } from './index.js'

try {
  await stopAll()
  process.stderr.write('[backends] down\n')
} catch (err) {
  process.stderr.write(`[backends] ${err instanceof Error ? err.message : String(err)}\n`)
  process.exit(1)
}
