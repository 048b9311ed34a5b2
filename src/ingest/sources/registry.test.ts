import { describe, expect, it } from 'vitest'
import type { SourceType, StreamConfig } from '../../config/types.js'
import { compileTemplate } from '../azion-template.js'
import { createFramer, createRecordFramer, SOURCES, sourceOf, streamSourceIssues } from './registry.js'
import type { Source } from './source.js'

const stream = (over: Partial<StreamConfig>): StreamConfig => ({
  source: 'ndjson',
  recordType: 'event',
  method: 'POST',
  auth: {},
  payloadFormat: '$dataset',
  logLineSeparator: '\n',
  validation: 'dead-letter',
  filters: [],
  durability: 'spool',
  status: 1,
  sinks: ['out'],
  ...over,
})

const values = (type: SourceType, body: string, over: Partial<StreamConfig> = {}): unknown[] => {
  const config = stream({ source: type, ...over })
  const template = sourceOf(type).templates?.(config).variants[0]
  const framed = createFramer(config, template ? { template } : {})(Buffer.from(body))
  return Array.from({ length: framed.length }, (_, i) => framed.record(i).value)
}

describe('the source registry', () => {
  it('has one module per source type, each under its own name', () => {
    expect(Object.keys(SOURCES).sort()).toEqual(['azion', 'emnify', 'json', 'lines', 'ndjson'])
    for (const [type, source] of Object.entries(SOURCES)) expect(source.type).toBe(type)
  })

  it('frames each body by its source', () => {
    expect(values('ndjson', '{"a":1}\n{"a":2}\n')).toEqual([{ a: 1 }, { a: 2 }])
    expect(values('json', '[1,"x"]')).toEqual([1, 'x'])
    expect(values('emnify', '{"id":1}')).toEqual([{ id: 1 }])
    expect(() => values('emnify', '[1]')).toThrow(/must be a JSON array of records or a single record object/)
    expect(values('lines', 'a|b', { logLineSeparator: '|' })).toEqual(['a', 'b'])
    expect(
      values('azion', '[{"a":"1"},{"a":"2"}]', {
        templateModel: '{"a":"$a"}',
        payloadFormat: '[$dataset]',
        logLineSeparator: ',',
      }),
    ).toEqual([{ a: '1' }, { a: '2' }])
  })

  it('frames a replayed record alone by its source', () => {
    expect(createRecordFramer(stream({ source: 'lines' }))(Buffer.from('{"a":1}')).value).toBe('{"a":1}')
    expect(createRecordFramer(stream({ source: 'emnify' }))(Buffer.from('1'))).toMatchObject({
      mismatch: 'must be an object',
      unframed: true,
    })
    expect(createRecordFramer(stream({ source: 'json' }))(Buffer.from('1')).value).toBe(1)
    const text = compileTemplate('$a\t$b')
    expect(
      createRecordFramer(stream({ source: 'azion', templateModel: '$a\t$b' }), text)(Buffer.from('x\ty'))
        .fields,
    ).toEqual({ a: 'x', b: 'y' })
  })

  it('vendor sources accept any Content-Type, application sources the JSON and text ones', () => {
    expect(sourceOf('emnify').contentTypes).toBeUndefined()
    expect(sourceOf('azion').contentTypes).toBeUndefined()
    for (const type of ['ndjson', 'json', 'lines'] as const)
      expect(sourceOf(type).contentTypes).toContain('application/json')
  })

  it('emnify names its built-in schema and id field; the others have none', () => {
    expect(sourceOf('emnify').builtinSchema?.(stream({ source: 'emnify', recordType: 'usage' }))).toBe(
      'emnify-usage',
    )
    expect(sourceOf('emnify').idField).toBe('id')
    expect('builtinSchema' in sourceOf('ndjson')).toBe(false)
  })

  it('emnify streams dedupe on id and take 32 MiB bodies by default; no other source changes a default', () => {
    expect(sourceOf('emnify').defaults).toEqual({ minBodyBytes: 32 * 1024 * 1024, dedupe: true })
    for (const source of Object.values(SOURCES) as Source[])
      if (source.type !== 'emnify') expect(source.defaults).toBeUndefined()
  })

  it("refuses another source's keys and runs the stream's own source check", () => {
    expect(streamSourceIssues(stream({ source: 'lines', dataSource: 'http' }), 'streams.l')).toEqual([
      { path: 'streams.l.dataSource', message: 'only applies to source azion' },
    ])
    expect(streamSourceIssues(stream({ source: 'azion' }), 'streams.a')).toEqual([
      { path: 'streams.a', message: 'an azion stream needs "template" (a built-in id) or "templateModel"' },
    ])
  })
})
