import type { StreamConfig } from './types.js'

/**
 * A stream's auth headers as (name, value) pairs in their configured order. The config takes a map or
 * emnify's webhook form, a list of "name:value" strings [EM-OAS]; the list is parsed here and nowhere else
 * (the loader turns it into a map once it validated, so the rest of the code sees a map).
 */
export function headerPairs(headers: StreamConfig['auth']['headers']): [name: string, value: string][] {
  if (!headers) return []
  if (!Array.isArray(headers)) return Object.entries(headers)
  return headers.map((entry) => {
    const colon = entry.indexOf(':')
    return [entry.slice(0, colon).trim(), entry.slice(colon + 1).trim()]
  })
}
