import type { FilterConfig } from '../config/types.js'

// Filters decide which valid records are delivered; the rest are counted as "filtered". The emnify form is
// accepted as is [EM-DS-USAGE]: {"field": "event_type_id", "value": [1,2,3]} and {"or": [{"field": "alert",
// "value": true}]}. emnify's OpenAPI types `value` as string[] while its docs use numbers and booleans, so a
// value matches when its text form matches ("1" = 1, "true" = true). Field paths are dotted
// (`event_type.id`, `sim.iccid`); an emnify filter field `x_id` reads `x.id` when there is no `x_id`.

//
// How a filter list combines [EM-DS-USAGE, "Creating data streams"]: emnify's own example
//   [{"field": "event_type_id", "value": [1, 2, 3]}, {"or": [{"field": "alert", "value": true}]}]
// means "event type 1, 2 or 3, *or* any alert": the only reading under which its `or` group does anything (a
// one-entry `or` ANDed with the rest would just be that entry). So at the top level:
//   - the plain entries (everything that is not an `or` group: {field…}, {and…}, {not…}) are ANDed;
//   - each `or` group is an alternative to that conjunction: a record passes when every plain entry matches,
//     or when any entry of any top-level `or` group matches (the groups' position in the list is irrelevant);
//   - a list of `or` groups only passes a record when an entry of one of them matches (an empty conjunction is
//     not an alternative, or such a list would pass everything);
//   - a list without `or` groups is the plain conjunction, as before.
// Below the top level `or`, `and` and `not` mean what they say.

export type RecordPredicate = (value: unknown) => boolean

export function compileFilters(filters: readonly FilterConfig[]): RecordPredicate | undefined {
  if (filters.length === 0) return undefined
  const plain: RecordPredicate[] = []
  const alternatives: RecordPredicate[] = []
  for (const filter of filters) {
    if ('or' in filter) alternatives.push(...filter.or.map(compileFilter))
    else plain.push(compileFilter(filter))
  }
  const all = (value: unknown): boolean => plain.every((p) => p(value))
  const some = (value: unknown): boolean => alternatives.some((p) => p(value))
  if (filters.length === plain.length) return all
  if (plain.length === 0) return some
  return (value) => all(value) || some(value)
}

export function compileFilter(filter: FilterConfig): RecordPredicate {
  if ('or' in filter) {
    const items = filter.or.map(compileFilter)
    return (v) => items.some((p) => p(v))
  }
  if ('and' in filter) {
    const items = filter.and.map(compileFilter)
    return (v) => items.every((p) => p(v))
  }
  if ('not' in filter) {
    const item = compileFilter(filter.not)
    return (v) => !item(v)
  }
  const read = fieldReader(filter.field)
  const wanted = (Array.isArray(filter.value) ? filter.value : [filter.value]).map(textOf)
  const wantedSet = new Set(wanted)
  switch (filter.op ?? 'eq') {
    case 'eq':
      return (v) => {
        const got = read(v)
        return got !== undefined && wantedSet.has(textOf(got))
      }
    case 'ne':
      return (v) => {
        const got = read(v)
        return got === undefined || !wantedSet.has(textOf(got))
      }
    case 'exists':
      return (v) => (read(v) !== undefined) === (wanted[0] !== 'false')
    case 'prefix':
      return (v) => {
        const got = read(v)
        return got !== undefined && wanted.some((w) => textOf(got).startsWith(w))
      }
    case 'regex': {
      const res = wanted.map((w) => new RegExp(w))
      return (v) => {
        const got = read(v)
        return got !== undefined && res.some((re) => re.test(textOf(got)))
      }
    }
  }
}

function textOf(value: unknown): string {
  if (typeof value === 'string') return value
  if (value === null) return 'null'
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint')
    return String(value)
  return JSON.stringify(value) ?? ''
}

export function fieldReader(field: string): (value: unknown) => unknown {
  const path = field.split('.')
  const alias =
    path.length === 1 && /^[A-Za-z0-9]+(?:_[A-Za-z0-9]+)*_id$/.test(field)
      ? [field.slice(0, -3), 'id']
      : undefined
  return (value) => {
    const direct = readPath(value, path)
    if (direct !== undefined || !alias) return direct
    return readPath(value, alias)
  }
}

export function readPath(value: unknown, path: readonly string[]): unknown {
  let cur = value
  for (const key of path) {
    if (cur === null || typeof cur !== 'object') return undefined
    if (!Object.hasOwn(cur, key)) return undefined
    cur = (cur as Record<string, unknown>)[key]
  }
  return cur
}
