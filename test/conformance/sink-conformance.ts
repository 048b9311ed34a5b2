import { describe, expect, it } from 'vitest'
import { SinkError } from '../../src/errors.js'
import { deliver } from '../../src/pipeline/delivery.js'
import type { SinkRecord } from '../../src/records/record.js'
import type { Sink } from '../../src/sinks/sink.js'
import { createLogger } from '../../src/telemetry/logger.js'
import { Metrics } from '../../src/telemetry/metrics.js'

// The one conformance suite every sink passes (after Benthos's StreamTestAtLeastOnceDelivery): empty batch,
// a batch at the sink's limits, a record over the limit, retriable vs permanent failures, partial failure
// by index, close flushes, metrics emitted. Each sink's integration test calls `sinkConformance` with a
// target that knows how to make a sink against a real (or faithful) destination and read it back.

export interface ConformanceTarget {
  /** A fresh sink writing to a fresh destination (unique topic/bucket/stream). */
  create(options?: { maxBatchRecords?: number }): Promise<Sink>
  /** Every payload the destination holds now (order not significant). */
  readBack(): Promise<Buffer[]>
  /** A sink whose writes fail permanently (unknown topic, missing bucket, 4xx …); see `permanent`. */
  createPermanentlyFailing?(): Promise<Sink>
  /** A sink whose writes fail transiently until `heal` is called (broker down, 503 …). */
  createTransientlyFailing?(): Promise<{ sink: Sink; heal(): Promise<void> }>
  /** Makes the next write report some entries failed (retriable) by index; returns the failed indexes. */
  injectPartialFailure?(sink: Sink): Promise<void>
  /** How long delivered records may take to become readable (S3 roll-over, consumer lag). */
  settleMs?: number
  cleanup?(): Promise<void>
}

const logger = createLogger('silent')

export function records(n: number, prefix = 'r', size = 0): SinkRecord[] {
  const pad = size > 0 ? 'x'.repeat(size) : ''
  return Array.from({ length: n }, (_, i) => ({
    stream: 'conformance',
    id: `${prefix}-${i}`,
    receivedAtMs: Date.now(),
    payload: Buffer.from(
      `{"id":"${prefix}-${i}","n":${i},"big":9007199254740993${pad ? `,"pad":"${pad}"` : ''}}`,
    ),
  }))
}

async function readUntil(target: ConformanceTarget, expected: number, timeoutMs = 30_000): Promise<Buffer[]> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const got = await target.readBack()
    if (got.length >= expected || Date.now() > deadline) return got
    await new Promise((r) => setTimeout(r, 200))
  }
}

const sorted = (bufs: Buffer[]): string[] => bufs.map((b) => b.toString('utf8')).sort()

export interface ConformanceCapabilities {
  /** The target implements createTransientlyFailing. */
  transient?: boolean
  /** The target implements injectPartialFailure (the sink reports failures by index). */
  partialFailure?: boolean
  /**
   * The destination can refuse records for good (default true). Only stdout cannot: a failed write to
   * standard output is always worth another try, so its target has no createPermanentlyFailing.
   */
  permanent?: boolean
}

export function sinkConformance(
  name: string,
  makeTarget: () => Promise<ConformanceTarget>,
  capabilities: ConformanceCapabilities = {},
): void {
  describe(`sink conformance: ${name}`, () => {
    const withTarget = async (fn: (t: ConformanceTarget) => Promise<void>): Promise<void> => {
      const target = await makeTarget()
      try {
        await fn(target)
      } finally {
        await target.cleanup?.()
      }
    }

    it('an empty batch succeeds and writes nothing', () =>
      withTarget(async (t) => {
        const sink = await t.create()
        const result = await sink.write([], AbortSignal.timeout(30_000))
        expect(result.failed).toEqual([])
        await sink.close()
        expect(await t.readBack()).toEqual([])
      }))

    it('delivers a batch at its record limit byte for byte, and close flushes', () =>
      withTarget(async (t) => {
        const sink = await t.create({ maxBatchRecords: 50 })
        const batch = records(sink.limits.maxBatchRecords, 'limit')
        const result = await sink.write(batch, AbortSignal.timeout(60_000))
        expect(result.failed).toEqual([])
        await sink.close()
        const got = await readUntil(t, batch.length, t.settleMs ?? 30_000)
        expect(sorted(got)).toEqual(sorted(batch.map((r) => r.payload)))
      }))

    it('dead-letters a record over the size limit and delivers the rest, counting both in metrics', () =>
      withTarget(async (t) => {
        const sink = await t.create()
        const metrics = new Metrics({ defaultMetrics: false })
        const small = records(3, 'small')
        const huge: SinkRecord = {
          ...small[0]!,
          id: 'huge',
          payload: Buffer.alloc(sink.limits.maxRecordBytes + 1, 0x61),
        }
        const dead: { records: SinkRecord[]; error: SinkError }[] = []
        await deliver(sink, [...small, huge], {
          retry: { initialMs: 10, maxMs: 100, maxAttempts: 3 },
          signal: AbortSignal.timeout(60_000),
          metrics,
          logger,
          deadLetter: async (recs, error) => {
            dead.push({ records: recs, error })
          },
        })
        await sink.close()
        expect(dead).toHaveLength(1)
        expect(dead[0]!.records.map((r) => r.id)).toEqual(['huge'])
        expect(dead[0]!.error.reason).toBe('record-too-large')
        expect(dead[0]!.error.retriable).toBe(false)
        const got = await readUntil(t, 3, t.settleMs ?? 30_000)
        expect(sorted(got)).toEqual(sorted(small.map((r) => r.payload)))
        const text = await metrics.registry.metrics()
        expect(text).toContain(`streamgate_sink_records_delivered_total{sink="${sink.name}"} 3`)
        expect(text).toContain(
          `streamgate_sink_records_failed_total{sink="${sink.name}",reason="record-too-large"} 1`,
        )
      }))

    it('writeLines, where the sink has it, writes the same records as write() would, and close flushes', () =>
      withTarget(async (t) => {
        const sink = await t.create()
        if (!sink.writeLines) {
          expect(sink.type).not.toMatch(/^(file|stdout)$/) // the sinks that write plain lines must offer it
          await sink.close()
          return
        }
        const batch = records(7, 'lines')
        // As a lane hands them over: runs of whole lines, of any length.
        const text = Buffer.concat(batch.flatMap((r) => [r.payload, Buffer.from('\n')]))
        const cut = text.indexOf('\n', Math.floor(text.length / 3)) + 1
        await sink.writeLines(
          [text.subarray(0, cut), text.subarray(cut)],
          batch.length,
          AbortSignal.timeout(60_000),
        )
        await sink.close()
        const got = await readUntil(t, batch.length, t.settleMs ?? 30_000)
        expect(sorted(got)).toEqual(sorted(batch.map((r) => r.payload)))
        if (capabilities.permanent === false) return
        const failing = await t.createPermanentlyFailing!()
        const refused = await failing.writeLines!([text], batch.length, AbortSignal.timeout(60_000)).then(
          () => undefined,
          (err: unknown) => err,
        )
        await failing.close()
        expect(refused).toBeInstanceOf(SinkError)
        expect((refused as SinkError).retriable).toBe(false)
      }))

    if (capabilities.permanent !== false)
      it('reports a permanent failure as not retriable, and delivery dead-letters without retrying', () =>
        withTarget(async (t) => {
          const sink = await t.createPermanentlyFailing!()
          const batch = records(2, 'perm')
          let writes = 0
          const counting: Sink = {
            ...sink,
            limits: sink.limits,
            name: sink.name,
            type: sink.type,
            write: (b, s) => (writes++, sink.write(b, s)),
            healthcheck: (s) => sink.healthcheck(s),
            close: () => sink.close(),
          }
          const dead: SinkError[] = []
          await deliver(counting, batch, {
            retry: { initialMs: 10, maxMs: 50, maxAttempts: 5 },
            signal: AbortSignal.timeout(60_000),
            metrics: new Metrics({ defaultMetrics: false }),
            logger,
            deadLetter: async (recs, error) => {
              expect(recs).toHaveLength(2)
              dead.push(error)
            },
          })
          await sink.close()
          expect(dead).toHaveLength(1)
          expect(dead[0]!.retriable).toBe(false)
          expect(dead[0]!.reason).not.toBe('retries-exhausted')
          expect(writes).toBe(1)
        }))

    if (capabilities.transient)
      it('retries transient failures until the destination heals, delivering everything once healed', async () => {
        const t = await makeTarget()
        try {
          const failing = await t.createTransientlyFailing!()
          const sink = failing.sink
          const heal = (): Promise<void> => failing.heal()
          const batch = records(5, 'transient')
          let failures = 0
          const delivery = deliver(sink, batch, {
            retry: { initialMs: 50, maxMs: 500, maxAttempts: 0 },
            signal: AbortSignal.timeout(120_000),
            metrics: new Metrics({ defaultMetrics: false }),
            logger,
            deadLetter: async () => {
              failures++
            },
            onError: () => {
              if (failures === 0) void heal()
            },
          })
          await delivery
          await sink.close()
          expect(failures).toBe(0)
          const got = await readUntil(t, 5, t.settleMs ?? 30_000)
          expect(sorted(got)).toEqual(sorted(batch.map((r) => r.payload)))
        } finally {
          await t.cleanup?.()
        }
      })

    if (capabilities.partialFailure)
      it('resends only the entries that failed in a partial failure', async () => {
        const t = await makeTarget()
        try {
          const sink = await t.create()
          await t.injectPartialFailure!(sink)
          const batch = records(10, 'partial')
          const sizes: number[] = []
          const spy: Sink = {
            name: sink.name,
            type: sink.type,
            limits: sink.limits,
            write: (b, s) => (sizes.push(b.length), sink.write(b, s)),
            healthcheck: (s) => sink.healthcheck(s),
            close: () => sink.close(),
          }
          await deliver(spy, batch, {
            retry: { initialMs: 10, maxMs: 100, maxAttempts: 0 },
            signal: AbortSignal.timeout(60_000),
            metrics: new Metrics({ defaultMetrics: false }),
            logger,
            deadLetter: async () => {
              throw new Error('nothing should be dead-lettered')
            },
          })
          await sink.close()
          expect(sizes[0]).toBe(10)
          expect(sizes.length).toBeGreaterThanOrEqual(2)
          expect(sizes[1]).toBeLessThan(10)
          const got = await readUntil(t, 10, t.settleMs ?? 30_000)
          expect(sorted(got)).toEqual(sorted(batch.map((r) => r.payload)))
        } finally {
          await t.cleanup?.()
        }
      })
  })
}
