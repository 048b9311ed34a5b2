import { jsonRecordFramer, maxDepthOf, ndjsonFramer } from '../framing.js'
import { APPLICATION_CONTENT_TYPES, type Source } from './source.js'

/** An application POSTs one JSON value per line ("\n" or "\r\n"); empty lines are skipped. */
export const ndjsonSource: Source<'ndjson'> = {
  type: 'ndjson',
  ownKeys: [],
  check: () => [],
  contentTypes: APPLICATION_CONTENT_TYPES,
  framer: (stream) => ndjsonFramer(maxDepthOf(stream)),
  recordFramer: (stream) => jsonRecordFramer(maxDepthOf(stream), false),
}
