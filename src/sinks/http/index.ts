import { defineSink } from '../define.js'
import { createHttpSink } from './sink.js'

export const httpSink = defineSink({
  type: 'http',
  description: 'Any HTTP endpoint (another streamgate, a webhook): NDJSON or a JSON array per request',
  options: {
    type: 'object',
    additionalProperties: false,
    required: ['url'],
    properties: {
      url: {
        type: 'string',
        description: 'Target URL.',
      },
      method: {
        enum: ['POST', 'PUT', 'PATCH'],
        description: 'HTTP method.',
        default: 'POST',
      },
      headers: {
        type: 'object',
        additionalProperties: {
          type: 'string',
        },
        description: 'Request headers.',
      },
      format: {
        enum: ['ndjson', 'json-array'],
        description: 'Body format.',
        default: 'ndjson',
      },
      compression: {
        enum: ['none', 'gzip'],
        description: 'Body compression.',
        default: 'none',
      },
      timeoutMs: {
        type: 'integer',
        minimum: 1,
        description: 'Request timeout.',
        default: 30000,
      },
    },
  },
  create: createHttpSink,
})
