import type { ProcessOutcome, StreamRuntime } from './stream.js'

/**
 * Where a request's outcome goes before the vendor gets its 200: the one seam between "the records of this
 * request are checked" and "they are safe". `accept` resolves only once every accepted record and every
 * dead letter of the outcome is safe by the hand-off's own standard, or rejects with a ProblemError of a
 * kind of the one table (src/errors.ts PROBLEM_KINDS: `spool-full`, `spool-unavailable`,
 * `sink-unavailable`, …) and then nothing of the outcome may count as acknowledged. The ingest entry
 * (src/pipeline/ingest-entry.ts) commits the dedupe keys as soon as it resolves, with no await between.
 *
 * Implementations:
 * - the spool (src/pipeline/spool-hand-off.ts `SpoolHandOff`): an fsynced append, delivery lanes do the rest;
 * - direct delivery for `durability: none` (`DirectHandOff`): every sink acknowledged;
 * - a role whose hand-off writes to another durable log (Kafka for `--role ingest`) implements this
 *   interface and is passed to the ingest entry instead; nothing above or below has to change.
 */
export interface HandOff {
  /**
   * May empty `outcome.records` and `outcome.deadLetters` once it has copied them (the spool does, as soon
   * as its frames are encoded): the caller counts them before.
   */
  accept(stream: StreamRuntime, outcome: ProcessOutcome): Promise<void>
  /**
   * True when this hand-off copies a stream's records (the spool encodes them into its frames), so that once
   * `accept` resolved it holds no view into the request's body.
   * Absent or false: it may still read the payloads afterwards (a sink sending them, a producer's buffer),
   * and the body must be left to the collector.
   */
  copiesRecords?(stream: StreamRuntime): boolean
}
