import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { SCHEMAS_DIR } from '../config/load.js'
import { CONNECT_TAG, connectPaths, connectSchemas } from '../connect/openapi.js'
import { SINK_TYPES, SOURCE_TYPES, STREAM_STATUS_LIST } from './lookups.js'
import { MAX_API_BODY_BYTES } from './request-body.js'
import { sinkDefinitionName } from '../sinks/define.js'
import { SINKS } from '../sinks/registry.js'

// GET /api/v1/openapi.json: an OpenAPI 3.1 document generated from schemas/config.schema.json, so the API's
// request and answer shapes can never drift from what the config file accepts. The config schema's
// draft-07 `definitions` become `components/schemas` (every `#/definitions/X` ref rewritten); the API's own
// shapes (a stream with its id, live figures, the status object, the problem body) are built around them.
// OpenAPI 3.1 schemas are JSON Schema 2020-12, which keeps every keyword the config schema uses.

type Schema = Record<string, unknown>

const ref = (name: string): Schema => ({ $ref: `#/components/schemas/${name}` })
const nullable = (schema: Schema): Schema => ({ anyOf: [schema, { type: 'null' }] })
/** Sink type → the config schema definition of its keys, from the sink registry. */
const SINK_TYPE_DEFS: Readonly<Record<string, string>> = Object.fromEntries(
  SINKS.map(({ type }) => [type, sinkDefinitionName(type)]),
)

let cached: Schema | undefined

export function openApiDocument(): Schema {
  cached ??= buildDocument()
  return cached
}

function rewriteRefs(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(rewriteRefs)
  if (value === null || typeof value !== 'object') return value
  const out: Schema = {}
  for (const [key, item] of Object.entries(value))
    out[key] =
      key === '$ref' && typeof item === 'string'
        ? item.replace('#/definitions/', '#/components/schemas/')
        : rewriteRefs(item)
  return out
}

function buildDocument(): Schema {
  const configSchema = JSON.parse(readFileSync(resolve(SCHEMAS_DIR, 'config.schema.json'), 'utf8')) as Schema
  const defs = rewriteRefs(configSchema.definitions) as Record<string, Schema>
  const streamDef = defs.stream!
  const streamProps = streamDef.properties as Record<string, Schema>
  const nameRef = ref('name')

  const figures = {
    type: 'object',
    description: 'Records since the process started (kept across config changes).',
    additionalProperties: false,
    required: ['received', 'accepted', 'rejected', 'filtered', 'duplicates'],
    properties: Object.fromEntries(
      ['received', 'accepted', 'rejected', 'filtered', 'duplicates'].map((k) => [
        k,
        { type: 'integer', minimum: 0 },
      ]),
    ),
  }
  const circuitSchema = {
    type: 'object',
    description:
      "Present only while the sink's circuit breaker is not closed: its lanes wait instead of writing.",
    additionalProperties: false,
    required: ['state', 'failures'],
    properties: {
      state: { type: 'string', enum: ['open', 'half-open'] },
      failures: { type: 'integer', minimum: 0, description: 'Consecutive failed attempts.' },
      retryAt: {
        type: 'string',
        format: 'date-time',
        description: 'End of the cool-down (while open); then one probe attempt decides.',
      },
    },
  }
  const laneError = nullable({
    type: 'object',
    additionalProperties: false,
    required: ['message', 'reason', 'at'],
    properties: { message: { type: 'string' }, reason: { type: 'string' }, at: { type: 'string' } },
  })

  const { status: _status, ...streamPropsWithoutStatus } = streamProps
  const schemas: Record<string, Schema> = {
    ...defs,
    StreamStatus: {
      type: 'object',
      description: "emnify's data-stream status: 1 Running, 2 Paused, 3 Error, 4 Pending.",
      additionalProperties: false,
      required: ['id', 'description'],
      properties: {
        id: { type: 'integer', enum: [1, 2, 3, 4] },
        description: { type: 'string', enum: ['Running', 'Paused', 'Error', 'Pending'] },
      },
    },
    StreamStatusInput: {
      description:
        'Set by clients: 1 (Running) or 2 (Paused), as a number or as emnify writes it, {"id": 2}.',
      oneOf: [
        { type: 'integer', enum: [1, 2] },
        {
          type: 'object',
          additionalProperties: false,
          required: ['id'],
          properties: { id: { type: 'integer', enum: [1, 2] } },
        },
      ],
    },
    StreamCreate: {
      type: 'object',
      description: 'A new stream: its id and the stream keys of the config file (streams.<id>).',
      additionalProperties: false,
      required: ['id', ...(streamDef.required as string[])],
      properties: { id: nameRef, ...streamPropsWithoutStatus, status: ref('StreamStatusInput') },
    },
    StreamPatch: {
      type: 'object',
      description:
        'A JSON merge patch (RFC 7386) of the stored stream: null deletes a key, arrays replace. {"status": {"id": 2}} pauses, {"filters": []} clears the filters. A masked secret ("***") keeps the stored one.',
      additionalProperties: false,
      properties: Object.fromEntries(
        Object.entries({ ...streamPropsWithoutStatus, status: ref('StreamStatusInput') }).map(([k, v]) => [
          k,
          nullable(v),
        ]),
      ),
    },
    Stream: {
      type: 'object',
      description: 'A stream as stored (secrets masked as "***") with its live status and figures.',
      additionalProperties: false,
      required: [
        'id',
        ...(streamDef.required as string[]),
        'status',
        'inletUrl',
        'figures',
        'delivery',
        'lastError',
        'health',
        'drift',
        'admission',
      ],
      properties: {
        id: nameRef,
        ...streamPropsWithoutStatus,
        status: ref('StreamStatus'),
        inletUrl: { type: 'string', description: 'The full ingest URL to paste into the vendor console.' },
        figures,
        delivery: {
          type: 'array',
          description: "One entry per sink of the stream, and one for the stream's dead-letter sink.",
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['sink', 'deadLetter', 'delivered', 'lag', 'lastError'],
            properties: {
              sink: { type: 'string' },
              deadLetter: { type: 'boolean' },
              delivered: { type: 'integer', minimum: 0 },
              lag: { type: 'integer', minimum: 0, description: 'Records in the spool not yet delivered.' },
              lastError: laneError,
              circuit: circuitSchema,
            },
          },
        },
        lastError: nullable({
          type: 'object',
          additionalProperties: false,
          required: ['sink', 'reason', 'message', 'at'],
          properties: {
            sink: { type: 'string' },
            reason: { type: 'string' },
            message: { type: 'string' },
            at: { type: 'string' },
          },
        }),
        health: ref('StreamHealth'),
        drift: ref('DriftSummary'),
        admission: ref('StreamAdmission'),
      },
    },
    StreamAdmission: {
      type: 'object',
      description:
        "Admission control: 'refusing' while new ingest requests get 503 (problem type spool-full) before their body is read: the spool is above spool.highWaterBytes (until under spool.lowWaterBytes), or a lane is more than spool.maxLagSeconds of its delivery rate behind (until under half of that).",
      additionalProperties: false,
      required: ['state', 'reasons', 'lanes', 'held', 'abandoned'],
      properties: {
        state: { type: 'string', enum: ['accepting', 'refusing'] },
        reasons: {
          type: 'array',
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['reason', 'message'],
            properties: {
              reason: { type: 'string', enum: ['high-water', 'lag-budget'] },
              sink: { type: 'string' },
              message: { type: 'string' },
            },
          },
        },
        lanes: {
          type: 'array',
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['sink', 'deadLetter', 'lagSeconds', 'recordsPerSecond'],
            properties: {
              sink: { type: 'string' },
              deadLetter: { type: 'boolean' },
              lagSeconds: nullable({
                type: 'number',
                minimum: 0,
                description: 'The lag in seconds of the recent delivery rate; null until a rate is measured.',
              }),
              recordsPerSecond: nullable({
                type: 'integer',
                minimum: 0,
                description: 'Records/s the lane delivered while it had work (moving average).',
              }),
            },
          },
        },
        held: {
          type: 'integer',
          minimum: 0,
          description:
            'Requests of a backpressure: pause stream waiting now, body unread, to be admitted (at most spool.maxPauseMs, then refused).',
        },
        abandoned: {
          type: 'integer',
          minimum: 0,
          description:
            'Held requests whose client closed the connection before they were admitted or refused, since start: let go at once, their in-flight slot freed, nothing read or stored.',
        },
      },
    },
    StreamHealth: {
      type: 'object',
      description:
        "Apart from the status (which stays 1–4): degraded while a sink's circuit breaker is open or half-open, or a lane is stalled (nothing delivered, lag never fell) or falling behind (lag rose at every sample) over health.lagWindowMs plus the sink's lingerMs.",
      additionalProperties: false,
      required: ['state', 'reasons'],
      properties: {
        state: { type: 'string', enum: ['ok', 'degraded'] },
        reasons: {
          type: 'array',
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['code', 'sink', 'deadLetter', 'message'],
            properties: {
              code: { type: 'string', enum: ['circuit-open', 'lane-stalled', 'lag-growing'] },
              sink: { type: 'string' },
              deadLetter: { type: 'boolean', description: "true for the stream's dead-letter lane." },
              message: { type: 'string' },
            },
          },
        },
      },
    },
    SinkCreate: {
      description: 'A new sink: its name and the sink keys of the config file (sinks.<name>).',
      oneOf: Object.entries(SINK_TYPE_DEFS).map(([, def]) => ref(`${def}Create`)),
    },
    SinkPatch: sinkPatchSchema(defs),
    Sink: {
      description: 'A sink as stored (secrets masked as "***") with live figures over the streams using it.',
      oneOf: Object.entries(SINK_TYPE_DEFS).map(([, def]) => ref(`${def}View`)),
    },
    Lookup: {
      type: 'object',
      additionalProperties: false,
      required: ['id', 'description'],
      properties: { id: { type: ['string', 'integer'] }, description: { type: 'string' } },
    },
    Problem: {
      type: 'object',
      description: 'RFC 9457 problem details.',
      required: ['type', 'title', 'status', 'detail'],
      properties: {
        type: { type: 'string' },
        title: { type: 'string' },
        status: { type: 'integer' },
        detail: { type: 'string' },
        instance: { type: 'string' },
        errors: {
          type: 'array',
          items: {
            type: 'object',
            required: ['message'],
            properties: {
              index: { type: 'integer', description: 'Record index in the ingest body.' },
              pointer: {
                type: 'string',
                description: 'JSON pointer (into the record, or the request body).',
              },
              path: { type: 'string', description: 'Config path, e.g. streams.x.sinks[0].' },
              message: { type: 'string' },
            },
          },
        },
      },
    },
    IngestCounts: {
      type: 'object',
      additionalProperties: false,
      required: ['accepted', 'rejected', 'filtered', 'duplicates'],
      properties: Object.fromEntries(
        ['accepted', 'rejected', 'filtered', 'duplicates'].map((k) => [k, { type: 'integer', minimum: 0 }]),
      ),
    },
    Template: {
      type: 'object',
      description:
        'A built-in Azion template. A preset describes its records, it does not gate them: any flat JSON object of strings is valid, and keys its models do not show (or show but a record lacks) are schema drift.',
      required: [
        'id',
        'name',
        'data_source',
        'template_model',
        'documented',
        'abbreviated',
        'documented_models',
      ],
      properties: {
        id: { type: 'integer' },
        name: { type: 'string' },
        data_source: { type: 'string' },
        template_model: { type: 'string', description: 'The primary model (the first documented one).' },
        documented: {
          type: 'boolean',
          description: 'false: no model of this preset was found; template_model is our reconstruction.',
        },
        abbreviated: {
          type: 'boolean',
          description: 'Every documented model is a shortened one: real records carry more keys.',
        },
        documented_models: {
          type: 'array',
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['template_model', 'source', 'abbreviated'],
            properties: {
              template_model: { type: 'string' },
              source: { type: 'string', description: 'The document and section it is quoted from.' },
              abbreviated: { type: 'boolean' },
            },
          },
        },
      },
    },
    DriftSummary: {
      type: 'object',
      description: "The stream's schema drift in figures (GET /api/v1/streams/{id}/drift has the fields).",
      additionalProperties: false,
      required: ['tracking', 'unknownFields', 'missingFields', 'unknownRecords', 'missingRecords'],
      properties: {
        tracking: { type: 'boolean' },
        unknownFields: { type: 'integer', minimum: 0 },
        missingFields: { type: 'integer', minimum: 0 },
        unknownRecords: { type: 'integer', minimum: 0 },
        missingRecords: { type: 'integer', minimum: 0 },
      },
    },
    DriftReport: {
      type: 'object',
      description:
        "Fields that arrive but the stream's schema or template does not know (unknown), and fields it expects that do not arrive (missing). Counts are exact while the tracker learns (sampling.learning) and estimated from one record in sampling.oneIn afterwards.",
      additionalProperties: false,
      required: [
        'stream',
        'tracking',
        'known',
        'since',
        'observedRecords',
        'unknownRecords',
        'missingRecords',
        'sampling',
        'fields',
        'untrackedSightings',
        'maxFields',
      ],
      properties: {
        stream: { type: 'string' },
        tracking: {
          type: 'boolean',
          description: 'false when there is nothing to compare with (no schema or JSON template).',
        },
        known: {
          type: 'object',
          additionalProperties: false,
          required: ['source', 'fields'],
          properties: {
            source: { type: 'string', description: 'What records are compared with.' },
            fields: { type: 'array', items: { type: 'string' }, description: 'Known field pointers.' },
          },
        },
        since: { type: 'string', format: 'date-time', description: 'Start, or the last reset.' },
        observedRecords: { type: 'integer', minimum: 0 },
        unknownRecords: { type: 'integer', minimum: 0 },
        missingRecords: { type: 'integer', minimum: 0 },
        sampling: {
          type: 'object',
          additionalProperties: false,
          required: ['learning', 'oneIn'],
          properties: { learning: { type: 'boolean' }, oneIn: { type: 'integer', minimum: 1 } },
        },
        fields: {
          type: 'array',
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['pointer', 'kind', 'records', 'firstSeen', 'lastSeen'],
            properties: {
              pointer: { type: 'string', description: 'JSON pointer (RFC 6901) of the field.' },
              kind: { type: 'string', enum: ['unknown', 'missing'] },
              records: { type: 'integer', minimum: 0 },
              firstSeen: { type: 'string', format: 'date-time' },
              lastSeen: { type: 'string', format: 'date-time' },
              example: { type: 'string', description: "The value's JSON text, cut to 100 characters." },
            },
          },
        },
        untrackedSightings: {
          type: 'integer',
          minimum: 0,
          description: 'Sightings of pointers not tracked because maxFields are tracked already.',
        },
        maxFields: { type: 'integer' },
      },
    },
  }
  for (const [type, def] of Object.entries(SINK_TYPE_DEFS)) {
    const base = defs[def]!
    const props = base.properties as Record<string, Schema>
    schemas[`${def}Create`] = {
      ...base,
      required: ['name', 'type', ...((base.required as string[] | undefined) ?? [])],
      properties: { name: nameRef, ...props, type: { const: type, description: 'Sink type.' } },
    }
    schemas[`${def}View`] = {
      ...base,
      required: [
        'name',
        'type',
        ...((base.required as string[] | undefined) ?? []),
        'figures',
        'lastError',
        'usedBy',
      ],
      properties: {
        name: nameRef,
        ...props,
        type: { const: type, description: 'Sink type.' },
        figures: {
          type: 'object',
          additionalProperties: false,
          required: ['delivered', 'lag'],
          properties: {
            delivered: { type: 'integer', minimum: 0 },
            lag: { type: 'integer', minimum: 0 },
            circuit: circuitSchema,
          },
        },
        lastError: nullable({
          type: 'object',
          additionalProperties: false,
          required: ['stream', 'message', 'reason', 'at'],
          properties: {
            stream: { type: 'string' },
            message: { type: 'string' },
            reason: { type: 'string' },
            at: { type: 'string' },
          },
        }),
        usedBy: {
          type: 'array',
          items: { type: 'string' },
          description: 'Streams that use the sink (as a sink or dead-letter sink).',
        },
      },
    }
  }

  return {
    openapi: '3.1.0',
    info: {
      title: 'streamgate',
      version: '1',
      description:
        'Event gateway: vendors push records to /ingest/{stream}; the management API under /api/v1 manages streams and sinks. Generated from schemas/config.schema.json.',
    },
    servers: [{ url: '/' }],
    security: [{ bearer: [] }],
    tags: [
      {
        name: 'ingest',
        description: 'Vendors push records (auth per stream: its configured headers, HMAC, CIDRs).',
      },
      { name: 'streams' },
      { name: 'sinks' },
      { name: 'lookups', description: 'Public: no token needed.' },
      CONNECT_TAG,
    ],
    paths: { ...paths(), ...connectPaths() },
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'admin.token from the config file.' },
      },
      schemas: { ...schemas, ...connectSchemas() },
      responses: responses(),
      parameters: {
        streamId: {
          name: 'id',
          in: 'path',
          required: true,
          description: 'A stream id. "statuses" is not one: /streams/statuses is the status lookup.',
          schema: defs.name,
        },
        sinkName: {
          name: 'name',
          in: 'path',
          required: true,
          description: 'A sink name. "types" is not one: /sinks/types is the sink type lookup.',
          schema: defs.name,
        },
      },
    },
  }
}

/** Every key any sink type has, each nullable (merge patch); the result must be a valid sink of its type. */
function sinkPatchSchema(defs: Record<string, Schema>): Schema {
  // Per key, each distinct schema any sink type gives it (`compression` differs between kafka and s3, …).
  const variants = new Map<string, Map<string, Schema>>()
  for (const def of Object.values(SINK_TYPE_DEFS))
    for (const [key, own] of Object.entries(defs[def]!.properties as Record<string, Schema>)) {
      const schema = key === 'type' ? { enum: Object.keys(SINK_TYPE_DEFS) } : own
      const forKey = variants.get(key) ?? new Map<string, Schema>()
      forKey.set(JSON.stringify(schema), schema)
      variants.set(key, forKey)
    }
  const properties: Record<string, Schema> = {}
  for (const [key, forKey] of variants) properties[key] = { anyOf: [...forKey.values(), { type: 'null' }] }
  return {
    type: 'object',
    description:
      'A JSON merge patch (RFC 7386) of the stored sink; the result must be a valid sink of its type. A masked secret ("***") keeps the stored one.',
    additionalProperties: false,
    properties,
  }
}

const problem = (description: string): Schema => ({
  description,
  content: { 'application/problem+json': { schema: ref('Problem') } },
})

function responses(): Record<string, Schema> {
  return {
    BadRequest: problem(
      'Invalid JSON, or the object does not validate against the config schema (errors[] lists every error).',
    ),
    Unauthorized: {
      ...problem('Missing or wrong bearer token (or no admin.token configured).'),
      headers: { 'WWW-Authenticate': { schema: { type: 'string' } } },
    },
    TooManyFailedLogins: {
      ...problem(
        'Too many wrong tokens from this address (admin.loginThrottle); tokens are not checked until Retry-After.',
      ),
      headers: { 'Retry-After': { schema: { type: 'string' } } },
    },
    NotFound: problem('No such stream or sink.'),
    Conflict: problem('Exists already, still in use, or records still waiting.'),
    TooLarge: problem(`The body is larger than ${MAX_API_BODY_BYTES} bytes.`),
    UnsupportedMediaType: problem('Not a JSON Content-Type.'),
  }
}

function json(schema: Schema, description: string): Schema {
  return { description, content: { 'application/json': { schema } } }
}

function paths(): Record<string, Schema> {
  const r = (name: string): Schema => ({ $ref: `#/components/responses/${name}` })
  const publicGet = (summary: string, schema: Schema, extra: Record<string, Schema> = {}): Schema => ({
    get: {
      tags: ['lookups'],
      summary,
      security: [],
      responses: { 200: json(schema, summary), ...extra },
    },
  })
  const writeResponses = {
    400: r('BadRequest'),
    401: r('Unauthorized'),
    429: r('TooManyFailedLogins'),
    413: r('TooLarge'),
    415: r('UnsupportedMediaType'),
  }
  const body = (schema: Schema, patch = false): Schema => ({
    required: true,
    content: patch
      ? { 'application/merge-patch+json': { schema }, 'application/json': { schema } }
      : { 'application/json': { schema } },
  })
  const streamParam = [{ $ref: '#/components/parameters/streamId' }]
  const sinkParam = [{ $ref: '#/components/parameters/sinkName' }]
  const ingestOperation = (method: string): Schema => ({
    tags: ['ingest'],
    summary: `Push records to a stream (${method}; the stream's \`method\` decides which are accepted)`,
    description:
      "Authenticated by the stream's own checks (auth.headers, auth.hmac, auth.allowCidrs), not by the bearer token. Answers 200 only once every accepted record is durable in the spool.",
    security: [],
    parameters: [{ name: 'stream', in: 'path', required: true, schema: { type: 'string' } }],
    requestBody: {
      required: false,
      content: {
        'application/json': { schema: {} },
        'application/x-ndjson': { schema: { type: 'string' } },
        'text/plain': { schema: { type: 'string' } },
      },
    },
    responses: {
      200: json(ref('IngestCounts'), 'Every accepted record is durable (or, durability none, delivered).'),
      400: problem('Body cannot be decoded or framed, invalid UTF-8, or the request was aborted.'),
      401: problem('Auth headers or HMAC missing or wrong.'),
      403: problem('Source address not in auth.allowCidrs.'),
      404: problem('Unknown stream.'),
      405: {
        ...problem('Method not accepted by this stream.'),
        headers: { Allow: { schema: { type: 'string' } } },
      },
      408: problem(
        'Headers, body or request not received in time (server.headersTimeoutMs, bodyTimeoutMs, requestTimeoutMs); the connection is closed.',
      ),
      413: problem('Body (declared, streamed or decompressed) over the limit.'),
      415: problem('Unsupported Content-Type or Content-Encoding.'),
      422: problem('Validation policy reject: records invalid (errors[] per record, first 100).'),
      429: { ...problem('Rate limit exceeded.'), headers: { 'Retry-After': { schema: { type: 'string' } } } },
      503: {
        ...problem('Spool full, shutting down, overloaded, or (durability none) sinks did not acknowledge.'),
        headers: { 'Retry-After': { schema: { type: 'string' } } },
      },
    },
  })

  const probeOperation = (method: string): Schema => ({
    tags: ['ingest'],
    summary: `Availability probe (${method}): 200 when the stream would accept a push; stores nothing`,
    description:
      "Vendors check an endpoint before and while streaming. The stream's auth runs as for a POST (auth.allowCidrs, auth.headers; with auth.hmac the signature of the empty body).",
    security: [],
    parameters: [{ name: 'stream', in: 'path', required: true, schema: { type: 'string' } }],
    responses: {
      200:
        method === 'HEAD'
          ? { description: 'Available (no body).' }
          : json(
              {
                type: 'object',
                additionalProperties: false,
                required: ['available'],
                properties: { available: { const: true } },
              },
              'Available.',
            ),
      401: problem('Auth headers or HMAC missing or wrong.'),
      403: problem('Source address not in auth.allowCidrs.'),
      404: problem('Unknown stream.'),
      503: {
        ...problem('Shutting down.'),
        headers: { 'Retry-After': { schema: { type: 'string' } } },
      },
    },
  })

  return {
    '/ingest/{stream}': {
      post: ingestOperation('POST'),
      put: ingestOperation('PUT'),
      patch: ingestOperation('PATCH'),
      get: probeOperation('GET'),
      head: probeOperation('HEAD'),
    },
    '/api/v1/openapi.json': publicGet('This document', { type: 'object' }),
    '/api/v1/streams/statuses': publicGet('Stream statuses', {
      type: 'array',
      items: ref('StreamStatus'),
      examples: [STREAM_STATUS_LIST],
    }),
    '/api/v1/source_types': publicGet('Source types', {
      type: 'array',
      items: ref('Lookup'),
      examples: [SOURCE_TYPES],
    }),
    '/api/v1/sink_types': publicGet('Sink types', {
      type: 'array',
      items: ref('Lookup'),
      examples: [SINK_TYPES],
    }),
    '/api/v1/sinks/types': publicGet('Sink types (alias of /sink_types)', {
      type: 'array',
      items: ref('Lookup'),
    }),
    '/api/v1/templates': publicGet("Built-in Azion templates (Azion's shape)", {
      type: 'object',
      required: ['results', 'schema_version'],
      properties: {
        count: { type: 'integer' },
        results: { type: 'array', items: ref('Template') },
        schema_version: { type: 'integer' },
      },
    }),
    '/api/v1/templates/{templateId}': {
      get: {
        tags: ['lookups'],
        summary: 'One built-in Azion template',
        security: [],
        parameters: [{ name: 'templateId', in: 'path', required: true, schema: { type: 'integer' } }],
        responses: {
          200: json(
            {
              type: 'object',
              required: ['results', 'schema_version'],
              properties: { results: ref('Template'), schema_version: { type: 'integer' } },
            },
            'The template',
          ),
          404: problem('No such template.'),
        },
      },
    },
    '/api/v1/streams': {
      get: {
        tags: ['streams'],
        summary: 'List streams',
        responses: {
          200: json({ type: 'array', items: ref('Stream') }, 'Every stream'),
          401: r('Unauthorized'),
          429: r('TooManyFailedLogins'),
        },
      },
      post: {
        tags: ['streams'],
        summary: 'Create a stream (applied at once, persisted)',
        requestBody: body(ref('StreamCreate')),
        responses: {
          201: {
            ...json(ref('Stream'), 'Created'),
            headers: { Location: { schema: { type: 'string' } } },
          },
          ...writeResponses,
          409: r('Conflict'),
        },
      },
    },
    '/api/v1/streams/{id}': {
      parameters: streamParam,
      get: {
        tags: ['streams'],
        summary: 'One stream',
        responses: {
          200: json(ref('Stream'), 'The stream'),
          401: r('Unauthorized'),
          429: r('TooManyFailedLogins'),
          404: r('NotFound'),
        },
      },
      patch: {
        tags: ['streams'],
        summary: 'Change a stream (JSON merge patch)',
        requestBody: body(ref('StreamPatch'), true),
        responses: { 200: json(ref('Stream'), 'Changed'), ...writeResponses, 404: r('NotFound') },
      },
      delete: {
        tags: ['streams'],
        summary: 'Delete a stream',
        parameters: [
          {
            name: 'force',
            in: 'query',
            required: false,
            description: 'Delete even though records still wait in the spool (they stay there).',
            schema: { type: 'boolean', default: false },
          },
        ],
        responses: {
          204: { description: 'Deleted' },
          400: r('BadRequest'),
          401: r('Unauthorized'),
          429: r('TooManyFailedLogins'),
          404: r('NotFound'),
          409: r('Conflict'),
        },
      },
    },
    '/api/v1/streams/{id}/restart': {
      parameters: streamParam,
      post: {
        tags: ['streams'],
        summary: 'Restart: Error or Paused → Running, clears the last error',
        responses: {
          200: json(ref('Stream'), 'Running'),
          401: r('Unauthorized'),
          429: r('TooManyFailedLogins'),
          404: r('NotFound'),
        },
      },
    },
    '/api/v1/streams/{id}/drift': {
      parameters: streamParam,
      get: {
        tags: ['streams'],
        summary: 'Schema drift: unknown and missing fields, with records seen, first/last seen, an example',
        responses: {
          200: json(ref('DriftReport'), 'The drift report'),
          401: r('Unauthorized'),
          429: r('TooManyFailedLogins'),
          404: r('NotFound'),
        },
      },
    },
    '/api/v1/streams/{id}/drift/reset': {
      parameters: streamParam,
      post: {
        tags: ['streams'],
        summary: 'Clear the drift report (tracking starts again, learning every record)',
        responses: {
          200: json(ref('DriftReport'), 'The cleared report'),
          401: r('Unauthorized'),
          429: r('TooManyFailedLogins'),
          404: r('NotFound'),
        },
      },
    },
    '/api/v1/sinks': {
      get: {
        tags: ['sinks'],
        summary: 'List sinks',
        responses: {
          200: json({ type: 'array', items: ref('Sink') }, 'Every sink'),
          401: r('Unauthorized'),
          429: r('TooManyFailedLogins'),
        },
      },
      post: {
        tags: ['sinks'],
        summary: 'Create a sink (applied at once, persisted)',
        requestBody: body(ref('SinkCreate')),
        responses: {
          201: { ...json(ref('Sink'), 'Created'), headers: { Location: { schema: { type: 'string' } } } },
          ...writeResponses,
          409: r('Conflict'),
        },
      },
    },
    '/api/v1/sinks/{name}': {
      parameters: sinkParam,
      get: {
        tags: ['sinks'],
        summary: 'One sink',
        responses: {
          200: json(ref('Sink'), 'The sink'),
          401: r('Unauthorized'),
          429: r('TooManyFailedLogins'),
          404: r('NotFound'),
        },
      },
      patch: {
        tags: ['sinks'],
        summary: 'Change a sink (JSON merge patch)',
        requestBody: body(ref('SinkPatch'), true),
        responses: { 200: json(ref('Sink'), 'Changed'), ...writeResponses, 404: r('NotFound') },
      },
      delete: {
        tags: ['sinks'],
        summary: 'Delete a sink no stream uses',
        responses: {
          204: { description: 'Deleted' },
          401: r('Unauthorized'),
          429: r('TooManyFailedLogins'),
          404: r('NotFound'),
          409: r('Conflict'),
        },
      },
    },
  }
}
