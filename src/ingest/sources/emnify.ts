import { jsonDocumentFramer, jsonRecordFramer, maxDepthOf } from '../framing.js'
import type { Source } from './source.js'

/**
 * emnify Data Streamer, RestAPI/Webhook destination: a JSON array of records (bulk mode, up to 10,000) or a
 * single record object [EM-DS-INTEG, EM-LEGACY, 1NCE-HTTP]. Records carry a unique 64-bit `id` [EM-REF-DS]
 * and are checked against the built-in event or usage schema. Its defaults (32 MiB body limit, dedupe on
 * `id`) are in src/config/load.ts (streamBodyLimit, streamDedupe).
 */
export const emnifySource: Source<'emnify'> = {
  type: 'emnify',
  ownKeys: [],
  check: () => [],
  contentTypes: undefined,
  idField: 'id',
  builtinSchema: (stream) => (stream.recordType === 'usage' ? 'emnify-usage' : 'emnify-event'),
  // `proven`: the built-in schema's byte-level check (src/validate/byte-schema.ts), when the stream uses it.
  framer: (stream, framing) =>
    jsonDocumentFramer(
      'an emnify body must be a JSON array of records or a single record object',
      true,
      maxDepthOf(stream),
      framing.proven,
    ),
  recordFramer: (stream) => jsonRecordFramer(maxDepthOf(stream), true),
}
