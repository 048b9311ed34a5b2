import { describe, expect, it } from 'vitest'
import { formatStats, mergeStats, type StreamStats } from './inspect.js'

function stats(stream: string, bytes: number, lag: number, seq: number): StreamStats {
  return {
    stream,
    bytes,
    segments: 1,
    frames: 2,
    records: 10,
    deadLetters: 1,
    damage: { corruptFrames: 0, truncatedBytes: bytes === 0 ? 0 : 3 },
    lanes: [
      { lane: 'out', cursor: { seq, index: 0 }, lagRecords: lag },
      { lane: '@dead-letter', cursor: { seq, index: 0 }, lagRecords: 0 },
    ],
  }
}

describe('mergeStats (spool stats over worker shards)', () => {
  it('sums every figure per stream and drops cursors that belong to one shard', () => {
    const merged = mergeStats([[stats('a', 100, 4, 7)], [stats('a', 50, 6, 2), stats('b', 0, 1, 9)]])
    expect(merged.map((s) => s.stream)).toEqual(['a', 'b'])
    const a = merged[0]!
    expect(a).toMatchObject({ bytes: 150, segments: 2, frames: 4, records: 20, deadLetters: 2 })
    expect(a.damage).toEqual({ corruptFrames: 0, truncatedBytes: 6 })
    expect(a.lanes).toEqual([
      { lane: 'out', lagRecords: 10 },
      { lane: '@dead-letter', lagRecords: 0 },
    ])
    // A stream only one spool holds keeps its cursors.
    expect(merged[1]!.lanes[0]).toEqual({ lane: 'out', cursor: { seq: 9, index: 0 }, lagRecords: 1 })
    expect(formatStats(merged, 1000)).toContain('  out: lag 10 records\n')
  })

  it('leaves its inputs alone', () => {
    const shard = [stats('a', 1, 1, 1)]
    mergeStats([shard, [stats('a', 1, 1, 1)]])
    expect(shard[0]!.bytes).toBe(1)
    expect(shard[0]!.lanes[0]!.lagRecords).toBe(1)
  })
})
