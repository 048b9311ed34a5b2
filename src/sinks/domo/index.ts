import { defineSink } from '../define.js'
import { domoIssues } from './check.js'
import { createDomoSink } from './sink.js'

export const domoSink = defineSink({
  type: 'domo',
  description: 'Domo Streams API: gzip CSV parts per execution (create, upload, commit)',
  options: {
    type: 'object',
    additionalProperties: false,
    required: ['columns'],
    properties: {
      api: {
        enum: ['public', 'instance'],
        description:
          'public: the Streams API at apiBase (/v1/streams) with OAuth client credentials (clientId, clientSecret). instance: the instance API at instanceUrl (/api/data/v1/streams) with a developer token (X-DOMO-Developer-Token).',
        default: 'public',
      },
      clientId: {
        type: 'string',
        description: 'OAuth client id (api public; required there).',
      },
      clientSecret: {
        type: 'string',
        description: 'OAuth client secret (api public; required there).',
      },
      instanceUrl: {
        type: 'string',
        description: 'The Domo instance, e.g. https://acme.domo.com (api instance; required there).',
      },
      developerToken: {
        type: 'string',
        description: 'Developer token sent as X-DOMO-Developer-Token (api instance; required there).',
      },
      streamId: {
        type: ['integer', 'string'],
        description:
          'Domo stream id. Either streamId or create; with neither the sink is not connected (it holds its records, retried, until `streamgate connect domo <sink>` writes streamId here).',
      },
      create: {
        type: 'object',
        additionalProperties: false,
        required: ['name'],
        description:
          'Instead of streamId: find the stream whose dataset has this name (streams search), or create it with this dataset schema when there is none.',
        properties: {
          name: {
            type: 'string',
            minLength: 1,
            description: 'Dataset name, searched as dataSource.name and used when creating.',
          },
          description: {
            type: 'string',
            description: 'Dataset description when creating.',
            default: '',
          },
          columns: {
            type: 'array',
            minItems: 1,
            description:
              'Dataset schema, one column per entry of columns, in order: a column name (type STRING) or {name, type}. Default: the record field paths of columns, as STRING.',
            items: {
              oneOf: [
                {
                  type: 'string',
                  minLength: 1,
                },
                {
                  type: 'object',
                  additionalProperties: false,
                  required: ['name'],
                  properties: {
                    name: {
                      type: 'string',
                      minLength: 1,
                      description: 'Column name.',
                    },
                    type: {
                      enum: ['STRING', 'DECIMAL', 'LONG', 'DOUBLE', 'DATE', 'DATETIME'],
                      description: 'Domo column type.',
                      default: 'STRING',
                    },
                  },
                },
              ],
            },
          },
        },
      },
      columns: {
        type: 'array',
        minItems: 1,
        items: {
          type: 'string',
        },
        description: "Record field paths, one per CSV column, in the dataset's column order.",
      },
      updateMethod: {
        enum: ['APPEND', 'REPLACE'],
        description:
          'Sent as {"updateMethod": …} with every execution, overriding the stream\'s own setting (a warning is logged at start when they differ).',
        default: 'APPEND',
      },
      apiBase: {
        type: 'string',
        description: 'Public API base URL (api public).',
        default: 'https://api.domo.com',
      },
      tokenUrl: {
        type: 'string',
        description: 'OAuth token endpoint (api public).',
        default: 'https://api.domo.com/oauth/token',
      },
      partBytes: {
        type: 'integer',
        minimum: 1,
        description: 'Uncompressed CSV bytes per uploaded part.',
        default: 52428800,
      },
      compression: {
        type: 'string',
        enum: ['gzip', 'none'],
        description:
          "Part encoding: gzip (Content-Type text/csv + Content-Encoding gzip, Domo's recommendation) or none (plain text/csv).",
        default: 'gzip',
      },
      parallelParts: {
        type: 'integer',
        minimum: 1,
        description: 'Parts uploaded at once.',
        default: 2,
      },
    },
  },
  check: domoIssues,
  create: createDomoSink,
})
