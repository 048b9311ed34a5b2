import cluster, { type Worker } from 'node:cluster'
import { mkdir } from 'node:fs/promises'
import type { GatewayConfig } from '../config/types.js'
import { problemAnswer } from '../http/ingest.js'
import { problem } from '../errors.js'
import { StartupError } from '../main.js'
import { acquireSpoolLock } from '../spool/lock.js'
import type { Logger } from '../telemetry/logger.js'
import type { WorkerFigures } from './figures.js'
import { isOurs, type MetricJson, type ToPrimary, type ToWorker, type WireResponse } from './messages.js'
import { renderClusterMetrics } from './metrics.js'

// The primary process of `server.workers: N` (N > 1). It serves nothing itself: it holds spool.dir's lock
// (so a second gateway on the same config stops at start, and api-state.json beside it has one owner),
// forks the workers, restarts one that dies, routes the workers' messages (management requests to the
// leader, worker 0; the leader's changes to the others; /metrics summed over the ready workers, metrics.ts)
// and, on SIGTERM or SIGINT, stops every worker gracefully before it exits.

/** A worker that dies is forked again after this long, doubling up to RESTART_MAX_MS while it keeps dying. */
const RESTART_MIN_MS = 100
const RESTART_MAX_MS = 5_000
/** A worker that ran this long before dying restarts after RESTART_MIN_MS again. */
const RESTART_RESET_MS = 30_000
/** The leader's question for the other workers' figures is answered with what arrived within this time. */
const FIGURES_TIMEOUT_MS = 2_000
/**
 * A /metrics scrape sums what the ready workers answered within this time; a worker that did not answer is
 * left out (and named in the answer). Well under prom-client's own 5 s, after which its clusterMetrics()
 * failed the whole scrape; the one case that waits for it is a worker that died a moment before the scrape
 * and whose exit the primary has not seen yet.
 */
const METRICS_TIMEOUT_MS = 1_000

export const WORKER_INDEX_ENV = 'STREAMGATE_WORKER_INDEX'
export const WORKER_COUNT_ENV = 'STREAMGATE_WORKER_COUNT'

interface Slot {
  index: number
  worker: Worker | undefined
  startedAt: number
  restartDelayMs: number
  ready: boolean
  /** The pending restart of a worker that died. */
  restart?: NodeJS.Timeout | undefined
}

export async function runPrimary(config: GatewayConfig, count: number, logger: Logger): Promise<void> {
  try {
    await mkdir(config.spool.dir, { recursive: true })
  } catch (err) {
    throw new StartupError(
      `the spool directory ${config.spool.dir} is not writable: ${(err as Error).message}`,
    )
  }
  const lock = await acquireSpoolLock(config.spool.dir)
  const slots: Slot[] = Array.from({ length: count }, (_, index) => ({
    index,
    worker: undefined,
    startedAt: 0,
    restartDelayMs: RESTART_MIN_MS,
    ready: false,
  }))
  /** Forwarded management requests waiting for the leader: the primary's id → the asking worker. */
  const forwards = new Map<number, { from: Worker; id: number }>()
  let nextForward = 0
  /** The leader's questions for figures: the primary's id → what takes each worker's answer. */
  const figureAsks = new Map<number, (figures: WorkerFigures) => void>()
  /** /metrics scrapes waiting for the ready workers: the primary's id → what takes one worker's answer. */
  const metricAsks = new Map<number, (slot: Slot, metrics: MetricJson[]) => void>()
  let stopping = false
  let started = false
  let failStart: ((err: Error) => void) | undefined

  const send = (worker: Worker | undefined, message: ToWorker): boolean => {
    if (!worker?.isConnected()) return false
    worker.send(message)
    return true
  }

  const onMessage = (slot: Slot, worker: Worker, message: ToPrimary): void => {
    switch (message.sg) {
      case 'ready':
        slot.ready = true
        if (!started && slots.every((s) => s.ready)) {
          started = true
          logger.info({ workers: count, port: message.port, spool: lock.dir }, 'streamgate workers listening')
        }
        return
      case 'forward': {
        const id = nextForward++
        const leader = slots[0]!
        if (leader.ready && send(leader.worker, { sg: 'forward', id, request: message.request })) {
          forwards.set(id, { from: worker, id: message.id })
          return
        }
        send(worker, { sg: 'forwarded', id: message.id, response: leaderAway() })
        return
      }
      case 'forwarded': {
        const asker = forwards.get(message.id)
        forwards.delete(message.id)
        if (asker) send(asker.from, { sg: 'forwarded', id: asker.id, response: message.response })
        return
      }
      case 'metrics': {
        // Only the ready workers: one starting or restarting cannot answer yet, and waiting for it failed
        // the scrape exactly when an operator looks (a worker just died).
        const asked = slots.filter((s) => s.ready && s.worker?.isConnected())
        const id = nextForward++
        const answers = new Map<number, MetricJson[]>()
        const began = Date.now()
        const finish = (): void => {
          if (!metricAsks.delete(id)) return
          clearTimeout(timer)
          renderClusterMetrics({
            configured: count,
            asked: asked.map((s) => s.index),
            answers,
            waitedMs: Date.now() - began,
          }).then(
            ({ contentType, body }) => send(worker, { sg: 'metrics', id: message.id, contentType, body }),
            (err: unknown) =>
              send(worker, {
                sg: 'metrics',
                id: message.id,
                contentType: '',
                body: '',
                error: (err as Error).message,
              }),
          )
        }
        const timer = setTimeout(finish, METRICS_TIMEOUT_MS)
        metricAsks.set(id, (from, metrics) => {
          if (!asked.includes(from)) return
          answers.set(from.index, metrics)
          if (answers.size === asked.length) finish()
        })
        for (const s of asked) send(s.worker, { sg: 'metrics-ask', id })
        if (asked.length === 0) finish()
        return
      }
      case 'figures': {
        const others = slots.filter((s) => s !== slot && s.ready && s.worker?.isConnected())
        const id = nextForward++
        const gathered: WorkerFigures[] = []
        const finish = (): void => {
          if (!figureAsks.delete(id)) return
          clearTimeout(timer)
          send(worker, { sg: 'figures', id: message.id, figures: gathered })
        }
        const timer = setTimeout(finish, FIGURES_TIMEOUT_MS)
        figureAsks.set(id, (figures) => {
          gathered.push(figures)
          if (gathered.length === others.length) finish()
        })
        for (const other of others) send(other.worker, { sg: 'figures-ask', id })
        if (others.length === 0) finish()
        return
      }
      case 'figures-reply':
        figureAsks.get(message.id)?.(message.figures)
        return
      case 'metrics-reply':
        metricAsks.get(message.id)?.(slot, message.metrics)
        return
      case 'broadcast':
        for (const other of slots)
          if (other !== slot && other.ready) send(other.worker, { sg: 'apply', change: message.change })
        return
    }
  }

  const fork = (slot: Slot): void => {
    const worker = cluster.fork({ [WORKER_INDEX_ENV]: String(slot.index), [WORKER_COUNT_ENV]: String(count) })
    slot.worker = worker
    slot.ready = false
    slot.startedAt = Date.now()
    worker.on('message', (message: unknown) => {
      if (isOurs(message)) onMessage(slot, worker, message as ToPrimary)
    })
    worker.on('exit', (code, signal) => {
      slot.ready = false
      slot.worker = undefined
      // The leader's unanswered forwards: their workers answer 503 after their own timeout.
      if (stopping) return
      if (!started) {
        failStart?.(
          new StartupError(`worker ${slot.index} exited during start (code ${code}, signal ${signal})`),
        )
        return
      }
      if (Date.now() - slot.startedAt > RESTART_RESET_MS) slot.restartDelayMs = RESTART_MIN_MS
      logger.error(
        { worker: slot.index, pid: worker.process.pid, code, signal, restartInMs: slot.restartDelayMs },
        'worker died; restarting it (its spool shard is recovered by the new worker)',
      )
      // Not unref'd: a pending restart is the primary's work. With every worker dead at once (each waiting
      // for its restart) nothing else keeps the event loop alive, and an unref'd timer let the primary exit
      // 0 there, silently, with no worker left (stopAll clears it).
      slot.restart = setTimeout(() => {
        slot.restart = undefined
        if (!stopping) fork(slot)
      }, slot.restartDelayMs)
      slot.restartDelayMs = Math.min(RESTART_MAX_MS, slot.restartDelayMs * 2)
    })
  }

  const stopAll = async (): Promise<void> => {
    stopping = true
    for (const slot of slots) clearTimeout(slot.restart)
    const alive = slots.flatMap((s) => (s.worker ? [s.worker] : []))
    await Promise.all(
      alive.map(
        (worker) =>
          new Promise<void>((resolve) => {
            if (worker.process.exitCode !== null || worker.process.signalCode !== null) return resolve()
            worker.once('exit', () => resolve())
            worker.process.kill('SIGTERM')
          }),
      ),
    )
    await lock.release()
  }

  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) return
    logger.info({ signal }, 'signal received; stopping every worker')
    const hardStop = setTimeout(() => {
      logger.error('workers did not stop in time; killing them')
      for (const s of slots) s.worker?.process.kill('SIGKILL')
      process.exit(1)
    }, config.server.shutdownTimeoutMs + 10_000)
    hardStop.unref()
    stopAll().then(
      () => {
        logger.info('stopped')
        process.exit(0)
      },
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed')
        process.exit(1)
      },
    )
  }
  // Installed before the first fork: the listening line is logged when the last worker is ready, and a
  // SIGTERM sent on seeing it (or while the workers start) is a graceful stop, not the default action that
  // killed the primary by signal with its workers left to notice the lost IPC channel.
  process.on('SIGTERM', onSignal)
  process.on('SIGINT', onSignal)

  // Start: every worker listening, or the first one that fails stops the rest (its reason is on stderr).
  await new Promise<void>((resolve, reject) => {
    failStart = (err) => {
      failStart = undefined
      // The check never sees `started` now; left running, it kept the primary alive after the failure.
      clearInterval(check)
      stopAll().then(
        () => reject(err),
        () => reject(err),
      )
    }
    const check = setInterval(() => {
      if (started) {
        clearInterval(check)
        failStart = undefined
        resolve()
      } else if (stopping) clearInterval(check) // a signal during start: onSignal stops and exits
    }, 20)
    for (const slot of slots) fork(slot)
  })
}

/** What a forwarded management request gets while the leader is restarting. */
function leaderAway(): WireResponse {
  const answer = problemAnswer(
    problem('leader-unavailable', 'the worker that answers the management API is restarting; retry shortly', {
      headers: { 'retry-after': '1' },
    }),
  )
  return {
    status: 503,
    headers: Object.entries(answer.headers),
    body: Buffer.from(answer.body).toString('base64'),
  }
}
