import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { authError, notConnectedError, permanentError, transientError, type SinkError } from '../errors.js'
import type { SinkRecord } from '../records/record.js'
import { ALL_WRITTEN, type Sink, type WriteResult } from '../sinks/sink.js'
import { createLogger } from '../telemetry/logger.js'
import { Metrics } from '../telemetry/metrics.js'
import { deliver, deliverLines } from './delivery.js'

/** A sink that fails its first writes with the given errors, then succeeds. */
function scripted(errors: SinkError[]): Sink & { writes: number } {
  return {
    name: 'scripted',
    type: 'http',
    limits: { maxBatchRecords: 100, maxBatchBytes: 1 << 20, lingerMs: 0, maxRecordBytes: 1 << 20 },
    writes: 0,
    async write(): Promise<WriteResult> {
      const error = errors[this.writes++]
      if (error) throw error
      return ALL_WRITTEN
    },
    healthcheck: async () => undefined,
    close: async () => undefined,
  }
}

const records: SinkRecord[] = [{ stream: 's', payload: Buffer.from('{}'), receivedAtMs: 0 }]

async function run(sink: Sink, metrics: Metrics): Promise<SinkError[]> {
  const dead: SinkError[] = []
  await deliver(sink, records, {
    retry: { initialMs: 1, maxMs: 2, maxAttempts: 2 },
    signal: AbortSignal.timeout(5_000),
    metrics,
    logger: createLogger('silent'),
    deadLetter: async (_, error) => void dead.push(error),
  })
  return dead
}

describe('deliver: auth failures', () => {
  it('are retried past retry.maxAttempts and counted, never dead-lettered', async () => {
    const metrics = new Metrics({ defaultMetrics: false })
    const sink = scripted(Array.from({ length: 6 }, () => authError('inlet answered 403')))
    expect(await run(sink, metrics)).toEqual([])
    expect(sink.writes).toBe(7)
    const text = await metrics.registry.metrics()
    expect(text).toContain('streamgate_sink_auth_failures_total{sink="scripted"} 6')
    expect(text).toContain('streamgate_sink_records_retried_total{sink="scripted",reason="auth"} 6')
  })

  it('do not use up the attempts of other transient failures; those still give up at maxAttempts', async () => {
    const metrics = new Metrics({ defaultMetrics: false })
    const flaky = transientError('503', 'http-503')
    const sink = scripted([authError('401'), authError('401'), flaky, flaky, flaky])
    const dead = await run(sink, metrics)
    expect(sink.writes).toBe(4)
    expect(dead.map((e) => e.reason)).toEqual(['retries-exhausted'])
  })
})

describe('deliver: a sink that is not connected', () => {
  it('holds its records past retry.maxAttempts (no dead letters, no auth-failure count)', async () => {
    const metrics = new Metrics({ defaultMetrics: false })
    const sink = scripted(Array.from({ length: 5 }, () => notConnectedError('adobe', 'aep')))
    expect(await run(sink, metrics)).toEqual([])
    expect(sink.writes).toBe(6)
    const text = await metrics.registry.metrics()
    expect(text).not.toContain('streamgate_sink_auth_failures_total{sink="scripted"}')
    expect(text).toContain('streamgate_sink_records_retried_total{sink="scripted",reason="not-connected"} 5')
  })
})

describe('deliver: batches within the sink limits', () => {
  it('every write is within maxBatchRecords and maxBatchBytes, in order; records over maxRecordBytes are dead-lettered', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 0, max: 40 }), { maxLength: 60 }),
        fc.integer({ min: 1, max: 12 }),
        fc.integer({ min: 1, max: 120 }),
        fc.integer({ min: 1, max: 40 }),
        async (sizes, maxBatchRecords, maxBatchBytes, maxRecordBytes) => {
          const writes: string[][] = []
          const sink: Sink = {
            name: 'limits',
            type: 'http',
            limits: { maxBatchRecords, maxBatchBytes, lingerMs: 0, maxRecordBytes },
            write(batch): Promise<WriteResult> {
              writes.push(batch.map((r) => r.payload.toString()))
              return Promise.resolve(ALL_WRITTEN)
            },
            healthcheck: async () => undefined,
            close: async () => undefined,
          }
          const all = sizes.map((n, i): SinkRecord => {
            const payload = Buffer.from(`${i}:`.padEnd(Math.max(n, String(i).length + 1), 'x'))
            return { stream: 's', payload, receivedAtMs: 0 }
          })
          const dead: string[] = []
          await deliver(sink, all, {
            retry: { initialMs: 1, maxMs: 2, maxAttempts: 2 },
            signal: AbortSignal.timeout(5_000),
            metrics: new Metrics(),
            logger: createLogger('silent'),
            deadLetter: async (failed) => void dead.push(...failed.map((r) => r.payload.toString())),
          })
          const texts = all.map((r) => r.payload.toString())
          expect(dead).toEqual(texts.filter((t) => t.length > maxRecordBytes))
          expect(writes.flat()).toEqual(texts.filter((t) => t.length <= maxRecordBytes))
          for (const batch of writes) {
            expect(batch.length).toBeGreaterThan(0)
            expect(batch.length).toBeLessThanOrEqual(maxBatchRecords)
            // A single record may exceed maxBatchBytes (up to maxRecordBytes): it goes alone.
            const bytes = batch.reduce((n, t) => n + t.length, 0)
            if (batch.length > 1) expect(bytes).toBeLessThanOrEqual(maxBatchBytes)
          }
        },
      ),
      { numRuns: 300 },
    )
  })
})

/** A sink with writeLines whose calls (lines or records, in order) fail with the errors given, then succeed. */
function scriptedLines(errors: SinkError[]): Sink & { calls: string[] } {
  const sink = scripted(errors)
  const calls: string[] = []
  return Object.assign(sink, {
    calls,
    async write(batch: readonly SinkRecord[]): Promise<WriteResult> {
      calls.push(`write ${batch.map((r) => r.payload.toString()).join(' ')}`)
      const error = errors[sink.writes++]
      if (error) throw error
      return ALL_WRITTEN
    },
    async writeLines(lines: readonly Buffer[], count: number): Promise<void> {
      calls.push(`lines ${count} ${JSON.stringify(Buffer.concat(lines).toString())}`)
      const error = errors[sink.writes++]
      if (error) throw error
    },
  })
}

describe('deliverLines', () => {
  const batch = (): Parameters<typeof deliverLines>[1] => ({
    lines: [Buffer.from('{"a":1}\n{"a":2}\n'), Buffer.from('{"a":3}\n')],
    count: 3,
    records: () =>
      ['{"a":1}', '{"a":2}', '{"a":3}'].map((p) => ({
        stream: 's',
        payload: Buffer.from(p),
        receivedAtMs: 0,
      })),
  })
  const options = (metrics: Metrics, dead: { error: SinkError; payloads: string[] }[]) => ({
    retry: { initialMs: 1, maxMs: 2, maxAttempts: 2 },
    signal: AbortSignal.timeout(5_000),
    metrics,
    logger: createLogger('silent'),
    deadLetter: async (records: SinkRecord[], error: SinkError) =>
      void dead.push({ error, payloads: records.map((r) => r.payload.toString()) }),
  })

  it('writes the lines once and counts the records delivered', async () => {
    const metrics = new Metrics({ defaultMetrics: false })
    const sink = scriptedLines([])
    let delivered = 0
    await deliverLines(sink, batch(), { ...options(metrics, []), onDelivered: (n) => (delivered += n) })
    expect(sink.calls).toEqual(['lines 3 "{\\"a\\":1}\\n{\\"a\\":2}\\n{\\"a\\":3}\\n"'])
    expect(delivered).toBe(3)
    expect(await metrics.registry.metrics()).toContain(
      'streamgate_sink_records_delivered_total{sink="scripted"} 3',
    )
  })

  it('a failed lines write is the first attempt: the records are retried with write() and given up at maxAttempts', async () => {
    const metrics = new Metrics({ defaultMetrics: false })
    const flaky = transientError('disk busy', 'file-io')
    const sink = scriptedLines([flaky, flaky, flaky])
    const dead: { error: SinkError; payloads: string[] }[] = []
    const errors: SinkError[] = []
    await deliverLines(sink, batch(), { ...options(metrics, dead), onError: (e) => errors.push(e) })
    expect(sink.calls.map((c) => c.split(' ')[0])).toEqual(['lines', 'write'])
    expect(sink.calls[1]).toBe('write {"a":1} {"a":2} {"a":3}')
    expect(dead.map((d) => [d.error.reason, d.payloads.length])).toEqual([['retries-exhausted', 3]])
    expect(errors.map((e) => e.reason)).toEqual(['file-io', 'file-io'])
  })

  it('a lines write refused permanently dead-letters every record of the batch at once', async () => {
    const metrics = new Metrics({ defaultMetrics: false })
    const sink = scriptedLines([permanentError('cannot write', 'file-permission')])
    const dead: { error: SinkError; payloads: string[] }[] = []
    await deliverLines(sink, batch(), options(metrics, dead))
    expect(sink.calls.map((c) => c.split(' ')[0])).toEqual(['lines'])
    expect(dead.map((d) => [d.error.reason, d.payloads])).toEqual([
      ['file-permission', ['{"a":1}', '{"a":2}', '{"a":3}']],
    ])
  })

  it('a transient lines failure then a successful write delivers every record once more, nothing dead', async () => {
    const metrics = new Metrics({ defaultMetrics: false })
    const sink = scriptedLines([transientError('disk busy', 'file-io')])
    const dead: { error: SinkError; payloads: string[] }[] = []
    let delivered = 0
    await deliverLines(sink, batch(), { ...options(metrics, dead), onDelivered: (n) => (delivered += n) })
    expect(sink.calls.map((c) => c.split(' ')[0])).toEqual(['lines', 'write'])
    expect(dead).toEqual([])
    expect(delivered).toBe(3)
  })
})
