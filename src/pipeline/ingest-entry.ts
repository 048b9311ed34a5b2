import { ProblemError, problem } from '../errors.js'
import type { Metrics } from '../telemetry/metrics.js'
import { INGEST_SMALL_BODY_BYTES, type Admission, type HeldClient, type ReadTicket } from './admission.js'
import type { HandOff } from './hand-off.js'
import type { StreamRuntime } from './stream.js'

// The pipeline's one way in for a request's records, whatever carried them (src/http/ingest.ts today):
//   admit   — before the body is read: stream's source address (403) and headers (401), admission (503);
//   ingest  — HMAC over the raw body (401), decoding (the carrier's), framing (400), validation (422),
//             rate limit (429), hand-off (503), dedupe commit, counts.
// Refusals are ProblemErrors of a kind (src/errors.ts PROBLEM_KINDS chooses the status); the carrier only
// turns them into answers.

export type HeaderMap = Record<string, string | string[] | undefined>

/** What the pipeline needs of a request besides its body. */
export interface IngestMeta {
  /** Lower-case header names: the stream's auth headers and HMAC signature are read from them. */
  headers: HeaderMap
  /** The peer's address, for `auth.allowCidrs`. */
  remoteAddress?: string | undefined
  /** The records' receive time (ms since the epoch); now when not given. */
  now?: number
  /** The client's connection: a request held by `backpressure: pause` is let go when it closes. */
  client?: HeldClient
}

/** What a request's records became (the 200 answer's body). */
export interface IngestCounts {
  accepted: number
  rejected: number
  filtered: number
  duplicates: number
}

/** A stream's live figures (the management API and status page): totals of the requests' counts. */
export interface StreamCounts {
  received: number
  accepted: number
  rejected: number
  filtered: number
  duplicates: number
}

export interface IngestEntryParts {
  /** The streams as they are now (a config change replaces a runtime; requests keep the one they began on). */
  stream(id: string): StreamRuntime | undefined
  admission: Pick<Admission, 'admit' | 'turns'>
  handOff: HandOff
  /** Adds a request's outcome to the stream's live figures. */
  count(stream: string, counts: StreamCounts): void
  /** True once the gateway stops accepting (SIGTERM): new requests are refused with 503. */
  isDraining(): boolean
  metrics: Pick<Metrics, 'ingestCounts'>
}

/** Decodes the raw body (Content-Encoding) into the text to frame; the carrier's, as it knows the headers. */
export type BodyDecoder = (raw: Buffer) => Promise<Buffer>

const NO_BODY = Buffer.alloc(0)
const identity: BodyDecoder = (raw) => Promise.resolve(raw)

export class IngestEntry {
  constructor(private readonly parts: IngestEntryParts) {}

  stream(id: string): StreamRuntime | undefined {
    return this.parts.stream(id)
  }

  get isDraining(): boolean {
    return this.parts.isDraining()
  }

  /** Refuses new work while shutting down (503 with Retry-After). */
  checkOpen(): void {
    if (this.parts.isDraining()) throw shuttingDown()
  }

  /**
   * An availability probe: 503 while shutting down, then the stream's source address (403) and header (401)
   * checks; with `auth.hmac`, the signature of the empty body (a probe has none), as an empty POST would need.
   * Nothing is read, framed or stored.
   */
  probe(stream: StreamRuntime, meta: IngestMeta): void {
    this.checkOpen()
    stream.auth.checkRequest(meta.headers, meta.remoteAddress)
    stream.auth.checkBody(meta.headers, NO_BODY)
  }

  /**
   * The checks that cost no body: the stream's source address (403) and headers (401) are thrown; the
   * admission refusal (503: spool above its high-water mark, a lane over its lag budget) is returned, so that
   * the carrier, which knows what is left unread, decides whether to drain the body or close. A stream with
   * `backpressure: pause` gets a promise instead while admission would refuse: the request waits, body unread,
   * until it is admitted (undefined) or `spool.maxPauseMs` passed (the refusal), or its client (`meta.client`)
   * closes the connection (a problem of type aborted, which nobody receives).
   */
  admit(
    stream: StreamRuntime,
    meta: IngestMeta,
  ): ProblemError | undefined | Promise<ProblemError | undefined> {
    stream.auth.checkRequest(meta.headers, meta.remoteAddress)
    return this.parts.admission.admit(stream, meta.client)
  }

  /**
   * Call before reading a body of `declaredBytes`: a large body gets a ticket (`read()` once it is read,
   * `done()` when its request ends), at once or, while requests under way hold enough large bodies, once
   * there is room (IngestTurns.roomToRead). Small bodies and bodies of unknown length: undefined, no wait.
   */
  roomToRead(declaredBytes: number | undefined): ReadTicket | Promise<ReadTicket> | undefined {
    if (declaredBytes === undefined || !(declaredBytes > INGEST_SMALL_BODY_BYTES)) return undefined
    return this.parts.admission.turns.roomToRead()
  }

  /**
   * Runs a body through the stream and hands the outcome off; resolves with the counts once the records are
   * safe (see HandOff). Call `admit` first. Throws ProblemErrors by kind. `ticket` (roomToRead) is told
   * when the records are handed off.
   */
  async ingest(
    stream: StreamRuntime,
    raw: Buffer,
    meta: IngestMeta,
    decode: BodyDecoder = identity,
    ticket?: ReadTicket,
  ): Promise<IngestCounts> {
    stream.auth.checkBody(meta.headers, raw)
    const body = await decode(raw)
    const now = meta.now ?? Date.now()
    let outcome
    try {
      // Framing and validation take turns with the delivery lanes (src/pipeline/admission.ts, IngestTurns).
      // A small body runs whole; a large one in slices of the turn's budget (StreamRuntime.processSliced).
      outcome =
        body.length <= INGEST_SMALL_BODY_BYTES
          ? await this.parts.admission.turns.run(() => stream.process(body, now), true)
          : await this.parts.admission.turns.runSliced((slice) => stream.processSliced(body, now, slice))
    } catch (err) {
      if (err instanceof ProblemError && err.slug === 'invalid-records') this.countRefused(stream, err)
      throw err
    }
    const rejected = Object.values(outcome.rejected).reduce((a, b) => a + b, 0)
    // Counted now: the hand-off may let go of the records once it copied them (HandOff.accept).
    const accepted = outcome.records.length
    if (stream.limiter && accepted > 0) {
      const wait = stream.limiter.take(accepted)
      if (wait > 0)
        throw problem(
          'rate-limited',
          `stream ${stream.id} accepts ${stream.config.rateLimit!.recordsPerSecond} records/s`,
          { headers: { 'retry-after': String(wait) } },
        )
    }
    ticket?.handedOff()
    await this.parts.handOff.accept(stream, outcome)
    // No await between the hand-off and the commit (StreamRuntime.commit, pipeline/dedupe.ts).
    stream.commit(outcome, now)
    this.parts.metrics.ingestCounts(stream.id, {
      received: outcome.received,
      accepted,
      filtered: outcome.filtered,
      duplicates: outcome.duplicates,
      rejected: outcome.rejected,
    })
    this.parts.count(stream.id, {
      received: outcome.received,
      accepted,
      rejected,
      filtered: outcome.filtered,
      duplicates: outcome.duplicates,
    })
    return {
      accepted,
      rejected,
      filtered: outcome.filtered,
      duplicates: outcome.duplicates,
    }
  }

  /**
   * True when, once `ingest` resolved, nothing of the pipeline holds a view into the request's body: the
   * stream's hand-off copied the records (see HandOff.copiesRecords). The carrier may then reuse the body's
   * buffer.
   */
  copiesRecords(stream: StreamRuntime): boolean {
    return this.parts.handOff.copiesRecords?.(stream) === true
  }

  /** A request refused whole for its invalid records (422): they count as rejected, none as received. */
  private countRefused(stream: StreamRuntime, err: ProblemError): void {
    const n = err.errors?.length ?? 0
    this.parts.metrics.ingestCounts(stream.id, {
      received: 0,
      accepted: 0,
      filtered: 0,
      duplicates: 0,
      rejected: { 'request-rejected': n },
    })
    this.parts.count(stream.id, { received: 0, accepted: 0, rejected: n, filtered: 0, duplicates: 0 })
  }
}

function shuttingDown(): ProblemError {
  return problem('shutting-down', 'streamgate is shutting down; retry shortly', {
    headers: { 'retry-after': '5', connection: 'close' },
  })
}
