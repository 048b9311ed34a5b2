import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { KafkaMessage } from 'kafkajs'
import { afterEach, describe, expect, it } from 'vitest'
import { ConfigError } from '../config/load.js'
import type { ClusterConfig } from '../config/types.js'
import { checkConfig, loadCheckedConfig } from '../pipeline/config-check.js'
import {
  deadLetterTopic,
  HEADER_INGEST_TIME,
  HEADER_RECORD_ID,
  HEADER_STREAM,
  recordHeaders,
  recordOf,
  recordsTopic,
  sinkGroup,
} from './kafka.js'

// The roles' config (the one config check, `serve --role`) and what a record carries through Kafka. The
// roles themselves run against the real broker in test/integration/roles.test.ts.

const dirs: string[] = []
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

function doc(extra: Record<string, unknown>): Record<string, unknown> {
  const dir = mkdtempSync(join(tmpdir(), 'sg-roles-'))
  dirs.push(dir)
  return {
    server: { host: '127.0.0.1' },
    dataDir: dir,
    spool: { dir: join(dir, 'spool') },
    sinks: { out: { type: 'file', dir: join(dir, 'out') } },
    streams: { s: { source: 'ndjson', sinks: ['out'] } },
    ...extra,
  }
}

const cluster = { kafka: { brokers: '127.0.0.1:19092' } }

describe('role and cluster config', () => {
  it('defaults to role all, which needs no cluster', async () => {
    const { config, issues } = await checkConfig(doc({}), { env: {} })
    expect(issues).toEqual([])
    expect(config!.role).toBe('all')
    expect(config!.cluster).toBeUndefined()
  })

  it('fills in the cluster defaults', async () => {
    const { config } = await checkConfig(doc({ role: 'ingest', cluster }), { env: {} })
    expect(config!.cluster).toEqual({
      kafka: { brokers: '127.0.0.1:19092', clientId: 'streamgate', timeoutMs: 10_000 },
      topicPrefix: 'streamgate',
      partitions: 6,
      replicationFactor: 1,
      sessionTimeoutMs: 30_000,
    })
  })

  it.each(['ingest', 'deliver'])('refuses role %s without a cluster, at the path cluster', async (role) => {
    const { config, issues } = await checkConfig(doc({ role }), { env: {} })
    expect(config).toBeUndefined()
    expect(issues).toEqual([
      {
        path: 'cluster',
        message: `role ${role} needs a cluster (cluster.kafka.brokers at least): ingest and deliver nodes meet in its Kafka topics`,
      },
    ])
  })

  it('refuses a role with worker processes, and an unknown role', async () => {
    const workers = await checkConfig(doc({ role: 'deliver', cluster, server: { workers: 2 } }), {
      env: {},
    })
    expect(workers.issues).toContainEqual({
      path: 'server.workers',
      message: 'role deliver runs as one process (workers: 1); run more deliver nodes instead',
    })
    const unknown = await checkConfig(doc({ role: 'both', cluster }), { env: {} })
    expect(unknown.issues.map((i) => i.path)).toEqual(['role'])
  })

  it('refuses a cluster without brokers and a topic prefix Kafka cannot name topics with', async () => {
    const { issues } = await checkConfig(
      doc({ role: 'ingest', cluster: { kafka: {}, topicPrefix: 'a b' } }),
      { env: {} },
    )
    expect(issues.map((i) => i.path).sort()).toEqual(['cluster.kafka', 'cluster.topicPrefix'])
    expect(issues.find((i) => i.path === 'cluster.kafka')!.message).toMatch(/brokers/)
  })

  it('serve --role overrides the file before the check: the check sees the role that will run', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'sg-roles-file-')), 'c.json')
    dirs.push(join(file, '..'))
    writeFileSync(file, JSON.stringify(doc({ role: 'all' })))
    expect((await loadCheckedConfig(file, {})).role).toBe('all')
    const refused = await loadCheckedConfig(file, {}, { role: 'deliver' }).catch((err: unknown) => err)
    expect(refused).toBeInstanceOf(ConfigError)
    expect((refused as ConfigError).issues.map((i) => i.path)).toEqual(['cluster'])
    writeFileSync(file, JSON.stringify(doc({ role: 'deliver', cluster })))
    expect((await loadCheckedConfig(file, {}, { role: 'all' })).role).toBe('all')
  })
})

describe('names and headers', () => {
  const c: ClusterConfig = {
    kafka: { brokers: 'x:1', clientId: 'streamgate', timeoutMs: 1 },
    topicPrefix: 'sg',
    partitions: 6,
    replicationFactor: 1,
    sessionTimeoutMs: 30_000,
  }

  it('names topics per stream and groups per sink', () => {
    expect(recordsTopic(c, 'emnify-events')).toBe('sg-emnify-events')
    expect(deadLetterTopic(c, 'emnify-events')).toBe('sg-emnify-events-dead-letter')
    expect(sinkGroup(c, 'relay')).toBe('sg-relay')
  })

  it('a record comes back from its message as it went in: bytes, stream, id, ingest time', () => {
    const payload = Buffer.from('{"id":18446744073709551615,"x":"é"}')
    const record = { stream: 's', payload, id: '18446744073709551615', receivedAtMs: 1_796_000_000_123 }
    const headers = recordHeaders(record)
    expect(headers).toEqual({
      [HEADER_STREAM]: 's',
      [HEADER_RECORD_ID]: '18446744073709551615',
      [HEADER_INGEST_TIME]: '1796000000123',
    })
    // As kafkajs hands them to a consumer: header values are Buffers.
    const message = {
      key: null,
      value: payload,
      timestamp: '1796000000999',
      offset: '7',
      attributes: 0,
      headers: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, Buffer.from(String(v))])),
    } as KafkaMessage
    expect(recordOf(message, 'other')).toEqual(record)
  })

  it('a message without the headers belongs to its topic stream, at the broker time', () => {
    const message = {
      key: null,
      value: Buffer.from('x'),
      timestamp: '1796000000999',
      offset: '0',
      attributes: 0,
    } as KafkaMessage
    expect(recordOf(message, 's')).toEqual({
      stream: 's',
      payload: Buffer.from('x'),
      receivedAtMs: 1796000000999,
    })
  })
})
