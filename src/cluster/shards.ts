import { readdir } from 'node:fs/promises'
import { availableParallelism } from 'node:os'
import { basename, dirname, join, resolve } from 'node:path'
import type { GatewayConfig } from '../config/types.js'

// Spool shards of a gateway that runs several workers (server.workers, src/cluster/).
//
// Worker i of N owns the spool shard `<spool.dir>-w<i>`: a directory beside spool.dir, not inside it, so
// that everything the gateway keeps beside its spool (api-state.json, dead-letter/, connections/) is the
// same file for every worker and for a one-process gateway alike. A one-process gateway keeps using
// spool.dir itself, unchanged. Each shard is a complete spool with its own ownership lock (src/spool/lock.ts).
//
// Shards outlive a change of `workers`: a shard nobody writes to any more (a shard w<j> with j >= N after a
// restart with fewer workers, or spool.dir itself after moving from one process to several, and the other
// way round) is drained by a worker (shardsToDrain): its records are delivered, nothing acknowledged is
// orphaned.

/** How many workers `server.workers` asks for: `auto` is one per core the process may use. */
export function workerCount(workers: number | 'auto', cores = availableParallelism()): number {
  return workers === 'auto' ? Math.max(1, cores) : workers
}

/** The spool directory of worker `index`. */
export function shardDir(spoolDir: string, index: number): string {
  return `${resolve(spoolDir)}-w${index}`
}

/** The worker shards that exist beside spool.dir (whatever `workers` is now), by index. */
export async function existingShards(spoolDir: string): Promise<{ index: number; dir: string }[]> {
  const abs = resolve(spoolDir)
  const prefix = `${basename(abs)}-w`
  const names = await readdir(dirname(abs)).catch(() => [] as string[])
  return names
    .filter((n) => n.startsWith(prefix) && /^\d{1,4}$/.test(n.slice(prefix.length)))
    .map((n) => ({ index: Number(n.slice(prefix.length)), dir: join(dirname(abs), n) }))
    .sort((a, b) => a.index - b.index)
}

/**
 * What a process drains besides the spool it writes, given the shards that exist. `worker` is the
 * worker's index of `count`, or undefined for a one-process gateway (which writes spool.dir itself).
 * - one process: every worker shard;
 * - worker i of N: the shards w<j>, j >= N, with j mod N = i; worker 0 also spool.dir itself (left by a
 *   one-process gateway; the primary process holds its lock meanwhile, so it is passed as `locked: false`).
 */
export function shardsToDrain(
  spoolDir: string,
  existing: readonly { index: number; dir: string }[],
  worker: { index: number; count: number } | undefined,
): { dir: string; ownLock: boolean }[] {
  if (worker === undefined) return existing.map((s) => ({ dir: s.dir, ownLock: true }))
  const out = existing
    .filter((s) => s.index >= worker.count && s.index % worker.count === worker.index)
    .map((s) => ({ dir: s.dir, ownLock: true }))
  if (worker.index === 0) out.unshift({ dir: resolve(spoolDir), ownLock: false })
  return out
}

/**
 * The config a worker runs with: its own shard as the spool, and its share of spool.maxBytes and of the
 * admission water marks. An explicit spool.highWaterBytes/lowWaterBytes is a figure for the whole gateway,
 * like maxBytes: left whole, each shard's mark would sit above its own share of maxBytes (or at a multiple
 * of what the operator meant), so admission would never refuse before the shard is full.
 */
export function workerConfig(config: GatewayConfig, index: number, count: number): GatewayConfig {
  const { highWaterBytes, lowWaterBytes } = config.spool
  return {
    ...config,
    spool: {
      ...config.spool,
      dir: shardDir(config.spool.dir, index),
      maxBytes: Math.floor(config.spool.maxBytes / count),
      ...(highWaterBytes === undefined ? {} : { highWaterBytes: Math.floor(highWaterBytes / count) }),
      ...(lowWaterBytes === undefined ? {} : { lowWaterBytes: Math.floor(lowWaterBytes / count) }),
    },
  }
}
