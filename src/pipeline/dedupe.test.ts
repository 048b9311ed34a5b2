import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { SinkRecord } from '../records/record.js'
import { FrameKind } from '../spool/format.js'
import { StreamLog } from '../spool/stream-log.js'
import {
  DedupeWindow,
  loadDedupeSnapshot,
  replayDedupeKeys,
  saveDedupeSnapshot,
  snapshotText,
} from './dedupe.js'

describe('DedupeWindow', () => {
  it('remembers keys, exactly as text', () => {
    const w = new DedupeWindow(10, 60_000)
    w.remember(['9007199254740993'], 0)
    expect(w.has('9007199254740993', 1)).toBe(true)
    expect(w.has('9007199254740992', 1)).toBe(false)
  })
  it('forgets keys after windowMs', () => {
    const w = new DedupeWindow(10, 1000)
    w.remember(['a'], 0)
    expect(w.has('a', 999)).toBe(true)
    expect(w.has('a', 1000)).toBe(false)
  })
  it('never holds more than windowRecords keys and drops the oldest first (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.string(), { maxLength: 200 }),
        fc.integer({ min: 1, max: 50 }),
        (keys, limit) => {
          const w = new DedupeWindow(limit, 1e9)
          for (const k of keys) w.remember([k], 0)
          expect(w.size).toBeLessThanOrEqual(limit)
          const last = keys.at(-1)
          if (last !== undefined) expect(w.has(last, 0)).toBe(true)
        },
      ),
    )
  })
  it('restore merges by time, keeps the latest time of a key and the bounds', () => {
    const w = new DedupeWindow(3, 1000)
    w.remember(['live'], 500)
    const before = w.version
    w.restore(
      [
        ['old', 100],
        ['expired', -600],
        ['newer', 400],
        ['live', 450],
        ['old', 50],
      ],
      500,
    )
    expect(w.version).toBeGreaterThan(before)
    expect([...w.entries()]).toEqual([
      ['old', 100],
      ['newer', 400],
      ['live', 500],
    ])
    w.restore([['newest', 499]], 500) // over windowRecords: the oldest goes
    expect([...w.entries()].map(([k]) => k)).toEqual(['newer', 'newest', 'live'])
  })
})

describe('dedupe snapshot', () => {
  let dir: string
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sg-dedupe-'))
  })
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true })
  })

  it('round-trips every live key with its time (property), and skips expired ones', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.string({ unit: 'binary' }), fc.integer({ min: 0, max: 5000 })), {
          maxLength: 60,
        }),
        async (keys) => {
          const w = new DedupeWindow(1000, 10_000)
          for (const [k, at] of [...keys].sort((a, b) => a[1] - b[1])) w.remember([k], at)
          const now = 12_000
          const path = join(dir, 'dedupe.json')
          await saveDedupeSnapshot(path, 'id', w, now)
          const loaded = await loadDedupeSnapshot(path, 'id')
          expect(loaded).toEqual([...w.entries()].filter(([, at]) => now - at < 10_000))
        },
      ),
      { numRuns: 30 },
    )
  })

  it('a snapshot of another key path is ignored; a damaged one throws; none is undefined', async () => {
    const w = new DedupeWindow(10, 1000)
    w.remember(['1'], 0)
    const path = join(dir, 'dedupe.json')
    expect(await loadDedupeSnapshot(path, 'id')).toBeUndefined()
    writeFileSync(path, snapshotText('sim.iccid', w, 10))
    expect(await loadDedupeSnapshot(path, 'id')).toBeUndefined()
    expect(await loadDedupeSnapshot(path, 'sim.iccid')).toEqual([['1', 0]])
    writeFileSync(path, readFileSync(path, 'utf8').slice(0, 20))
    await expect(loadDedupeSnapshot(path, 'id')).rejects.toThrow()
    writeFileSync(path, '{"version":1,"key":"id","savedAtMs":1,"keys":["a"],"ages":[]}')
    await expect(loadDedupeSnapshot(path, 'id')).rejects.toThrow(/not a dedupe snapshot/)
  })

  it('replays the keys of retained record frames within the window, not dead letters', async () => {
    const log = await StreamLog.open(dir, 's', { segmentBytes: 1 << 20, fsync: 'always' })
    const rec = (id: string | undefined, payload = `{"id":${id}}`): SinkRecord => ({
      stream: 's',
      payload: Buffer.from(payload),
      receivedAtMs: 0,
      ...(id !== undefined ? { id } : {}),
    })
    await log.append(FrameKind.Records, [rec('1'), rec('2')], 1_000)
    await log.append(FrameKind.Records, [rec('3'), rec(undefined, '{}')], 5_000)
    await log.append(FrameKind.DeadLetters, [rec('4')], 5_000)
    await log.append(FrameKind.Records, [rec('9007199254740993')], 6_000)
    const keys = await replayDedupeKeys(log, (r) => r.id, 2_000)
    expect(keys).toEqual([
      ['3', 5_000],
      ['9007199254740993', 6_000],
    ])
    await log.close()
  })
})
