import { jsonDocumentFramer, jsonRecordFramer, maxDepthOf } from '../framing.js'
import { APPLICATION_CONTENT_TYPES, type Source } from './source.js'

/** An application POSTs a JSON array of records or a single JSON value. */
export const jsonSource: Source<'json'> = {
  type: 'json',
  ownKeys: [],
  check: () => [],
  contentTypes: APPLICATION_CONTENT_TYPES,
  framer: (stream) =>
    jsonDocumentFramer('the body must be a JSON array or a JSON value', false, maxDepthOf(stream)),
  recordFramer: (stream) => jsonRecordFramer(maxDepthOf(stream), false),
}
