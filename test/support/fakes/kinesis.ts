import {
  KinesisServiceException,
  type PutRecordsInput,
  type PutRecordsResultEntry,
  type ServiceInputTypes,
  type ServiceOutputTypes,
} from '@aws-sdk/client-kinesis'
import type { InitializeMiddleware } from '@smithy/types'
import type { KinesisSink } from '../../../src/sinks/kinesis/sink.js'

// A FAKE Kinesis Data Streams, answering the sink's SDK commands in-process (a client middleware at the
// `initialize` step, so the sink's own code runs whole and only the SDK's serialization and the wire are
// skipped). It models what the sink relies on: PutRecords stores each entry's Data per stream and answers
// entry by entry (FailedRecordCount, ErrorCode per failed entry, as the API documents partial failures),
// DescribeStreamSummary for the health check, ResourceNotFoundException for a stream that does not exist,
// and a service that is down (a network error, as the SDK reports a refused connection). No shards, hash
// ranges or throughput limits: kinesis-local covers the wire in test/integration/kinesis.test.ts.

export class FakeKinesis {
  readonly streams = new Map<string, Buffer[]>()
  /** While true every call fails as an unreachable endpoint does. */
  down = false
  /** The next PutRecords answers these entries (by index) as throttled. */
  private throttleNext: number[] | undefined

  constructor(streams: string[] = []) {
    for (const s of streams) this.streams.set(s, [])
  }

  throttleEntries(indexes: number[]): void {
    this.throttleNext = indexes
  }

  attach(sink: KinesisSink): KinesisSink {
    const answer: InitializeMiddleware<ServiceInputTypes, ServiceOutputTypes> =
      (_, context) => async (args) => {
        const output = this.handle(context.commandName ?? '', args.input as Record<string, unknown>)
        return { output: { $metadata: {}, ...output } as ServiceOutputTypes, response: {} }
      }
    sink.client.middlewareStack.add(answer, { step: 'initialize', name: 'fakeKinesis' })
    return sink
  }

  private stream(input: Record<string, unknown>): Buffer[] {
    const name = (input.StreamName as string | undefined) ?? String(input.StreamARN).split('/').at(-1)!
    const stream = this.streams.get(name)
    if (!stream)
      throw new KinesisServiceException({
        name: 'ResourceNotFoundException',
        $fault: 'client',
        $metadata: { httpStatusCode: 400 },
        message: `Stream ${name} under account 000000000000 not found.`,
      })
    return stream
  }

  private handle(command: string, input: Record<string, unknown>): Record<string, unknown> {
    if (this.down)
      throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:4567'), { code: 'ECONNREFUSED' })
    const stream = this.stream(input)
    switch (command) {
      case 'DescribeStreamSummaryCommand':
        return { StreamDescriptionSummary: { StreamStatus: 'ACTIVE', OpenShardCount: 1 } }
      case 'PutRecordsCommand': {
        const throttled = new Set(this.throttleNext ?? [])
        this.throttleNext = undefined
        const entries = (input as unknown as PutRecordsInput).Records ?? []
        const Records: PutRecordsResultEntry[] = entries.map((entry, i) => {
          if (throttled.has(i))
            return {
              ErrorCode: 'ProvisionedThroughputExceededException',
              ErrorMessage: 'Rate exceeded for shard shardId-000000000000',
            }
          stream.push(Buffer.from(entry.Data!))
          return { SequenceNumber: String(stream.length), ShardId: 'shardId-000000000000' }
        })
        return { FailedRecordCount: throttled.size, Records }
      }
      default:
        throw new Error(`the fake Kinesis does not answer ${command}`)
    }
  }
}
