import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'

// A FAKE Kinesis Data Streams on a loopback HTTP port, speaking the service's JSON protocol (awsJson1_1:
// POST /, X-Amz-Target: Kinesis_20131202.<Operation>, Data as base64), so the sink's SDK client, its
// serialization and the wire run for real. It models only what the sink relies on: PutRecords stores each
// entry's Data per stream and answers entry by entry (FailedRecordCount, ErrorCode per failed entry, as
// the API documents partial failures); DescribeStreamSummary for the health check; ResourceNotFoundException
// (400, __type) for a stream that does not exist; and an endpoint that is down (`down`: every connection is
// reset). Signatures are not checked; no shards, hash ranges or throughput limits: kinesis-local covers
// those in test/integration/kinesis.test.ts.

interface PutRecordsEntry {
  Data: string
  PartitionKey: string
}

export class FakeKinesis {
  readonly streams = new Map<string, Buffer[]>()
  /** While true every connection is reset, as an endpoint that is down. */
  down = false
  /** The next PutRecords answers these entries (by index) as throttled. */
  private throttleNext: number[] | undefined
  private readonly sockets = new Set<Socket>()

  private constructor(
    private readonly server: Server,
    readonly endpoint: string,
  ) {}

  static async start(streams: string[] = []): Promise<FakeKinesis> {
    const server = createServer((req, res) => void fake.handle(req, res))
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const fake = new FakeKinesis(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`)
    server.on('connection', (socket) => {
      fake.sockets.add(socket)
      socket.on('close', () => fake.sockets.delete(socket))
    })
    for (const s of streams) fake.streams.set(s, [])
    return fake
  }

  throttleEntries(indexes: number[]): void {
    this.throttleNext = indexes
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = []
    for await (const chunk of req) chunks.push(chunk as Buffer)
    if (this.down) {
      req.socket.destroy()
      return
    }
    const operation = String(req.headers['x-amz-target'] ?? '').replace('Kinesis_20131202.', '')
    const input = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Record<string, unknown>
    const name = (input.StreamName as string | undefined) ?? String(input.StreamARN).split('/').at(-1)!
    const stream = this.streams.get(name)
    const answer = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/x-amz-json-1.1' })
      res.end(JSON.stringify(body))
    }
    if (!stream)
      return answer(400, {
        __type: 'ResourceNotFoundException',
        message: `Stream ${name} under account 000000000000 not found.`,
      })
    switch (operation) {
      case 'DescribeStreamSummary':
        return answer(200, {
          StreamDescriptionSummary: { StreamName: name, StreamStatus: 'ACTIVE', OpenShardCount: 1 },
        })
      case 'PutRecords': {
        const throttled = new Set(this.throttleNext ?? [])
        this.throttleNext = undefined
        const entries = (input.Records as PutRecordsEntry[] | undefined) ?? []
        const Records = entries.map((entry, i) => {
          if (throttled.has(i))
            return {
              ErrorCode: 'ProvisionedThroughputExceededException',
              ErrorMessage: 'Rate exceeded for shard shardId-000000000000',
            }
          stream.push(Buffer.from(entry.Data, 'base64'))
          return { SequenceNumber: String(stream.length), ShardId: 'shardId-000000000000' }
        })
        return answer(200, { FailedRecordCount: throttled.size, Records })
      }
      default:
        return answer(400, {
          __type: 'UnknownOperationException',
          message: `the fake does not answer ${operation}`,
        })
    }
  }
}
