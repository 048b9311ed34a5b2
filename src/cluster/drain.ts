import type { GatewayConfig } from '../config/types.js'
import { Gateway } from '../pipeline/gateway.js'
import { acquireSpoolLock, SpoolLockedError, type SpoolLock } from '../spool/lock.js'
import type { Logger } from '../telemetry/logger.js'
import { Metrics } from '../telemetry/metrics.js'

// Draining a spool nobody writes to any more (a shard left by a larger `workers` count, or a one-process
// gateway's spool after moving to several workers; src/cluster/shards.ts): a gateway without a listener
// on that spool, whose lanes deliver what it holds from their saved cursors, exactly as a restart would.
// It closes itself once every lane has caught up; records of a stream that is no longer configured stay
// in the shard (as they would in any spool) and are drained by a later start that configures it again.

/** How often a draining spool is checked for being empty. */
const DRAIN_POLL_MS = 500

export interface Drain {
  readonly dir: string
  /** Resolves when the spool is drained and closed (or the drain was stopped or could not start). */
  readonly done: Promise<void>
  /** Stops delivering (deliveries in progress get `graceMs`); what is left waits for the next start. */
  stop(graceMs: number): Promise<void>
}

/**
 * Starts draining `dir` with `config`'s streams and sinks. `ownLock: false` when the caller's process
 * tree holds the directory's lock already (the cluster's primary holds spool.dir's).
 */
export async function startDrain(
  config: GatewayConfig,
  dir: string,
  ownLock: boolean,
  logger: Logger,
): Promise<Drain | undefined> {
  let lock: SpoolLock
  try {
    lock = ownLock ? await acquireSpoolLock(dir) : { dir, release: () => Promise.resolve() }
  } catch (err) {
    if (!(err instanceof SpoolLockedError)) throw err
    logger.warn({ dir, owner: err.pid }, 'a spool shard to drain is owned by another process; left to it')
    return undefined
  }
  const log = logger.child({ drain: dir })
  // Its own metrics: the figures of a spool being emptied are not the running gateway's.
  const gateway = await Gateway.create(
    { ...config, spool: { ...config.spool, dir } },
    { logger: log, metrics: new Metrics({ defaultMetrics: false }), spoolLock: lock },
  )
  const pending = (): number =>
    gateway.topology.streamIds().reduce((sum, id) => sum + gateway.topology.pendingRecords(id), 0)
  log.info({ records: pending() }, 'draining a spool shard no worker writes to')
  let closing: Promise<void> | undefined
  const close = (graceMs: number): Promise<void> => (closing ??= gateway.close(graceMs))
  const done = new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      if (closing) {
        clearInterval(timer)
        resolve(closing.catch(() => undefined))
      } else if (pending() === 0) {
        clearInterval(timer)
        log.info('spool shard drained')
        resolve(close(0).catch((err: unknown) => log.error({ err }, 'closing a drained shard failed')))
      }
    }, DRAIN_POLL_MS)
    timer.unref()
  })
  return { dir, done, stop: (graceMs) => close(graceMs) }
}
