import { describe, expect, it } from 'vitest'
import type { SinkRecord } from '../records/record.js'
import { createLogger } from '../telemetry/logger.js'
import { Metrics } from '../telemetry/metrics.js'
import { SpoolHandOff } from './spool-hand-off.js'
import type { ProcessOutcome, StreamRuntime } from './stream.js'

const rec = (text: string): SinkRecord => ({ stream: 's', payload: Buffer.from(text), receivedAtMs: 1 })

describe('SpoolHandOff', () => {
  it("lets go of the outcome's records without touching the arrays the spool was given (it may read them later)", async () => {
    // A stream's first append opens its log first and encodes afterwards, from the arrays it was given.
    const seen: string[][] = []
    const spool = {
      append: async (_stream: string, records: readonly SinkRecord[], deadLetters: readonly SinkRecord[]) => {
        await new Promise((r) => setTimeout(r, 5))
        seen.push(
          records.map((r) => r.payload.toString()),
          deadLetters.map((r) => r.payload.toString()),
        )
      },
    }
    const handOff = new SpoolHandOff(spool, { metrics: new Metrics(), logger: createLogger('silent') })
    const outcome: ProcessOutcome = {
      records: [rec('a'), rec('b')],
      deadLetters: [rec('dead')],
      received: 3,
      filtered: 0,
      duplicates: 0,
      rejected: {},
      dedupeKeys: [],
    }
    const accepted = handOff.accept({ id: 's' } as StreamRuntime, outcome)
    expect([outcome.records, outcome.deadLetters]).toEqual([[], []])
    await accepted
    expect(seen).toEqual([['a', 'b'], ['dead']])
  })
})
