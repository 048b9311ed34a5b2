import {
  mkdir,
  open,
  readdir,
  rename,
  stat,
  truncate,
  unlink,
  writeFile,
  type FileHandle,
} from 'node:fs/promises'
import { constants as fsConstants } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { BufferPool } from '../buffer-pool.js'
import type { SinkRecord } from '../records/record.js'
import {
  BODY_FIXED_BYTES,
  checkFrame,
  decodeFrame,
  encodeFrame,
  FRAME_HEADER_BYTES,
  frameKind,
  frameSeq,
  type Frame,
  type FrameKind,
} from './format.js'
import { FrameIndex } from './frame-index.js'
import { SegmentScanner } from './segment-scan.js'

// One stream's append-only log of segment files (format in ./format.ts). Appends are group-committed:
// frames queued while a write is in progress go out together in the next writev + fdatasync, and each
// append resolves only after that (fsync: "always"). Readers follow the log from a position and wait
// for new frames; they only ever see frames whose write completed.

export interface Position {
  /** Sequence number of the next frame to consume. */
  seq: number
  /** Records of that frame already consumed. */
  index: number
}

export interface LogOptions {
  segmentBytes: number
  /** "always": fsync before an append resolves; a number: fsync at most every N ms (appends resolve after write). */
  fsync: 'always' | number
  /** Inspect only (spool stats while a gateway runs): recovery reports damage but changes no file. */
  readOnly?: boolean
  /**
   * Bytes of the most recently written frames kept in memory for readers (TAIL_CACHE_BYTES by default; 0 =
   * none). A caught-up lane takes its frames from here instead of reading them back from the segment file.
   */
  tailCacheBytes?: number
  /** How a consumed segment is given back (releaseFile): RELEASE_STEP_BYTES and RELEASE_PAUSE_MS by default. */
  release?: { stepBytes: number; pauseMs: number }
}

/**
 * Default of LogOptions.tailCacheBytes: a few of the largest request frames (an emnify bulk is ~15 MB), so a
 * lane that keeps up never reads the file, while a lane that falls further behind than this reads from disk
 * as before (the cache is a shortcut, never the only copy: frames enter it after their write completed).
 */
export const TAIL_CACHE_BYTES = 16 * 1024 * 1024

export interface RecoveryReport {
  segments: number
  frames: number
  records: number
  /** Frames skipped because their checksum failed (their records are lost; counted and reported). */
  corruptFrames: number
  /** Bytes cut from the end of the log: a frame whose write was interrupted by a crash. */
  truncatedBytes: number
}

interface Segment {
  firstSeq: number
  path: string
  /** Bytes written (readers never read past this). */
  bytes: number
}

interface PendingAppend {
  frame: Buffer
  resolve: () => void
  reject: (err: unknown) => void
}

const SEGMENT_SUFFIX = '.seg'
const segmentName = (firstSeq: number): string => `${String(firstSeq).padStart(20, '0')}${SEGMENT_SUFFIX}`
/** A consumed segment renamed on its way out (deleteBefore); recovery deletes what a crash left of one. */
const RELEASING_SUFFIX = '.releasing'
/**
 * How a consumed segment is given back: truncated this much at a time, RELEASE_PAUSE_MS apart, then
 * unlinked. One unlink of a 64 MiB segment frees all its blocks in one ext4 journal commit: ~35 ms on the
 * bench VM's disk (ext4 mounted with `discard`), and the O_DSYNC appends that answers wait for stalled
 * behind it — appends of 0.9 MB every 11 ms, p99 24–27 ms against 3 ms without the deletes; in 2 MiB steps 2
 * ms apart, p99 3.2 ms (4 MiB steps without a pause: 5.6–6.8 ms). At half load, 2,000-record batches' p99
 * 37–39 → 13.5–22 ms (bench/RESULTS.md, 2026-12-05). A 64 MiB segment then takes ~110 ms to go, ~600 MB/s:
 * faster than ingest fills the spool.
 */
export const RELEASE_STEP_BYTES = 2 * 1024 * 1024
export const RELEASE_PAUSE_MS = 2

/**
 * Truncates the file at `path` by `step` bytes at a time, `pauseMs` apart, then unlinks it; a missing file
 * is not an error. `stop()` true (the log closed) skips the remaining steps: the rest goes in one unlink.
 */
export async function releaseFile(
  path: string,
  stop: () => boolean = () => false,
  step = RELEASE_STEP_BYTES,
  pauseMs = RELEASE_PAUSE_MS,
): Promise<void> {
  let handle: FileHandle
  try {
    handle = await open(path, 'r+')
  } catch (err) {
    ignoreMissing(err as NodeJS.ErrnoException)
    return
  }
  try {
    let size = (await handle.stat()).size
    while (size > step && !stop()) {
      size -= step
      await handle.truncate(size)
      await sleep(pauseMs)
    }
  } finally {
    await handle.close()
  }
  await unlink(path).catch(ignoreMissing)
}

function ignoreMissing(err: NodeJS.ErrnoException): void {
  if (err.code !== 'ENOENT') throw err
}

export class StreamLog {
  private readonly segments: Segment[] = []
  private active: FileHandle | undefined
  private nextSeqValue = 1
  private queue: PendingAppend[] = []
  private writing: Promise<void> | undefined
  private waiters: (() => void)[] = []
  private fsyncTimer: NodeJS.Timeout | undefined
  private dirty = false
  private closed = false
  recovery: RecoveryReport = { segments: 0, frames: 0, records: 0, corruptFrames: 0, truncatedBytes: 0 }
  readonly index = new FrameIndex()
  private readonly tail: TailCache
  /**
   * Frames under 64 KiB are cut one after the other from 256 KiB chunks of this log's own: the tail cache lets
   * go of frames oldest first, so it keeps whole chunks busy, not Node's 8 KiB slabs shared with request
   * bodies and answers — with those, a 16 MiB cache of one-record frames held ~46 MB of slabs
   * (bench/RESULTS.md, 2026-12-04 fifth session). Larger frames come from the frame pool.
   */
  private chunk = Buffer.alloc(0)
  private chunkUsed = 0
  private readonly takeFrameBuffer = (length: number): Buffer => {
    if (length >= SMALL_FRAME_BYTES) return frameBuffers.take(length)
    if (this.chunkUsed + length > this.chunk.length) {
      this.chunk = Buffer.allocUnsafeSlow(FRAME_CHUNK_BYTES)
      this.chunkUsed = 0
    }
    const frame = this.chunk.subarray(this.chunkUsed, this.chunkUsed + length)
    // 8-byte aligned starts, as a slab's.
    this.chunkUsed += (length + 7) & ~7
    return frame
  }

  private constructor(
    readonly dir: string,
    readonly stream: string,
    private readonly options: LogOptions,
  ) {
    this.tail = new TailCache(options.readOnly ? 0 : (options.tailCacheBytes ?? TAIL_CACHE_BYTES))
  }

  /** Opens (creating if needed) and recovers the log in `dir`. */
  static async open(dir: string, stream: string, options: LogOptions): Promise<StreamLog> {
    const log = new StreamLog(dir, stream, options)
    if (!options.readOnly) await mkdir(dir, { recursive: true })
    await log.recover()
    if (typeof options.fsync === 'number') {
      log.fsyncTimer = setInterval(() => {
        void log.flushInterval()
      }, options.fsync)
      log.fsyncTimer.unref()
    }
    return log
  }

  get nextSeq(): number {
    return this.nextSeqValue
  }

  get firstSeq(): number {
    return this.segments[0]?.firstSeq ?? this.nextSeqValue
  }

  /** Bytes on disk plus bytes queued for writing. */
  get bytes(): number {
    let total = this.queuedBytes
    for (const s of this.segments) total += s.bytes
    return total
  }

  private queuedBytes = 0

  get segmentCount(): number {
    return this.segments.length
  }

  /** Appends one frame; resolves once it is written (and fsync'd when fsync is "always"). */
  append(kind: FrameKind, records: readonly SinkRecord[], receivedAtMs: number): Promise<void> {
    if (this.options.readOnly) return Promise.reject(new Error('the spool log is open read-only'))
    if (this.closed) return Promise.reject(new Error(`spool log of stream ${this.stream} is closed`))
    // The seq is assigned now, in queue order, which is also the order frames reach the file.
    const seq = this.nextSeqValue++
    const frame = encodeFrame(kind, seq, receivedAtMs, records, this.takeFrameBuffer)
    this.index.push(seq, kind, records.length)
    this.queuedBytes += frame.length
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ frame, resolve, reject })
      this.writing ??= this.writeLoop()
    })
  }

  /** Size a frame of these records will take on disk. */
  static frameBytes(records: readonly SinkRecord[]): number {
    let size = FRAME_HEADER_BYTES + 22
    for (const r of records) size += 10 + r.payload.length + (r.id?.length ?? 0) * 3 + (r.fields ? 64 : 0)
    return size
  }

  private async writeLoop(): Promise<void> {
    try {
      // Appends made in the same tick join the first write: a request's records and its dead letters are
      // two frames, one writev and one fdatasync (the loop used to take the queue before the second came).
      await Promise.resolve()
      while (this.queue.length > 0) {
        const batch = this.queue
        this.queue = []
        try {
          const segment = await this.activeSegment(frameSeq(batch[0]!.frame, 0))
          const buffers = batch.map((p) => p.frame)
          let total = 0
          for (const b of buffers) total += b.length
          // writev of up to 1024 buffers per call; short writes are completed.
          for (let i = 0; i < buffers.length; i += 1024) {
            const slice = buffers.slice(i, i + 1024)
            let expected = 0
            for (const b of slice) expected += b.length
            let { bytesWritten } = await this.active!.writev(slice)
            while (bytesWritten < expected) {
              const rest = Buffer.concat(slice).subarray(bytesWritten)
              bytesWritten += (await this.active!.write(rest)).bytesWritten
            }
          }
          // fsync 'always': the segment is open with O_DSYNC where the platform has it, so each write
          // returned once its data (and what reading it back needs) was on disk, as writev + fdatasync do, in
          // one thread-pool hop instead of two (one-record requests +12–25 % req/s, bench/RESULTS.md).
          if (this.options.fsync !== 'always') this.dirty = true
          else if (!DSYNC) await this.active!.datasync()
          // Readers see the frames from here on (segment.bytes); the caught-up ones take them from memory.
          let offset = segment.bytes
          for (const frame of buffers) {
            // Not kept for readers (larger than the cache, or no cache): nothing else holds it.
            if (!this.tail.add(segment, offset, frame)) frameBuffers.give(frame)
            offset += frame.length
          }
          segment.bytes += total
          this.queuedBytes -= total
          for (const p of batch) p.resolve()
          this.notify()
          if (segment.bytes >= this.options.segmentBytes) await this.rollSegment()
        } catch (err) {
          // The file may now end in a partial frame; recovery truncates it at the next start. Stop using
          // this segment so that later frames never follow garbage.
          await this.abandonActive()
          for (const p of batch) {
            this.queuedBytes -= p.frame.length
            p.reject(err)
          }
        }
      }
    } finally {
      this.writing = undefined
    }
  }

  private async flushInterval(): Promise<void> {
    if (!this.dirty || !this.active || this.writing) return
    this.dirty = false
    await this.active.datasync().catch(() => {
      this.dirty = true
    })
  }

  /** The segment being appended to; a new one is named after the first frame it will hold. */
  private async activeSegment(firstSeq: number): Promise<Segment> {
    const last = this.segments.at(-1)
    if (this.active && last) return last
    if (last && last.bytes === 0 && last.firstSeq === firstSeq) {
      // The empty segment left by a drain (or found at recovery) is named for exactly this frame.
      this.active = await open(last.path, this.appendFlags())
      return last
    }
    const segment: Segment = { firstSeq, path: join(this.dir, segmentName(firstSeq)), bytes: 0 }
    this.active = await open(segment.path, this.appendFlags())
    await syncDir(this.dir)
    this.segments.push(segment)
    return segment
  }

  /** Append mode; with fsync 'always' also O_DSYNC (every write is durable when it returns). */
  private appendFlags(): number {
    const { O_WRONLY, O_APPEND, O_CREAT } = fsConstants
    return O_WRONLY | O_APPEND | O_CREAT | (this.options.fsync === 'always' && DSYNC ? DSYNC : 0)
  }

  private async rollSegment(): Promise<void> {
    const handle = this.active
    this.active = undefined
    if (handle) {
      await handle.datasync()
      await handle.close()
    }
  }

  private async abandonActive(): Promise<void> {
    const handle = this.active
    this.active = undefined
    await handle?.close().catch(() => undefined)
  }

  private notify(): void {
    const waiters = this.waiters
    this.waiters = []
    for (const w of waiters) w()
  }

  /**
   * Calls `listener` once, at the next append (or when the log is closed). A listener that no
   * longer cares (its waiter woke for another reason) must ignore the call: it is not taken back.
   */
  onAppend(listener: () => void): void {
    this.waiters.push(listener)
  }

  /** `readAheadBytes`: the size of each read from the file (tests make it small). */
  reader(from: Position, readAheadBytes = READ_AHEAD_BYTES): LogReader {
    return new LogReader(this, from, readAheadBytes)
  }

  /** @internal for LogReader */
  segmentFor(seq: number): { segment: Segment; index: number } | undefined {
    let found: number | undefined
    for (let i = 0; i < this.segments.length; i++) if (this.segments[i]!.firstSeq <= seq) found = i
    if (found === undefined) return this.segments[0] ? { segment: this.segments[0], index: 0 } : undefined
    return { segment: this.segments[found]!, index: found }
  }

  /** @internal for LogReader: the frame written at `offset` of `segment`, when it is still in memory. */
  cachedFrame(segment: Segment, offset: number): CachedFrame | undefined {
    return this.tail.get(segment, offset)
  }

  /** Frames and bytes held in memory for readers (tests, diagnostics). */
  get tailCache(): { frames: number; bytes: number } {
    return { frames: this.tail.frames, bytes: this.tail.bytes }
  }

  /** @internal for LogReader */
  segmentAt(index: number): Segment | undefined {
    return this.segments[index]
  }

  /** @internal for LogReader */
  segmentIndexOf(segment: Segment): number {
    return this.segments.indexOf(segment)
  }

  /** Records of `kind` after `position` (a lane's lag). */
  lag(kind: FrameKind, position: Position): number {
    const pending = this.index.total(kind) - this.index.before(kind, position.seq)
    return Math.max(0, pending - (this.index.countAt(kind, position.seq) > 0 ? position.index : 0))
  }

  /**
   * Deletes whole segments whose frames are all before `seq` (every lane has consumed them). When every
   * frame is consumed, the active segment is closed and deleted too (the next append starts a new one), so
   * a drained spool gives all its bytes back. Each goes in steps (releaseFile) until `hurry()` (the spool is
   * closing: its close waits for this) or the log closes; then the rest of it in one unlink.
   */
  async deleteBefore(seq: number, hurry: () => boolean = () => false): Promise<number> {
    // Closed: the files may already belong to another process (the spool lock is released on close).
    if (this.closed) return 0
    let doomed: Segment[] = []
    const last = this.segments.at(-1)
    if (seq >= this.nextSeqValue && !this.writing && this.queue.length === 0 && last && last.bytes > 0) {
      const handle = this.active
      this.active = undefined
      doomed = this.segments.splice(0)
      // An empty segment named for the next frame keeps the sequence across restarts.
      const fresh: Segment = {
        firstSeq: this.nextSeqValue,
        path: join(this.dir, segmentName(this.nextSeqValue)),
        bytes: 0,
      }
      this.segments.push(fresh)
      await handle?.close()
      // Created, never truncated: from the push above, an append may already be writing (and fsyncing and
      // acknowledging) its frame into this very file; a plain writeFile would erase it.
      await writeFile(fresh.path, '', { flag: 'a' })
      await syncDir(this.dir)
    } else {
      // Never the active (last) segment.
      while (this.segments.length > 1 && this.segments[1]!.firstSeq <= seq)
        doomed.push(this.segments.shift()!)
    }
    let freed = 0
    if (doomed.length > 0) {
      this.index.dropBefore(this.segments[0]?.firstSeq ?? seq)
      this.tail.dropSegments(doomed)
    }
    // Out of the log at once (a rename), then given back to the file system in steps (releaseFile).
    const leaving: string[] = []
    for (const segment of doomed) {
      freed += segment.bytes
      const path = `${segment.path}${RELEASING_SUFFIX}`
      await rename(segment.path, path).then(() => leaving.push(path), ignoreMissing)
    }
    const { release } = this.options
    for (const path of leaving)
      await releaseFile(path, () => this.closed || hurry(), release?.stepBytes, release?.pauseMs)
    return freed
  }

  /** Test hook: drops everything as a crash would (no fsync, no more writes), leaving files as they are. */
  async abandon(): Promise<void> {
    this.closed = true
    clearInterval(this.fsyncTimer)
    while (this.writing) await this.writing.catch(() => undefined)
    this.tail.clear()
    await this.active?.close().catch(() => undefined)
    this.active = undefined
  }

  async close(): Promise<void> {
    this.closed = true
    clearInterval(this.fsyncTimer)
    while (this.writing) await this.writing
    this.tail.clear()
    if (this.active) {
      await this.active.datasync()
      await this.active.close()
      this.active = undefined
    }
    this.notify()
  }

  private async recover(): Promise<void> {
    const all = await readdir(this.dir)
    // Segments a crash caught on their way out (deleteBefore): every lane had consumed them.
    if (!this.options.readOnly)
      for (const name of all.filter((n) => n.endsWith(RELEASING_SUFFIX)))
        await unlink(join(this.dir, name)).catch(ignoreMissing)
    const names = all.filter((n) => n.endsWith(SEGMENT_SUFFIX)).sort()
    const report = this.recovery
    let expectedSeq: number | undefined
    for (let i = 0; i < names.length; i++) {
      const path = join(this.dir, names[i]!)
      const firstSeq = Number(names[i]!.slice(0, -SEGMENT_SUFFIX.length))
      // Through a window, never the whole segment (src/spool/segment-scan.ts).
      const scan = await SegmentScanner.open(path)
      const size = scan.size
      const last = i === names.length - 1
      let offset = 0
      let validEnd = 0
      try {
        while (offset < size) {
          const check = await scan.check(offset)
          if (check.ok) {
            const { seq, kind, count } = check.frame
            report.frames++
            report.records += count
            this.index.push(seq, kind, count)
            expectedSeq = seq + 1
            offset += check.length
            validEnd = offset
            continue
          }
          // A bad frame: corrupt in the middle (a valid frame follows) or a torn tail (nothing valid follows).
          const next = check.length !== undefined ? offset + check.length : undefined
          if (next !== undefined && next < size && (await scan.check(next)).ok) {
            report.corruptFrames++
            offset = next
            validEnd = offset
            continue
          }
          break
        }
      } finally {
        await scan.close()
      }
      if (validEnd < size) {
        report.truncatedBytes += size - validEnd
        if (!last) report.corruptFrames++
        if (!this.options.readOnly) await truncate(path, validEnd)
      }
      if (validEnd === 0) {
        // Nothing valid in it: a crash right after it was created, or the empty segment a drained log
        // keeps so that its next seq survives restarts. Keep it only if it is the last one.
        expectedSeq = Math.max(expectedSeq ?? 0, firstSeq)
        if (!last) {
          if (!this.options.readOnly) await unlink(path)
          continue
        }
      }
      this.segments.push({ firstSeq, path, bytes: validEnd })
      report.segments++
    }
    if (report.truncatedBytes > 0 && !this.options.readOnly) await syncDir(this.dir)
    this.nextSeqValue = expectedSeq ?? 1
    // Appends go to a fresh segment after a restart (`active` is unset): the old last segment is never
    // appended to again, so a crash can only ever tear the segment that was being written.
  }
}

/**
 * Reads frames in order from a position. Payloads of returned records are views into the reader's own read
 * buffers (or into the tail cache's frames): nothing else writes to them unless the caller hands them back
 * with `recycle()`.
 */
export class LogReader {
  private segment: Segment | undefined
  private segmentIndex = -1
  private handle: FileHandle | undefined
  private offset = 0
  private positioned = false
  /** Read-ahead buffer: file bytes [bufferStart, bufferStart + buffer.length), a view of `backing`. */
  private buffer: Buffer = Buffer.alloc(0)
  private backing: Buffer | undefined
  private bufferStart = 0
  /** Since the first recycle(): read buffers replaced since the last recycle() (records may be in use). */
  private retired: Buffer[] | undefined
  private retiredBytes = 0
  /** Tail-cache frames this reader returned records of since the last recycle() (see hold()). */
  private pinned: CachedFrame[] = []
  /** The tail-cache frame of the frame returned last (undefined when that came from the file). */
  private lastCached: CachedFrame | undefined
  /** Where `probe` reads a frame's first bytes when the read buffer does not hold them. */
  private readonly probeBuffer = Buffer.allocUnsafe(FRAME_HEADER_BYTES + BODY_FIXED_BYTES)
  corruptFrames = 0

  constructor(
    private readonly log: StreamLog,
    private position: Position,
    private readonly readAheadBytes = READ_AHEAD_BYTES,
  ) {}

  /**
   * The caller no longer uses the records of frames returned before this call, except those of the frame
   * returned last (which it may still be consuming): the read buffers that held only such frames are read
   * into again instead of allocating fresh ones, and the tail-cache frames among them are unpinned (reused
   * for later frames once evicted, see CachedFrame). Frames returned after this call, and the last one
   * returned before it, stay intact until the next call. Without it every read is a fresh buffer, freed by
   * the garbage collector — a major GC once records held over a sink's await have promoted it (a lane
   * reading a backlog reads its whole spool through such buffers) — and every cached frame it takes is
   * never reused.
   */
  recycle(): void {
    // A lane calls this at every turn of its loop: nothing is allocated when there is nothing to hand back.
    const pinned = this.pinned
    let kept = 0
    for (const entry of pinned) {
      if (entry === this.lastCached) pinned[kept++] = entry
      else unpin(entry)
    }
    pinned.length = kept
    const retired = this.retired
    if (!retired) {
      this.retired = []
      return
    }
    for (const buffer of retired) readBuffers.give(buffer)
    retired.length = 0
    this.retiredBytes = 0
  }

  /**
   * A frame from the tail cache whose records go to the caller: a reader that recycles pins it until a
   * recycle() says they are no longer used; one that does not marks it as never to be reused (its records
   * may be held for as long as the caller likes).
   */
  private hold(entry: CachedFrame): void {
    if (this.retired) {
      entry.pins++
      this.pinned.push(entry)
    } else entry.tainted = true
  }

  get at(): Position {
    return { ...this.position }
  }

  /**
   * The next frame at or after the position (with `skip` = records of it already consumed), or
   * undefined when the reader is at the end of what has been written. With `only`, a frame of another kind
   * comes back as its kind and seq with no records, neither read nor checked nor decoded: a dead-letter
   * lane passes over the record frames (by far the most bytes) at the cost of a small read each.
   */
  async next(only?: FrameKind): Promise<{ frame: Frame; skip: number } | undefined> {
    if (!this.positioned && !(await this.seek())) return undefined
    for (;;) {
      const segment = this.segment!
      if (this.offset >= segment.bytes) {
        // End of this segment: move to the next one if it exists.
        const nextSegment = this.log.segmentAt(this.log.segmentIndexOf(segment) + 1)
        if (!nextSegment) return undefined
        await this.openSegment(nextSegment)
        continue
      }
      // A frame this process wrote recently is still in memory: no read, no CRC (these are the bytes that
      // were written, and checked by nothing else either until a restart reads them back from the file).
      const cached = this.log.cachedFrame(segment, this.offset)
      if (only !== undefined) {
        const head = cached?.frame ?? (await this.probe(this.offset, segment.bytes))
        if (!head) return undefined
        const kind = frameKind(head, 0)
        if (kind !== only) {
          const seq = frameSeq(head, 0)
          this.offset += FRAME_HEADER_BYTES + head.readUInt32LE(0)
          if (seq < this.position.seq) continue
          return { frame: { kind, seq, receivedAtMs: 0, records: [] }, skip: 0 }
        }
      }
      const frameBuf = cached
        ? { buf: cached.frame, start: 0, length: cached.frame.length, ok: true }
        : await this.readFrameAt(this.offset, segment.bytes)
      if (!frameBuf) return undefined
      const { buf, start, length, ok } = frameBuf
      this.offset += length
      if (!ok) {
        this.corruptFrames++
        continue
      }
      const seq = frameSeq(buf, start)
      if (seq < this.position.seq) continue
      const frame = decodeFrame(buf, start, this.log.stream)
      const skip = seq === this.position.seq ? this.position.index : 0
      this.lastCached = cached
      if (cached) this.hold(cached)
      return { frame, skip }
    }
  }

  /** Marks records up to (frame seq, index) as consumed; index === count means the whole frame. */
  advance(position: Position): void {
    this.position = { ...position }
  }

  kindOf(frame: Frame): FrameKind {
    return frame.kind
  }

  async close(): Promise<void> {
    await this.handle?.close().catch(() => undefined)
    this.handle = undefined
  }

  private async seek(): Promise<boolean> {
    const found = this.log.segmentFor(this.position.seq)
    if (!found) return false
    await this.openSegment(found.segment)
    this.positioned = true
    return true
  }

  private async openSegment(segment: Segment): Promise<void> {
    await this.handle?.close().catch(() => undefined)
    this.segment = segment
    this.handle = await open(segment.path, 'r')
    this.offset = 0
    this.retire()
    this.buffer = Buffer.alloc(0)
    this.bufferStart = 0
  }

  /** The read buffer is being replaced: records decoded from it may still be in use until recycle(). */
  private retire(): void {
    if (this.backing && this.retired) {
      this.retired.push(this.backing)
      this.retiredBytes += this.backing.length
      // A caller that recycles seldom (batches always in flight): the oldest are left to the garbage
      // collector (always safe), so that the list holds no more than a lane's batch.
      while (this.retiredBytes > MAX_RETIRED_BYTES && this.retired.length > 1)
        this.retiredBytes -= this.retired.shift()!.length
    }
    this.backing = undefined
  }

  private async readFrameAt(
    offset: number,
    end: number,
  ): Promise<{ buf: Buffer; start: number; length: number; ok: boolean } | undefined> {
    if (!(await this.ensure(offset, FRAME_HEADER_BYTES, end))) return undefined
    const bodyLength = this.buffer.readUInt32LE(offset - this.bufferStart)
    const length = FRAME_HEADER_BYTES + bodyLength
    if (!(await this.ensure(offset, length, end))) return undefined
    const start = offset - this.bufferStart
    const check = checkFrame(this.buffer, start, start + length)
    return { buf: this.buffer, start, length, ok: check.ok }
  }

  /** Reads file bytes [offset, offset + n) into `into`; how many there were (fewer at the end of the file). */
  private async readAt(into: Buffer, n: number, offset: number): Promise<number> {
    let read = 0
    while (read < n) {
      const { bytesRead } = await this.handle!.read(into, read, n - read, offset + read)
      if (bytesRead === 0) break
      read += bytesRead
    }
    return read
  }

  /**
   * The frame header and the body's fixed part at `offset` (kind, seq), from the read buffer when it holds
   * them, else by a small read of its own (into a buffer no record ever points into); undefined while the
   * whole frame is not written yet.
   */
  private async probe(offset: number, end: number): Promise<Buffer | undefined> {
    const n = FRAME_HEADER_BYTES + BODY_FIXED_BYTES
    if (offset + n > end) return undefined
    let head: Buffer
    if (offset >= this.bufferStart && offset + n <= this.bufferStart + this.buffer.length)
      head = this.buffer.subarray(offset - this.bufferStart, offset - this.bufferStart + n)
    else {
      head = this.probeBuffer
      if ((await this.readAt(head, n, offset)) < n) return undefined
    }
    return offset + FRAME_HEADER_BYTES + head.readUInt32LE(0) <= end ? head : undefined
  }

  /** Makes file bytes [offset, offset + n) available in the buffer; false if not yet written. */
  private async ensure(offset: number, n: number, end: number): Promise<boolean> {
    if (offset + n > end) return false
    if (offset >= this.bufferStart && offset + n <= this.bufferStart + this.buffer.length) return true
    // A fresh buffer each time, or one the caller gave back (recycle()): decoded payloads are views into it
    // and must stay valid until then.
    const size = Math.min(Math.max(n, this.readAheadBytes), end - offset)
    this.retire()
    // A reader that recycles reads into the shared pool's buffers (at least a read-ahead's worth, so that
    // they serve any read); one that does not gets its own, left to the collector.
    const buffer = this.retired
      ? readBuffers.take(Math.max(size, this.readAheadBytes))
      : Buffer.allocUnsafe(size)
    this.backing = buffer
    const read = await this.readAt(buffer, size, offset)
    this.buffer = buffer.subarray(0, read)
    this.bufferStart = offset
    return read >= n
  }
}

const READ_AHEAD_BYTES = 1024 * 1024
/** O_DSYNC, where the platform has it (not on Windows): then fsync 'always' needs no fdatasync. */
const DSYNC: number | undefined = (fsConstants as { O_DSYNC?: number }).O_DSYNC
/**
 * The read buffers of readers that recycle (delivery lanes): given back by recycle(), taken by the next read
 * of any reader. One pool for the process, so that idle lanes hold none; 16 MiB kept free at most (a file
 * lane's 8 MiB batch spans eight or nine 1 MiB reads).
 */
const MIB = 1024 * 1024
const readBuffers = new BufferPool({ minBytes: 1, maxBytes: 64 * MIB, maxFreeBytes: 16 * MIB })
/**
 * The frames appended (from 64 KiB: smaller ones die young): given back once written and not cached, or
 * once evicted from the tail cache with no reader's records still in them (CachedFrame).
 */
const SMALL_FRAME_BYTES = 64 * 1024
const FRAME_CHUNK_BYTES = 256 * 1024
const frameBuffers = new BufferPool({
  minBytes: SMALL_FRAME_BYTES,
  maxBytes: 64 * MIB,
  maxFreeBytes: 16 * MIB,
})

/** How the spool's buffer pools are used (tests, diagnostics). */
export function spoolBufferStats(): { frames: BufferPool['stats']; reads: BufferPool['stats'] } {
  return { frames: frameBuffers.stats, reads: readBuffers.stats }
}
/** Read buffers a recycling reader lists as possibly in use, at most (older ones go to the collector). */
const MAX_RETIRED_BYTES = 16 * MIB

/**
 * A frame in the tail cache. Readers' records are views into it: a reader that recycles pins it while its
 * caller may use them; any other reader taints it for good. Once evicted, unpinned and untainted, nothing
 * refers to it and its buffer goes back to the pool for a later frame.
 */
export interface CachedFrame {
  readonly frame: Buffer
  pins: number
  tainted: boolean
  evicted: boolean
}

function unpin(entry: CachedFrame): void {
  entry.pins--
  release(entry)
}

function release(entry: CachedFrame): void {
  if (entry.evicted && entry.pins === 0 && !entry.tainted) frameBuffers.give(entry.frame)
}

function evict(entry: CachedFrame): void {
  entry.evicted = true
  release(entry)
}

/**
 * The most recently written frames by (segment, file offset), oldest evicted first once `maxBytes` is
 * exceeded. Holds only frames whose write completed (they are on disk too); decoded payloads are views into
 * these buffers, which nothing writes to after encodeFrame until they go back to the pool (CachedFrame).
 */
class TailCache {
  private readonly bySegment = new Map<Segment, Map<number, CachedFrame>>()
  /** Insertion order for eviction: [segment, offset, bytes] from `head` on. */
  private order: { segment: Segment; offset: number; bytes: number }[] = []
  private head = 0
  bytes = 0
  frames = 0

  constructor(private readonly maxBytes: number) {}

  /** Caches a frame just written; false when it is not kept (larger than the cache, or no cache). */
  add(segment: Segment, offset: number, frame: Buffer): boolean {
    if (frame.length > this.maxBytes) return false
    let frames = this.bySegment.get(segment)
    if (!frames) {
      frames = new Map()
      this.bySegment.set(segment, frames)
    }
    frames.set(offset, { frame, pins: 0, tainted: false, evicted: false })
    this.order.push({ segment, offset, bytes: frame.length })
    this.bytes += frame.length
    this.frames++
    while (this.bytes > this.maxBytes && this.evictOldest());
    return true
  }

  get(segment: Segment, offset: number): CachedFrame | undefined {
    return this.bySegment.get(segment)?.get(offset)
  }

  dropSegments(segments: readonly Segment[]): void {
    for (const segment of segments) {
      const frames = this.bySegment.get(segment)
      if (!frames) continue
      for (const entry of frames.values()) {
        this.bytes -= entry.frame.length
        evict(entry)
      }
      this.frames -= frames.size
      this.bySegment.delete(segment)
    }
    this.order = this.order.slice(this.head).filter((e) => this.bySegment.has(e.segment))
    this.head = 0
  }

  clear(): void {
    for (const frames of this.bySegment.values()) for (const entry of frames.values()) evict(entry)
    this.bySegment.clear()
    this.order = []
    this.head = 0
    this.bytes = 0
    this.frames = 0
  }

  private evictOldest(): boolean {
    const entry = this.order[this.head++]
    if (!entry) return false
    const frames = this.bySegment.get(entry.segment)
    const cached = frames?.get(entry.offset)
    if (frames && cached) {
      frames.delete(entry.offset)
      this.bytes -= entry.bytes
      this.frames--
      if (frames.size === 0) this.bySegment.delete(entry.segment)
      evict(cached)
    }
    // Compact the eviction queue once its consumed head dominates it.
    if (this.head > 1024 && this.head * 2 > this.order.length) {
      this.order = this.order.slice(this.head)
      this.head = 0
    }
    return true
  }
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r')
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}

/** Atomically replaces `path` with `text` (write a temp file, fsync it, rename over). */
export async function writeFileAtomic(path: string, text: string, fsync = true): Promise<void> {
  const tmp = `${path}.tmp`
  if (fsync) {
    const handle = await open(tmp, 'w')
    try {
      await handle.writeFile(text)
      await handle.datasync()
    } finally {
      await handle.close()
    }
  } else await writeFile(tmp, text)
  await rename(tmp, path)
}

export async function fileSize(path: string): Promise<number> {
  try {
    return (await stat(path)).size
  } catch {
    return 0
  }
}
