import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { ConfigError, validateConfig } from '../config/load.js'
import { createLogger } from '../telemetry/logger.js'
import { Metrics } from '../telemetry/metrics.js'
import { checkConfig, componentIssue, validateWithComponents } from './config-check.js'
import { Gateway } from './gateway.js'

const dirs: string[] = []
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

function doc(sinks: Record<string, unknown>, streams: Record<string, unknown>): Record<string, unknown> {
  const dir = mkdtempSync(join(tmpdir(), 'sg-config-check-'))
  dirs.push(dir)
  return { server: { host: '127.0.0.1' }, dataDir: dir, spool: { dir: join(dir, 'spool') }, sinks, streams }
}

const badKafka = {
  type: 'kafka',
  brokers: ['127.0.0.1:9'],
  topic: 'bad topic!',
  idempotent: true,
  acks: 1,
}

describe('checkConfig: schema → cross-references → sources → dry build', () => {
  it('refuses what only a component sees, at its path (the schema alone lets it through)', async () => {
    const raw = doc({ k: badKafka }, { s: { source: 'ndjson', sinks: ['k'] } })
    expect(validateConfig(raw, { env: {} }).issues).toEqual([])
    const { config, issues } = await checkConfig(
      doc({ k: badKafka }, { s: { source: 'ndjson', sinks: ['k'] } }),
      {
        env: {},
      },
    )
    expect(config).toBeUndefined()
    expect(issues).toEqual([
      {
        path: 'sinks.k',
        message:
          'an idempotent producer needs acks: -1 (all in-sync replicas); set idempotent: false to use acks: 1',
      },
    ])
  })

  it('reports every component that refuses, sinks and streams, not only the first', async () => {
    const { issues } = await checkConfig(
      doc(
        { k: { ...badKafka, idempotent: false }, h: { type: 'http', url: 'not a url' } },
        { s: { source: 'ndjson', sinks: ['k', 'h'], filters: [{ field: 'a', op: 'regex', value: '(' }] } },
      ),
      { env: {} },
    )
    expect(issues.map((i) => i.path)).toEqual(['sinks.k.topic', 'sinks.h.url', 'streams.s'])
  })

  it('does not build again what equals the running config', async () => {
    const running = await checkConfig(
      doc({ out: { type: 'stdout' } }, { s: { source: 'ndjson', sinks: ['out'] } }),
      {
        env: {},
      },
    )
    expect(running.issues).toEqual([])
    const next = doc({ out: { type: 'stdout' } }, { s: { source: 'ndjson', sinks: ['out'] } })
    const checked = await checkConfig(next, { env: {}, current: running.config! })
    expect(checked.issues).toEqual([])
  })

  it("runs the sources' checks with the cross-references (all of them reported together)", () => {
    const { issues } = validateWithComponents(
      doc(
        { out: { type: 'stdout' } },
        {
          a: { source: 'azion', template: 99, payloadFormat: '[$data]', sinks: ['out', 'nope'] },
          b: { source: 'ndjson', templateModel: '{"a":"$a"}', domainIds: [1], sinks: ['out'] },
          c: { source: 'azion', templateModel: '{"a":', sinks: ['out'] },
        },
      ),
      { env: {} },
    )
    expect(issues.map((i) => `${i.path}: ${i.message}`)).toEqual([
      'streams.a.sinks[1]: unknown sink "nope"',
      'streams.a.template: unknown Azion template 99',
      'streams.a.payloadFormat: must contain $dataset',
      'streams.b.templateModel: only applies to source azion',
      'streams.b.domainIds: only applies to source azion',
      expect.stringMatching(/^streams\.c\.templateModel: /),
    ])
  })

  it('counts Azion headers once, in either form', () => {
    const headers = ['A:1', 'B:2', 'C:3', 'D:4', 'E:5', 'F:6']
    const map: Record<string, string> = Object.fromEntries(
      headers.map((h) => h.split(':') as [string, string]),
    )
    for (const form of [headers, map] as unknown[])
      expect(
        validateWithComponents(
          doc(
            { out: { type: 'stdout' } },
            { a: { source: 'azion', template: 2, auth: { headers: form }, sinks: ['out'] } },
          ),
          { env: {} },
        ).issues,
      ).toEqual([{ path: 'streams.a.auth.headers', message: 'Azion sends at most 5 custom headers' }])
  })
})

describe('the gateway refuses a component as a config error, never a stack trace', () => {
  it('Gateway.create rejects with a ConfigError naming the path', async () => {
    // Built without the check (as a caller of start() that skipped it would): the constructor's refusal
    // still comes out as a config error.
    const { config } = validateConfig(doc({ k: badKafka }, { s: { source: 'ndjson', sinks: ['k'] } }), {
      env: {},
    })
    const created = Gateway.create(config!, { logger: createLogger('silent'), metrics: new Metrics() })
    await expect(created).rejects.toBeInstanceOf(ConfigError)
    await expect(created).rejects.toMatchObject({
      issues: [{ path: 'sinks.k', message: expect.stringMatching(/^an idempotent producer/) as string }],
    })
  })

  it('componentIssue keeps a path inside the component and puts anything else at the component', () => {
    expect(componentIssue('sinks.k', new Error('sinks.k.topic: bad'))).toEqual({
      path: 'sinks.k.topic',
      message: 'bad',
    })
    expect(componentIssue('sinks.k', new Error('sinks.kk: other'))).toEqual({
      path: 'sinks.k',
      message: 'sinks.kk: other',
    })
    expect(componentIssue('streams.s', 'plain')).toEqual({ path: 'streams.s', message: 'plain' })
  })
})
