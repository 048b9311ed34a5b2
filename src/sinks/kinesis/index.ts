import { defineSink } from '../define.js'
import { createKinesisSink } from './sink.js'

export const kinesisSink = defineSink({
  type: 'kinesis',
  description: 'Amazon Kinesis Data Streams (PutRecords, only failed entries retried)',
  options: {
    type: 'object',
    additionalProperties: false,
    properties: {
      streamName: {
        type: 'string',
        minLength: 1,
        description: 'Kinesis data stream name.',
      },
      streamArn: {
        type: 'string',
        minLength: 1,
        description: 'Kinesis data stream ARN (instead of streamName).',
      },
      region: {
        type: 'string',
        description: "AWS region (default: the SDK's region chain).",
      },
      endpoint: {
        type: 'string',
        description: 'Endpoint override (e.g. a local emulator).',
      },
      partitionKey: {
        type: 'string',
        description: 'Partition key template; default the record id, else random.',
      },
      credentials: {
        $ref: '#/definitions/credentials',
      },
      timeoutMs: {
        type: 'integer',
        minimum: 1,
        description:
          'Connect timeout and socket idle timeout of each Kinesis request; a request that hangs longer fails transiently and is retried.',
        default: 30000,
      },
      maxParallelCalls: {
        type: 'integer',
        minimum: 1,
        maximum: 64,
        description:
          "PutRecords calls (each at most 500 records / 5 MiB) in flight at once for one lane: a lane that is behind takes a batch of up to this many calls' worth and sends them in parallel; Kinesis routes every entry to its shard. 1 sends one call at a time.",
        default: 4,
      },
    },
    oneOf: [
      {
        required: ['streamName'],
      },
      {
        required: ['streamArn'],
      },
    ],
  },
  create: createKinesisSink,
})
