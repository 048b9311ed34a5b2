import cluster from 'node:cluster'
import type { GatewayConfig } from '../config/types.js'
import { start } from '../main.js'
import { createLogger, type Logger } from '../telemetry/logger.js'
import { startDrain, type Drain } from './drain.js'
import { runPrimary, WORKER_COUNT_ENV, WORKER_INDEX_ENV } from './primary.js'
import { existingShards, shardsToDrain, workerCount } from './shards.js'
import { runWorker } from './worker.js'

// `streamgate serve`: one process (server.workers: 1, the default), or a primary and N workers
// (src/cluster/primary.ts, worker.ts) on one port. Either way, spool shards that no process writes to any
// more are drained alongside (src/cluster/shards.ts).

export async function serve(config: GatewayConfig, port: number | undefined): Promise<void> {
  const baseLogger = createLogger(config.log.level)
  if (cluster.isWorker) {
    const index = Number(process.env[WORKER_INDEX_ENV])
    const count = Number(process.env[WORKER_COUNT_ENV])
    const logger = baseLogger.child({ worker: index })
    const stopOnSignal = onSignals(config.server.shutdownTimeoutMs, logger)
    const { running } = await runWorker(config, index, count, logger, port).catch((err: unknown) => {
      // The IPC channel would keep this worker alive after a failed start (the CLI only sets exitCode):
      // closing it lets the worker exit 1, and the primary stops the cluster on that exit.
      process.disconnect()
      throw err
    })
    const drains = await startDrains(running.gateway.config, config.spool.dir, { index, count }, logger)
    const stop = async (): Promise<void> => {
      await Promise.all([...drains.map((d) => d.stop(config.server.shutdownTimeoutMs / 2)), running.stop()])
    }
    stopOnSignal(stop)
    // The primary is gone (killed): stop as on SIGTERM rather than linger without it.
    process.once('disconnect', () => stopAndExit(stop, logger, 'the primary process is gone'))
    return
  }
  const count = workerCount(config.server.workers)
  if (count > 1) return runPrimary(config, count, baseLogger)
  // Handlers first: a SIGTERM right after the listening line (while the shard drains start) is a graceful
  // stop, not the default action that kills the process (exit by signal, nothing flushed).
  const stopOnSignal = onSignals(config.server.shutdownTimeoutMs, baseLogger)
  const running = await start(config, { logger: baseLogger, ...(port !== undefined ? { port } : {}) })
  const drains = await startDrains(running.gateway.config, config.spool.dir, undefined, baseLogger)
  stopOnSignal(async () => {
    await Promise.all([...drains.map((d) => d.stop(config.server.shutdownTimeoutMs / 2)), running.stop()])
  })
}

async function startDrains(
  config: GatewayConfig,
  spoolDir: string,
  worker: { index: number; count: number } | undefined,
  logger: Logger,
): Promise<Drain[]> {
  const drains: Drain[] = []
  for (const { dir, ownLock } of shardsToDrain(spoolDir, await existingShards(spoolDir), worker)) {
    const drain = await startDrain(config, dir, ownLock, logger)
    if (drain) drains.push(drain)
  }
  return drains
}

/**
 * SIGTERM/SIGINT: a graceful stop, then exit; a stop that outlasts the shutdown budget exits 1. Installed
 * before the gateway starts; the returned function hands it the stop once there is something to stop (a
 * signal that came meanwhile stops it at once).
 */
function onSignals(shutdownTimeoutMs: number, logger: Logger): (stop: () => Promise<void>) => void {
  let stopNow: (() => Promise<void>) | undefined
  let signalled = false
  const onSignal = (signal: NodeJS.Signals): void => {
    logger.info({ signal }, 'signal received')
    const hardStop = setTimeout(() => {
      logger.error('shutdown timed out; exiting')
      process.exit(1)
    }, shutdownTimeoutMs + 5_000)
    hardStop.unref()
    signalled = true
    if (stopNow) stopAndExit(stopNow, logger)
  }
  process.once('SIGTERM', onSignal)
  process.once('SIGINT', onSignal)
  return (stop) => {
    stopNow = stop
    if (signalled) stopAndExit(stop, logger)
  }
}

let stopping: Promise<void> | undefined

function stopAndExit(stop: () => Promise<void>, logger: Logger, why?: string): void {
  if (why) logger.warn(why)
  stopping ??= stop().then(
    () => process.exit(0),
    (err: unknown) => {
      logger.error({ err }, 'shutdown failed')
      process.exit(1)
    },
  )
}
