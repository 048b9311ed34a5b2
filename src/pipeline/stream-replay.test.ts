import { describe, expect, it } from 'vitest'
import type { StreamConfig } from '../config/types.js'
import { parseDeadLetter } from '../records/dead-letter.js'
import { Validators } from '../validate/validators.js'
import { StreamRuntime, type ProcessOutcome } from './stream.js'

// StreamRuntime.processRecords (spool replay-dead-letter) under `validation: off`. Found by the framing
// fuzzer (stream.fuzz.test.ts): a replayed record that is not JSON, or not an object for emnify, was
// accepted and sent to the sinks of a JSON stream, where live it is a 400 whatever the policy.

const validators = new Validators()

function runtime(over: Partial<StreamConfig>): StreamRuntime {
  const config: StreamConfig = {
    source: 'ndjson',
    recordType: 'event',
    method: 'POST',
    auth: {},
    payloadFormat: '$dataset',
    logLineSeparator: '\\n',
    validation: 'off',
    filters: [],
    durability: 'spool',
    status: 1,
    sinks: ['out'],
    ...over,
  }
  return new StreamRuntime('s', config, validators)
}

const replay = (r: StreamRuntime, texts: string[]): ProcessOutcome =>
  r.processRecords(
    texts.map((t) => Buffer.from(t)),
    1_000,
  )
const accepted = (o: ProcessOutcome): string[] => o.records.map((r) => r.payload.toString())
const deadRaws = (o: ProcessOutcome): string[] =>
  o.deadLetters.map((d) => parseDeadLetter(d.payload.toString())!.raw)

describe('replaying dead letters under validation: off', () => {
  it('sends a record that is not JSON back to the dead letters, exactly as it was', () => {
    for (const source of ['ndjson', 'json'] as const) {
      const o = replay(runtime({ source }), ['{"a":1}', 'not json', '{"a":\n', ''])
      expect(accepted(o)).toEqual(['{"a":1}'])
      expect(deadRaws(o)).toEqual(['not json', '{"a":\n', ''])
      expect(o.rejected).toEqual({ invalid: 3 })
    }
  })

  it('sends an emnify record that is not an object back to the dead letters', () => {
    const o = replay(runtime({ source: 'emnify' }), [
      '{"id":"anything goes under off"}',
      '1',
      '[{"id":1}]',
      'null',
    ])
    expect(accepted(o)).toEqual(['{"id":"anything goes under off"}'])
    expect(deadRaws(o)).toEqual(['1', '[{"id":1}]', 'null'])
  })

  it('still accepts a text record that does not match its template, as a live request does under off', () => {
    const r = runtime({ source: 'azion', templateModel: '$time $host', validation: 'off' })
    expect(accepted(replay(r, ['a b', 'no-separator']))).toEqual(['a b', 'no-separator'])
    expect(accepted(r.process(Buffer.from('a b\nno-separator'), 1_000))).toEqual(['a b', 'no-separator'])
  })
})
