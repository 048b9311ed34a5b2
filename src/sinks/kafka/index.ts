import { defineSink } from '../define.js'
import { createKafkaSink } from './sink.js'

export const kafkaSink = defineSink({
  type: 'kafka',
  description: 'Apache Kafka topic (idempotent producer, acks all, key and topic templates, SASL/TLS)',
  options: {
    type: 'object',
    additionalProperties: false,
    required: ['brokers', 'topic'],
    properties: {
      brokers: {
        description: 'Bootstrap brokers, a list or a comma-separated string.',
        oneOf: [
          {
            type: 'array',
            minItems: 1,
            items: {
              type: 'string',
            },
          },
          {
            type: 'string',
            minLength: 1,
          },
        ],
      },
      topic: {
        type: 'string',
        minLength: 1,
        description: 'Topic, or a template such as "events-{{stream}}".',
      },
      key: {
        type: 'string',
        description:
          'Message key template, e.g. "{{sim.iccid}}"; no key when absent or when it renders empty (unkeyed records of one batch share a partition).',
      },
      headers: {
        type: 'object',
        additionalProperties: {
          type: 'string',
        },
        description:
          'Extra message headers; values may be templates, a header that renders empty is left out. Every message also carries stream, content-type and record-id (when the record has an id); a header configured here with the same name replaces it.',
      },
      acks: {
        enum: [-1, 0, 1],
        description: 'Required acknowledgements.',
        default: -1,
      },
      idempotent: {
        type: 'boolean',
        description: 'Idempotent producer.',
        default: true,
      },
      compression: {
        enum: ['none', 'gzip', 'snappy', 'lz4', 'zstd'],
        description:
          'Batch compression. gzip, zstd and none always work; snappy and lz4 are built into client platformatic, while with kafkajs they need a codec the embedding application registers (none is bundled): without one the sink refuses to start. gzip costs the most CPU; with zstd the Kafka lane delivered 1.25–1.45× the records per gateway CPU-second (bench/RESULTS.md, section Kafka lane).',
        default: 'gzip',
      },
      client: {
        enum: ['kafkajs', 'platformatic'],
        description:
          "The Kafka client library. kafkajs runs on the gateway's event loop; platformatic (@platformatic/kafka) runs in a worker thread of its own and delivered about twice the records per gateway CPU-second (bench/RESULTS.md, section Kafka lane). Messages, partitions and error handling are the same with both.",
        default: 'kafkajs',
      },
      producers: {
        type: 'integer',
        minimum: 1,
        maximum: 16,
        description:
          "Producers of this sink, each with its own connection, producer id and one produce request in flight. A send goes to one of them by its records' key (unkeyed records: by send), so each key's records keep their order while up to this many sends are in flight.",
        default: 1,
      },
      clientId: {
        type: 'string',
        description: 'Kafka client id.',
        default: 'streamgate',
      },
      timeoutMs: {
        type: 'integer',
        minimum: 1,
        description:
          'How long the broker may take to acknowledge a produce request (acks); the client gives up 5 s later.',
        default: 30000,
      },
      ssl: {
        description: 'true for TLS with system CAs, or file paths.',
        oneOf: [
          {
            type: 'boolean',
          },
          {
            type: 'object',
            additionalProperties: false,
            properties: {
              caFile: {
                type: 'string',
                description: 'CA bundle (PEM).',
              },
              certFile: {
                type: 'string',
                description: 'Client certificate (PEM).',
              },
              keyFile: {
                type: 'string',
                description: 'Client key (PEM).',
              },
              rejectUnauthorized: {
                type: 'boolean',
                description: 'Verify the broker certificate.',
                default: true,
              },
            },
          },
        ],
      },
      sasl: {
        type: 'object',
        additionalProperties: false,
        required: ['mechanism', 'username', 'password'],
        description: 'SASL authentication.',
        properties: {
          mechanism: {
            enum: ['plain', 'scram-sha-256', 'scram-sha-512'],
            description: 'SASL mechanism.',
          },
          username: {
            type: 'string',
            description: 'User name.',
          },
          password: {
            type: 'string',
            description: 'Password.',
          },
        },
      },
    },
  },
  create: createKafkaSink,
})
