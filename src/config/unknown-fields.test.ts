import { describe, expect, it } from 'vitest'
import { validateWithComponents } from '../pipeline/config-check.js'
import { validateConfig } from './load.js'

// `unknownFields: reject` needs a contract the user wrote: built-in emnify schemas and Azion presets describe
// what vendors send (their records grow), so there it would refuse real records.

const config = (stream: Record<string, unknown>): unknown => ({
  server: { host: '127.0.0.1' },
  sinks: { out: { type: 'stdout' } },
  streams: { s: { sinks: ['out'], ...stream } },
})

// With the sources' checks (an unknown Azion template is the azion source's to find).
const issuesOf = (stream: Record<string, unknown>): string[] =>
  validateWithComponents(config(stream), { env: {} }).issues.map((i) => `${i.path}: ${i.message}`)

describe('unknownFields', () => {
  it('defaults to drift', () => {
    expect(
      validateConfig(config({ source: 'azion', template: 2 }), { env: {} }).config?.streams.s?.unknownFields,
    ).toBe('drift')
  })

  it('reject is refused for a preset template and for the built-in emnify schemas', () => {
    for (const stream of [
      { source: 'azion', template: 2, unknownFields: 'reject' },
      { source: 'emnify', recordType: 'usage', unknownFields: 'reject' },
      { source: 'ndjson', unknownFields: 'reject' },
    ])
      expect(issuesOf(stream)).toEqual([
        expect.stringMatching(/^streams\.s\.unknownFields: reject needs a contract of your own/),
      ])
  })

  it('reject is accepted with a templateModel', () => {
    expect(issuesOf({ source: 'azion', templateModel: '{"a":"$a"}', unknownFields: 'reject' })).toEqual([])
  })

  it('template 3 exists; an unknown template id is still an error', () => {
    expect(issuesOf({ source: 'azion', template: 3 })).toEqual([])
    expect(issuesOf({ source: 'azion', template: 5 })).toEqual([
      'streams.s.template: unknown Azion template 5',
    ])
  })
})
