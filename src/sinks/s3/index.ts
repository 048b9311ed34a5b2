import { defineSink } from '../define.js'
import { createS3Sink } from './sink.js'

export const s3Sink = defineSink({
  type: 's3',
  description:
    'Amazon S3 or an S3-compatible store: NDJSON objects (gzip), rolled over by size, records and age',
  options: {
    type: 'object',
    additionalProperties: false,
    required: ['bucket'],
    properties: {
      bucket: {
        type: 'string',
        minLength: 1,
        description: 'Bucket name.',
      },
      region: {
        type: 'string',
        description: 'AWS region.',
        default: 'us-east-1',
      },
      endpoint: {
        type: 'string',
        description: 'Endpoint of an S3-compatible store.',
      },
      forcePathStyle: {
        type: 'boolean',
        description: 'Path-style URLs (needed by most S3-compatible stores).',
        default: false,
      },
      key: {
        type: 'string',
        description:
          'Object key template; must contain {{uuid}} so that objects never overwrite each other. With compression none, the default key ends in .ndjson instead of .ndjson.gz.',
        default: '{{stream}}/dt={{yyyy}}-{{MM}}-{{dd}}/hour={{HH}}/{{uuid}}.ndjson.gz',
      },
      compression: {
        enum: ['gzip', 'none'],
        description: 'Object compression.',
        default: 'gzip',
      },
      maxObjectBytes: {
        type: 'integer',
        minimum: 1,
        description:
          "Roll over to a new object after this many uncompressed payload bytes (the sink's batch size; a single record larger than this is dead-lettered as record-too-large).",
        default: 67108864,
      },
      maxObjectRecords: {
        type: 'integer',
        minimum: 1,
        description: "Roll over to a new object after this many records (the sink's batch record limit).",
        default: 1000000,
      },
      maxObjectAgeMs: {
        type: 'integer',
        minimum: 1,
        description:
          "Roll over once the object's first record waited this long (the sink's linger time; streams with durability none write one object per request instead).",
        default: 300000,
      },
      partBytes: {
        type: 'integer',
        minimum: 5242880,
        maximum: 5368709120,
        description:
          'Size of the parts an object is uploaded in while it fills (multipart upload, after gzip); an object smaller than one part is a single PutObject. Each object being written holds one part buffer in memory. S3 wants every part but the last to be at least 5 MiB, and at most 10,000 parts per object.',
        default: 5242880,
      },
      credentials: {
        $ref: '#/definitions/credentials',
      },
      timeoutMs: {
        type: 'integer',
        minimum: 1,
        description:
          'Connect timeout and socket idle timeout of each S3 request; a request that hangs longer fails transiently and the object is written again.',
        default: 30000,
      },
    },
  },
  create: createS3Sink,
})
