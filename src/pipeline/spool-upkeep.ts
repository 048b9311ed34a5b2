import { join } from 'node:path'
import type { SinkError } from '../errors.js'
import { deadLetterRecord } from '../records/dead-letter.js'
import type { SinkRecord } from '../records/record.js'
import type { Spool, StreamSpool } from '../spool/spool.js'
import { writeFileAtomic } from '../spool/stream-log.js'
import type { Logger } from '../telemetry/logger.js'
import type { Metrics } from '../telemetry/metrics.js'
import {
  DEDUPE_SNAPSHOT_FILE,
  loadDedupeSnapshot,
  replayDedupeKeys,
  snapshotText,
  type DedupeWindow,
} from './dedupe.js'
import type { StreamRuntime } from './stream.js'

// What keeps the spool right besides appends: dead letters of sinks' permanent refusals, the dedupe
// windows' snapshots (restore at start, checkpoints), and deleting delivered segments (GC), which may only
// delete frames whose dedupe keys a durable snapshot holds (pipeline/dedupe.ts).

/**
 * Dedupe snapshots: at most one per stream this often while delivered segments wait to be deleted (a
 * segment goes only once a snapshot holds its keys, so this also delays clean-up that much)…
 */
const DEDUPE_SNAPSHOT_MIN_INTERVAL_MS = 5_000
/** …and one this often for a window that changed (covers `durability: none` streams, which spool nothing). */
const DEDUPE_SNAPSHOT_INTERVAL_MS = 30_000

/** What the last dedupe snapshot of a window holds: every key remembered before `version`. */
interface DedupeSaved {
  version: number
  /** Frames before this seq had been delivered (so their keys remembered) when the snapshot was taken. */
  bound: number | undefined
  atMs: number
}

/** What upkeep reads of the running topology. */
export interface UpkeepSource {
  stream(id: string): StreamRuntime | undefined
  streams(): Iterable<StreamRuntime>
  /** The stream's spool log and cursors, once its lanes started. */
  spoolOf(id: string): StreamSpool | undefined
  /** The names of the stream's lanes (its sinks and the dead-letter lane): the cursors that count. */
  laneNames(id: string): readonly string[]
}

export interface UpkeepDeps {
  logger: Logger
  metrics: Metrics
}

export class SpoolUpkeep {
  /** Pending segment clean-ups per stream; cleared by close() (they must never outlive the spool). */
  private readonly gcTimers = new Map<string, NodeJS.Timeout>()
  /** Dedupe windows restored at start (or adopted): only these may be snapshotted over the old file. */
  private readonly dedupeReady = new WeakSet<DedupeWindow>()
  private readonly dedupeSaved = new WeakMap<DedupeWindow, DedupeSaved>()
  /** One snapshot write at a time per stream (they share the temp file). */
  private readonly dedupeWrites = new Map<string, Promise<unknown>>()
  private dedupeTimer: NodeJS.Timeout | undefined

  constructor(
    private readonly spool: Pick<Spool, 'appendDeadLetters' | 'collect'>,
    private readonly topology: UpkeepSource,
    private readonly deps: UpkeepDeps,
  ) {}

  /** Starts the periodic dedupe snapshots. */
  start(): void {
    this.dedupeTimer = setInterval(() => {
      for (const runtime of this.topology.streams())
        if (runtime.dedupeWindow)
          this.checkpointDedupe(runtime, true).catch((err: unknown) => {
            this.deps.logger.warn({ err, stream: runtime.id }, 'dedupe snapshot failed')
          })
    }, DEDUPE_SNAPSHOT_INTERVAL_MS)
    this.dedupeTimer.unref()
  }

  /** Records a sink rejected permanently: wrapped with the reason and spooled for the dead-letter lane. */
  async deadLetter(stream: string, sinkName: string, records: SinkRecord[], error: SinkError): Promise<void> {
    const now = Date.now()
    const letters = records.map((r) =>
      deadLetterRecord(
        stream,
        r.payload,
        { reason: error.reason, sink: sinkName, errors: [{ message: error.message }] },
        r.receivedAtMs,
        now,
      ),
    )
    await this.spool.appendDeadLetters(stream, letters)
    this.deps.metrics.deadLetter(stream, error.reason, letters.length)
  }

  /** Deletes fully consumed segments, at most once a second per stream. */
  scheduleGc(stream: string): void {
    if (this.gcTimers.has(stream)) return
    const timer = setTimeout(() => {
      this.gcTimers.delete(stream)
      this.collectSegments(stream).catch((err: unknown) => {
        this.deps.logger.warn({ err, stream }, 'spool segment cleanup failed')
      })
    }, 1000)
    timer.unref()
    this.gcTimers.set(stream, timer)
  }

  private async collectSegments(stream: string): Promise<void> {
    const runtime = this.topology.stream(stream)
    // With dedupe, only frames whose keys a durable snapshot holds may be deleted (pipeline/dedupe.ts).
    const limit = runtime?.dedupeWindow ? await this.checkpointDedupe(runtime, false) : undefined
    await this.spool.collect(stream, this.topology.laneNames(stream), limit)
  }

  /**
   * Rebuilds a stream's dedupe window after a start (or a config change that replaced it): the snapshot's
   * keys plus the keys of the record frames still in the spool (those accepted after the snapshot).
   */
  async restoreDedupe(stream: StreamRuntime, spooled: StreamSpool): Promise<void> {
    const window = stream.dedupeWindow
    if (!window || this.dedupeReady.has(window)) return
    const now = Date.now()
    let saved: [string, number][] | undefined
    try {
      saved = await loadDedupeSnapshot(join(spooled.log.dir, DEDUPE_SNAPSHOT_FILE), stream.dedupeConfig!.key)
    } catch (err) {
      this.deps.logger.warn(
        { stream: stream.id, err: (err as Error).message },
        'the dedupe snapshot cannot be read; the window is rebuilt from the spool alone',
      )
    }
    const replayed = await replayDedupeKeys(
      spooled.log,
      (record) => stream.dedupeKeyOf(record),
      now - window.windowMs,
    )
    window.restore(saved ? saved.concat(replayed) : replayed, now)
    this.dedupeReady.add(window)
    if (window.size > 0)
      this.deps.logger.info(
        { stream: stream.id, keys: window.size, snapshot: saved?.length ?? 0, spool: replayed.length },
        'dedupe window restored',
      )
  }

  /**
   * Saves the stream's dedupe window when it changed (`force`: whenever it changed; else at most every
   * DEDUPE_SNAPSHOT_MIN_INTERVAL_MS) and returns the seq below which spool frames may be deleted: frames
   * every lane had passed when the last snapshot was taken. A record is remembered before any lane can read
   * it (StreamRuntime.commit runs as soon as the hand-off resolves), so their keys are in that snapshot.
   */
  private checkpointDedupe(runtime: StreamRuntime, force: boolean): Promise<number> {
    const previous = this.dedupeWrites.get(runtime.id) ?? Promise.resolve()
    const run = previous.then(() => this.checkpointDedupeNow(runtime, force))
    const tail = run.catch(() => undefined)
    this.dedupeWrites.set(runtime.id, tail)
    void tail.then(() => {
      if (this.dedupeWrites.get(runtime.id) === tail) this.dedupeWrites.delete(runtime.id)
    })
    return run
  }

  private async checkpointDedupeNow(runtime: StreamRuntime, force: boolean): Promise<number> {
    const window = runtime.dedupeWindow!
    const spooled = this.topology.spoolOf(runtime.id)
    // Not restored yet (its old snapshot would be overwritten with less), or no log: delete nothing.
    if (!spooled || !this.dedupeReady.has(window)) return 0
    const bound = spooled.cursors.minSeq([...this.topology.laneNames(runtime.id)])
    const saved = this.dedupeSaved.get(window)
    if (saved && saved.version === window.version) {
      // Nothing remembered since: every frame delivered by now has its key in that snapshot.
      saved.bound = bound
      return bound ?? 0
    }
    const now = Date.now()
    if (!force && saved && now - saved.atMs < DEDUPE_SNAPSHOT_MIN_INTERVAL_MS) return saved.bound ?? 0
    const version = window.version
    // Taken synchronously with `bound`: exactly the keys remembered so far.
    const text = snapshotText(runtime.dedupeConfig!.key, window, now)
    await writeFileAtomic(join(spooled.log.dir, DEDUPE_SNAPSHOT_FILE), text, true)
    this.dedupeSaved.set(window, { version, bound, atMs: now })
    return bound ?? 0
  }

  /**
   * Stops the timers and takes the last dedupe snapshots, while the spool (and its lock) is still ours. A
   * clean-up firing after close would delete segments of a spool whose lock is released, and replace the
   * newest one with an empty file: records another process (replay-dead-letter, the next gateway) wrote
   * there meanwhile would be lost.
   */
  async close(): Promise<void> {
    for (const timer of this.gcTimers.values()) clearTimeout(timer)
    this.gcTimers.clear()
    clearInterval(this.dedupeTimer)
    await Promise.allSettled(
      [...this.topology.streams()]
        .filter((runtime) => runtime.dedupeWindow)
        .map((runtime) =>
          this.checkpointDedupe(runtime, true).catch((err: unknown) => {
            this.deps.logger.error({ err, stream: runtime.id }, 'dedupe snapshot failed at shutdown')
          }),
        ),
    )
  }
}
