import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { SpoolConfig } from '../config/types.js'
import { FrameKind } from './format.js'
import { DEAD_LETTER_LANE } from './spool.js'
import { StreamLog, type Position, type RecoveryReport } from './stream-log.js'

// `streamgate spool stats`: what the spool holds, read without changing anything (safe while a gateway
// runs: damage is reported, not repaired).

export interface LaneStats {
  lane: string
  /** Absent in a view of several spools (mergeStats), where no one position applies. */
  cursor?: Position
  lagRecords: number
}

export interface StreamStats {
  stream: string
  bytes: number
  segments: number
  frames: number
  records: number
  deadLetters: number
  damage: Pick<RecoveryReport, 'corruptFrames' | 'truncatedBytes'>
  lanes: LaneStats[]
}

export async function spoolStats(config: SpoolConfig): Promise<StreamStats[]> {
  const root = join(config.dir, 'streams')
  const names = await readdir(root).catch(() => [] as string[])
  const out: StreamStats[] = []
  for (const name of names.sort()) {
    const stream = decodeURIComponent(name)
    const dir = join(root, name)
    const log = await StreamLog.open(dir, stream, {
      segmentBytes: config.segmentBytes,
      fsync: 'always',
      readOnly: true,
    })
    let cursors: Record<string, Position> = {}
    try {
      cursors =
        (
          JSON.parse(await readFile(join(dir, 'cursors.json'), 'utf8')) as {
            lanes?: Record<string, Position>
          }
        ).lanes ?? {}
    } catch {
      // no cursors yet
    }
    out.push({
      stream,
      bytes: log.bytes,
      segments: log.segmentCount,
      frames: log.recovery.frames,
      records: log.index.total(FrameKind.Records),
      deadLetters: log.index.total(FrameKind.DeadLetters),
      damage: { corruptFrames: log.recovery.corruptFrames, truncatedBytes: log.recovery.truncatedBytes },
      lanes: Object.entries(cursors).map(([lane, cursor]) => ({
        lane,
        cursor,
        lagRecords: log.lag(lane === DEAD_LETTER_LANE ? FrameKind.DeadLetters : FrameKind.Records, cursor),
      })),
    })
    await log.close()
  }
  return out
}

/**
 * One view of several spools (a gateway's worker shards, src/cluster/shards.ts): per stream, the sums of
 * every figure; a lane's lag is the sum of its lags. A cursor is a position in one spool, so a lane keeps
 * its cursor only when one spool alone holds the stream.
 */
export function mergeStats(spools: readonly (readonly StreamStats[])[]): StreamStats[] {
  const merged = new Map<string, { stats: StreamStats; spools: number }>()
  for (const spool of spools)
    for (const s of spool) {
      const seen = merged.get(s.stream)
      if (!seen) {
        merged.set(s.stream, {
          stats: { ...s, damage: { ...s.damage }, lanes: s.lanes.map((l) => ({ ...l })) },
          spools: 1,
        })
        continue
      }
      const m = seen.stats
      seen.spools++
      m.bytes += s.bytes
      m.segments += s.segments
      m.frames += s.frames
      m.records += s.records
      m.deadLetters += s.deadLetters
      m.damage.corruptFrames += s.damage.corruptFrames
      m.damage.truncatedBytes += s.damage.truncatedBytes
      for (const lane of s.lanes) {
        const same = m.lanes.find((l) => l.lane === lane.lane)
        if (same) same.lagRecords += lane.lagRecords
        else m.lanes.push({ ...lane })
      }
    }
  return [...merged.values()]
    .map(({ stats, spools: n }) =>
      n === 1 ? stats : { ...stats, lanes: stats.lanes.map(({ cursor: _c, ...l }) => l) },
    )
    .sort((a, b) => (a.stream < b.stream ? -1 : a.stream > b.stream ? 1 : 0))
}

export function formatStats(stats: readonly StreamStats[], maxBytes: number): string {
  const total = stats.reduce((a, s) => a + s.bytes, 0)
  const lines = [`spool: ${total} bytes of ${maxBytes} (${((100 * total) / maxBytes).toFixed(1)}%)`]
  for (const s of stats) {
    lines.push(
      `stream ${s.stream}: ${s.bytes} bytes in ${s.segments} segments, ${s.records} records + ${s.deadLetters} dead letters in ${s.frames} frames` +
        (s.damage.corruptFrames || s.damage.truncatedBytes
          ? ` (damage: ${s.damage.corruptFrames} corrupt frames, ${s.damage.truncatedBytes} torn bytes)`
          : ''),
    )
    for (const l of s.lanes)
      lines.push(
        `  ${l.lane}: lag ${l.lagRecords} records` +
          (l.cursor ? ` (cursor frame ${l.cursor.seq}, record ${l.cursor.index})` : ''),
      )
  }
  return lines.join('\n')
}
