import type { RetryConfig } from '../config/types.js'
import { problem, type SinkError } from '../errors.js'
import type { SinkRecord } from '../records/record.js'
import type { Sink } from '../sinks/sink.js'
import { type Spool, SpoolFullError } from '../spool/spool.js'
import type { Logger } from '../telemetry/logger.js'
import type { Metrics } from '../telemetry/metrics.js'
import type { CircuitBreaker } from './circuit.js'
import { deliver } from './delivery.js'
import type { HandOff } from './hand-off.js'
import type { ProcessOutcome, StreamRuntime } from './stream.js'

// The HandOff implementations of a one-process gateway (see src/pipeline/hand-off.ts for the contract):
// the spool for `durability: spool`, direct delivery for `durability: none`, and the router between them.

/** How long a `durability: none` request may wait for its sinks: under Azion's 20 s give-up [AZ-REF]. */
export const DIRECT_DELIVERY_TIMEOUT_MS = 15_000

interface HandOffDeps {
  metrics: Metrics
  logger: Logger
}

/** `durability: spool`: safe once appended (and fsynced, per spool.fsync) to the stream's spool log. */
export class SpoolHandOff implements HandOff {
  constructor(
    private readonly spool: Pick<Spool, 'append'>,
    private readonly deps: HandOffDeps,
  ) {}

  async accept(stream: StreamRuntime, outcome: ProcessOutcome): Promise<void> {
    // No draining check here: a request that began before SIGTERM is in flight and must finish.
    const deadLetters = outcome.deadLetters.length
    try {
      const written = this.spool.append(stream.id, outcome.records, outcome.deadLetters, Date.now())
      // The frames are encoded (copies): the request's records need not live until the write is durable
      // (up to a few ms, long enough to be copied by the young generation's collector and promoted). New
      // arrays, not emptied ones: a stream's first append encodes later, from the arrays it was given.
      outcome.records = []
      outcome.deadLetters = []
      await written
    } catch (err) {
      if (err instanceof SpoolFullError) {
        this.deps.metrics.spoolRefused(stream.id)
        throw problem('spool-full', 'the spool is full; records are being delivered, retry shortly', {
          headers: { 'retry-after': '30' },
        })
      }
      this.deps.logger.error({ err, stream: stream.id }, 'spool append failed')
      throw problem('spool-unavailable', 'records could not be stored durably; retry shortly', {
        headers: { 'retry-after': '10' },
        cause: err,
      })
    }
    if (deadLetters > 0) this.deps.metrics.deadLetter(stream.id, 'invalid', deadLetters)
  }

  /** Once Spool.append resolved, the records are in frames it encoded (copies); nothing keeps the outcome. */
  copiesRecords(): boolean {
    return true
  }
}

/** What direct delivery needs of the running topology and of the dead-letter path. */
export interface DirectDeliveryParts {
  sink(name: string): Sink | undefined
  circuit(name: string): CircuitBreaker | undefined
  retry(name: string): RetryConfig
  /** Records a sink rejected permanently: to the stream's dead-letter lane (through the spool). */
  deadLetter(stream: string, sink: string, records: SinkRecord[], error: SinkError): Promise<void>
  /** The request's invalid records, already wrapped: to the stream's dead-letter lane. */
  spoolDeadLetters(stream: string, deadLetters: readonly SinkRecord[]): Promise<void>
  /** A sink refused for good: the stream's status and last error. */
  sinkFailed(stream: string, sink: string, error: SinkError): void
}

/** `durability: none`: safe once every sink acknowledged (within DIRECT_DELIVERY_TIMEOUT_MS). */
export class DirectHandOff implements HandOff {
  constructor(
    private readonly parts: DirectDeliveryParts,
    private readonly deps: HandOffDeps,
  ) {}

  async accept(stream: StreamRuntime, outcome: ProcessOutcome): Promise<void> {
    // A sink whose circuit is open would only make the request wait out the timeout: answer 503 now.
    const open = stream.config.sinks.map((n) => this.parts.circuit(n)).filter((c) => c?.state === 'open')
    if (outcome.records.length > 0 && open.length > 0) {
      const retryAfter = Math.max(1, Math.ceil(Math.max(...open.map((c) => c!.remainingMs)) / 1000))
      throw problem(
        'sink-unavailable',
        `stream ${stream.id} delivers synchronously (durability: none) and a sink's circuit breaker is open`,
        { headers: { 'retry-after': String(retryAfter) } },
      )
    }
    const signal = AbortSignal.timeout(DIRECT_DELIVERY_TIMEOUT_MS)
    const work: Promise<void>[] = []
    if (outcome.records.length > 0)
      for (const name of stream.config.sinks) {
        const sink = this.parts.sink(name)!
        work.push(
          deliver(sink, outcome.records, {
            retry: this.parts.retry(name),
            signal,
            circuit: this.parts.circuit(name),
            metrics: this.deps.metrics,
            logger: this.deps.logger,
            deadLetter: (failed, error) => this.parts.deadLetter(stream.id, name, failed, error),
            onError: (error) => {
              if (!error.retriable) this.parts.sinkFailed(stream.id, name, error)
            },
          }),
        )
      }
    // Dead letters go through the spool even here: the dead-letter sink must not hold up the answer.
    if (outcome.deadLetters.length > 0) work.push(this.parts.spoolDeadLetters(stream.id, outcome.deadLetters))
    const results = await Promise.allSettled(work)
    const failed = results.find((r) => r.status === 'rejected')
    if (failed) {
      this.deps.logger.warn(
        { stream: stream.id, err: (failed.reason as Error).message },
        'direct delivery did not complete in time',
      )
      throw problem(
        'sink-unavailable',
        `stream ${stream.id} delivers synchronously (durability: none) and a sink did not acknowledge within ${DIRECT_DELIVERY_TIMEOUT_MS / 1000} s`,
        { headers: { 'retry-after': '10' } },
      )
    }
    if (outcome.deadLetters.length > 0)
      this.deps.metrics.deadLetter(stream.id, 'invalid', outcome.deadLetters.length)
  }
}

/** Each stream's hand-off by its `durability`. */
export class DurabilityHandOff implements HandOff {
  constructor(
    private readonly durable: HandOff,
    private readonly direct: HandOff,
  ) {}

  accept(stream: StreamRuntime, outcome: ProcessOutcome): Promise<void> {
    return stream.config.durability === 'none'
      ? this.direct.accept(stream, outcome)
      : this.durable.accept(stream, outcome)
  }

  copiesRecords(stream: StreamRuntime): boolean {
    const handOff = stream.config.durability === 'none' ? this.direct : this.durable
    return handOff.copiesRecords?.(stream) === true
  }
}
