import { createHash } from 'node:crypto'
import { S3ServiceException, type ServiceInputTypes, type ServiceOutputTypes } from '@aws-sdk/client-s3'
import type { InitializeMiddleware } from '@smithy/types'
import { S3_MIN_PART_BYTES, type S3Sink } from '../../../src/sinks/s3/sink.js'

// A FAKE S3 held in memory, answering the s3 sink's SDK commands in-process (a client middleware at the
// `initialize` step: the sink's own code runs whole, only the SDK's serialization and the wire are skipped).
// It models what the sink relies on, the way S3 does: Content-MD5 checked, PutObject, multipart uploads
// (parts assembled at CompleteMultipartUpload, EntityTooSmall for a part under 5 MiB but the last, uploads
// listed by prefix, aborted), HeadBucket, NoSuchBucket for a bucket in `missingBuckets`, an unreachable
// endpoint (`down`) and failures injected by command. test/integration/s3.test.ts runs against MinIO.

export const s3ServiceError = (name: string, status: number): Error =>
  new S3ServiceException({
    name,
    $fault: status >= 500 ? 'server' : 'client',
    $metadata: { httpStatusCode: status },
    message: name,
  })
const serviceError = s3ServiceError

interface MemoryUpload {
  bucket: string
  key: string
  parts: Map<number, Buffer>
}

export class MemoryS3 {
  readonly objects = new Map<string, { body: Buffer; metadata?: Record<string, string>; parts: number }>()
  readonly uploads = new Map<string, MemoryUpload>()
  readonly commands: string[] = []
  /** Fails the command of this name the nth time it is seen (1-based). */
  failures: { command: string; nth: number; error: Error }[] = []
  /** While true every command fails as an unreachable endpoint does. */
  down = false
  /** Buckets that do not exist (every other bucket does). */
  readonly missingBuckets = new Set<string>()
  private nextId = 0
  private readonly seen = new Map<string, number>()

  attach(sink: S3Sink): void {
    const answer: InitializeMiddleware<ServiceInputTypes, ServiceOutputTypes> =
      (_, context) => async (args) => {
        const output = this.handle(context.commandName ?? '', args.input as Record<string, unknown>)
        return { output: { $metadata: {}, ...output } as ServiceOutputTypes, response: {} }
      }
    sink.client.middlewareStack.add(answer, { step: 'initialize', name: 'memoryS3' })
  }

  inProgress(): { key: string; uploadId: string }[] {
    return [...this.uploads].map(([uploadId, u]) => ({ key: u.key, uploadId }))
  }

  /** Answers one command as S3 would (tests call it to make uploads of other writers). */
  handle(command: string, input: Record<string, unknown>): Record<string, unknown> {
    this.commands.push(command)
    const nth = (this.seen.get(command) ?? 0) + 1
    this.seen.set(command, nth)
    const failure = this.failures.find((f) => f.command === command && f.nth === nth)
    if (failure) throw failure.error
    if (this.down)
      throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9000'), { code: 'ECONNREFUSED' })
    if (this.missingBuckets.has(input.Bucket as string)) throw serviceError('NoSuchBucket', 404)
    const body = input.Body as Buffer | undefined
    if (body && input.ContentMD5 !== createHash('md5').update(body).digest('base64'))
      throw serviceError('BadDigest', 400)
    const key = `${input.Bucket as string}/${input.Key as string}`
    switch (command) {
      case 'HeadBucketCommand':
        return {}
      case 'PutObjectCommand':
        this.objects.set(key, { body: Buffer.from(body!), metadata: input.Metadata as never, parts: 0 })
        return { ETag: '"e"' }
      case 'CreateMultipartUploadCommand': {
        const UploadId = `upload-${++this.nextId}`
        this.uploads.set(UploadId, {
          bucket: input.Bucket as string,
          key: input.Key as string,
          parts: new Map(),
        })
        return { UploadId }
      }
      case 'UploadPartCommand': {
        const upload = this.uploads.get(input.UploadId as string)
        if (!upload) throw serviceError('NoSuchUpload', 404)
        upload.parts.set(input.PartNumber as number, Buffer.from(body!))
        return { ETag: `"part-${input.PartNumber as number}"` }
      }
      case 'CompleteMultipartUploadCommand': {
        const upload = this.uploads.get(input.UploadId as string)
        if (!upload) throw serviceError('NoSuchUpload', 404)
        const parts = (input.MultipartUpload as { Parts: { PartNumber: number }[] }).Parts
        const sizes = parts.map((p) => upload.parts.get(p.PartNumber)!.length)
        // Every part but the last at least 5 MiB, or S3 answers EntityTooSmall.
        if (sizes.slice(0, -1).some((n) => n < S3_MIN_PART_BYTES)) throw serviceError('EntityTooSmall', 400)
        this.objects.set(key, {
          body: Buffer.concat(parts.map((p) => upload.parts.get(p.PartNumber)!)),
          parts: parts.length,
        })
        this.uploads.delete(input.UploadId as string)
        return { ETag: `"x-${parts.length}"` }
      }
      case 'AbortMultipartUploadCommand':
        if (!this.uploads.delete(input.UploadId as string)) throw serviceError('NoSuchUpload', 404)
        return {}
      case 'ListMultipartUploadsCommand':
        return {
          IsTruncated: false,
          Uploads: [...this.uploads]
            .filter(([, u]) => u.bucket === input.Bucket && u.key.startsWith(input.Prefix as string))
            .map(([UploadId, u]) => ({ Key: u.key, UploadId })),
        }
      default:
        throw new Error(`memory S3 does not answer ${command}`)
    }
  }
}
