import { describe, expect, it } from 'vitest'
import type { StreamConfig } from '../config/types.js'
import { StreamRuntime, type ProcessOutcome } from '../pipeline/stream.js'
import { Validators } from '../validate/validators.js'
import { compileTemplate, renderTemplate } from './azion-template.js'
import { findAzionTemplate } from './azion-templates.js'

// Azion bodies at their edges, where the body's whitespace meets a record or a separator. Found by the
// framing fuzzer (src/pipeline/stream.fuzz.test.ts): trimming the whole body cut bytes that belonged to the
// last record or to a trailing separator.

const validators = new Validators()
const ACTIVITY_HISTORY =
  'v1\\t$time_iso8601\\t$clientid\\t$title\\t$comment\\t$type\\t$author_name\\t$author_email'
const TEMPLATE_86 = findAzionTemplate(86)!.templateModel

function azion(over: Partial<StreamConfig>): StreamRuntime {
  const config: StreamConfig = {
    source: 'azion',
    recordType: 'event',
    method: 'POST',
    auth: {},
    payloadFormat: '$dataset',
    logLineSeparator: '\\n',
    validation: 'dead-letter',
    filters: [],
    durability: 'spool',
    status: 1,
    sinks: ['out'],
    ...over,
  }
  return new StreamRuntime('s', config, validators)
}

const outcome = (runtime: StreamRuntime, body: string): ProcessOutcome =>
  runtime.process(Buffer.from(body), 1_000)

describe('Azion framing at the edges of the body', () => {
  it('keeps the tab before an empty last field of a text record at the end of the body', () => {
    // The body's trailing whitespace was trimmed, so "…\tMaria\t" lost its last tab and was dead-lettered.
    const runtime = azion({ templateModel: ACTIVITY_HISTORY })
    const line = 'v1\t2024-06-12T14:05:11+00:00\t4529r\tedited\t-\tedited\tMaria\t'
    for (const body of [line, `${line}\n`, `${line}\r\n`, `\n${line}`]) {
      const o = outcome(runtime, body)
      expect(o.deadLetters).toHaveLength(0)
      expect(o.records.map((r) => [r.payload.toString(), r.fields?.author_email])).toEqual([[line, '']])
    }
  })

  it('skips a trailing " | " separator of JSON records instead of answering 400', () => {
    // Trimming the body cut the separator's last space, leaving a stray "|" that was framed as a record.
    const runtime = azion({ template: 86, logLineSeparator: ' | ' })
    const record = renderTemplate(compileTemplate(TEMPLATE_86), { request_id: 'r1' })
    expect(outcome(runtime, `${record} | ${record} | `).records).toHaveLength(2)
    expect(outcome(runtime, ` ${record} | \n`).records).toHaveLength(1)
    expect(outcome(runtime, ' | ').received).toBe(0)
  })

  it('does not glue a trailing " | " separator to the last text record', () => {
    // "a b c | d e f | " became "a b c" and "d e f |": $status "f |" was accepted as data.
    const runtime = azion({ templateModel: '$time $host $status', logLineSeparator: ' | ' })
    expect(outcome(runtime, 'a b c | d e f | ').records.map((r) => r.fields?.status)).toEqual(['c', 'f'])
    expect(outcome(runtime, ' | ').received).toBe(0)
  })

  it('still trims whitespace outside payload_format and treats a blank body as an empty push', () => {
    const text = azion({
      templateModel: '$time $host $status',
      payloadFormat: '[$dataset]',
      logLineSeparator: ',',
    })
    expect(outcome(text, ' \r\n[a b c,d e f]\n ').records.map((r) => r.fields?.time)).toEqual(['a', 'd'])
    expect(outcome(text, ' \n\t ').received).toBe(0)
    expect(outcome(azion({ templateModel: ACTIVITY_HISTORY }), ' \t\r\n').received).toBe(0)
  })
})
