import { createHash } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'

// A FAKE S3 on a loopback HTTP port (path-style URLs: /<bucket>/<key>), so the sink's SDK client, its
// serialization and the wire run for real. It models only what the sink's conformance run needs:
// PutObject (Content-MD5 checked, as S3 does: BadDigest), HeadBucket, NoSuchBucket (404, S3's XML error
// body) for a bucket that does not exist, and an endpoint that is down (`down`: every connection is reset).
// Multipart uploads are not modelled (objects under one part are single PutObjects): the in-memory S3 of
// the sink's unit tests (s3.ts here) and MinIO (test/integration/s3.test.ts) cover them. Signatures are
// not checked.

export class FakeS3Server {
  readonly objects = new Map<string, Buffer>()
  readonly buckets = new Set<string>()
  /** While true every connection is reset, as an endpoint that is down. */
  down = false
  private readonly sockets = new Set<Socket>()

  private constructor(
    private readonly server: Server,
    readonly endpoint: string,
  ) {}

  static async start(buckets: string[] = []): Promise<FakeS3Server> {
    const server = createServer((req, res) => void fake.handle(req, res))
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const fake = new FakeS3Server(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`)
    server.on('connection', (socket) => {
      fake.sockets.add(socket)
      socket.on('close', () => fake.sockets.delete(socket))
    })
    for (const b of buckets) fake.buckets.add(b)
    return fake
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
    const body = Buffer.concat(chunks)
    const url = new URL(req.url ?? '/', 'http://fake')
    const [bucket = '', ...rest] = url.pathname.slice(1).split('/')
    const key = decodeURIComponent(rest.join('/'))
    const error = (status: number, code: string, message: string): void => {
      res.writeHead(status, { 'content-type': 'application/xml' })
      res.end(
        req.method === 'HEAD'
          ? undefined
          : `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message><BucketName>${bucket}</BucketName><RequestId>fake</RequestId></Error>`,
      )
    }
    if (!this.buckets.has(bucket)) return error(404, 'NoSuchBucket', 'The specified bucket does not exist')
    if (req.method === 'HEAD' && key === '') {
      res.writeHead(200)
      res.end()
      return
    }
    const multipart = ['uploads', 'uploadId', 'partNumber'].some((p) => url.searchParams.has(p))
    if (req.method === 'PUT' && key !== '' && !multipart) {
      const md5 = req.headers['content-md5']
      if (md5 !== undefined && md5 !== createHash('md5').update(body).digest('base64'))
        return error(400, 'BadDigest', 'The Content-MD5 you specified did not match what we received.')
      this.objects.set(`${bucket}/${key}`, body)
      res.writeHead(200, { etag: `"${createHash('md5').update(body).digest('hex')}"` })
      res.end()
      return
    }
    error(501, 'NotImplemented', `the fake S3 does not answer ${req.method ?? ''} ${url.search}`)
  }
}
