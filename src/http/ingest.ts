import { bodyPool } from '../buffer-pool.js'
import { streamBodyLimit } from '../config/load.js'
import type { ServerConfig } from '../config/types.js'
import { problem, type ProblemBody, ProblemError } from '../errors.js'
import type { HeldClient } from '../pipeline/admission.js'
import type { HeaderMap, IngestCounts, IngestEntry, IngestMeta } from '../pipeline/ingest-entry.js'
import { PROBE_METHODS, type StreamRuntime } from '../pipeline/stream.js'
import type { Logger } from '../telemetry/logger.js'
import type { Metrics } from '../telemetry/metrics.js'
import { checkText, decodeBody, readBody, tooLarge } from './body.js'

// POST /ingest/<stream-id> as SPEC section 2 orders the checks: route (404), method (405), source address
// (403), auth headers (401), size (413), encoding (415/400), HMAC (401), framing (400), validation (422),
// rate limit (429), hand-off (503). This file keeps what is HTTP: the route, the method, the in-flight
// bound, the body (limits, timeout, Content-Type, decoding) and the answers; the records go through the
// pipeline's entry (src/pipeline/ingest-entry.ts: `admit` before the body is read, then `ingest`).
// Transport-agnostic: the lean node:http path and the hono route both call `handle`.

export type { HeaderMap, IngestCounts }

export interface IngestInput {
  streamId: string
  method: string
  /** Lower-case header names. */
  headers: HeaderMap
  remoteAddress?: string
  body: AsyncIterable<Uint8Array>
  /** The connection, for a request held by `backpressure: pause` to be let go when the client goes away. */
  client?: HeldClient
  /**
   * Called once every check that needs no body has passed, just before the body is read: the listener sends
   * `100 Continue` here to a client that asked for it (`Expect: 100-continue`), so a refused sender never
   * uploads its body.
   */
  beforeBody?: () => void
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

const PROBE_BODY = JSON.stringify({ available: true })

const JSON_HEADERS = { 'content-type': 'application/json' }
const PROBLEM_HEADERS = { 'content-type': 'application/problem+json' }

export class IngestHandler {
  private inFlight = 0

  constructor(
    private readonly entry: IngestEntry,
    private readonly server: ServerConfig,
    private readonly metrics: Metrics,
    private readonly logger: Logger,
  ) {}

  async handle(input: IngestInput): Promise<HttpAnswer> {
    const started = performance.now()
    const stream = this.entry.stream(input.streamId)
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
        // Not subject to the in-flight bound: a probe does no work.
        this.entry.probe(stream, input)
        answer = { status: 200, headers: JSON_HEADERS, body: PROBE_BODY }
      } else {
        const counts = await this.ingest(stream, input)
        answer = { status: 200, headers: JSON_HEADERS, body: countsBody(counts) }
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

  private async ingest(stream: StreamRuntime, input: IngestInput): Promise<IngestCounts> {
    if (!stream.methods.has(input.method))
      throw problem('method-not-allowed', `stream ${stream.id} accepts ${stream.allow}`, {
        headers: { allow: stream.allow },
      })
    this.entry.checkOpen()
    if (this.inFlight > this.server.maxInFlightRequests)
      throw problem('overloaded', 'streamgate is at its in-flight request limit', {
        headers: { 'retry-after': '1' },
      })
    const meta: IngestMeta = { headers: input.headers, remoteAddress: input.remoteAddress }
    if (input.client) meta.client = input.client
    const limit = streamBodyLimit(stream.config, this.server, stream.source.defaults?.minBodyBytes)
    const declared = first(input.headers['content-length'])
    // Admission control: refused at the cost of a header check, before the body is read or parsed; a stream
    // with `backpressure: pause` may instead wait here, its body unread (src/pipeline/admission.ts).
    let refused = this.entry.admit(stream, meta)
    if (refused instanceof Promise) refused = await refused
    if (refused) throw drainable(refused, declared)
    if (declared !== undefined && Number(declared) > limit)
      throw tooLarge(limit, 'the declared Content-Length')
    stream.checkContentType(first(input.headers['content-type']))
    const declaredBytes = declared === undefined ? undefined : Number(declared)
    // A large body waits, unread, while requests under way hold enough large bodies (IngestTurns.roomToRead).
    const room = this.entry.roomToRead(declaredBytes)
    const ticket = room instanceof Promise ? await room : room
    let counts: IngestCounts
    let raw: Buffer
    try {
      input.beforeBody?.()
      raw = await readBody(input.body, limit, declaredBytes, this.server.bodyTimeoutMs)
      ticket?.read()
      const encoding = first(input.headers['content-encoding'])
      counts = await this.entry.ingest(
        stream,
        raw,
        meta,
        async (bytes) => checkText(await decodeBody(bytes, encoding, limit)),
        ticket,
      )
    } finally {
      ticket?.done()
    }
    // Accepted, and the hand-off copied the records (the spool's frames): nothing holds a view into the body
    // any more, so the next request may read into it. On any refusal the body is left to the collector.
    if (this.entry.copiesRecords(stream)) bodyPool.give(raw)
    return counts
  }

  private errorAnswer(err: unknown, stream: StreamRuntime, input: IngestInput): HttpAnswer {
    if (err instanceof ProblemError) {
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
}

/** The body of a 200 without rejections, filtered or duplicates, by accepted count (one-record requests: 1). */
const ACCEPTED_BODIES: string[] = []
for (let accepted = 0; accepted <= 16; accepted++)
  ACCEPTED_BODIES.push(JSON.stringify({ accepted, rejected: 0, filtered: 0, duplicates: 0 }))

/**
 * The 200's body, `{"accepted":…,"rejected":…,"filtered":…,"duplicates":…}`: pre-built for the common small
 * all-accepted answers, else JSON.stringify (the same text: a test compares them).
 */
export function countsBody(counts: IngestCounts): string {
  const { accepted } = counts
  if (
    counts.rejected === 0 &&
    counts.filtered === 0 &&
    counts.duplicates === 0 &&
    accepted < ACCEPTED_BODIES.length
  )
    return ACCEPTED_BODIES[accepted]!
  return JSON.stringify(counts)
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

function first(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value
}
