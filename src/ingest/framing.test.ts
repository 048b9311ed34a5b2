import { describe, expect, it } from 'vitest'
import type { StreamConfig } from '../config/types.js'
import { ProblemError } from '../errors.js'
import { compileTemplate, templateRecordCheck } from './azion-template.js'
import type { FramedBody } from './framing.js'
import { createFramer, createRecordFramer } from './sources/registry.js'

// Framing edges: records nested deeper than the stream's maxJsonDepth are framed but marked invalid (every
// source that carries JSON, whichever scan found the record), and 400 messages count from 1.

function stream(over: Partial<StreamConfig>): StreamConfig {
  return {
    source: 'ndjson',
    recordType: 'event',
    method: 'POST',
    auth: {},
    payloadFormat: '$dataset',
    logLineSeparator: '\\n',
    unknownFields: 'drift',
    validation: 'dead-letter',
    filters: [],
    durability: 'spool',
    status: 1,
    sinks: ['out'],
    ...over,
  }
}

const deep = (depth: number): string => '{"a":'.repeat(depth) + '1' + '}'.repeat(depth)
const deepArray = (depth: number): string => '['.repeat(depth) + ']'.repeat(depth)

/** For each record: its overLimit message, or 'ok'. */
function limits(framed: FramedBody): string[] {
  return Array.from({ length: framed.length }, (_, i) => framed.record(i).overLimit ?? 'ok')
}

function problemOf(fn: () => unknown): ProblemError {
  try {
    fn()
  } catch (err) {
    if (err instanceof ProblemError) return err
    throw err
  }
  throw new Error('expected a ProblemError')
}

describe('nesting depth limit', () => {
  it('defaults to 256 levels', () => {
    const framer = createFramer(stream({ source: 'ndjson' }))
    const body = Buffer.from(`${deep(256)}\n${deep(257)}\n${deepArray(10_000)}\n`)
    expect(limits(framer(body))).toEqual(['ok', 'nesting depth exceeds 256', 'nesting depth exceeds 256'])
  })

  it('holds for every JSON source, whichever scan split the body', () => {
    const cfg = { maxJsonDepth: 3 }
    const ok = '{"a":{"b":[1]}}'
    const bad = '{"a":{"b":[[1]]}}'
    const cases: [Partial<StreamConfig>, string, string[]][] = [
      [{ source: 'ndjson' }, `${ok}\n${bad}`, ['ok', 'too deep']],
      [{ source: 'json' }, `[${ok},${bad}]`, ['ok', 'too deep']],
      [{ source: 'json' }, bad, ['too deep']],
      [{ source: 'emnify' }, `[${bad}, ${ok}]`, ['too deep', 'ok']],
      [{ source: 'emnify' }, bad, ['too deep']],
      // Azion JSON templates: a whitespace separator splits on bytes, any other one scans at top level.
      [{ source: 'azion', template: 86 }, `${bad}\n${ok}`, ['too deep', 'ok']],
      [
        { source: 'azion', template: 86, logLineSeparator: ',', payloadFormat: '[$dataset]' },
        `[${ok},${bad}]`,
        ['ok', 'too deep'],
      ],
    ]
    for (const [over, body, expected] of cases) {
      const config = stream({ ...over, ...cfg })
      const template =
        config.source === 'azion'
          ? compileTemplate(
              '{"time":"$time","client":"$client","configuration":"$global_id","edgeFunctionID":"$edge_function_id","requestID":"$request_id","messageSource":"$message_source","logLevel":"$log_level","logMessage":"$log_message"}',
            )
          : undefined
      const framed = createFramer(config, { template })(Buffer.from(body))
      expect(
        limits(framed).map((l) => (l === 'ok' ? l : 'too deep')),
        `${config.source} ${body}`,
      ).toEqual(expected)
      for (let i = 0; i < framed.length; i++)
        if (framed.record(i).overLimit) {
          expect(framed.record(i).overLimit).toBe('nesting depth exceeds 3')
          expect(framed.record(i).value).toBeUndefined() // never handed to filters or validators
          expect(framed.record(i).bytes.toString()).toBe(bad) // the dead letter keeps the original bytes
        }
    }
  })

  it('the Azion fast path still proves flat records, and the limit applies to the ones it does not prove', () => {
    const template = compileTemplate('{"a":"$a","b":"$b"}')
    const framer = createFramer(stream({ source: 'azion', maxJsonDepth: 1 }), {
      template,
      proven: templateRecordCheck([template]),
    })
    const framed = framer(Buffer.from('{"a":"x","b":"y"}\n{"a":"x","b":{"c":1}}\n'))
    expect(framed.record(0).proven).toBe(true)
    expect(framed.record(1).overLimit).toBe('nesting depth exceeds 1')
  })

  it('a body that is not JSON is still a 400 even when deeply nested', () => {
    const framer = createFramer(stream({ source: 'ndjson' }))
    const problem = problemOf(() => limits(framer(Buffer.from(`{"a":1}\n${deepArray(300)}]\n`))))
    expect(problem.status).toBe(400)
  })

  it('a replayed dead letter is checked again', () => {
    const recordFramer = createRecordFramer(stream({ source: 'ndjson', maxJsonDepth: 2 }))
    expect(recordFramer(Buffer.from('{"a":[1]}')).overLimit).toBeUndefined()
    expect(recordFramer(Buffer.from('{"a":[[1]]}')).overLimit).toBe('nesting depth exceeds 2')
  })
})

describe('400 messages count from 1', () => {
  it('NDJSON names the line of the body, empty lines included', () => {
    const framer = createFramer(stream({ source: 'ndjson' }))
    const problem = problemOf(() => limits(framer(Buffer.from('{"a":1}\n\n{"a":2}\r\n{"a":\n'))))
    expect(problem.message).toMatch(/^line 4 is not valid JSON/)
    expect(problem.errors).toEqual([{ index: 2, pointer: '', message: 'not valid JSON' }]) // index: 0-based record
    const firstLine = problemOf(() => limits(framer(Buffer.from('nope\n{"a":1}\n'))))
    expect(firstLine.message).toMatch(/^line 1 is not valid JSON/)
  })

  it('JSON arrays name the element; emnify names the element that is not an object', () => {
    const json = createFramer(stream({ source: 'json' }))
    expect(problemOf(() => limits(json(Buffer.from('[1, tru]')))).message).toMatch(
      /^element 2 is not valid JSON/,
    )
    const emnify = createFramer(stream({ source: 'emnify' }))
    const notObject = problemOf(() => limits(emnify(Buffer.from('[{"id":1}, 2]'))))
    expect(notObject.message).toMatch(/^element 2 is not a JSON object/)
    expect(notObject.errors).toEqual([{ index: 1, pointer: '', message: 'must be an object' }])
  })

  it('Azion JSON records are named by their position', () => {
    const template = compileTemplate('{"a":"$a"}')
    const framer = createFramer(stream({ source: 'azion' }), { template })
    expect(problemOf(() => limits(framer(Buffer.from('{"a":"1"}\n{"a":')))).message).toMatch(
      /^record 2 is not valid JSON/,
    )
  })
})
