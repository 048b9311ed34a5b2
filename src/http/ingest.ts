import { streamBodyLimit } from '../config/load.js'
import type { ServerConfig } from '../config/types.js'
import { problem, type ProblemBody, ProblemError } from '../errors.js'
import type { Gateway } from '../pipeline/gateway.js'
import { RecordRateLimiter } from '../pipeline/rate-limit.js'
import type { StreamRuntime } from '../pipeline/stream.js'
import type { Logger } from '../telemetry/logger.js'
import type { Metrics } from '../telemetry/metrics.js'
import { compileAuth, type CompiledAuth } from './auth.js'
import { checkText, decodeBody, readBody, tooLarge } from './body.js'

// POST /ingest/<stream-id>, step by step as SPEC section 2 orders them: route (404), method (405), source
// address (403), auth headers (401), size (413), encoding (415/400), HMAC (401), framing (400), validation
// (422), rate limit (429), hand-off (503). Transport-agnostic: the lean node:http path and the hono route
// both call `handle`.

export type HeaderMap = Record<string, string | string[] | undefined>

export interface IngestInput {
  streamId: string
  method: string
  /** Lower-case header names. */
  headers: HeaderMap
  remoteAddress?: string
  body: AsyncIterable<Uint8Array>
}

export interface HttpAnswer {
  status: number
  headers: Record<string, string>
  body: string
  /** The client closed the connection before its body was complete: the answer reaches nobody. */
  aborted?: true
  /** For a problem answer: the problem type's short name, for the refusal log. */
  reason?: string
  /**
   * The body was left unread but is small and of declared length: the listener may read and discard it and
   * keep the connection open, instead of closing it.
   */
  drainBody?: true
}

export interface IngestCounts {
  accepted: number
  rejected: number
  filtered: number
  duplicates: number
}

const ACCEPTED_CONTENT_TYPES_MAX = 32

/**
 * GET and HEAD are availability probes: vendors check an endpoint before and while streaming (Azion probes
 * once a minute and discards data for an endpoint it finds unavailable [AZ-REF "Error treatment"]). A probe
 * runs the stream's auth as a POST would and stores nothing.
 */
const PROBE_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD'])
const PROBE_BODY = JSON.stringify({ available: true })
const NO_BODY = Buffer.alloc(0)

const JSON_HEADERS = { 'content-type': 'application/json' }
const PROBLEM_HEADERS = { 'content-type': 'application/problem+json' }

interface StreamHttp {
  auth: CompiledAuth
  /** Undefined: any Content-Type is accepted. */
  contentTypes: string[] | undefined
  /** Content-Type header values already found acceptable (clients send the same one every time). */
  acceptedContentTypes: Set<string>
  limiter?: RecordRateLimiter
  allow: string
}

export class IngestHandler {
  private readonly perStream = new WeakMap<StreamRuntime, StreamHttp>()
  private inFlight = 0

  constructor(
    private readonly gateway: Gateway,
    private readonly server: ServerConfig,
    private readonly metrics: Metrics,
    private readonly logger: Logger,
  ) {}

  async handle(input: IngestInput): Promise<HttpAnswer> {
    const started = performance.now()
    const stream = this.gateway.streams.get(input.streamId)
    if (!stream) {
      const answer = problemAnswer(
        problem(
          'unknown-stream',
          input.streamId === ''
            ? 'the path names no stream; POST to /ingest/<stream-id>'
            : `no stream ${quoteId(input.streamId)} is configured`,
        ),
        unknownInstance(input.streamId),
      )
      this.metrics.ingestAnswered('(unknown)', 404, (performance.now() - started) / 1000)
      return answer
    }
    this.inFlight++
    this.metrics.inFlightChanged(1)
    let answer: HttpAnswer
    try {
      if (PROBE_METHODS.has(input.method)) {
        this.probe(stream, input)
        answer = { status: 200, headers: JSON_HEADERS, body: PROBE_BODY }
      } else {
        const counts = await this.ingest(stream, input)
        answer = { status: 200, headers: JSON_HEADERS, body: JSON.stringify(counts) }
      }
    } catch (err) {
      answer = this.errorAnswer(err, stream, input)
    } finally {
      this.inFlight--
      this.metrics.inFlightChanged(-1)
    }
    // A client abort is not a 400 the client got: counted apart, outside the request and latency figures.
    if (answer.aborted) this.metrics.ingestAborted(stream.id)
    else this.metrics.ingestAnswered(stream.id, answer.status, (performance.now() - started) / 1000)
    return answer
  }

  /**
   * An availability probe: 503 while shutting down, then the stream's source address (403) and header (401)
   * checks; with `auth.hmac`, the signature of the empty body (a probe has none), as an empty POST would need.
   * Not subject to the in-flight bound (it does no work); nothing is read, framed or stored.
   */
  private probe(stream: StreamRuntime, input: IngestInput): void {
    const http = this.httpOf(stream)
    if (this.gateway.isDraining) throw shuttingDown()
    http.auth.checkRequest(input.headers, input.remoteAddress)
    http.auth.checkBody(input.headers, NO_BODY)
  }

  private async ingest(stream: StreamRuntime, input: IngestInput): Promise<IngestCounts> {
    const http = this.httpOf(stream)
    if (!stream.methods.has(input.method))
      throw problem('method-not-allowed', `stream ${stream.id} accepts ${http.allow}`, {
        headers: { allow: http.allow },
      })
    if (this.gateway.isDraining) throw shuttingDown()
    if (this.inFlight > this.server.maxInFlightRequests)
      throw problem('overloaded', 'streamgate is at its in-flight request limit', {
        headers: { 'retry-after': '1' },
      })
    http.auth.checkRequest(input.headers, input.remoteAddress)
    const limit = streamBodyLimit(stream.config, this.server)
    const declared = first(input.headers['content-length'])
    // Admission control: refused at the cost of a header check, before the body is read or parsed.
    const refused = this.gateway.admission.check(stream)
    if (refused) throw drainable(refused, declared)
    if (declared !== undefined && Number(declared) > limit)
      throw tooLarge(limit, 'the declared Content-Length')
    const contentType = first(input.headers['content-type'])
    if (
      http.contentTypes !== undefined &&
      contentType !== undefined &&
      !http.acceptedContentTypes.has(contentType)
    ) {
      checkContentType(contentType, http.contentTypes)
      if (http.acceptedContentTypes.size < ACCEPTED_CONTENT_TYPES_MAX)
        http.acceptedContentTypes.add(contentType)
    }
    const raw = await readBody(
      input.body,
      limit,
      declared === undefined ? undefined : Number(declared),
      this.server.bodyTimeoutMs,
    )
    http.auth.checkBody(input.headers, raw)
    const body = checkText(await decodeBody(raw, first(input.headers['content-encoding']), limit))
    const now = Date.now()
    // Framing and validation take turns with the delivery lanes (src/pipeline/admission.ts, IngestTurns).
    const outcome = await this.gateway.admission.turns.run(() => stream.process(body, now))
    const rejected = Object.values(outcome.rejected).reduce((a, b) => a + b, 0)
    if (http.limiter && outcome.records.length > 0) {
      const wait = http.limiter.take(outcome.records.length)
      if (wait > 0)
        throw problem(
          'rate-limited',
          `stream ${stream.id} accepts ${stream.config.rateLimit!.recordsPerSecond} records/s`,
          {
            headers: { 'retry-after': String(wait) },
          },
        )
    }
    await this.gateway.accept(stream, outcome)
    stream.commit(outcome, now)
    this.metrics.ingestCounts(stream.id, {
      received: outcome.received,
      accepted: outcome.records.length,
      filtered: outcome.filtered,
      duplicates: outcome.duplicates,
      rejected: outcome.rejected,
    })
    // The live figures of the management API and the status page.
    this.gateway.count(stream.id, {
      received: outcome.received,
      accepted: outcome.records.length,
      rejected,
      filtered: outcome.filtered,
      duplicates: outcome.duplicates,
    })
    return {
      accepted: outcome.records.length,
      rejected,
      filtered: outcome.filtered,
      duplicates: outcome.duplicates,
    }
  }

  private errorAnswer(err: unknown, stream: StreamRuntime, input: IngestInput): HttpAnswer {
    if (err instanceof ProblemError) {
      if (err.status === 422) {
        const n = err.errors?.length ?? 0
        this.metrics.ingestCounts(stream.id, {
          received: 0,
          accepted: 0,
          filtered: 0,
          duplicates: 0,
          rejected: { 'request-rejected': n },
        })
        this.gateway.count(stream.id, { received: 0, accepted: 0, rejected: n, filtered: 0, duplicates: 0 })
      }
      const answer = problemAnswer(err, `/ingest/${stream.id}`)
      return drainableRefusals.has(err) ? { ...answer, drainBody: true } : answer
    }
    const code = (err as NodeJS.ErrnoException | undefined)?.code
    if (
      code === 'ECONNRESET' ||
      code === 'ERR_STREAM_PREMATURE_CLOSE' ||
      (err as Error | undefined)?.message === 'aborted'
    )
      return {
        ...problemAnswer(
          problem('aborted', 'the client closed the connection before the body was complete'),
          `/ingest/${stream.id}`,
        ),
        aborted: true,
      }
    this.logger.error({ err, stream: stream.id, method: input.method }, 'ingest failed unexpectedly')
    return problemAnswer(
      problem('internal', 'the request could not be processed; nothing was acknowledged'),
      `/ingest/${stream.id}`,
    )
  }

  private httpOf(stream: StreamRuntime): StreamHttp {
    let http = this.perStream.get(stream)
    if (!http) {
      const rate = stream.config.rateLimit
      http = {
        auth: compileAuth(stream.config.auth),
        // Without `contentTypes`, what the source accepts (src/ingest/sources/; vendor sources: any).
        contentTypes: (stream.config.contentTypes ?? stream.source.contentTypes)?.map((t) => t.toLowerCase()),
        acceptedContentTypes: new Set(),
        allow: [...new Set([...stream.methods, ...PROBE_METHODS])].join(', '),
        ...(rate ? { limiter: new RecordRateLimiter(rate.recordsPerSecond, rate.burstRecords) } : {}),
      }
      this.perStream.set(stream, http)
    }
    return http
  }
}

export function problemAnswer(err: ProblemError, instance?: string): HttpAnswer {
  const body: ProblemBody = err.toBody(instance)
  return {
    status: err.status,
    headers: { ...PROBLEM_HEADERS, ...err.headers },
    body: JSON.stringify(body),
    reason: err.slug,
  }
}

/** Stream ids echoed in answers are cut to this many characters (a path can be 16 KB long). */
const ECHOED_ID_MAX = 128

function cutId(id: string): string {
  return id.length > ECHOED_ID_MAX ? `${id.slice(0, ECHOED_ID_MAX)}…` : id
}

function unknownInstance(id: string): string {
  try {
    return `/ingest/${encodeURIComponent(cutId(id))}`
  } catch {
    return '/ingest/' // a lone surrogate (cut in the middle of a pair) cannot be encoded
  }
}

/** The id as asked for, quoted and escaped (control characters, quotes) so any text reads unambiguously. */
function quoteId(id: string): string {
  return JSON.stringify(cutId(id))
}

function checkContentType(header: string | undefined, allowed: readonly string[]): void {
  if (header === undefined || header === '') return
  const media = header.split(';')[0]!.trim().toLowerCase()
  const [type, subtype] = media.split('/')
  const ok = allowed.some((a) => {
    if (a === media) return true
    if (a.endsWith('/*')) return a.slice(0, -2) === type
    if (a.startsWith(`${type}/*+`)) return subtype?.endsWith(a.slice(a.indexOf('+'))) ?? false
    return false
  })
  if (!ok)
    throw problem(
      'unsupported-media-type',
      `Content-Type "${media}" is not accepted; send JSON, NDJSON or text`,
      {
        extra: { accepted: allowed },
      },
    )
}

/** Refusals whose unread body the listener may drain (see HttpAnswer.drainBody). */
const drainableRefusals = new WeakSet<ProblemError>()

/**
 * Largest unread body an admission refusal drains (reads and discards) to keep the connection: about one
 * socket read. Measured (bench/admission.ts, bench/RESULTS.md "Sustained load"): draining every refused
 * 900 KB body let 32 closed-loop clients push 4× the bytes of the accepted load through the event loop and
 * delivery fell below the no-admission figure; a reconnect costs far less than reading that.
 */
export const ADMISSION_DRAIN_MAX_BYTES = 64 * 1024

/**
 * An admission refusal of a request whose body is not read. A small body of declared length is drained
 * (never parsed) so that the keep-alive connection, and any request pipelined behind it, carries on.
 * Anything else — a larger body, a chunked one (its end cannot be found without parsing chunk framing) —
 * closes the connection instead, as every answer given before the body was read does (src/http/server.ts).
 */
function drainable(problem: ProblemError, declared: string | undefined): ProblemError {
  if (declared !== undefined && /^\d+$/.test(declared) && Number(declared) <= ADMISSION_DRAIN_MAX_BYTES)
    drainableRefusals.add(problem)
  return problem
}

function shuttingDown(): ProblemError {
  return problem('shutting-down', 'streamgate is shutting down; retry shortly', {
    headers: { 'retry-after': '5', connection: 'close' },
  })
}

function first(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value
}
