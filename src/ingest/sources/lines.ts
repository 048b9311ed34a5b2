import type { Source } from './source.js'

/** An application POSTs text; each piece between logLineSeparators is a string record. */
export const linesSource: Source<'lines'> = {
  type: 'lines',
  ownKeys: [],
  check: () => [],
}
