import type { SinkConfig } from '../config/types.js'
import { notConnectedError } from '../errors.js'
import { batchLimits, type BatchLimits, type Sink, type WriteResult } from './sink.js'

// A sink whose vendor side is not wired yet: an adobe sink without inletUrl, a domo sink with neither
// streamId nor create. Its config is valid (so the gateway starts and the API accepts it); every write and
// health check fails with errors.ts notConnectedError, which the delivery layer treats like a refused
// credential: the records stay in the spool and are retried with backoff, never dead-lettered, and the
// lane's last error (API, /ui) reads "not connected: run streamgate connect <type> <sink>". Once `streamgate
// connect` writes the missing key, the config change rebuilds the sink as the real one.

/** No size limit while not connected: the real sink applies its own when it delivers the held records. */
const NOT_CONNECTED_LIMITS: BatchLimits = {
  maxBatchRecords: 1000,
  maxBatchBytes: 4 * 1024 * 1024,
  lingerMs: 0,
  maxRecordBytes: Number.POSITIVE_INFINITY,
}

export function notConnectedSink(name: string, config: SinkConfig): Sink {
  const error = (): Error => notConnectedError(config.type, name)
  return {
    name,
    type: config.type,
    limits: batchLimits(config, NOT_CONNECTED_LIMITS),
    write: (): Promise<WriteResult> => Promise.reject(error()),
    healthcheck: (): Promise<void> => Promise.reject(error()),
    close: (): Promise<void> => Promise.resolve(),
  }
}
