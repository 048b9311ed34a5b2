import { readFile } from 'node:fs/promises'
import type { SinkRecord } from '../records/record.js'
import { FrameKind } from '../spool/format.js'
import { writeFileAtomic, type StreamLog } from '../spool/stream-log.js'

// A bounded window of recently seen record keys (emnify: `id`), so that a vendor retry or two overlapping
// emnify streams during a migration [EM-DS-USAGE] do not duplicate records downstream. Keys are the exact
// text of the field (64-bit ids are never squeezed through a JS number). Memory is bounded by
// `windowRecords`; keys also expire after `windowMs`. A key is remembered only after its record was
// accepted, so a request that failed (and will be retried by the vendor) never marks its records as seen.
//
// The window survives a restart (a crash included). Two sources rebuild it, because neither alone is enough:
//   - the snapshot `dedupe.json` in the stream's spool directory (saveDedupeSnapshot): every key with the time
//     it was accepted. Written atomically (temp file, fsync, rename) on close, periodically, and — this is
//     what makes it sufficient — before spool segments are deleted: the gateway deletes only frames whose
//     records were delivered before the snapshot was taken, and a record is remembered before any lane can
//     read it, so a key whose frame is gone is always in the snapshot;
//   - the spool's retained record frames (replayDedupeKeys): keys accepted after the last snapshot, whose
//     frames cannot have been deleted yet. A crash between two snapshots loses nothing.
//
// Snapshot file (JSON, one object): {"version": 1, "key": "<dedupe key path>", "savedAtMs": <ms>,
// "keys": ["<key>", …], "ages": [<savedAtMs − accepted ms>, …]}, oldest first; `ages` are relative so the
// file stays small. A snapshot of another key path (the config changed) is ignored.

export class DedupeWindow {
  /** key → time first accepted; a Map iterates in insertion order, so the oldest entry comes first. */
  private seen = new Map<string, number>()
  /** +1 on every change: a snapshot taken at version v holds every key remembered before v. */
  private versionValue = 0

  constructor(
    readonly windowRecords: number,
    readonly windowMs: number,
  ) {}

  has(key: string, now: number): boolean {
    const at = this.seen.get(key)
    if (at === undefined) return false
    if (now - at >= this.windowMs) {
      this.seen.delete(key)
      return false
    }
    return true
  }

  remember(keys: Iterable<string>, now: number): void {
    for (const key of keys) {
      this.seen.delete(key)
      this.seen.set(key, now)
    }
    this.versionValue++
    this.evict(now)
  }

  /**
   * Merges keys recovered after a restart (a snapshot, the spool) with the ones already here: the window
   * ends up ordered by time (oldest first), a key keeps its latest time, and the bounds hold again.
   */
  restore(entries: Iterable<readonly [string, number]>, now: number): void {
    const merged = new Map(this.seen)
    for (const [key, at] of entries) {
      const had = merged.get(key)
      if (had === undefined || had < at) merged.set(key, at)
    }
    this.seen = new Map([...merged].sort((a, b) => a[1] - b[1]))
    this.versionValue++
    this.evict(now)
  }

  /** Every remembered key with the time it was accepted, oldest first. */
  entries(): IterableIterator<[string, number]> {
    return this.seen.entries()
  }

  get size(): number {
    return this.seen.size
  }

  get version(): number {
    return this.versionValue
  }

  private evict(now: number): void {
    let excess = this.seen.size - this.windowRecords
    for (const [key, at] of this.seen) {
      if (excess <= 0 && now - at < this.windowMs) break
      this.seen.delete(key)
      excess--
    }
  }
}

export const DEDUPE_SNAPSHOT_FILE = 'dedupe.json'
const SNAPSHOT_VERSION = 1

interface SnapshotDoc {
  version: number
  key: string
  savedAtMs: number
  keys: string[]
  ages: number[]
}

/** Writes the window atomically and durably (the gateway deletes spool segments only after this). */
export async function saveDedupeSnapshot(
  path: string,
  key: string,
  window: DedupeWindow,
  now: number,
): Promise<void> {
  await writeFileAtomic(path, snapshotText(key, window, now), true)
}

/** The snapshot's text, taken synchronously: it holds exactly the keys remembered so far. */
export function snapshotText(key: string, window: DedupeWindow, now: number): string {
  const keys: string[] = []
  const ages: number[] = []
  for (const [k, at] of window.entries()) {
    if (now - at >= window.windowMs) continue
    keys.push(k)
    ages.push(now - at)
  }
  const doc: SnapshotDoc = { version: SNAPSHOT_VERSION, key, savedAtMs: now, keys, ages }
  return JSON.stringify(doc)
}

/**
 * The entries of a snapshot written for the same key path; undefined when there is none. Throws when the
 * file exists but cannot be read or is not a snapshot (the caller logs it and rebuilds from the spool).
 */
export async function loadDedupeSnapshot(path: string, key: string): Promise<[string, number][] | undefined> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  const doc = JSON.parse(text) as Partial<SnapshotDoc>
  if (
    doc.version !== SNAPSHOT_VERSION ||
    typeof doc.key !== 'string' ||
    !Number.isFinite(doc.savedAtMs) ||
    !Array.isArray(doc.keys) ||
    !Array.isArray(doc.ages) ||
    doc.keys.length !== doc.ages.length
  )
    throw new Error('not a dedupe snapshot of this version')
  if (doc.key !== key) return undefined
  const saved = doc.savedAtMs!
  const out: [string, number][] = []
  for (let i = 0; i < doc.keys.length; i++) {
    const k = doc.keys[i]
    const age = doc.ages[i]
    if (typeof k === 'string' && typeof age === 'number') out.push([k, saved - age])
  }
  return out
}

/**
 * The dedupe keys of every record frame still in the stream's spool log accepted within the last `windowMs`
 * (frames are read from the oldest retained one; dead-letter frames are skipped: invalid records were never
 * remembered).
 */
export async function replayDedupeKeys(
  log: StreamLog,
  keyOf: (record: SinkRecord) => string | undefined,
  notBeforeMs: number,
): Promise<[string, number][]> {
  const out: [string, number][] = []
  const reader = log.reader({ seq: log.firstSeq, index: 0 })
  try {
    for (;;) {
      const next = await reader.next()
      if (!next) break
      const { frame } = next
      if (frame.kind !== FrameKind.Records || frame.receivedAtMs < notBeforeMs) continue
      for (const record of frame.records) {
        const key = keyOf(record)
        if (key !== undefined) out.push([key, frame.receivedAtMs])
      }
    }
  } finally {
    await reader.close()
  }
  return out
}
