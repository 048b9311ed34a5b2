import { describe, expect, it } from 'vitest'
import { mirrorFilters } from './emnify.js'
import { compareHeaders, fingerprintHeaders, headerPairs, isMaskedValue, streamOfIngestUrl } from './plan.js'

describe('header comparison', () => {
  const desired = headerPairs({ 'X-Token': 'secret-1', 'X-Other': 'two' })

  it('values shown in clear are compared exactly; names case-insensitively', () => {
    const seen = [
      { name: 'x-token', value: 'secret-1' },
      { name: 'X-OTHER', value: 'two' },
    ]
    expect(compareHeaders(desired, seen, undefined)).toBe('same')
    expect(compareHeaders(desired, [seen[0]!, { name: 'X-Other', value: 'three' }], undefined)).toBe(
      'differs',
    )
    expect(compareHeaders(desired, [seen[0]!], undefined)).toBe('differs')
  })

  it('masked values are decided by the fingerprint of what was last sent', () => {
    const masked = [
      { name: 'X-Token', value: '***' },
      { name: 'X-Other', value: undefined },
    ]
    expect(compareHeaders(desired, masked, undefined)).toBe('unverifiable')
    const sent = fingerprintHeaders(desired)
    expect(compareHeaders(desired, masked, sent)).toBe('same')
    const changed = headerPairs({ 'X-Token': 'secret-2', 'X-Other': 'two' })
    expect(compareHeaders(changed, masked, sent)).toBe('unverifiable')
  })

  it('the fingerprint depends on every value and never contains one', () => {
    const a = fingerprintHeaders(desired, 'salt')
    expect(a).toEqual(fingerprintHeaders(headerPairs(['X-Other:two', 'x-token:secret-1']), 'salt'))
    expect(a.sha256).not.toBe(
      fingerprintHeaders(headerPairs({ 'X-Token': 'secret-2', 'X-Other': 'two' }), 'salt').sha256,
    )
    expect(JSON.stringify(fingerprintHeaders(desired))).not.toContain('secret-1')
    expect(isMaskedValue('***')).toBe(true)
    expect(isMaskedValue('******')).toBe(true)
    expect(isMaskedValue('abc')).toBe(false)
  })
})

describe('emnify filter mirroring', () => {
  it("mirrors emnify's own fields, or-groups and and-groups; keeps the rest in the gateway", () => {
    const { mirrored, kept } = mirrorFilters(
      [
        { field: 'event_type.id', value: [1, 2, 3] },
        { or: [{ field: 'alert', value: true }] },
        { field: 'sim.iccid', value: '8988' },
        {
          and: [
            { field: 'event_type_id', value: 4 },
            { field: 'alert', value: false },
          ],
        },
        {
          or: [
            { field: 'alert', value: true },
            { field: 'imsi', value: '1' },
          ],
        },
        { field: 'event_type_id', value: 1, op: 'ne' },
      ],
      'event',
    )
    expect(mirrored).toEqual([
      { field: 'event_type_id', value: [1, 2, 3] },
      { or: [{ field: 'alert', value: true }] },
      { field: 'event_type_id', value: 4 },
      { field: 'alert', value: false },
    ])
    expect(kept).toEqual(['[2]', '[4]', '[5]'])
  })

  it('usage streams get no emnify filters', () => {
    expect(mirrorFilters([{ field: 'alert', value: true }], 'usage')).toEqual({ mirrored: [], kept: [''] })
  })
})

it('reads the stream id of an ingest URL', () => {
  expect(streamOfIngestUrl('https://gw.example/base/ingest/emnify-events')).toBe('emnify-events')
  expect(streamOfIngestUrl('https://gw.example/other')).toBeUndefined()
})
