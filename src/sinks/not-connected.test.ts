import { describe, expect, it } from 'vitest'
import { validateConfig } from '../config/load.js'
import type { SinkConfig } from '../config/types.js'
import { NOT_CONNECTED, type SinkError } from '../errors.js'
import { createLogger } from '../telemetry/logger.js'
import { createSink } from './registry.js'

const context = { logger: createLogger('silent') }

function sinkConfig(sink: Record<string, unknown>): SinkConfig {
  const { config, issues } = validateConfig({ sinks: { s: sink }, streams: {} }, { env: {} })
  expect(issues).toEqual([])
  return config!.sinks.s!
}

const record = { stream: 'x', payload: Buffer.from('{"id":1}'), receivedAtMs: 1 }

describe('sinks waiting for streamgate connect', () => {
  it('an adobe sink without inletUrl holds its records: retriable, reason not-connected, says what to run', async () => {
    const sink = createSink(
      'aep',
      sinkConfig({ type: 'adobe', schemaRef: 'https://ns.adobe.com/t/s' }),
      context,
    )
    const error = (await sink
      .write([record], AbortSignal.timeout(1000))
      .catch((e: unknown) => e)) as SinkError
    expect(error.retriable).toBe(true)
    expect(error.reason).toBe(NOT_CONNECTED)
    expect(error.message).toBe('not connected: run streamgate connect adobe aep')
    await expect(sink.healthcheck(AbortSignal.timeout(1000))).rejects.toThrow('not connected')
    // Never dead-lettered for its size while waiting: the real sink applies its own limit later.
    expect(sink.limits.maxRecordBytes).toBe(Number.POSITIVE_INFINITY)
    await sink.close()
  })

  it('a domo sink with neither streamId nor create is not connected; a bad apiBase is still an error', async () => {
    const domo = { type: 'domo', columns: ['id'], clientId: 'c', clientSecret: 's' }
    const sink = createSink('bi', sinkConfig(domo), context)
    await expect(sink.write([record], AbortSignal.timeout(1000))).rejects.toThrow(
      'not connected: run streamgate connect domo bi',
    )
    expect(() => createSink('bi', sinkConfig({ ...domo, apiBase: 'not a url' }), context)).toThrow(
      'sinks.bi.apiBase: not a URL',
    )
  })
})
