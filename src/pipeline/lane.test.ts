import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { permanentError, transientError, type SinkError } from '../errors.js'
import type { SinkRecord } from '../records/record.js'
import {
  ALL_WRITTEN,
  type BatchLimits,
  type Sink,
  type StagedBatch,
  type Staging,
  type WriteResult,
} from '../sinks/sink.js'
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

describe('DeliveryLane: pause, retries and partial failures (one batch at a time)', () => {
  function laneWith(
    s: StreamSpool,
    sink: Sink,
    o: {
      paused?: { value: boolean }
      errors?: SinkError[]
      dead?: { records: number[]; error: SinkError }[]
    },
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
      isPaused: () => o.paused?.value ?? false,
      deadLetter: async (records, error) => {
        o.dead?.push({ records: numbers(records), error })
      },
      onError: (error) => o.errors?.push(error),
    })
  }

  it('a paused lane writes nothing and keeps its records; resumed, it delivers them all from its cursor', async () => {
    const s = await fill(4)
    const sink = new HandSink(limits())
    const paused = { value: true }
    const l = laneWith(s, sink, { paused })
    const start = l.at
    l.start()
    await new Promise((r) => setTimeout(r, 100))
    expect(sink.writes).toHaveLength(0)
    expect(l.lag).toBe(4)
    expect(s.cursors.get('out') ?? start).toEqual(start)
    paused.value = false
    for (let i = 0; i < 2; i++) {
      await until(`write ${i + 1}`, () => sink.writes.length === i + 1)
      sink.writes[i]!.finish()
    }
    await until('lag 0', () => l.lag === 0)
    expect(sink.writes.flatMap((w) => w.records)).toEqual([0, 1, 2, 3])
    await l.stop(1_000)
  })

  it('a transient failure is reported and the same batch is written again; nothing is dead-lettered or skipped', async () => {
    const s = await fill(2)
    const sink = new HandSink(limits())
    const errors: SinkError[] = []
    const dead: { records: number[]; error: SinkError }[] = []
    const l = laneWith(s, sink, { errors, dead })
    l.start()
    await until('first write', () => sink.writes.length === 1)
    sink.writes[0]!.fail(transientError('broker busy', 'server-error'))
    await until('second write', () => sink.writes.length === 2)
    expect(l.lag).toBe(2) // the cursor did not move over the failed batch
    sink.writes[1]!.finish()
    await until('lag 0', () => l.lag === 0)
    expect(sink.writes.map((w) => w.records)).toEqual([
      [0, 1],
      [0, 1],
    ])
    expect(errors.map((e) => [e.reason, e.retriable])).toEqual([['server-error', true]])
    expect(dead).toEqual([])
    await l.stop(1_000)
  })

  it('a partial failure by index: the refused record is dead-lettered with its error, the rest count as delivered', async () => {
    const s = await fill(2)
    const sink = new HandSink(limits())
    const dead: { records: number[]; error: SinkError }[] = []
    const l = laneWith(s, sink, { dead })
    l.start()
    await until('first write', () => sink.writes.length === 1)
    const refused = permanentError('record too big for the topic', 'record-too-large')
    sink.writes[0]!.finish({ failed: [{ index: 1, error: refused }] })
    await until('lag 0', () => l.lag === 0)
    expect(dead).toEqual([{ records: [1], error: refused }])
    expect(sink.writes).toHaveLength(1) // the delivered record is not written again
    expect(l.delivered).toBe(1)
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

// A lane in front of a sink with `staging` (src/sinks/sink.ts): batches go over in pieces, the cursor moves
// only after the commit, and a lost staged batch is sent again with plain writes from the cursor. The sink
// here keeps everything in memory and fails where a test tells it to.

interface Failure {
  /** Which staged batch (0-based, counting every one begun) and which of its writes (0-based). */
  write?: (batch: number, piece: number) => SinkError | undefined
  commit?: (batch: number) => SinkError | undefined
  plain?: (write: number) => SinkError | undefined
}

class MemoryStagingSink implements Sink {
  readonly name = 'staged'
  readonly type = 's3' as const
  readonly limits: BatchLimits
  readonly staging: Staging
  /** Payloads of every committed batch, and of every plain write that succeeded. */
  readonly committed: string[][] = []
  readonly plain: string[][] = []
  /** Sizes of the staged writes, per batch begun. */
  readonly pieces: number[][] = []
  discarded = 0
  /** While set, commits wait for it (or for their signal). */
  commitGate: Promise<void> | undefined
  failures: Failure = {}
  private plainWrites = 0

  constructor(limits: Partial<BatchLimits>, piece: { records: number; bytes: number }) {
    this.limits = {
      maxBatchRecords: 10,
      maxBatchBytes: 1 << 20,
      lingerMs: 60_000,
      maxRecordBytes: 1000,
      ...limits,
    }
    this.staging = {
      maxPieceRecords: piece.records,
      maxPieceBytes: piece.bytes,
      begin: () => this.begin(),
    }
  }

  private begin(): StagedBatch {
    const batch = this.pieces.length
    const pieces: number[] = []
    this.pieces.push(pieces)
    let held: string[] = []
    let done = false
    return {
      write: async (records) => {
        if (done) throw new Error('write after the end of a staged batch')
        const error = this.failures.write?.(batch, pieces.length)
        pieces.push(records.length)
        if (error) {
          done = true
          this.discarded++
          throw error
        }
        held.push(...records.map((r) => r.payload.toString()))
      },
      commit: async (signal) => {
        if (done) throw new Error('commit after the end of a staged batch')
        if (this.commitGate)
          await Promise.race([
            this.commitGate,
            new Promise((_, reject) =>
              signal.addEventListener('abort', () => reject(signal.reason as Error)),
            ),
          ]).catch((err: unknown) => {
            done = true
            this.discarded++
            throw transientError(`aborted: ${String(err)}`, 'aborted')
          })
        const error = this.failures.commit?.(batch)
        done = true
        if (error) {
          this.discarded++
          throw error
        }
        if (held.length > 0) this.committed.push(held)
      },
      discard: async () => {
        if (!done) this.discarded++
        done = true
        held = []
      },
    }
  }

  async write(batch: readonly SinkRecord[]): Promise<WriteResult> {
    const error = this.failures.plain?.(this.plainWrites++)
    if (error) throw error
    this.plain.push(batch.map((r) => r.payload.toString()))
    return ALL_WRITTEN
  }

  healthcheck = async (): Promise<void> => undefined
  close = async (): Promise<void> => undefined

  /** Every payload that reached the sink durably, in order. */
  delivered(): string[] {
    return [...this.committed, ...this.plain].flat()
  }
}

const dirs: string[] = []
const spools: Spool[] = []
afterEach(async () => {
  await Promise.allSettled(spools.splice(0).map((s) => s.close()))
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

interface Harness {
  lane: DeliveryLane
  stream: StreamSpool
  dead: { payloads: string[]; error: SinkError }[]
  paused: { value: boolean }
  /** Appends payloads r<from> … r<from+n-1> as one spool frame. */
  append(from: number, n: number): Promise<void>
  /** Each move of the cursor, with what the sink and the dead-letter lane held durably at that moment. */
  advances: { at: Position; durable: Set<string> }[]
}

async function harness(
  sink: Sink & { delivered(): string[] },
  dir = mkdtempSync(join(tmpdir(), 'sg-lane-')),
  /** Read the spool back from its files (no tail cache) in reads of this many bytes. */
  readAheadBytes?: number,
): Promise<Harness> {
  if (!dirs.includes(dir)) dirs.push(dir)
  const spool = await Spool.open(
    {
      dir,
      maxBytes: 1 << 30,
      fsync: 'always',
      segmentBytes: 1 << 20,
      ...(readAheadBytes !== undefined ? { tailCacheBytes: 0 } : {}),
    },
    logger,
  )
  spools.push(spool)
  const stream = await spool.stream('s')
  if (readAheadBytes !== undefined) {
    const reader = stream.log.reader.bind(stream.log)
    stream.log.reader = (from) => reader(from, readAheadBytes)
  }
  const dead: Harness['dead'] = []
  const paused = { value: false }
  const advances: Harness['advances'] = []
  const lane: DeliveryLane = new DeliveryLane({
    stream: 's',
    lane: 'staged',
    kind: FrameKind.Records,
    sink,
    retry: { initialMs: 1, maxMs: 5, maxAttempts: 0 },
    spool: stream,
    metrics: new Metrics({ defaultMetrics: false }),
    logger,
    isPaused: () => paused.value,
    deadLetter: async (records, error) => {
      dead.push({ payloads: records.map((r) => r.payload.toString()), error })
    },
    onAdvance: () =>
      advances.push({
        at: lane.at,
        durable: new Set([...sink.delivered(), ...dead.flatMap((d) => d.payloads)]),
      }),
  })
  return {
    lane,
    stream,
    dead,
    paused,
    advances,
    append: (from, n) =>
      spool.append(
        's',
        Array.from({ length: n }, (_, i) => ({
          stream: 's',
          payload: Buffer.from(`r${from + i}`),
          receivedAtMs: Date.now(),
        })),
        [],
        Date.now(),
      ),
  }
}

const payloads = (from: number, n: number): string[] => Array.from({ length: n }, (_, i) => `r${from + i}`)

async function waitFor(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

/** A failure drawn from the dice: one in ten permanent, two in ten transient, else none. */
function rolledFailure(roll: Iterator<number>, permanent: string, transient: string): SinkError | undefined {
  const n = roll.next().value as number
  if (n === 0) return permanentError('refused', permanent)
  if (n <= 2) return transientError('flaky', transient)
  return undefined
}

/** Appends the frames (of these record counts), runs the lane until its lag is 0 and stops it; the total. */
async function appendAndDrain(h: Harness, frames: readonly number[]): Promise<number> {
  let total = 0
  for (const n of frames) {
    await h.append(total, n)
    total += n
  }
  h.lane.start()
  try {
    await waitFor(() => h.lane.lag === 0, 'everything through', 20_000)
  } finally {
    await h.lane.stop(1_000)
  }
  return total
}

describe('lane with a staging sink', () => {
  it('hands a batch over in pieces and moves the cursor only once the batch is committed', async () => {
    const sink = new MemoryStagingSink({ maxBatchRecords: 10, lingerMs: 300 }, { records: 3, bytes: 1 << 20 })
    let release!: () => void
    sink.commitGate = new Promise((r) => (release = r))
    const h = await harness(sink)
    const start = h.lane.at
    await h.append(0, 25)
    h.lane.start()
    try {
      await waitFor(() => sink.pieces[0]?.reduce((a, b) => a + b, 0) === 10, 'the first batch staged')
      // Written into the open batch, not committed: the cursor has not moved, the lag counts them all.
      expect(sink.pieces[0]).toEqual([3, 3, 3, 1])
      expect(h.lane.at).toEqual(start)
      expect(h.lane.lag).toBe(25)
      expect(h.stream.cursors.get('staged')).toEqual(start)
      release()
      sink.commitGate = undefined
      await waitFor(() => sink.committed.length === 2, 'two full batches')
      expect(sink.committed).toEqual([payloads(0, 10), payloads(10, 10)])
      // The rest (5 records) is committed by age, lingerMs after its first record, with nothing more coming.
      const waiting = performance.now()
      await waitFor(() => sink.committed.length === 3, 'the last batch by age')
      expect(performance.now() - waiting).toBeGreaterThanOrEqual(200)
      expect(sink.committed[2]).toEqual(payloads(20, 5))
      expect(h.lane.lag).toBe(0)
      // Every move of the cursor came after the sink held the records behind it.
      expect(h.advances.map((a) => a.durable.size)).toEqual([10, 20, 25])
    } finally {
      await h.lane.stop(1_000)
    }
  })

  it('a staging sink whose limits allow several batches in flight still stages one batch at a time', async () => {
    const sink = new MemoryStagingSink(
      { maxBatchRecords: 10, lingerMs: 300, maxInFlightBatches: 3 },
      { records: 5, bytes: 1 << 20 },
    )
    let release!: () => void
    sink.commitGate = new Promise((r) => (release = r))
    const h = await harness(sink)
    await h.append(0, 30)
    h.lane.start()
    try {
      await waitFor(() => sink.pieces[0]?.length === 2, 'the first batch staged')
      await new Promise((r) => setTimeout(r, 50))
      // Its commit is held: no second batch is begun meanwhile, and nothing goes as a plain write.
      expect(sink.pieces).toEqual([[5, 5]])
      expect(sink.plain).toEqual([])
      release()
      sink.commitGate = undefined
      await waitFor(() => h.lane.lag === 0, 'lag 0')
      expect(sink.committed).toEqual([payloads(0, 10), payloads(10, 10), payloads(20, 10)])
      expect(h.advances.map((a) => a.durable.size)).toEqual([10, 20, 30])
    } finally {
      await h.lane.stop(1_000)
    }
  })

  it('a failed piece: the batch is dropped and its records go again with plain writes, then staging resumes', async () => {
    const sink = new MemoryStagingSink({ maxBatchRecords: 10, lingerMs: 100 }, { records: 3, bytes: 1 << 20 })
    sink.failures.write = (batch, piece) =>
      batch === 0 && piece === 2 ? transientError('part upload failed', 'server-error') : undefined
    const h = await harness(sink)
    await h.append(0, 25)
    h.lane.start()
    try {
      await waitFor(() => h.lane.lag === 0, 'everything delivered')
      expect(sink.discarded).toBe(1)
      // The records of the lost batch up to the failed piece (r0–r8), again, piece-sized plain writes.
      expect(sink.plain).toEqual([payloads(0, 3), payloads(3, 3), payloads(6, 3)])
      // Then staged batches again: from r9 on, exactly once each.
      expect(sink.committed).toEqual([payloads(9, 10), payloads(19, 6)])
      expect(sink.delivered().sort()).toEqual(payloads(0, 25).sort())
      expect(h.lane.lastError).toMatchObject({ reason: 'server-error' })
    } finally {
      await h.lane.stop(1_000)
    }
  })

  it('a commit refused permanently: the records go with plain writes, dead-lettered where those fail too', async () => {
    const sink = new MemoryStagingSink({ maxBatchRecords: 10, lingerMs: 100 }, { records: 4, bytes: 1 << 20 })
    const missing = permanentError('s3: NoSuchBucket', 'unknown-bucket')
    sink.failures.commit = () => missing
    sink.failures.plain = () => missing
    const h = await harness(sink)
    await h.append(0, 12)
    h.lane.start()
    try {
      await waitFor(() => h.lane.lag === 0, 'everything dead-lettered')
      expect(sink.delivered()).toEqual([])
      expect(h.dead.flatMap((d) => d.payloads)).toEqual(payloads(0, 12))
      expect(h.dead.every((d) => d.error.reason === 'unknown-bucket')).toBe(true)
      // The batch was staged whole (pieces of 4) before its commit was refused.
      expect(sink.pieces[0]).toEqual([4, 4, 2])
    } finally {
      await h.lane.stop(1_000)
    }
  })

  it('records over the limit are dead-lettered; the rest of the piece is staged', async () => {
    const sink = new MemoryStagingSink(
      { maxBatchRecords: 10, maxRecordBytes: 2, lingerMs: 50 },
      { records: 5, bytes: 1 << 20 },
    )
    const h = await harness(sink)
    await h.append(8, 4) // r8, r9 fit in 2 bytes; r10, r11 do not
    h.lane.start()
    try {
      await waitFor(() => h.lane.lag === 0, 'delivered')
      expect(sink.committed).toEqual([['r8', 'r9']])
      expect(h.dead).toEqual([
        {
          payloads: ['r10', 'r11'],
          error: expect.objectContaining({ reason: 'record-too-large' }) as unknown,
        },
      ])
      expect(h.lane.delivered).toBe(2)
    } finally {
      await h.lane.stop(1_000)
    }
  })

  it('stopping commits the open batch; a commit cut off by the shutdown timeout leaves the cursor before it', async () => {
    const sink = new MemoryStagingSink(
      { maxBatchRecords: 100, lingerMs: 60_000 },
      { records: 2, bytes: 1 << 20 },
    )
    const h = await harness(sink)
    const start = h.lane.at
    await h.append(0, 5)
    h.lane.start()
    await waitFor(() => sink.pieces[0]?.length === 2, 'two pieces staged')
    await h.lane.stop(5_000)
    expect(sink.committed).toEqual([payloads(0, 5)])
    expect(h.lane.at).not.toEqual(start)
    expect(h.lane.lag).toBe(0)

    const hanging = new MemoryStagingSink(
      { maxBatchRecords: 100, lingerMs: 60_000 },
      { records: 2, bytes: 1 << 20 },
    )
    hanging.commitGate = new Promise(() => undefined)
    const h2 = await harness(hanging)
    const start2 = h2.lane.at
    await h2.append(0, 5)
    h2.lane.start()
    await waitFor(() => hanging.pieces[0]?.length === 2, 'two pieces staged')
    await h2.lane.stop(50)
    expect(hanging.committed).toEqual([])
    expect(hanging.discarded).toBe(1)
    expect(h2.lane.at).toEqual(start2)
    expect(h2.stream.cursors.get('staged')).toEqual(start2)
  })

  it('pausing completes the open batch with what was gathered before the pause', async () => {
    const sink = new MemoryStagingSink(
      { maxBatchRecords: 100, lingerMs: 2_000 },
      { records: 3, bytes: 1 << 20 },
    )
    const h = await harness(sink)
    await h.append(0, 3)
    h.lane.start()
    try {
      await waitFor(() => sink.pieces[0]?.length === 1, 'a piece staged')
      h.paused.value = true
      await h.append(3, 4)
      await waitFor(() => sink.committed.length === 1, 'the batch committed on pause')
      expect(sink.committed[0]).toEqual(payloads(0, 3))
      expect(h.lane.lag).toBe(4)
      h.paused.value = false
      await waitFor(() => sink.committed.length === 2, 'the rest after the resume')
    } finally {
      await h.lane.stop(1_000)
    }
    expect(sink.committed[1]).toEqual(payloads(3, 4))
  })

  it('after a crash with a batch open, the next lane sends it again from the held cursor', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sg-lane-'))
    const sink = new MemoryStagingSink(
      { maxBatchRecords: 4, lingerMs: 60_000 },
      { records: 2, bytes: 1 << 20 },
    )
    const h = await harness(sink, dir)
    await h.append(0, 7)
    h.lane.start()
    await waitFor(
      () => sink.committed.length === 1 && sink.pieces[1]?.length === 1,
      'one batch done, one open',
    )
    // A crash: the open batch never completes, the process is gone (nothing is committed or discarded).
    sink.commitGate = new Promise(() => undefined)
    await h.stream.cursors.save()
    await h.lane.stop(1)
    await spools.splice(0)[0]!.close()

    const after = new MemoryStagingSink({ maxBatchRecords: 4, lingerMs: 50 }, { records: 2, bytes: 1 << 20 })
    const h2 = await harness(after, dir)
    h2.lane.start()
    try {
      await waitFor(() => h2.lane.lag === 0, 'the rest delivered after the restart')
      expect(sink.committed).toEqual([payloads(0, 4)])
      expect(after.committed).toEqual([payloads(4, 3)])
    } finally {
      await h2.lane.stop(1_000)
    }
  })

  it.each([
    ['from the tail cache', undefined],
    ['read back in 96-byte reads into recycled buffers', 96],
  ] as const)(
    'under random failures of writes, commits and plain writes (%s): every record delivered, the cursor never ahead',
    async (_, readAheadBytes) => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 1, maxLength: 12 }),
          fc.integer({ min: 1, max: 12 }),
          fc.integer({ min: 1, max: 5 }),
          fc.infiniteStream(fc.integer({ min: 0, max: 9 })),
          async (frames, maxBatch, piece, dice) => {
            const sink = new MemoryStagingSink(
              { maxBatchRecords: maxBatch, lingerMs: 5 },
              { records: piece, bytes: 1 << 20 },
            )
            const roll = dice[Symbol.iterator]()
            const fail = (reason: string): SinkError | undefined =>
              rolledFailure(roll, `${reason}-permanent`, `${reason}-transient`)
            sink.failures = {
              write: () => fail('write'),
              commit: () => fail('commit'),
              plain: () => fail('plain'),
            }
            const h = await harness(sink, undefined, readAheadBytes)
            const firstSeq = h.stream.log.nextSeq
            const total = await appendAndDrain(h, frames)
            const dead = h.dead.flatMap((d) => d.payloads)
            // At least once: every record reached the sink durably or the dead-letter lane.
            expect(new Set([...sink.delivered(), ...dead])).toEqual(new Set(payloads(0, total)))
            // A permanent failure of a staged batch alone never dead-letters: only plain writes refused do.
            for (const d of h.dead) expect(d.error.reason).toMatch(/^plain-permanent$/)
            // The cursor moved only over records that were durable by then (one frame per append).
            for (const { at, durable } of h.advances) {
              const frame = at.seq - firstSeq
              const behind =
                frames.slice(0, frame).reduce((a, b) => a + b, 0) + (frame < frames.length ? at.index : 0)
              for (const p of payloads(0, behind)) expect(durable.has(p)).toBe(true)
            }
          },
        ),
        { numRuns: 40 },
      )
    },
    120_000,
  )
})

/**
 * A sink like the file sink (releasesOnSettle): it holds the batch's payload views while its write is under
 * way and reads them only when the write completes (as the file sink hands views of spool lines frames to
 * writev), or fails the write, at random. Records handed to it again (a retried batch) are read again.
 */
class SettlingSink implements Sink {
  readonly name = 'out'
  readonly type = 'file' as const
  readonly releasesOnSettle = true
  readonly limits: BatchLimits
  protected readonly written: string[] = []
  writes = 0
  failure: () => SinkError | undefined = () => undefined
  delayMs: () => number = () => 0

  constructor(limits: Partial<BatchLimits>) {
    this.limits = {
      maxBatchRecords: 10,
      maxBatchBytes: 1 << 20,
      lingerMs: 0,
      maxRecordBytes: 1000,
      ...limits,
    }
  }

  async write(batch: readonly SinkRecord[]): Promise<WriteResult> {
    const error = this.failure()
    await new Promise((r) => setTimeout(r, this.delayMs()))
    if (error) throw error
    // Read at the last moment: a buffer the lane reused meanwhile shows here as other records' bytes.
    this.written.push(...batch.map((r) => r.payload.toString()))
    this.writes++
    return ALL_WRITTEN
  }

  healthcheck = async (): Promise<void> => undefined
  close = async (): Promise<void> => undefined

  delivered(): string[] {
    return [...this.written]
  }
}

/**
 * The same sink writing lines (Sink.writeLines), as the file sink does: the lane hands it views of the
 * spool's lines frames, which it reads only when its write completes.
 */
class SettlingLinesSink extends SettlingSink {
  linesWrites = 0
  linesRecords = 0

  async writeLines(lines: readonly Buffer[], records: number): Promise<void> {
    const error = this.failure()
    await new Promise((r) => setTimeout(r, this.delayMs()))
    if (error) throw error
    const text = Buffer.concat(lines).toString()
    expect(text.endsWith('\n')).toBe(true)
    const written = text.slice(0, -1).split('\n')
    expect(written.length).toBe(records)
    this.written.push(...written)
    this.linesWrites++
    this.linesRecords += records
  }
}

describe('lane with a sink that releases records when its write settles', () => {
  it.each([
    ['records', false],
    ['lines', true],
  ])(
    'reads the spool back into recycled buffers with batches in flight, retried and dead-lettered at random: every record arrives intact (%s)',
    async (_, lines) => {
      let linesRecords = 0
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 1, maxLength: 12 }),
          fc.integer({ min: 1, max: 7 }),
          fc.integer({ min: 1, max: 3 }),
          fc.infiniteStream(fc.integer({ min: 0, max: 9 })),
          // A limit some records are over ("r10" and later): their batches go as records, and those records to
          // the dead-letter lane.
          fc.constantFrom(1000, 1000, 2),
          async (frames, maxBatch, maxInFlight, dice, maxRecordBytes) => {
            const limits = { maxBatchRecords: maxBatch, maxInFlightBatches: maxInFlight, maxRecordBytes }
            const sink = lines ? new SettlingLinesSink(limits) : new SettlingSink(limits)
            const roll = dice[Symbol.iterator]()
            sink.failure = () => rolledFailure(roll, 'refused', 'flaky')
            sink.delayMs = () => (roll.next().value as number) % 4
            // Reads of 64 bytes with no tail cache: a read buffer holds a frame or two, and is reused at once.
            const h = await harness(sink, undefined, 64)
            const total = await appendAndDrain(h, frames)
            const arrived = [...sink.delivered(), ...h.dead.flatMap((d) => d.payloads)]
            // Intact: nothing arrived that was not sent (a reused buffer would show as other bytes) …
            for (const p of arrived) expect(payloads(0, total)).toContain(p)
            // … and at least once: every record reached the sink or the dead-letter lane.
            expect(new Set(arrived)).toEqual(new Set(payloads(0, total)))
            // No record over the sink's limit was written (they go to the dead-letter lane).
            for (const p of sink.delivered()) expect(p.length).toBeLessThanOrEqual(maxRecordBytes)
            if (sink instanceof SettlingLinesSink) linesRecords += sink.linesRecords
          },
        ),
        { numRuns: 40 },
      )
      // The lines path was taken (most runs' batches went as lines).
      if (lines) expect(linesRecords).toBeGreaterThan(100)
    },
    120_000,
  )

  it('a sink that writes lines gets every batch as lines, never a record object, when nothing fails', async () => {
    const sink = new SettlingLinesSink({ maxBatchRecords: 7, maxInFlightBatches: 2 })
    const h = await harness(sink)
    const total = await appendAndDrain(h, [1, 5, 9, 2000, 3, 1])
    expect(sink.delivered()).toEqual(payloads(0, total))
    expect(sink.writes).toBe(0)
    expect(sink.linesRecords).toBe(total)
  })
})
