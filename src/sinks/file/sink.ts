import { mkdir, open, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { permanentError, transientError } from '../../errors.js'
import { joinSmallLines, linesChunks } from '../../records/lines.js'
import type { FileSinkConfig } from '../../config/types.js'
import {
  ALL_WRITTEN,
  batchLimits,
  type Sink,
  type SinkContext,
  type SinkRecord,
  type WriteResult,
} from '../sink.js'

// NDJSON files under a directory, one record per line, rotated by size and age:
//   <dir>/<prefix>-<UTC yyyymmddThhmmss>-<pid>-<n>.ndjson
// Concurrent writes are group-committed: batches that arrive while a write is in progress are appended
// together by the next write (one write + one fsync for all of them).

const FILE_DEFAULTS = {
  maxBatchRecords: 10_000,
  maxBatchBytes: 8 * 1024 * 1024,
  // A batch waits up to 5 ms for more records: under a stream of small requests the lane's write + fsync per
  // frame competed with the spool's own for the disk (one-record requests +15-25 % req/s with 5 ms,
  // bench/RESULTS.md 2026-12-04 fourth session); Kafka producers' linger.ms defaults to 5 ms too.
  lingerMs: 5,
  maxRecordBytes: 64 * 1024 * 1024,
}

/** Errors that no retry can fix: the configured directory is not usable. ENOSPC and EIO stay transient. */
const PERMANENT_FS_ERRORS = new Set(['EACCES', 'EPERM', 'EROFS', 'ENOTDIR', 'EISDIR'])

interface Pending {
  chunks: Buffer[]
  bytes: number
  done: { resolve: () => void; reject: (err: unknown) => void }[]
}

/**
 * The batch as NDJSON, in buffers for one writev. Records read back from a spool lines frame sit one "\n"
 * apart in it, so a frame's worth of lines is handed to the kernel as it is (a view, no copy; the lane keeps
 * the frame until this write settles, see Sink.releasesOnSettle); the rest is copied into one buffer —
 * copying costs less than two iovecs per record (bench/RESULTS.md, 2026-12-02). Runs under
 * MIN_VIEW_BYTES are copied too (src/records/lines.ts).
 */
function ndjsonChunks(batch: readonly SinkRecord[]): Buffer[] {
  return linesChunks(batch, MIN_VIEW_BYTES)
}

const MIN_VIEW_BYTES = 16 * 1024

export function createFileSink(name: string, config: FileSinkConfig, context: SinkContext): Sink {
  return new FileSink(name, config, context)
}

class FileSink implements Sink {
  readonly type = 'file' as const
  /** write() settles once its writev (and fdatasync) returned: nothing reads the records after that. */
  readonly releasesOnSettle = true
  readonly limits
  private file: FileHandle | undefined
  private fileBytes = 0
  private fileOpenedAt = 0
  private counter = 0
  private pending: Pending | undefined
  private writing: Promise<void> | undefined
  private closed = false
  private ageTimer: NodeJS.Timeout | undefined

  constructor(
    readonly name: string,
    private readonly config: FileSinkConfig,
    private readonly context: SinkContext,
  ) {
    this.limits = batchLimits(config, FILE_DEFAULTS)
  }

  write(batch: readonly SinkRecord[], _signal: AbortSignal): Promise<WriteResult> {
    if (this.closed) return Promise.reject(transientError('file sink is closed', 'closed'))
    if (batch.length === 0) return Promise.resolve(ALL_WRITTEN)
    return this.enqueue(ndjsonChunks(batch)).then(() => ALL_WRITTEN)
  }

  /** A lane's batch as lines (Sink.writeLines): views of the spool's lines frames, small runs copied. */
  writeLines(lines: readonly Buffer[], _records: number, _signal: AbortSignal): Promise<void> {
    if (this.closed) return Promise.reject(transientError('file sink is closed', 'closed'))
    if (lines.length === 0) return Promise.resolve()
    return this.enqueue(joinSmallLines(lines, MIN_VIEW_BYTES))
  }

  /** Queues chunks for the next group write; resolves once they are written (and fsync'd). */
  private enqueue(chunks: readonly Buffer[]): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.pending ??= { chunks: [], bytes: 0, done: [] }
      for (const chunk of chunks) {
        this.pending.chunks.push(chunk)
        this.pending.bytes += chunk.length
      }
      this.pending.done.push({ resolve, reject })
      this.writing ??= this.drain()
    })
  }

  private async drain(): Promise<void> {
    try {
      while (this.pending) {
        const job = this.pending
        this.pending = undefined
        try {
          await this.append(job)
          for (const d of job.done) d.resolve()
        } catch (err) {
          const error = PERMANENT_FS_ERRORS.has((err as NodeJS.ErrnoException).code ?? '')
            ? permanentError(
                `cannot write ${this.config.dir}: ${(err as Error).message}`,
                'file-permission',
                err,
              )
            : transientError(`file write failed: ${(err as Error).message}`, 'file-io', err)
          // A failed write may have left a partial line: start a fresh file so readers never see it merged.
          await this.closeFile().catch(() => undefined)
          for (const d of job.done) d.reject(error)
        }
      }
    } finally {
      this.writing = undefined
    }
  }

  private async append(job: Pending): Promise<void> {
    const now = Date.now()
    if (
      this.file &&
      (this.fileBytes + job.bytes > this.config.maxFileBytes ||
        now - this.fileOpenedAt >= this.config.maxFileAgeMs) &&
      this.fileBytes > 0
    )
      await this.closeFile()
    if (!this.file) await this.openFile(now)
    const file = this.file!
    let offset = 0
    // writev takes many buffers in one syscall; large groups are written in slices of 1024 buffers.
    while (offset < job.chunks.length) {
      const slice = job.chunks.slice(offset, offset + 1024)
      let { bytesWritten } = await file.writev(slice)
      let expected = 0
      for (const c of slice) expected += c.length
      // Short writes are rare on regular files but legal: finish them.
      while (bytesWritten < expected) {
        const rest = Buffer.concat(slice).subarray(bytesWritten)
        bytesWritten += (await file.write(rest)).bytesWritten
      }
      offset += slice.length
    }
    if (this.config.fsync) await file.datasync()
    this.fileBytes += job.bytes
  }

  private async openFile(now: number): Promise<void> {
    await mkdir(this.config.dir, { recursive: true })
    const stamp = new Date(now)
      .toISOString()
      .replace(/[-:]/g, '')
      .replace(/\.\d+Z$/, 'Z')
    const path = join(
      this.config.dir,
      `${this.config.prefix}-${stamp}-${process.pid}-${this.counter++}.ndjson`,
    )
    this.file = await open(path, 'a')
    this.fileBytes = 0
    this.fileOpenedAt = now
    // Close the file once it is too old even if no more records arrive, so downstream readers can pick it up.
    clearTimeout(this.ageTimer)
    this.ageTimer = setTimeout(() => {
      void this.rotateIfIdle()
    }, this.config.maxFileAgeMs)
    this.ageTimer.unref()
  }

  private async rotateIfIdle(): Promise<void> {
    if (this.writing || !this.file) return
    this.writing = this.closeFile().finally(() => {
      this.writing = undefined
      if (this.pending) this.writing = this.drain()
    })
    await this.writing.catch((err: unknown) =>
      this.context.logger.warn({ err, sink: this.name }, 'file rotation failed'),
    )
  }

  private async closeFile(): Promise<void> {
    const file = this.file
    this.file = undefined
    clearTimeout(this.ageTimer)
    if (file) await file.close()
  }

  async healthcheck(_signal: AbortSignal): Promise<void> {
    await mkdir(this.config.dir, { recursive: true })
  }

  async close(): Promise<void> {
    this.closed = true
    while (this.writing) await this.writing
    await this.closeFile()
  }
}
