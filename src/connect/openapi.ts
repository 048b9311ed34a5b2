// The connect operations' part of /api/v1/openapi.json (src/admin/openapi.ts merges it in): their paths
// and the shapes of their bodies and answers (src/connect/routes.ts, src/connect/plan.ts).

type Schema = Record<string, unknown>

const ref = (name: string): Schema => ({ $ref: `#/components/schemas/${name}` })
const response = (name: string): Schema => ({ $ref: `#/components/responses/${name}` })
const problem = (description: string, schema = 'Problem'): Schema => ({
  description,
  content: { 'application/problem+json': { schema: ref(schema) } },
})
const json = (schema: Schema, description: string): Schema => ({
  description,
  content: { 'application/json': { schema } },
})

const VENDOR = { type: 'string', enum: ['emnify', 'azion', 'adobe', 'domo'] }

export function connectSchemas(): Record<string, Schema> {
  return {
    ConnectStreamRequest: {
      type: 'object',
      description: 'Optional body of POST /streams/{id}/connect and /disconnect.',
      additionalProperties: false,
      properties: {
        vendor: {
          type: 'string',
          enum: ['emnify', 'azion'],
          description: "The vendor that feeds the stream; default the stream's source.",
        },
        publicUrl: {
          type: 'string',
          description: 'Base URL the vendor reaches the gateway at; default server.publicUrl.',
        },
        dryRun: {
          type: 'boolean',
          default: false,
          description: 'Send only reads; answer with every request that would be sent (secrets masked).',
        },
      },
    },
    ConnectSinkRequest: {
      type: 'object',
      description: 'Optional body of POST /sinks/{name}/connect and /disconnect.',
      additionalProperties: false,
      properties: {
        dryRun: {
          type: 'boolean',
          default: false,
          description: 'Send only reads; answer with every request that would be sent (secrets masked).',
        },
      },
    },
    VendorRequestRecord: {
      type: 'object',
      description: 'One request to the vendor, secrets masked as "***".',
      additionalProperties: false,
      required: ['method', 'url', 'headers', 'sent'],
      properties: {
        method: { type: 'string' },
        url: { type: 'string' },
        headers: { type: 'object', additionalProperties: { type: 'string' } },
        body: { description: 'The JSON body.' },
        sent: { type: 'boolean', description: 'false: a change a dry run did not send.' },
        status: { type: 'integer', description: "The vendor's answer." },
      },
    },
    ConnectReport: {
      type: 'object',
      description: 'What connect or disconnect did (in a dry run: would do).',
      additionalProperties: false,
      required: ['vendor', 'kind', 'name', 'dryRun', 'action', 'changes', 'notes', 'requests'],
      properties: {
        vendor: VENDOR,
        kind: { type: 'string', enum: ['stream', 'sink'] },
        name: { type: 'string' },
        dryRun: { type: 'boolean' },
        action: { type: 'string', enum: ['created', 'updated', 'unchanged', 'deleted', 'absent'] },
        vendorId: { type: 'string', description: "The vendor's id of its object." },
        changes: { type: 'array', items: { type: 'string' }, description: 'Fields that differed.' },
        notes: { type: 'array', items: { type: 'string' } },
        config: {
          type: 'object',
          description: 'Sink keys written to the config (inletUrl, streamId); null: removed.',
        },
        requests: { type: 'array', items: ref('VendorRequestRecord') },
      },
    },
    ConnectionRow: {
      type: 'object',
      additionalProperties: false,
      required: ['vendor', 'matches', 'differences'],
      properties: {
        vendor: VENDOR,
        kind: { type: 'string', enum: ['stream', 'sink'] },
        name: {
          type: 'string',
          description: 'The local stream or sink; absent for a vendor object without one.',
        },
        vendorId: { type: 'string' },
        status: { type: 'string' },
        url: { type: 'string' },
        headers: { type: 'array', items: { type: 'string' }, description: 'Header names (never values).' },
        matches: { type: ['boolean', 'null'], description: 'null: nothing to compare.' },
        differences: { type: 'array', items: { type: 'string' } },
        detail: { type: 'string' },
      },
    },
    ConnectionsListing: {
      type: 'object',
      additionalProperties: false,
      required: ['rows', 'skipped'],
      properties: {
        rows: { type: 'array', items: ref('ConnectionRow') },
        skipped: {
          type: 'array',
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['vendor', 'reason'],
            properties: { vendor: VENDOR, reason: { type: 'string' } },
          },
        },
      },
    },
    VendorProblem: {
      allOf: [ref('Problem')],
      description: 'The vendor refused a call (or could not be reached: vendorStatus null).',
      properties: {
        vendor: VENDOR,
        call: { type: 'string', description: 'e.g. "POST /api/v2/data_stream".' },
        vendorStatus: { type: ['integer', 'null'] },
        vendorMessage: { type: 'string' },
        hint: { type: 'string', description: 'What to do about it.' },
      },
    },
  }
}

export function connectPaths(): Record<string, Schema> {
  const operation = (summary: string, tag: string, body: string, description: string): Schema => ({
    tags: ['connect', tag],
    summary,
    description,
    requestBody: {
      required: false,
      content: { 'application/json': { schema: ref(body) } },
    },
    responses: {
      200: json(ref('ConnectReport'), 'Done (or, dryRun, planned)'),
      400: response('BadRequest'),
      401: response('Unauthorized'),
      404: response('NotFound'),
      409: problem(
        'Ambiguous at the vendor (two objects for one stream), or a running gateway holds the state.',
      ),
      413: response('TooLarge'),
      415: response('UnsupportedMediaType'),
      422: problem('Cannot be connected as configured: a vendor token, a key or a public URL is missing.'),
      429: response('TooManyFailedLogins'),
      502: problem('The vendor refused a call or could not be reached.', 'VendorProblem'),
      503: problem('The config change could not be saved.'),
    },
  })
  const streamParam = [{ $ref: '#/components/parameters/streamId' }]
  const sinkParam = [{ $ref: '#/components/parameters/sinkName' }]
  const streamText =
    "emnify or Azion: create or update (disconnect: delete) the vendor's data stream that sends to this stream's ingest URL, with its method, auth headers and (emnify) filters. Vendor tokens come from the gateway's environment."
  const sinkText =
    "Adobe: create (or reuse) a Flow Service streaming connection and write its inletUrl into the sink; Domo: find the stream by dataset name or create it and write its streamId. Disconnect removes the key (Domo: deletes a stream connect created). The sink's own credentials are used."
  return {
    '/api/v1/streams/{id}/connect': {
      parameters: streamParam,
      post: operation('Wire the vendor to this stream', 'streams', 'ConnectStreamRequest', streamText),
    },
    '/api/v1/streams/{id}/disconnect': {
      parameters: streamParam,
      post: operation(
        "Delete the vendor's data stream of this stream",
        'streams',
        'ConnectStreamRequest',
        streamText,
      ),
    },
    '/api/v1/sinks/{name}/connect': {
      parameters: sinkParam,
      post: operation(
        "Wire this sink to the vendor's inlet or stream",
        'sinks',
        'ConnectSinkRequest',
        sinkText,
      ),
    },
    '/api/v1/sinks/{name}/disconnect': {
      parameters: sinkParam,
      post: operation('Unwire this sink', 'sinks', 'ConnectSinkRequest', sinkText),
    },
    '/api/v1/connections': {
      get: {
        tags: ['connect'],
        summary: 'What exists at each vendor, and whether it matches the config',
        parameters: [
          { name: 'vendor', in: 'query', required: false, schema: VENDOR },
          {
            name: 'publicUrl',
            in: 'query',
            required: false,
            description: 'Base URL vendors reach the gateway at; default server.publicUrl.',
            schema: { type: 'string' },
          },
        ],
        responses: {
          200: json(ref('ConnectionsListing'), 'One row per vendor object and per local stream or sink'),
          400: response('BadRequest'),
          401: response('Unauthorized'),
          422: problem('The named vendor cannot be asked: its token is not set.'),
          429: response('TooManyFailedLogins'),
          502: problem('The vendor refused a call or could not be reached.', 'VendorProblem'),
        },
      },
    },
  }
}

export const CONNECT_TAG = {
  name: 'connect',
  description:
    "Vendor wiring: the vendors' management APIs (emnify, Azion, Adobe Flow Service, Domo) set up from the gateway's own config.",
}
