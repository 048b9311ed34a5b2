import { linesFramer, textRecordFramer } from '../framing.js'
import { APPLICATION_CONTENT_TYPES, type Source } from './source.js'

/** An application POSTs text; each piece between `logLineSeparator`s is a string record. */
export const linesSource: Source<'lines'> = {
  type: 'lines',
  ownKeys: [],
  check: () => [],
  contentTypes: APPLICATION_CONTENT_TYPES,
  framer: (stream) => linesFramer(stream.logLineSeparator),
  recordFramer: () => textRecordFramer,
}
