import { createStdoutSink } from '../../src/sinks/stdout/sink.js'
import { sinkConformance } from './sink-conformance.js'

// The stdout sink against this process's real standard output, whose `write` is wrapped for the test so
// that what the sink writes is kept (and, while `failing`, refused the way a broken pipe is) instead of
// reaching the terminal. Standard output has no permanent failure: that part of the suite does not apply.

sinkConformance(
  'stdout',
  async () => {
    const original = process.stdout.write.bind(process.stdout)
    const written: Buffer[] = []
    let failing = false
    const capture = (
      chunk: string | Uint8Array,
      encoding?: BufferEncoding | ((err?: Error | null) => void),
      callback?: (err?: Error | null) => void,
    ): boolean => {
      const done = typeof encoding === 'function' ? encoding : callback
      if (failing) {
        const err = Object.assign(new Error('write EPIPE'), { code: 'EPIPE' })
        setImmediate(() => done?.(err))
        return false
      }
      written.push(Buffer.from(chunk))
      setImmediate(() => done?.(null))
      return true
    }
    process.stdout.write = capture
    const config = (maxBatchRecords?: number) => ({
      type: 'stdout' as const,
      retry: { initialMs: 10, maxMs: 100, maxAttempts: 0 },
      ...(maxBatchRecords ? { maxBatchRecords } : {}),
    })
    return {
      create: async (o) => createStdoutSink('stdout-conf', config(o?.maxBatchRecords)),
      readBack: async () =>
        Buffer.concat(written)
          .toString('utf8')
          .split('\n')
          .filter((l) => l !== '')
          .map((l) => Buffer.from(l)),
      createTransientlyFailing: async () => {
        failing = true
        return {
          sink: createStdoutSink('stdout-flaky', config()),
          heal: async () => {
            failing = false
          },
        }
      },
      cleanup: async () => {
        process.stdout.write = original
      },
    }
  },
  { transient: true, permanent: false },
)
