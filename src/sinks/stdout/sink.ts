import type { StdoutSinkConfig } from '../../config/types.js'
import { transientError } from '../../errors.js'
import {
  ALL_WRITTEN,
  batchLimits,
  ndjsonChunks,
  type Sink,
  type SinkRecord,
  type WriteResult,
} from '../sink.js'

// NDJSON to standard output. Logs go to stdout too by default: use the stdout sink with `log.level: silent`
// or redirect logs if the two must not interleave.

function writeOut(chunks: readonly Buffer[]): Promise<void> {
  return new Promise((resolve, reject) => {
    process.stdout.write(Buffer.concat(chunks), (err) => {
      if (err) reject(transientError(`stdout write failed: ${err.message}`, 'stdout', err))
      else resolve()
    })
  })
}

export function createStdoutSink(name: string, config: StdoutSinkConfig): Sink {
  const limits = batchLimits(config, {
    maxBatchRecords: 10_000,
    maxBatchBytes: 4 * 1024 * 1024,
    lingerMs: 0,
    maxRecordBytes: 64 * 1024 * 1024,
  })
  return {
    name,
    type: 'stdout',
    limits,
    // write() concatenates the batch (a copy) before it returns.
    releasesOnSettle: true,
    async write(batch: readonly SinkRecord[]): Promise<WriteResult> {
      if (batch.length > 0) await writeOut(ndjsonChunks(batch))
      return ALL_WRITTEN
    },
    // A lane's batch as lines (Sink.writeLines): concatenated like write()'s.
    async writeLines(lines: readonly Buffer[]): Promise<void> {
      if (lines.length > 0) await writeOut(lines)
    },
    async healthcheck(): Promise<void> {
      if (!process.stdout.writable) throw transientError('stdout is not writable', 'stdout')
    },
    async close(): Promise<void> {},
  }
}
