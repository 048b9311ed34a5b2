import { defineSink } from '../define.js'
import { adobeIssues } from './check.js'
import { createAdobeSink } from './sink.js'

export const adobeSink = defineSink({
  type: 'adobe',
  description:
    'Adobe Experience Platform streaming inlet (XDM envelope, batch or single, authenticated inlets)',
  options: {
    type: 'object',
    additionalProperties: false,
    properties: {
      inletUrl: {
        type: 'string',
        description:
          'The streaming inlet URL, e.g. https://dcs.adobedc.net/collection/<inletId>. Unset: the sink is not connected (it holds its records, retried, until `streamgate connect adobe <sink>` writes it here).',
      },
      mode: {
        enum: ['batch', 'single', 'raw'],
        description:
          'batch: /collection/batch/<inlet> with {messages}; single: one message per request; raw: the record as is with x-adobe-flow-id.',
        default: 'batch',
      },
      syncValidation: {
        type: 'boolean',
        description:
          'single mode: ask for synchronous validation (development only). Not available on the batch endpoint: with mode batch it is a config error.',
        default: false,
      },
      schemaRef: {
        type: 'string',
        description: 'XDM schema id (https://ns.adobe.com/<tenant>/schemas/<id>).',
      },
      schemaContentType: {
        type: 'string',
        description: 'schemaRef contentType.',
        default: 'application/vnd.adobe.xed-full+json;version=1',
      },
      imsOrgId: {
        type: 'string',
        description: 'IMS organization id.',
      },
      datasetId: {
        type: 'string',
        description: 'Target dataset id.',
      },
      flowId: {
        type: 'string',
        description: 'Dataflow id.',
      },
      sourceName: {
        type: 'string',
        description: 'header.source.name.',
      },
      mapping: {
        type: 'object',
        additionalProperties: {
          type: 'string',
        },
        description:
          'xdmEntity path ← record field path (e.g. {"_id": "id"}); the record itself when absent.',
      },
      auth: {
        description: 'Authenticated inlets: a static token, or OAuth server-to-server client credentials.',
        oneOf: [
          {
            type: 'object',
            additionalProperties: false,
            required: ['token'],
            properties: {
              token: {
                type: 'string',
                description: 'Bearer token.',
              },
            },
          },
          {
            type: 'object',
            additionalProperties: false,
            required: ['clientId', 'clientSecret'],
            properties: {
              clientId: {
                type: 'string',
                description: 'OAuth client id.',
              },
              clientSecret: {
                type: 'string',
                description: 'OAuth client secret.',
              },
              tokenUrl: {
                type: 'string',
                description:
                  'Token endpoint (form POST grant_type=client_credentials); Adobe IMS when absent.',
                default: 'https://ims-na1.adobelogin.com/ims/token/v3',
              },
              scopes: {
                type: 'array',
                items: {
                  type: 'string',
                },
                description:
                  'OAuth scopes, sent comma-separated as IMS expects (e.g. openid, AdobeID, read_organizations).',
              },
            },
          },
        ],
      },
      apiKey: {
        type: 'string',
        description: 'x-api-key header.',
      },
      sandboxName: {
        type: 'string',
        description: 'x-sandbox-name header.',
      },
      requestsPerSecond: {
        type: 'number',
        exclusiveMinimum: 0,
        description: 'Client-side request rate limit.',
        default: 1000,
      },
      messagesPerSecond: {
        type: 'number',
        exclusiveMinimum: 0,
        description: 'Client-side message rate limit.',
        default: 10000,
      },
    },
  },
  check: adobeIssues,
  create: createAdobeSink,
})
