import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FileSinkConfig } from '../../src/config/types.js'
import { createFileSink } from '../../src/sinks/file/sink.js'
import { createLogger } from '../../src/telemetry/logger.js'
import { readNdjsonLines } from '../support/gateway.js'
import { sinkConformance } from './sink-conformance.js'

const fileConfig = (dir: string, extra: Partial<FileSinkConfig> = {}): FileSinkConfig => ({
  type: 'file',
  dir,
  prefix: 'records',
  maxFileBytes: 1024 * 1024,
  maxFileAgeMs: 60_000,
  fsync: true,
  retry: { initialMs: 10, maxMs: 100, maxAttempts: 0 },
  ...extra,
})

sinkConformance('file', async () => {
  const root = mkdtempSync(join(tmpdir(), 'sg-file-conf-'))
  const dir = join(root, 'out')
  const logger = createLogger('silent')
  return {
    create: async (o) =>
      createFileSink(
        'file-out',
        fileConfig(dir, o?.maxBatchRecords ? { maxBatchRecords: o.maxBatchRecords } : {}),
        { logger },
      ),
    readBack: async () => readNdjsonLines(dir).map((l) => Buffer.from(l)),
    createPermanentlyFailing: async () => {
      // A directory path that runs through a regular file (ENOTDIR); permissions would not stop root.
      const blocker = join(root, 'not-a-dir')
      writeFileSync(blocker, 'x')
      const sink = createFileSink('file-bad', fileConfig(join(blocker, 'sub')), { logger })
      return sink
    },
    cleanup: async () => rmSync(root, { recursive: true, force: true }),
  }
})
