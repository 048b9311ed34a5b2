import type { Source } from './source.js'

/** An application POSTs one JSON value per line. */
export const ndjsonSource: Source<'ndjson'> = {
  type: 'ndjson',
  ownKeys: [],
  check: () => [],
}
