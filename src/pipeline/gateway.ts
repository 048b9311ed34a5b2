import { dirname, resolve } from 'node:path'
import type { FileSinkConfig, GatewayConfig, SinkConfig } from '../config/types.js'
import { ProblemError, type SinkError } from '../errors.js'
import { deadLetterRecord } from '../records/dead-letter.js'
import type { SinkRecord } from '../records/record.js'
import { createSink } from '../sinks/registry.js'
import type { Sink } from '../sinks/sink.js'
import type { Logger } from '../telemetry/logger.js'
import type { Metrics } from '../telemetry/metrics.js'
import { Validators } from '../validate/validators.js'
import { deliver } from './delivery.js'
import { StreamRuntime, type ProcessOutcome } from './stream.js'

/** Streams without `deadLetter` use the sink of this name; unless configured, a file sink under ./data. */
export const DEFAULT_DEAD_LETTER_SINK = 'dead-letter'

/** How long a `durability: none` request may wait for its sinks: under Azion's 20 s give-up [AZ-REF]. */
export const DIRECT_DELIVERY_TIMEOUT_MS = 15_000

export interface GatewayDeps {
  logger: Logger
  metrics: Metrics
}

/**
 * The running topology: compiled streams, live sinks and the hand-off between them. Ingest calls
 * `accept`, which resolves only once every accepted record is safe (delivered, for now: see README).
 */
export class Gateway {
  readonly streams = new Map<string, StreamRuntime>()
  readonly sinks = new Map<string, Sink>()
  readonly validators = new Validators()
  private draining = false

  constructor(
    readonly config: GatewayConfig,
    private readonly deps: GatewayDeps,
  ) {
    for (const [name, sinkConfig] of Object.entries(this.sinkConfigs())) {
      this.sinks.set(name, createSink(name, sinkConfig, { logger: deps.logger.child({ sink: name }) }))
    }
    for (const [id, streamConfig] of Object.entries(config.streams)) {
      this.streams.set(id, new StreamRuntime(id, streamConfig, this.validators))
    }
  }

  /** The configured sinks plus the implicit default dead-letter file sink when a stream relies on it. */
  private sinkConfigs(): Record<string, SinkConfig> {
    const sinks: Record<string, SinkConfig> = { ...this.config.sinks }
    const needsDefault = Object.values(this.config.streams).some((s) => s.deadLetter === undefined)
    if (needsDefault && !Object.hasOwn(sinks, DEFAULT_DEAD_LETTER_SINK)) {
      const fileDefaults: FileSinkConfig = {
        type: 'file',
        dir: resolve(dirname(resolve(this.config.spool.dir)), 'dead-letter'),
        prefix: 'dead-letter',
        maxFileBytes: 100 * 1024 * 1024,
        maxFileAgeMs: 3_600_000,
        fsync: true,
        retry: { initialMs: 200, maxMs: 30_000, maxAttempts: 0 },
      }
      sinks[DEFAULT_DEAD_LETTER_SINK] = fileDefaults
    }
    return sinks
  }

  get isDraining(): boolean {
    return this.draining
  }

  deadLetterSinkOf(stream: StreamRuntime): Sink {
    return this.sinks.get(stream.config.deadLetter ?? DEFAULT_DEAD_LETTER_SINK)!
  }

  /** Resolves once every accepted and dead-lettered record of the request is safe; else a 503 problem. */
  async accept(stream: StreamRuntime, outcome: ProcessOutcome): Promise<void> {
    // No draining check here: a request that began before SIGTERM is in flight and must finish.
    const signal = AbortSignal.timeout(DIRECT_DELIVERY_TIMEOUT_MS)
    const work: Promise<void>[] = []
    if (outcome.records.length > 0)
      for (const name of stream.config.sinks)
        work.push(this.deliverTo(stream, this.sinks.get(name)!, outcome.records, signal))
    if (outcome.deadLetters.length > 0)
      work.push(this.deliverDeadLetters(stream, outcome.deadLetters, signal))
    const results = await Promise.allSettled(work)
    const failed = results.find((r) => r.status === 'rejected')
    if (failed) {
      this.deps.logger.warn(
        { stream: stream.id, err: (failed.reason as Error).message },
        'delivery did not complete in time',
      )
      throw new ProblemError(
        503,
        'sink-unavailable',
        'Records could not be delivered',
        `stream ${stream.id} delivers synchronously (durability: none) and a sink did not acknowledge within ${DIRECT_DELIVERY_TIMEOUT_MS / 1000} s`,
        { headers: { 'retry-after': '10' } },
      )
    }
    if (outcome.deadLetters.length > 0)
      this.deps.metrics.deadLetter(stream.id, 'invalid', outcome.deadLetters.length)
  }

  private async deliverTo(
    stream: StreamRuntime,
    sink: Sink,
    records: SinkRecord[],
    signal: AbortSignal,
  ): Promise<void> {
    await deliver(sink, records, {
      retry: this.config.sinks[sink.name]!.retry,
      signal,
      metrics: this.deps.metrics,
      logger: this.deps.logger,
      deadLetter: (failed, error) => this.sinkDeadLetters(stream, sink.name, failed, error, signal),
    })
  }

  private async sinkDeadLetters(
    stream: StreamRuntime,
    sinkName: string,
    records: SinkRecord[],
    error: SinkError,
    signal: AbortSignal,
  ): Promise<void> {
    const now = Date.now()
    const letters = records.map((r) =>
      deadLetterRecord(
        stream.id,
        r.payload,
        { reason: error.reason, sink: sinkName, errors: [{ message: error.message }] },
        r.receivedAtMs,
        now,
      ),
    )
    this.deps.metrics.deadLetter(stream.id, error.reason, letters.length)
    await this.deliverDeadLetters(stream, letters, signal)
  }

  private async deliverDeadLetters(
    stream: StreamRuntime,
    letters: SinkRecord[],
    signal: AbortSignal,
  ): Promise<void> {
    const sink = this.deadLetterSinkOf(stream)
    const sinkConfig = this.config.sinks[sink.name]
    await deliver(sink, letters, {
      retry: sinkConfig?.retry ?? { initialMs: 200, maxMs: 30_000, maxAttempts: 0 },
      signal,
      metrics: this.deps.metrics,
      logger: this.deps.logger,
      deadLetter: async (lost, error) => {
        // The dead-letter sink itself refused them: nowhere left to put them. Log loudly (no payloads).
        this.deps.logger.error(
          { stream: stream.id, sink: sink.name, records: lost.length, err: error.message },
          'dead-letter sink rejected records',
        )
      },
    })
  }

  /** Stop accepting: readyz answers 503 and new ingest requests get 503 with Retry-After. */
  startDraining(): void {
    this.draining = true
  }

  async close(): Promise<void> {
    this.draining = true
    const results = await Promise.allSettled([...this.sinks.values()].map((s) => s.close()))
    for (const r of results)
      if (r.status === 'rejected')
        this.deps.logger.error({ err: (r.reason as Error).message }, 'sink close failed')
  }
}
