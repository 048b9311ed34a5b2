import { describe, expect, it } from 'vitest'
import { compileFilters } from './filters.js'

const event = (typeId: number, alert: boolean) => ({
  event_type: { id: typeId },
  alert,
  sim: { iccid: '8988' },
})

describe('compileFilters', () => {
  it('accepts emnify filters as emnify writes them', () => {
    const keep = compileFilters([{ field: 'event_type_id', value: [1, 2, 3] }])!
    expect(keep(event(2, false))).toBe(true)
    expect(keep(event(5, false))).toBe(false)
    const or = compileFilters([{ or: [{ field: 'alert', value: true }] }])!
    expect(or(event(5, true))).toBe(true)
    expect(or(event(5, false))).toBe(false)
  })
  it('matches string and number forms alike, on any dotted path', () => {
    expect(compileFilters([{ field: 'event_type.id', value: ['1'] }])!(event(1, false))).toBe(true)
    expect(compileFilters([{ field: 'sim.iccid', value: '8988' }])!(event(1, false))).toBe(true)
    expect(compileFilters([{ field: 'sim.missing', value: '8988' }])!(event(1, false))).toBe(false)
  })
  it('combines top-level filters with and, and supports not/ne/prefix', () => {
    const f = compileFilters([
      { field: 'alert', value: false },
      { not: { field: 'event_type.id', value: 3 } },
      { field: 'sim.iccid', value: '89', op: 'prefix' },
    ])!
    expect(f(event(1, false))).toBe(true)
    expect(f(event(3, false))).toBe(false)
    expect(f(event(1, true))).toBe(false)
  })
  it('returns undefined when there is nothing to filter', () => {
    expect(compileFilters([])).toBeUndefined()
  })
})
