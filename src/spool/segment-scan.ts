import { open, type FileHandle } from 'node:fs/promises'
import { checkFrame, FRAME_HEADER_BYTES, frameCount, frameKind, frameSeq, type FrameKind } from './format.js'

// Recovery's view of one segment file: its frames checked (length and CRC) in order, read through a window
// instead of the whole file at once. A segment is up to `segmentBytes` (64 MiB by default) and a gateway that
// restarts with a backlog recovers every stream's segments before it serves: reading each one whole made
// start-up peak at ~400 MB with four streams (bench/RESULTS.md, "S3 in constant memory"). The window is a
// few MiB, grown only for a frame larger than it (one request's records), and reused from frame to frame.

/** Bytes read per file read; a larger frame gets a window of its own size. */
export const SCAN_WINDOW_BYTES = 4 * 1024 * 1024

/**
 * Windows of closed scanners, handed to the next ones: nothing a scan returns points into its window, so a
 * start-up that recovers hundreds of segments reads them all through a few buffers instead of leaving one
 * window of garbage per segment for the GC (~400 MB for 4 × 100 MiB of 4 MiB segments, bench/RESULTS.md).
 */
const spareWindows: Buffer[] = []
/** Streams recover one after the other or a few at once: more spares than that would only be held. */
const MAX_SPARE_WINDOWS = 4

/** Windows held for the next scanners (tests, diagnostics). */
export const spareScanWindows = (): number => spareWindows.length

export interface ScannedFrame {
  seq: number
  kind: FrameKind
  count: number
}

export type ScanStep = { ok: true; length: number; frame: ScannedFrame } | { ok: false; length?: number }

/** Reads and checks the frames of one segment file through a bounded window. */
export class SegmentScanner {
  private buffer: Buffer
  /** File bytes [start, start + filled) are in `buffer[0, filled)`. */
  private start = 0
  private filled = 0

  private constructor(
    private readonly handle: FileHandle,
    readonly size: number,
    windowBytes: number,
  ) {
    const bytes = Math.min(windowBytes, Math.max(size, FRAME_HEADER_BYTES))
    const spare = spareWindows.findIndex((w) => w.length >= bytes && w.length <= windowBytes)
    this.buffer = spare >= 0 ? spareWindows.splice(spare, 1)[0]! : Buffer.allocUnsafe(bytes)
  }

  static async open(path: string, windowBytes = SCAN_WINDOW_BYTES): Promise<SegmentScanner> {
    const handle = await open(path, 'r')
    try {
      const { size } = await handle.stat()
      return new SegmentScanner(handle, size, windowBytes)
    } catch (err) {
      await handle.close()
      throw err
    }
  }

  /**
   * Checks the frame at file offset `offset`, as `checkFrame` would over the whole file: not ok with a
   * length when the header is readable (a torn tail runs past the end, or the CRC or version is wrong), not
   * ok without one when not even a header fits.
   */
  async check(offset: number): Promise<ScanStep> {
    if (this.size - offset < FRAME_HEADER_BYTES) return { ok: false }
    await this.ensure(offset, FRAME_HEADER_BYTES)
    const bodyLength = this.buffer.readUInt32LE(offset - this.start)
    const length = FRAME_HEADER_BYTES + bodyLength
    // A length past the end of the file (a torn tail, or garbage read as a length) is never read.
    if (offset + length > this.size) return { ok: false, length }
    await this.ensure(offset, length)
    const at = offset - this.start
    const check = checkFrame(this.buffer, at, this.filled)
    if (!check.ok) return { ok: false, length }
    return {
      ok: true,
      length,
      frame: {
        seq: frameSeq(this.buffer, at),
        kind: frameKind(this.buffer, at),
        count: frameCount(this.buffer, at),
      },
    }
  }

  async close(): Promise<void> {
    // A window grown for one large frame is not kept (it would be held for good).
    if (this.buffer.length <= SCAN_WINDOW_BYTES && spareWindows.length < MAX_SPARE_WINDOWS)
      spareWindows.push(this.buffer)
    this.buffer = Buffer.alloc(0)
    await this.handle.close()
  }

  /** Makes file bytes [offset, offset + length) available in the buffer (length ≤ what is left of the file). */
  private async ensure(offset: number, length: number): Promise<void> {
    if (offset >= this.start && offset + length <= this.start + this.filled) return
    const want = Math.min(Math.max(length, this.buffer.length), this.size - offset)
    if (want > this.buffer.length) this.buffer = Buffer.allocUnsafe(want)
    let filled = 0
    while (filled < want) {
      const { bytesRead } = await this.handle.read(this.buffer, filled, want - filled, offset + filled)
      if (bytesRead === 0) break // the file shrank under us (it never does while the lock is held)
      filled += bytesRead
    }
    this.start = offset
    this.filled = filled
  }
}
