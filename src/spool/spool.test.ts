import {
  constants,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { open, type FileHandle } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import type { SinkRecord } from '../records/record.js'
import { createLogger } from '../telemetry/logger.js'
import { Spool } from './spool.js'
import { FrameKind } from './format.js'

let dir: string
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'sg-spool-gc-'))
})
afterEach(() => {
  rmSync(dir, { recursive: true, force: true })
})

const logger = createLogger('silent')
const rec = (text: string): SinkRecord => ({ stream: 's', payload: Buffer.from(text), receivedAtMs: 0 })
const config = (): { dir: string; maxBytes: number; fsync: 'always' | number; segmentBytes: number } => ({
  dir,
  maxBytes: 1 << 30,
  fsync: 'always',
  segmentBytes: 1 << 20,
})

async function recordsIn(spoolDir: string): Promise<string[]> {
  const spool = await Spool.open({ ...config(), dir: spoolDir }, logger)
  try {
    const { log } = await spool.stream('s')
    const reader = log.reader({ seq: log.firstSeq, index: 0 })
    const out: string[] = []
    for (let next = await reader.next(); next; next = await reader.next())
      if (next.frame.kind === FrameKind.Records)
        out.push(...next.frame.records.map((r) => r.payload.toString()))
    await reader.close()
    return out
  } finally {
    await spool.close()
  }
}

describe('Spool.collect', () => {
  it('does nothing once the spool is closed: the next owner of the directory keeps what it wrote', async () => {
    // A gateway delivered everything and stopped; a segment clean-up it had scheduled runs late.
    const first = await Spool.open(config(), logger)
    await first.append('s', [rec('{"n":1}')], [], 0)
    const { cursors } = await first.stream('s')
    cursors.set('out', { seq: 2, index: 0 })
    await first.close()
    // Meanwhile another process (replay-dead-letter) took the lock and appended a record.
    const second = await Spool.open(config(), logger)
    await second.append('s', [rec('{"replayed":1}')], [], 0)
    await second.close()
    const before = readdirSync(join(dir, 'streams', 's')).sort()

    await first.collect('s', ['out']) // the late clean-up of the closed spool

    expect(readdirSync(join(dir, 'streams', 's')).sort()).toEqual(before)
    expect(await recordsIn(dir)).toEqual(['{"n":1}', '{"replayed":1}'])
  })

  it('while open, deletes consumed segments and keeps the sequence (the drained case)', async () => {
    const spool = await Spool.open(config(), logger)
    await spool.append('s', [rec('{"n":1}')], [], 0)
    const { cursors, log } = await spool.stream('s')
    cursors.set('out', { seq: 2, index: 0 })
    await spool.collect('s', ['out'])
    expect(log.bytes).toBe(0)
    expect(log.nextSeq).toBe(2)
    await spool.close()
  })
})

describe('Spool.append', () => {
  it.each([
    ['always', 1, 0, true],
    [1000, 1, 0, false],
  ] as const)(
    "fsync %s: a request's records and dead letters go out in one writev (%i), %i fdatasync, O_DSYNC %s",
    async (fsync, writes, datasyncs, dsync) => {
      const probe = join(dir, 'probe')
      writeFileSync(probe, '')
      const handle = await open(probe, 'r')
      const proto = Object.getPrototypeOf(handle) as FileHandle
      await handle.close()
      const spool = await Spool.open({ ...config(), fsync }, logger)
      const writev = vi.spyOn(proto, 'writev')
      const datasync = vi.spyOn(proto, 'datasync')
      try {
        await spool.append('s', [rec('a'), rec('b')], [rec('invalid')], 1)
        expect(writev).toHaveBeenCalledTimes(writes)
        // With fsync 'always' the segment is open with O_DSYNC: the writev returned once the frames were on
        // disk (as writev + fdatasync), one thread-pool hop instead of two. Linux: the open file's flags.
        expect(datasync).toHaveBeenCalledTimes(datasyncs)
        expect(writev.mock.calls[0]![0]).toHaveLength(2)
        const segmentFlags = readdirSync('/proc/self/fd').flatMap((fd) => {
          try {
            const target = readlinkSync(`/proc/self/fd/${fd}`)
            if (!target.startsWith(dir) || !target.endsWith('.seg')) return []
            const line = readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8').match(/^flags:\s+(\d+)/m)
            return line ? [parseInt(line[1]!, 8)] : []
          } catch {
            return []
          }
        })
        expect(segmentFlags).toHaveLength(1)
        expect((segmentFlags[0]! & constants.O_DSYNC) === constants.O_DSYNC).toBe(dsync)
      } finally {
        writev.mockRestore()
        datasync.mockRestore()
        await spool.close()
      }
      expect(await recordsIn(dir)).toEqual(['a', 'b'])
    },
  )

  it("encodes the frames before it returns once the stream's log is open (the caller may drop the records)", async () => {
    const spool = await Spool.open(config(), logger)
    try {
      await spool.append('s', [rec('first')], [], 1)
      const before = spool.usedBytes()
      const records = [rec('a'), rec('b')]
      const written = spool.append('s', records, [rec('invalid')], 1)
      // Queued (counted in the log's bytes) with no await in between: the frames are copies already.
      expect(spool.usedBytes()).toBeGreaterThan(before)
      records[0] = rec('changed after the call')
      await written
      // A full spool still refuses with nothing written (a rejection, not a throw).
      const full = await Spool.open({ ...config(), dir: join(dir, 'full'), maxBytes: 64 }, logger)
      await full.append('s', [], [], 1)
      await expect(full.append('s', [rec('x'.repeat(100))], [], 1)).rejects.toThrow(/full/)
      await full.close()
    } finally {
      await spool.close()
    }
    expect(await recordsIn(dir)).toEqual(['first', 'a', 'b'])
  })
})

describe('spool.tailCacheBytes', () => {
  it('reaches every stream log: 0 keeps no frame in memory, the default keeps them', async () => {
    const off = await Spool.open({ ...config(), dir: join(dir, 'off'), tailCacheBytes: 0 }, logger)
    const on = await Spool.open({ ...config(), dir: join(dir, 'on') }, logger)
    try {
      for (const spool of [off, on]) await spool.append('s', [rec('a')], [], 1)
      expect((await off.stream('s')).log.tailCache.frames).toBe(0)
      expect((await on.stream('s')).log.tailCache.frames).toBe(1)
    } finally {
      await off.close()
      await on.close()
    }
  })
})
