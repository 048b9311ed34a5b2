import { jsonDocumentFramer, jsonRecordFramer, maxDepthOf } from '../framing.js'
import type { Source } from './source.js'

/**
 * Body limit of an emnify stream that sets no `maxBodyBytes`. A webhook bulk holds up to 10,000 records (the
 * destination's `size`, 1–10000 [EM-OAS]); 10,000 PDP events with every documented pdp_context key are
 * ~15 MB, so the 10 MiB server default would refuse the documented maximum. 32 MiB leaves room for longer
 * records and pretty-printed bodies.
 */
export const EMNIFY_DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024

/**
 * emnify Data Streamer, RestAPI/Webhook destination: a JSON array of records (bulk mode, up to 10,000) or a
 * single record object [EM-DS-INTEG, EM-LEGACY, 1NCE-HTTP]. Records carry a unique 64-bit `id` [EM-REF-DS]
 * and are checked against the built-in event or usage schema. Its defaults: a body limit of at least 32 MiB
 * and dedupe on `id`.
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
  // emnify says streams overlap on migration and ids are unique 64-bit Longs [EM-DS-USAGE, EM-REF-DS], so
  // duplicates are expected and the id identifies them.
  defaults: { minBodyBytes: EMNIFY_DEFAULT_MAX_BODY_BYTES, dedupe: true },
}
