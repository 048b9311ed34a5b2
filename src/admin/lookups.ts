import type { SinkType, SourceType, StreamStatusId } from '../config/types.js'
import { STREAM_STATUSES } from '../pipeline/gateway.js'

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

const SINK_DESCRIPTIONS = {
  kafka: 'Apache Kafka topic (idempotent producer, acks all, key and topic templates, SASL/TLS)',
  kinesis: 'Amazon Kinesis Data Streams (PutRecords, only failed entries retried)',
  s3: 'Amazon S3 or an S3-compatible store: NDJSON objects (gzip), rolled over by size, records and age',
  adobe: 'Adobe Experience Platform streaming inlet (XDM envelope, batch or single, authenticated inlets)',
  domo: 'Domo Streams API: gzip CSV parts per execution (create, upload, commit)',
  http: 'Any HTTP endpoint (another streamgate, a webhook): NDJSON or a JSON array per request',
  file: 'NDJSON files in a local directory, rotated by size and age',
  stdout: 'NDJSON on standard output',
} satisfies Record<SinkType, string>

export const SINK_TYPES: readonly Lookup<SinkType>[] = Object.entries(SINK_DESCRIPTIONS).map(
  ([id, description]) => ({ id: id as SinkType, description }),
)
