import { readFileSync } from 'node:fs'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { FilterConfig } from '../config/types.js'
import { compileFilter, compileFilters } from './filters.js'

const event = (typeId: number, alert: boolean) => ({
  event_type: { id: typeId },
  alert,
  sim: { iccid: '8988' },
})

const fixture = (name: string): unknown =>
  JSON.parse(readFileSync(new URL(`../../test/fixtures/emnify/${name}`, import.meta.url), 'utf8'))

describe('compileFilters', () => {
  it('accepts emnify filters as emnify writes them', () => {
    const keep = compileFilters([{ field: 'event_type_id', value: [1, 2, 3] }])!
    expect(keep(event(2, false))).toBe(true)
    expect(keep(event(5, false))).toBe(false)
    const or = compileFilters([{ or: [{ field: 'alert', value: true }] }])!
    expect(or(event(5, true))).toBe(true)
    expect(or(event(5, false))).toBe(false)
  })

  it("reads emnify's own example as 'event type 1, 2 or 3, or any alert'", () => {
    // The Kinesis event stream of "Creating data streams" [EM-DS-USAGE], quoted in the fixture.
    const { filters } = fixture('create-stream-kinesis-filters.json') as { filters: FilterConfig[] }
    const keep = compileFilters(filters)!
    const samples = [
      fixture('event-update-location.json'), // type 1, alert false
      fixture('event-delete-pdp.json'), // type 5, alert false
      fixture('event-user-auth-failed.json'), // type 6, alert false
    ] as Record<string, unknown>[]
    expect(samples.map(keep)).toEqual([true, false, false])
    // The same records raised as alerts pass whatever their type.
    expect(samples.map((r) => keep({ ...r, alert: true }))).toEqual([true, true, true])
    for (const id of [1, 2, 3]) expect(keep(event(id, false))).toBe(true)
    for (const id of [0, 4, 5, 18]) expect(keep(event(id, false))).toBe(false)
  })

  it('matches string and number forms alike, on any dotted path', () => {
    expect(compileFilters([{ field: 'event_type.id', value: ['1'] }])!(event(1, false))).toBe(true)
    expect(compileFilters([{ field: 'sim.iccid', value: '8988' }])!(event(1, false))).toBe(true)
    expect(compileFilters([{ field: 'sim.missing', value: '8988' }])!(event(1, false))).toBe(false)
  })

  it('combines top-level filters without an or group with and, and supports not/ne/prefix', () => {
    const f = compileFilters([
      { field: 'alert', value: false },
      { not: { field: 'event_type.id', value: 3 } },
      { field: 'sim.iccid', value: '89', op: 'prefix' },
    ])!
    expect(f(event(1, false))).toBe(true)
    expect(f(event(3, false))).toBe(false)
    expect(f(event(1, true))).toBe(false)
  })

  it('keeps and, not and nested or meaning what they say below the top level', () => {
    const f = compileFilters([
      {
        and: [
          {
            or: [
              { field: 'event_type.id', value: 1 },
              { field: 'event_type.id', value: 2 },
            ],
          },
          { not: { field: 'alert', value: true } },
        ],
      },
    ])!
    expect(f(event(1, false))).toBe(true)
    expect(f(event(2, true))).toBe(false)
    expect(f(event(3, false))).toBe(false)
  })

  it('plain entries are ANDed, each top-level or group is an alternative to them', () => {
    const f = compileFilters([
      { field: 'event_type_id', value: [1, 2] },
      { or: [{ field: 'sim.iccid', value: 'x' }] },
      { field: 'alert', value: false },
      { or: [{ field: 'event_type.id', value: 9 }] },
    ])!
    expect(f(event(1, false))).toBe(true) // every plain entry
    expect(f(event(1, true))).toBe(false) // one plain entry fails, no alternative matches
    expect(f(event(9, true))).toBe(true) // the second or group
    expect(f({ ...event(7, true), sim: { iccid: 'x' } })).toBe(true) // the first or group
    // Wrapped in and, a group is one more plain entry (the README's way to AND it with the rest).
    const wrapped = compileFilters([
      { field: 'event_type_id', value: [1, 2, 3] },
      { and: [{ or: [{ field: 'alert', value: true }] }] },
    ])!
    expect([wrapped(event(1, true)), wrapped(event(1, false)), wrapped(event(5, true))]).toEqual([
      true,
      false,
      false,
    ])
  })

  it('a list of or groups only passes records that one of their entries matches', () => {
    const f = compileFilters([
      { or: [{ field: 'alert', value: true }] },
      { or: [{ field: 'event_type.id', value: 5 }] },
    ])!
    expect(f(event(5, false))).toBe(true)
    expect(f(event(1, true))).toBe(true)
    expect(f(event(1, false))).toBe(false)
    expect(compileFilters([{ or: [] }])!(event(1, true))).toBe(false)
    // An empty or group adds no alternative: the plain entries decide.
    const g = compileFilters([{ field: 'alert', value: true }, { or: [] }])!
    expect([g(event(1, true)), g(event(1, false))]).toEqual([true, false])
  })

  it('returns undefined when there is nothing to filter', () => {
    expect(compileFilters([])).toBeUndefined()
  })
})

describe('compileFilters: the top-level rule (property)', () => {
  const record = fc.record({ a: fc.integer({ min: 0, max: 3 }), b: fc.integer({ min: 0, max: 3 }) })
  const leaf: fc.Arbitrary<FilterConfig> = fc.record({
    field: fc.constantFrom('a', 'b'),
    value: fc.oneof(
      fc.integer({ min: 0, max: 3 }),
      fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 3 }),
    ),
  })
  const { item } = fc.letrec<{ item: FilterConfig }>((tie) => ({
    item: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      leaf,
      fc.record({ and: fc.array(tie('item'), { maxLength: 3 }) }),
      fc.record({ not: tie('item') }),
      fc.record({ or: fc.array(tie('item'), { maxLength: 3 }) }),
    ),
  }))
  const plainItem = item.filter((f) => !('or' in f))
  const orGroup = fc.array(item, { maxLength: 3 }).map((or): FilterConfig => ({ or }))
  const lists = fc.record({
    plain: fc.array(plainItem, { maxLength: 4 }),
    groups: fc.array(orGroup, { maxLength: 3 }),
  })
  const matches = (f: FilterConfig, r: unknown): boolean => compileFilter(f)(r)

  it('passes a record when every plain entry matches or any entry of any or group does', () => {
    fc.assert(
      fc.property(lists, record, fc.nat(), ({ plain, groups }, r, seed) => {
        const list = interleave(plain, groups, seed)
        fc.pre(list.length > 0)
        const entries = groups.flatMap((g) => ('or' in g ? g.or : []))
        const expected =
          (plain.length > 0 && plain.every((f) => matches(f, r))) ||
          entries.some((f) => matches(f, r)) ||
          (groups.length === 0 && plain.every((f) => matches(f, r)))
        expect(compileFilters(list)!(r)).toBe(expected)
      }),
    )
  })

  it('order does not matter, and two or groups are one group with both entries', () => {
    fc.assert(
      fc.property(lists, record, fc.nat(), fc.nat(), ({ plain, groups }, r, s1, s2) => {
        fc.pre(plain.length + groups.length > 0)
        const a = compileFilters(interleave(plain, groups, s1))!(r)
        const b = compileFilters(interleave([...plain].reverse(), [...groups].reverse(), s2))!(r)
        expect(a).toBe(b)
        if (groups.length > 0) {
          const merged: FilterConfig = { or: groups.flatMap((g) => ('or' in g ? g.or : [])) }
          expect(compileFilters([...plain, merged])!(r)).toBe(a)
        }
      }),
    )
  })

  it('adding an or group never filters out a record that passed before', () => {
    fc.assert(
      fc.property(lists, orGroup, record, ({ plain, groups }, extra, r) => {
        const list = [...plain, ...groups]
        fc.pre(list.length > 0)
        if (compileFilters(list)!(r)) expect(compileFilters([...list, extra])!(r)).toBe(true)
      }),
    )
  })
})

/** Plain entries and or groups in one list, mixed in an order chosen by `seed`. */
function interleave(plain: FilterConfig[], groups: FilterConfig[], seed: number): FilterConfig[] {
  const out: FilterConfig[] = []
  let p = 0
  let g = 0
  let bits = seed
  while (p < plain.length || g < groups.length) {
    const takePlain = g >= groups.length || (p < plain.length && (bits & 1) === 0)
    bits = (bits >>> 1) | ((bits & 1) << 30)
    out.push(takePlain ? plain[p++]! : groups[g++]!)
  }
  return out
}
