import type { Source } from './source.js'

/** An application POSTs a JSON array of records or a single JSON value. */
export const jsonSource: Source<'json'> = {
  type: 'json',
  ownKeys: [],
  check: () => [],
}
