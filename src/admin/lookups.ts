import type { SinkType, SourceType, StreamStatusId } from '../config/types.js'
import { STREAM_STATUSES } from '../pipeline/gateway.js'
import { SINKS } from '../sinks/registry.js'

// The management API's lookup tables, in emnify's lookup shape ({id, description}) [EM-STATUS, EM-OAS].

export interface Lookup<T> {
  id: T
  description: string
}

export function statusObject(id: StreamStatusId): Lookup<StreamStatusId> {
  return { id, description: STREAM_STATUSES[id] }
}

export const STREAM_STATUS_LIST: readonly Lookup<StreamStatusId>[] = ([1, 2, 3, 4] as const).map(statusObject)

const SOURCE_DESCRIPTIONS = {
  emnify:
    'emnify Data Streamer, RestAPI/Webhook destination: a JSON array of event or usage records (bulk mode) or one record',
  azion:
    'Azion Data Stream, Standard HTTP/HTTPS POST endpoint: records rendered from a template, joined by logLineSeparator inside payloadFormat',
  ndjson: 'One JSON value per line (\\n or \\r\\n)',
  json: 'A JSON array (each element a record) or a single JSON value',
  lines: 'Text split on logLineSeparator; each piece is a record',
} satisfies Record<SourceType, string>

export const SOURCE_TYPES: readonly Lookup<SourceType>[] = Object.entries(SOURCE_DESCRIPTIONS).map(
  ([id, description]) => ({ id: id as SourceType, description }),
)

/** The sink types as they describe themselves (src/sinks/<type>/index.ts), in the registry's order. */
export const SINK_TYPES: readonly Lookup<SinkType>[] = SINKS.map(({ type, description }) => ({
  id: type,
  description,
}))
