import type { HttpSinkConfig } from '../../config/types.js'
import { permanentError, SinkError, transientError } from '../../errors.js'
import {
  ALL_WRITTEN,
  batchLimits,
  ndjsonChunks,
  type Sink,
  type SinkContext,
  type SinkRecord,
  type WriteResult,
} from '../sink.js'
import { describe, gzip, HttpClient, statusError, writeOutcome, type IndexedFailure } from '../http-client.js'

// The http sink: one request per write to `url`, carrying the batch's records byte for byte as
//   ndjson      every payload followed by "\n"                (Content-Type: application/x-ndjson)
//   json-array  "[" + payloads joined by "," + "]"            (Content-Type: application/json)
// optionally gzip-compressed (Content-Encoding: gzip). Pointed at another streamgate's
// `/ingest/<ndjson or json stream>` it is the edge relay of SPEC section 1.
// Answers: 2xx = every record delivered; 408, 429, 5xx, network errors and timeouts are transient
// (Retry-After honoured); any other status is permanent with reason `http-<status>`.
// 413 Payload Too Large: nothing of the request was taken, and resending the same batch would only get 413
// again (the delivery layer resends failed records together). So a multi-record batch is halved and the
// halves are sent within the same write (recursively); only a single record the target refuses as too
// large is permanent (`record-too-large`). A 413 is logged once per sink as a hint to lower maxBatchBytes.

// lingerMs 0: a lane sends what the spool holds at once; while a request is in flight records pile up, so
// batches grow with the load by themselves.
const HTTP_DEFAULTS = {
  maxBatchRecords: 1000,
  maxBatchBytes: 4 * 1024 * 1024,
  lingerMs: 0,
  maxRecordBytes: 4 * 1024 * 1024,
}

/** Framing headers are the sink's own: a configured value would corrupt the request. */
const RESERVED_HEADERS = new Set([
  'content-length',
  'content-encoding',
  'transfer-encoding',
  'host',
  'connection',
])

const NDJSON_TYPE = 'application/x-ndjson'
const JSON_TYPE = 'application/json'
const OPEN = Buffer.from('[')
const COMMA = Buffer.from(',')
const CLOSE = Buffer.from(']')

export function createHttpSink(name: string, config: HttpSinkConfig, context: SinkContext): Sink {
  return new HttpSink(name, config, context)
}

class HttpSink implements Sink {
  readonly type = 'http' as const
  readonly limits
  private readonly url: URL
  private readonly headers: Record<string, string>
  private readonly http: HttpClient
  private closed = false
  private warned413 = false

  constructor(
    readonly name: string,
    private readonly config: HttpSinkConfig,
    private readonly context: SinkContext,
  ) {
    this.limits = batchLimits(config, HTTP_DEFAULTS)
    try {
      this.url = new URL(config.url)
    } catch {
      throw new Error(`sinks.${name}.url: not a URL`)
    }
    if (this.url.protocol !== 'http:' && this.url.protocol !== 'https:')
      throw new Error(`sinks.${name}.url: must be http:// or https://`)
    const headers: Record<string, string> = {
      'content-type': config.format === 'json-array' ? JSON_TYPE : NDJSON_TYPE,
    }
    for (const [key, value] of Object.entries(config.headers ?? {})) {
      const lower = key.toLowerCase()
      if (!RESERVED_HEADERS.has(lower)) headers[lower] = value
    }
    if (config.compression === 'gzip') headers['content-encoding'] = 'gzip'
    this.headers = headers
    this.http = new HttpClient({ timeoutMs: config.timeoutMs })
  }

  async write(batch: readonly SinkRecord[], signal: AbortSignal): Promise<WriteResult> {
    if (this.closed) throw transientError('http sink is closed', 'closed')
    if (batch.length === 0) return ALL_WRITTEN
    const failed: IndexedFailure[] = []
    await this.send(batch, 0, signal, failed)
    return failed.length === 0 ? ALL_WRITTEN : writeOutcome(failed, batch.length)
  }

  /** Sends `records` (at `offset` in the write's batch) and appends what failed to `failed`. */
  private async send(
    records: readonly SinkRecord[],
    offset: number,
    signal: AbortSignal,
    failed: IndexedFailure[],
  ): Promise<void> {
    const failAll = (error: SinkError): void => {
      for (let i = 0; i < records.length; i++) failed.push({ index: offset + i, error })
    }
    let body = this.encode(records)
    if (this.config.compression === 'gzip') body = await gzip(body)
    let answer
    try {
      answer = await this.http.request({
        url: this.url,
        method: this.config.method,
        headers: this.headers,
        body,
        signal,
      })
    } catch (err) {
      if (signal.aborted || !(err instanceof SinkError)) throw err
      failAll(err)
      return
    }
    if (answer.status >= 200 && answer.status <= 299) return
    if (answer.status === 413) {
      if (records.length === 1) {
        failAll(
          permanentError(
            `${this.what()} answered 413: a single record of ${records[0]!.payload.length} bytes is too large`,
            'record-too-large',
          ),
        )
        return
      }
      if (!this.warned413) {
        this.warned413 = true
        this.context.logger.warn(
          { sink: this.name, records: records.length, bytes: body.length },
          'target answered 413 Payload Too Large; splitting batches (lower maxBatchBytes to avoid this)',
        )
      }
      const half = Math.ceil(records.length / 2)
      await this.send(records.slice(0, half), offset, signal, failed)
      await this.send(records.slice(half), offset + half, signal, failed)
      return
    }
    failAll(statusError(answer, 'http', this.what()))
  }

  private encode(records: readonly SinkRecord[]): Buffer {
    if (this.config.format === 'ndjson') return Buffer.concat(ndjsonChunks(records))
    const chunks: Buffer[] = new Array<Buffer>(records.length * 2 + 1)
    chunks[0] = OPEN
    for (let i = 0; i < records.length; i++) {
      chunks[2 * i + 1] = records[i]!.payload
      chunks[2 * i + 2] = i === records.length - 1 ? CLOSE : COMMA
    }
    return Buffer.concat(chunks)
  }

  private what(): string {
    return describe({ method: this.config.method, url: this.url })
  }

  /** HEAD on the URL: any answer below 500 shows the target is reachable (an ingest route may answer 405). */
  async healthcheck(signal: AbortSignal): Promise<void> {
    const headers = { ...this.headers }
    delete headers['content-encoding']
    const answer = await this.http.request({ url: this.url, method: 'HEAD', headers, signal })
    if (answer.status >= 500) throw statusError(answer, 'http', describe({ method: 'HEAD', url: this.url }))
  }

  async close(): Promise<void> {
    this.closed = true
    await this.http.close()
  }
}
