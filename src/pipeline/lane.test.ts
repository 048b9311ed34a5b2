import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { permanentError, type SinkError } from '../errors.js'
import type { SinkRecord } from '../records/record.js'
import { ALL_WRITTEN, type BatchLimits, type Sink, type WriteResult } from '../sinks/sink.js'
import { FrameKind } from '../spool/format.js'
import { Spool, type StreamSpool } from '../spool/spool.js'
import type { Position } from '../spool/stream-log.js'
import { createLogger } from '../telemetry/logger.js'
import { Metrics } from '../telemetry/metrics.js'
import { DeliveryLane } from './lane.js'

// A lane over a real spool (temp dir) and a sink whose writes the test finishes by hand, in any order:
// with several batches in flight the cursor moves only over the finished ones at its front, so a crash or
// a stop delivers again what was unfinished and never skips a record.

let dir: string
let spool: Spool
beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sg-lane-'))
  spool = await Spool.open({ dir, maxBytes: 1 << 30, fsync: 'always', segmentBytes: 1 << 20 }, logger)
})
afterEach(async () => {
  await spool.close()
  rmSync(dir, { recursive: true, force: true })
})

const logger = createLogger('silent')
const rec = (n: number): SinkRecord => ({ stream: 's', payload: Buffer.from(`{"n":${n}}`), receivedAtMs: 0 })
const numbers = (records: readonly SinkRecord[]): number[] =>
  records.map((r) => (JSON.parse(r.payload.toString()) as { n: number }).n)

interface Write {
  records: number[]
  finish(result?: WriteResult): void
  fail(error: SinkError): void
}

/** A sink that records its writes and lets the test finish each one. */
class HandSink implements Sink {
  readonly name = 'out'
  readonly type = 'file' as const
  readonly writes: Write[] = []
  inFlight = 0
  maxSeen = 0
  constructor(readonly limits: BatchLimits) {}
  write(batch: readonly SinkRecord[], signal: AbortSignal): Promise<WriteResult> {
    this.inFlight++
    this.maxSeen = Math.max(this.maxSeen, this.inFlight)
    return new Promise<WriteResult>((resolve, reject) => {
      const done = (): void => void this.inFlight--
      signal.addEventListener('abort', () => (done(), reject(signal.reason as Error)), { once: true })
      this.writes.push({
        records: numbers(batch),
        finish: (result = ALL_WRITTEN) => (done(), resolve(result)),
        fail: (error) => (done(), reject(error)),
      })
    })
  }
  healthcheck(): Promise<void> {
    return Promise.resolve()
  }
  close(): Promise<void> {
    return Promise.resolve()
  }
}

const limits = (maxInFlightBatches?: number): BatchLimits => ({
  maxBatchRecords: 2,
  maxBatchBytes: 1 << 20,
  lingerMs: 0,
  maxRecordBytes: 1 << 20,
  ...(maxInFlightBatches !== undefined ? { maxInFlightBatches } : {}),
})

function lane(
  s: StreamSpool,
  sink: Sink,
  deadLetter: (records: SinkRecord[]) => Promise<void> = async () => undefined,
): DeliveryLane {
  return new DeliveryLane({
    stream: 's',
    lane: 'out',
    kind: FrameKind.Records,
    sink,
    retry: { initialMs: 1, maxMs: 5, maxAttempts: 0 },
    spool: s,
    metrics: new Metrics({ defaultMetrics: false }),
    logger,
    isPaused: () => false,
    deadLetter,
  })
}

async function until(what: string, check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

/** Appends records 0 … n-1, one per frame. */
async function fill(n: number): Promise<StreamSpool> {
  for (let i = 0; i < n; i++) await spool.append('s', [rec(i)], [], 0)
  return spool.stream('s')
}

describe('DeliveryLane with several batches in flight', () => {
  it('hands the sink up to maxInFlightBatches batches at once, and moves the cursor only over finished ones at the front', async () => {
    const s = await fill(8) // batches of 2: [0,1] [2,3] [4,5] [6,7]
    const sink = new HandSink(limits(3))
    const l = lane(s, sink)
    const start = l.at
    l.start()
    await until('three writes', () => sink.writes.length === 3)
    await new Promise((r) => setTimeout(r, 30))
    expect(sink.writes).toHaveLength(3) // the fourth waits for a free slot
    expect(sink.writes.map((w) => w.records)).toEqual([
      [0, 1],
      [2, 3],
      [4, 5],
    ])

    // Finished out of order: the last and the middle one first. The cursor stays put.
    sink.writes[2]!.finish()
    sink.writes[1]!.finish()
    await until('the fourth write', () => sink.writes.length === 4)
    expect(l.at).toEqual(start)
    expect(s.cursors.get('out')).toEqual(start)

    // The front one finishes: the cursor jumps over all three.
    sink.writes[0]!.finish()
    await until('the cursor past [4,5]', () => l.lag === 2)
    sink.writes[3]!.finish()
    await until('lag 0', () => l.lag === 0)
    expect(sink.maxSeen).toBe(3)
    expect(sink.writes.flatMap((w) => w.records)).toEqual([0, 1, 2, 3, 4, 5, 6, 7])
    await l.stop(1_000)
  })

  it('stopped with a batch unfinished at the front: a new lane from the saved cursor delivers it again, and those after it', async () => {
    const s = await fill(6)
    const sink = new HandSink(limits(3))
    const first = lane(s, sink)
    first.start()
    await until('three writes', () => sink.writes.length === 3)
    sink.writes[1]!.finish()
    sink.writes[2]!.finish()
    // The front write never finishes: the stop's grace runs out and aborts it (as a crash would end it).
    await first.stop(50)
    const saved = s.cursors.get('out')!
    expect(saved.seq).toBe(s.log.firstSeq) // still before [0,1]

    const again = new HandSink(limits(3))
    const second = lane(s, again)
    second.start()
    await until('three writes again', () => again.writes.length === 3)
    expect(again.writes.map((w) => w.records)).toEqual([
      [0, 1],
      [2, 3],
      [4, 5],
    ])
    for (const w of again.writes) w.finish()
    await until('lag 0', () => second.lag === 0)
    await second.stop(1_000)
  })

  it('keeps one batch in flight by default', async () => {
    const s = await fill(6)
    const sink = new HandSink(limits())
    const l = lane(s, sink)
    l.start()
    for (let i = 0; i < 3; i++) {
      await until(`write ${i + 1}`, () => sink.writes.length === i + 1)
      await new Promise((r) => setTimeout(r, 20))
      expect(sink.writes).toHaveLength(i + 1)
      sink.writes[i]!.finish()
    }
    await until('lag 0', () => l.lag === 0)
    expect(sink.maxSeen).toBe(1)
    await l.stop(1_000)
  })

  it('rewinds to the cursor when a dead-letter hand-off fails while other batches are in flight; nothing is skipped', async () => {
    const s = await fill(6)
    const sink = new HandSink(limits(3))
    let refuse = true
    const dead: number[][] = []
    const l = lane(s, sink, async (records) => {
      if (refuse) throw new Error('disk full')
      dead.push(numbers(records))
    })
    l.start()
    await until('three writes', () => sink.writes.length === 3)
    const permanent = permanentError('no', 'invalid')
    // [2,3] is refused for good, and handing it to the dead-letter sink fails: delivery itself fails.
    sink.writes[0]!.finish()
    sink.writes[2]!.finish()
    sink.writes[1]!.fail(permanent)
    await until('the cursor past [0,1]', () => l.lag === 4)
    refuse = false
    // After the rewind the lane starts over at [2,3], the first batch not delivered, and sends [4,5] again.
    await until('the rewind', () => sink.writes.length === 5)
    expect(sink.writes.slice(3).map((w) => w.records)).toEqual([
      [2, 3],
      [4, 5],
    ])
    expect(l.lag).toBe(4)
    sink.writes[3]!.fail(permanent)
    sink.writes[4]!.finish()
    await until('lag 0', () => l.lag === 0)
    expect(dead).toEqual([[2, 3]])
    await l.stop(1_000)
  })
})

describe('DeliveryLane positions', () => {
  it('moves past frames of another kind only once the batches before them are delivered', async () => {
    await spool.append('s', [rec(0), rec(1)], [], 0)
    await spool.append('s', [], [rec(100)], 0) // a dead-letter frame: not for this lane
    await spool.append('s', [rec(2)], [], 0)
    const s = await spool.stream('s')
    const sink = new HandSink(limits(3))
    const l = lane(s, sink)
    l.start()
    await until('two writes', () => sink.writes.length === 2)
    const at = (): Position => s.cursors.get('out')!
    const before = at()
    sink.writes[1]!.finish()
    await new Promise((r) => setTimeout(r, 30))
    expect(at()).toEqual(before)
    sink.writes[0]!.finish()
    await until('lag 0', () => l.lag === 0)
    expect(at().seq).toBe(s.log.nextSeq)
    await l.stop(1_000)
  })
})
