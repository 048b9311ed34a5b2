import { mkdir, readdir, readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import type { SpoolConfig } from '../config/types.js'
import type { SinkRecord } from '../records/record.js'
import type { Logger } from '../telemetry/logger.js'
import { FrameKind } from './format.js'
import { acquireSpoolLock, type SpoolLock } from './lock.js'
import { StreamLog, writeFileAtomic, type Position } from './stream-log.js'

// The spool: streamgate's durable log between ingest and delivery. One StreamLog per stream under
// <dir>/streams/<stream-id>/, each lane's position (one lane per sink of the stream, plus the stream's
// dead-letter lane) in cursors.json beside it. The spool is owned by one process at a time (lock.ts): open()
// takes ownership (or is handed it) and close() gives it up.
// `maxBytes` is a hard limit over all streams: an append that does not fit fails with SpoolFullError,
// which ingest answers with 503 + Retry-After.

export const DEAD_LETTER_LANE = '@dead-letter'

export class SpoolFullError extends Error {
  constructor(
    readonly usedBytes: number,
    readonly maxBytes: number,
  ) {
    super(`the spool is full (${usedBytes} of ${maxBytes} bytes)`)
    this.name = 'SpoolFullError'
  }
}

export { SpoolLockedError } from './lock.js'

/** Lane positions of one stream, persisted atomically (temp file + rename). */
export class CursorStore {
  private positions = new Map<string, Position>()
  private timer: NodeJS.Timeout | undefined
  private saving: Promise<void> | undefined
  private dirty = false
  /** True when no lane had a position when the store was loaded (a fresh or never-saved stream). */
  loadedEmpty = true

  constructor(private readonly path: string) {}

  async load(): Promise<void> {
    try {
      const doc = JSON.parse(await readFile(this.path, 'utf8')) as { lanes?: Record<string, Position> }
      for (const [lane, pos] of Object.entries(doc.lanes ?? {}))
        if (Number.isSafeInteger(pos.seq) && Number.isSafeInteger(pos.index))
          this.positions.set(lane, { seq: pos.seq, index: pos.index })
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    }
    this.loadedEmpty = this.positions.size === 0
  }

  get(lane: string): Position | undefined {
    const p = this.positions.get(lane)
    return p ? { ...p } : undefined
  }

  lanes(): string[] {
    return [...this.positions.keys()]
  }

  /** Records a lane's position; saved within ~100 ms (a crash before that only means redelivery). */
  set(lane: string, position: Position): void {
    this.positions.set(lane, { ...position })
    this.schedule()
  }

  delete(lane: string): void {
    if (this.positions.delete(lane)) this.schedule()
  }

  minSeq(lanes: readonly string[]): number | undefined {
    let min: number | undefined
    for (const lane of lanes) {
      const p = this.positions.get(lane)
      if (p === undefined) return undefined
      min = min === undefined ? p.seq : Math.min(min, p.seq)
    }
    return min
  }

  private schedule(): void {
    this.dirty = true
    if (this.timer) return
    this.timer = setTimeout(() => {
      this.timer = undefined
      this.save(false).catch(() => {
        this.dirty = true // the next change or close() tries again
      })
    }, 100)
    this.timer.unref()
  }

  async save(fsync = true): Promise<void> {
    while (this.saving) await this.saving
    if (!this.dirty && !fsync) return
    this.dirty = false
    const doc = { lanes: Object.fromEntries(this.positions) }
    this.saving = writeFileAtomic(this.path, JSON.stringify(doc), fsync).finally(() => {
      this.saving = undefined
    })
    await this.saving
  }

  async close(): Promise<void> {
    clearTimeout(this.timer)
    this.timer = undefined
    await this.save(true)
  }

  /** Test hook: forget unsaved positions as a crash would. */
  abandon(): void {
    clearTimeout(this.timer)
    this.timer = undefined
    this.dirty = false
  }
}

export interface StreamSpool {
  log: StreamLog
  cursors: CursorStore
}

export class Spool {
  private readonly streams = new Map<string, Promise<StreamSpool>>()
  private closed = false

  private constructor(
    readonly config: SpoolConfig,
    private readonly logger: Logger,
    private readonly lock: SpoolLock,
  ) {}

  /**
   * Opens the spool as its one owner: takes the lock on `config.dir` (SpoolLockedError when another
   * process or spool holds it), or takes over `lock` when the caller already holds it (start() does, to
   * own the directory before anything beside it is touched). close() releases the lock either way.
   */
  static async open(config: SpoolConfig, logger: Logger, lock?: SpoolLock): Promise<Spool> {
    const owned = lock ?? (await acquireSpoolLock(config.dir))
    try {
      await mkdir(join(config.dir, 'streams'), { recursive: true })
    } catch (err) {
      await owned.release()
      throw err
    }
    return new Spool(config, logger, owned)
  }

  /** The stream ids that have a log on disk (including streams no longer configured). */
  async storedStreams(): Promise<string[]> {
    const names = await readdir(join(this.config.dir, 'streams')).catch(() => [] as string[])
    return names.map((n) => decodeURIComponent(n))
  }

  stream(id: string): Promise<StreamSpool> {
    let s = this.streams.get(id)
    if (!s) {
      s = this.openStream(id)
      this.streams.set(id, s)
      s.catch(() => this.streams.delete(id))
    }
    return s
  }

  private async openStream(id: string): Promise<StreamSpool> {
    const dir = join(this.config.dir, 'streams', encodeURIComponent(id))
    const log = await StreamLog.open(dir, id, {
      segmentBytes: this.config.segmentBytes,
      fsync: this.config.fsync,
      tailCacheBytes: this.config.tailCacheBytes,
    })
    const r = log.recovery
    if (r.corruptFrames > 0 || r.truncatedBytes > 0)
      this.logger.warn(
        { stream: id, ...r },
        'spool recovered from a damaged log (torn tail truncated, corrupt frames skipped)',
      )
    const cursors = new CursorStore(join(dir, 'cursors.json'))
    await cursors.load()
    const opened = { log, cursors }
    this.opened.set(id, opened)
    return opened
  }

  /** Bytes used by every open stream log (written and queued). */
  usedBytes(): number {
    let total = 0
    for (const s of this.opened.values()) total += s.log.bytes
    return total
  }

  private readonly opened = new Map<string, StreamSpool>()

  /**
   * Appends a request's accepted records and dead letters; resolves once they are durable. Rejects with
   * SpoolFullError (nothing written) when they do not fit under maxBytes. Once the stream's log is open (after
   * its first append) the frames are encoded before this returns: nothing here holds on to `records` or
   * `deadLetters` while the write is under way, so the caller may let go of them (SpoolHandOff does).
   */
  append(
    stream: string,
    records: readonly SinkRecord[],
    deadLetters: readonly SinkRecord[],
    receivedAtMs: number,
  ): Promise<void> {
    if (this.closed) return Promise.reject(new Error('the spool is closed'))
    const opened = this.opened.get(stream)
    if (opened === undefined)
      return this.stream(stream).then((s) => this.appendTo(s, records, deadLetters, receivedAtMs))
    return this.appendTo(opened, records, deadLetters, receivedAtMs)
  }

  private appendTo(
    s: StreamSpool,
    records: readonly SinkRecord[],
    deadLetters: readonly SinkRecord[],
    receivedAtMs: number,
  ): Promise<void> {
    if (this.closed) return Promise.reject(new Error('the spool is closed'))
    const needed = StreamLog.frameBytes(records) + StreamLog.frameBytes(deadLetters)
    const used = this.usedBytes()
    if (used + needed > this.config.maxBytes)
      return Promise.reject(new SpoolFullError(used, this.config.maxBytes))
    const written = records.length > 0 ? s.log.append(FrameKind.Records, records, receivedAtMs) : undefined
    const dead =
      deadLetters.length > 0 ? s.log.append(FrameKind.DeadLetters, deadLetters, receivedAtMs) : undefined
    if (written && dead) return Promise.all([written, dead]).then(() => undefined)
    return written ?? dead ?? Promise.resolve()
  }

  /** Appends dead letters produced by delivery (a sink rejected records permanently). */
  async appendDeadLetters(stream: string, deadLetters: readonly SinkRecord[]): Promise<void> {
    if (deadLetters.length === 0) return
    const s = await this.stream(stream)
    // Not subject to maxBytes: these records were already acknowledged; refusing them would lose them.
    await s.log.append(FrameKind.DeadLetters, deadLetters, Date.now())
  }

  /**
   * Deletes segments every listed lane has passed (and, with `limitSeq`, only frames before it). A no-op
   * once close() began (the lock goes with it).
   */
  async collect(stream: string, lanes: readonly string[], limitSeq?: number): Promise<void> {
    if (this.closed) return
    const run = (async () => {
      const s = await this.stream(stream)
      const min = s.cursors.minSeq(lanes)
      if (min !== undefined && !this.closed)
        await s.log.deleteBefore(
          limitSeq === undefined ? min : Math.min(min, limitSeq),
          // close() waits for this run: the segments' last steps then go at once.
          () => this.closed,
        )
    })()
    this.collecting.add(run)
    try {
      await run
    } finally {
      this.collecting.delete(run)
    }
  }

  private readonly collecting = new Set<Promise<void>>()

  /** Removes a stream's log entirely (after it was deleted from the config and drained). */
  async drop(stream: string): Promise<void> {
    const s = await this.stream(stream)
    await s.log.close()
    await s.cursors.close()
    this.streams.delete(stream)
    this.opened.delete(stream)
    await rm(join(this.config.dir, 'streams', encodeURIComponent(stream)), { recursive: true, force: true })
  }

  async close(): Promise<void> {
    this.closed = true
    // A clean-up in progress finishes before the logs close and the lock is released.
    await Promise.allSettled([...this.collecting])
    try {
      for (const s of this.streams.values()) {
        const { log, cursors } = await s
        await log.close()
        await cursors.close()
      }
    } finally {
      // Even when a log failed to close: this process writes no more, so it must not keep the spool.
      await this.lock.release()
    }
  }
}
