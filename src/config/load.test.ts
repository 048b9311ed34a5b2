import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'
import { isLoopbackHost, placeholderIn } from './exposure.js'
import {
  ConfigError,
  DEFAULT_DEDUPE,
  formatIssues,
  loadConfigFile,
  streamBodyLimit,
  streamDedupe,
  validateConfig,
} from './load.js'
import type { GatewayConfig } from './types.js'

const EMBEDDED = resolve(import.meta.dirname, '../../config/streamgate.yaml')

/** The issues of a config document, as check-config prints them. */
function issuesOf(doc: Record<string, unknown>, env: NodeJS.ProcessEnv = {}): string[] {
  return validateConfig(doc, { env }).issues.map((i) => `${i.path}: ${i.message}`)
}

const fileSink = (dir: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  type: 'file',
  dir,
  ...extra,
})

describe('the embedded default', () => {
  it('listens on 127.0.0.1 and starts with the change-me placeholders there', () => {
    const config = loadConfigFile(EMBEDDED, {})
    expect(config.server.host).toBe('127.0.0.1')
    expect(config.server.allowInsecure).toBe(false)
    expect(config.dataDir).toBe('./data')
  })

  it('on 0.0.0.0 (the container) refuses the placeholders, naming each stream, header and variable', () => {
    let error: unknown
    try {
      loadConfigFile(EMBEDDED, { STREAMGATE_HOST: '0.0.0.0' })
    } catch (err) {
      error = err
    }
    expect(error).toBeInstanceOf(ConfigError)
    const lines = formatIssues((error as ConfigError).issues).split('\n')
    const tail =
      'server.host "0.0.0.0" is not a loopback address: set $VAR, listen on 127.0.0.1, or set server.allowInsecure: true'
    expect(lines).toEqual([
      `streams.emnify-events.auth.headers.X-Emnify-Token: holds the placeholder secret "change-me" and ${tail.replace('$VAR', 'EMNIFY_TOKEN')}`,
      `streams.emnify-usage.auth.headers.X-Emnify-Token: holds the placeholder secret "change-me" and ${tail.replace('$VAR', 'EMNIFY_TOKEN')}`,
      `streams.azion-http.auth.headers.X-Azion-Key: holds the placeholder secret "change-me" and ${tail.replace('$VAR', 'AZION_KEY')}`,
      `streams.app.auth.headers.Authorization: holds the placeholder secret "change-me" and ${tail.replace('$VAR', 'APP_TOKEN')}`,
    ])
  })

  it('on 0.0.0.0 starts once real tokens come through the environment', () => {
    const config = loadConfigFile(EMBEDDED, {
      STREAMGATE_HOST: '0.0.0.0',
      EMNIFY_TOKEN: 'e-9f1c2d',
      AZION_KEY: 'a-77b0',
      APP_TOKEN: 'p-31aa',
    })
    expect(config.server.host).toBe('0.0.0.0')
    expect(config.streams.app!.auth.headers).toEqual({ Authorization: 'Bearer p-31aa' })
  })
})

describe('a non-loopback listener', () => {
  const base = (streams: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
    server: { host: '0.0.0.0' },
    dataDir: '/srv/sg',
    sinks: { out: fileSink('/srv/sg/out') },
    streams,
    ...extra,
  })

  it('refuses a stream without auth; a server without host binds 0.0.0.0 and counts as public', () => {
    const open = { source: 'ndjson', sinks: ['out'] }
    expect(issuesOf(base({ open }))).toEqual([
      'streams.open.auth: none (no headers, hmac or allowCidrs) and server.host "0.0.0.0" is not a loopback address: anyone who reaches the port can post records; add auth, listen on 127.0.0.1, or set server.allowInsecure: true',
    ])
    expect(issuesOf({ ...base({ open }), server: {} })).toEqual([
      expect.stringMatching(/^streams\.open\.auth: none/),
    ])
  })

  it('counts headers, hmac or an allowCidrs list as auth, but not a /0 range', () => {
    const stream = (auth: unknown) => ({ source: 'ndjson', auth, sinks: ['out'] })
    expect(
      issuesOf(
        base({
          h: stream({ headers: { 'X-Key': 'k-81fe' } }),
          l: stream({ headers: ['X-Key:k-81fe'] }),
          m: stream({ hmac: { header: 'X-Sig', secret: 's-0a9' } }),
          c: stream({ allowCidrs: ['203.0.113.0/24'] }),
        }),
      ),
    ).toEqual([])
    expect(issuesOf(base({ all: stream({ allowCidrs: ['10.0.0.0/8', '0.0.0.0/0'] }) }))).toEqual([
      expect.stringMatching(/^streams\.all\.auth: none/),
    ])
    expect(issuesOf(base({ all6: stream({ allowCidrs: ['::/0'] }) }))).toHaveLength(1)
  })

  it('refuses every placeholder secret: headers (both forms), hmac, admin.token, sink secrets, URL credentials', () => {
    const issues = issuesOf(
      base(
        {
          a: { source: 'ndjson', auth: { headers: ['X-Token:CHANGEME'] }, sinks: ['out'] },
          b: { source: 'ndjson', auth: { hmac: { header: 'X-Sig', secret: 'change_me' } }, sinks: ['out'] },
        },
        {
          admin: { token: 'Change-Me' },
          sinks: {
            out: fileSink('/srv/sg/out'),
            k: {
              type: 'kafka',
              brokers: ['k:9092'],
              topic: 't',
              sasl: { mechanism: 'plain', username: 'u', password: 'change-me' },
            },
            h: { type: 'http', url: 'https://relay.example/in?api_key=change-me' },
            g: {
              type: 'http',
              url: 'https://relay.example/in',
              headers: { Authorization: 'Bearer changeme' },
            },
          },
        },
      ),
    )
    expect(issues.map((i) => i.slice(0, i.indexOf(': ')))).toEqual([
      'sinks.k.sasl.password',
      'sinks.h.url',
      'sinks.g.headers.Authorization',
      'streams.a.auth.headers.X-Token',
      'streams.b.auth.hmac.secret',
      'admin.token',
    ])
    expect(issues[5]).toBe(
      'admin.token: holds the placeholder secret "Change-Me" and server.host "0.0.0.0" is not a loopback address: replace it with a real secret, listen on 127.0.0.1, or set server.allowInsecure: true',
    )
  })

  it('judges admin.token by the admin listener and metrics.token by the metrics listener', () => {
    const doc = {
      sinks: { out: { type: 'stdout' } },
      streams: { s: { source: 'ndjson', auth: { headers: { 'X-Key': 'a-real-secret' } }, sinks: ['out'] } },
    }
    // Loopback ingest, public admin listener: the placeholder admin token is refused.
    expect(
      issuesOf({
        ...doc,
        server: { host: '127.0.0.1' },
        admin: { token: 'change-me', listen: { host: '0.0.0.0', port: 9090 } },
      }),
    ).toEqual([
      'admin.token: holds the placeholder secret "change-me" and admin.listen.host "0.0.0.0" is not a loopback address: replace it with a real secret, listen on 127.0.0.1 (admin.listen.host), or set server.allowInsecure: true',
    ])
    // Public ingest, loopback admin listener: the admin token stays on this machine.
    expect(
      issuesOf({
        ...doc,
        server: { host: '0.0.0.0' },
        admin: { token: 'change-me', listen: { host: '127.0.0.1', port: 9090 } },
      }),
    ).toEqual([])
    // metrics.listen falls back to admin.listen, then server.host.
    expect(
      issuesOf({
        ...doc,
        server: { host: '127.0.0.1' },
        admin: { token: 'a-real-admin-token', listen: { host: '0.0.0.0', port: 9090 } },
        metrics: { token: 'changeme' },
      }),
    ).toEqual([
      'metrics.token: holds the placeholder secret "changeme" and admin.listen.host "0.0.0.0" is not a loopback address: replace it with a real secret, listen on 127.0.0.1 (admin.listen.host), or set server.allowInsecure: true',
    ])
  })

  it('server.allowInsecure: true starts anyway', () => {
    const doc = base(
      { open: { source: 'ndjson', auth: { headers: { 'X-Key': 'change-me' } }, sinks: ['out'] } },
      { admin: { token: 'change-me' } },
    )
    expect(issuesOf(doc)).toHaveLength(2)
    expect(issuesOf({ ...doc, server: { host: '0.0.0.0', allowInsecure: true } })).toEqual([])
  })

  it('a loopback listener accepts both (the developer default)', () => {
    const doc = base(
      { open: { source: 'ndjson', sinks: ['out'] } },
      { admin: { token: 'change-me' }, server: { host: '127.0.0.1' } },
    )
    expect(issuesOf(doc)).toEqual([])
  })
})

describe('isLoopbackHost and placeholderIn', () => {
  it.each([
    '127.0.0.1',
    '127.9.8.7',
    '::1',
    '[::1]',
    '0:0:0:0:0:0:0:1',
    '::ffff:127.0.0.1',
    'localhost',
    'LOCALHOST',
  ])('%s is loopback', (host) => expect(isLoopbackHost(host)).toBe(true))
  it.each([
    '0.0.0.0',
    '::',
    '',
    '10.0.0.1',
    '128.0.0.1',
    '::ffff:10.0.0.1',
    'gateway.example',
    'localhost.example',
  ])('"%s" is not loopback', (host) => expect(isLoopbackHost(host)).toBe(false))
  it('finds the placeholder as a word of a value, not inside another word', () => {
    expect(placeholderIn('Bearer change-me')).toBe('change-me')
    expect(placeholderIn('X-Token:ChangeMe')).toBe('ChangeMe')
    expect(placeholderIn('exchange-meter')).toBeUndefined()
    expect(placeholderIn('9f3c-change-me-41')).toBeUndefined()
  })
})

describe('file sinks stay inside dataDir', () => {
  const doc = (dataDir: string | undefined, sink: Record<string, unknown>) => ({
    server: { host: '127.0.0.1' },
    ...(dataDir === undefined ? {} : { dataDir }),
    sinks: { out: sink },
    streams: { s: { source: 'ndjson', sinks: ['out'] } },
  })
  const cwdData = resolve('data')

  it('accepts dirs inside dataDir (relative ones against the working directory), and dataDir itself', () => {
    for (const dir of [
      './data/out',
      'data/a/b',
      './data',
      `${cwdData}/x`,
      './data/..hidden',
      './data/x/../y',
    ])
      expect(issuesOf(doc(undefined, fileSink(dir))), dir).toEqual([])
    expect(issuesOf(doc('/srv/sg', fileSink('/srv/sg/out')))).toEqual([])
  })

  it('refuses /etc, ../../ and a sibling that only shares the prefix, naming the path and where it resolves', () => {
    expect(issuesOf(doc(undefined, fileSink('/etc')))).toEqual([
      `sinks.out.dir: must be inside dataDir "${cwdData}" (resolves to "/etc")`,
    ])
    expect(issuesOf(doc(undefined, fileSink('../../x')))).toEqual([
      `sinks.out.dir: must be inside dataDir "${cwdData}" (resolves to "${resolve('../../x')}")`,
    ])
    expect(issuesOf(doc(undefined, fileSink('./data/../../x')))).toHaveLength(1)
    expect(issuesOf(doc('/srv/sg', fileSink('/srv/sg2/out')))).toEqual([
      'sinks.out.dir: must be inside dataDir "/srv/sg" (resolves to "/srv/sg2/out")',
    ])
  })

  it('refuses a prefix with a path separator', () => {
    for (const prefix of ['../x', 'a/b', '..\\x'])
      expect(issuesOf(doc(undefined, fileSink('./data/out', { prefix })))).toEqual([
        `sinks.out.prefix: must be a plain file name prefix without "/" or "\\" (files go directly into dir; is "${prefix}")`,
      ])
    expect(issuesOf(doc(undefined, fileSink('./data/out', { prefix: '..records' })))).toEqual([])
  })
})

describe('stream schema files', () => {
  it('says why a schema file cannot be used without quoting the file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sg-schema-'))
    const secret = join(dir, 'secret.txt')
    writeFileSync(secret, 'root:supersecret:0:0\n')
    const doc = (schema: string): Record<string, unknown> => ({
      server: { host: '127.0.0.1' },
      sinks: { out: { type: 'stdout' } },
      streams: { s: { source: 'ndjson', schema, sinks: ['out'] } },
    })
    const notJson = issuesOf(doc(secret))
    expect(notJson).toEqual(['streams.s.schema: cannot read JSON Schema: the file is not valid JSON'])
    expect(notJson.join()).not.toContain('supersecret')
    expect(issuesOf(doc(join(dir, 'missing.json')))).toEqual([
      'streams.s.schema: cannot read JSON Schema: no such file',
    ])
    rmSync(dir, { recursive: true, force: true })
  })
})

const config = (stream: Record<string, unknown>, server: Record<string, unknown> = {}) =>
  validateConfig({
    server: { host: '127.0.0.1', ...server },
    sinks: { out: { type: 'stdout' } },
    streams: { s: { sinks: ['out'], ...stream } },
  })

const valid = (stream: Record<string, unknown>, server: Record<string, unknown> = {}): GatewayConfig => {
  const { config: c, issues } = config(stream, server)
  expect(issues).toEqual([])
  return c!
}

describe('stream defaults (a source such as emnify may ask for dedupe and a larger body limit)', () => {
  it('dedupe is on by id where the source dedupes by default, off otherwise, unless the stream says so', () => {
    expect(streamDedupe(valid({ source: 'emnify' }).streams.s!, true)).toEqual({
      key: 'id',
      windowRecords: 100_000,
      windowMs: 3_600_000,
    })
    expect(DEFAULT_DEDUPE).toEqual({ key: 'id', windowRecords: 100_000, windowMs: 3_600_000 })
    expect(streamDedupe(valid({ source: 'ndjson' }).streams.s!)).toBeUndefined()
    expect(streamDedupe(valid({ source: 'emnify', dedupe: false }).streams.s!, true)).toBeUndefined()
    expect(streamDedupe(valid({ source: 'ndjson', dedupe: true }).streams.s!)).toEqual(DEFAULT_DEDUPE)
    expect(streamDedupe(valid({ source: 'emnify', dedupe: { windowMs: 60_000 } }).streams.s!, true)).toEqual({
      key: 'id',
      windowRecords: 100_000,
      windowMs: 60_000,
    })
    expect(streamDedupe(valid({ source: 'json', dedupe: { key: 'event.uid' } }).streams.s!)).toMatchObject({
      key: 'event.uid',
    })
  })

  it('the dedupe key stays strict: a boolean or a known object, nothing else', () => {
    expect(config({ source: 'emnify', dedupe: 'off' }).issues.map((i) => i.path)).toContain(
      'streams.s.dedupe',
    )
    expect(config({ source: 'emnify', dedupe: { window: 5 } }).issues).toContainEqual({
      path: 'streams.s.dedupe.window',
      message: 'unknown key "window"',
    })
  })

  it("a stream's body limit is at least its source's minimum unless the stream sets its own", () => {
    const server = valid({ source: 'emnify' }).server
    const min = 32 * 1024 * 1024
    expect(server.maxBodyBytes).toBe(10 * 1024 * 1024)
    expect(streamBodyLimit(valid({ source: 'emnify' }).streams.s!, server, min)).toBe(min)
    expect(streamBodyLimit(valid({ source: 'ndjson' }).streams.s!, server)).toBe(10 * 1024 * 1024)
    expect(streamBodyLimit(valid({ source: 'emnify', maxBodyBytes: 1000 }).streams.s!, server, min)).toBe(
      1000,
    )
    const big = valid({ source: 'emnify' }, { maxBodyBytes: 64 * 1024 * 1024 })
    expect(streamBodyLimit(big.streams.s!, big.server, min)).toBe(64 * 1024 * 1024)
  })
})

describe('backpressure: pause', () => {
  const doc = (stream: Record<string, unknown>, extra: { server?: object; spool?: object } = {}) => ({
    server: { host: '127.0.0.1', ...extra.server },
    ...(extra.spool ? { spool: extra.spool } : {}),
    sinks: { out: { type: 'stdout' } },
    streams: { s: { source: 'ndjson', sinks: ['out'], ...stream } },
  })

  it('defaults to refuse, and spool.maxPauseMs to 10 s', () => {
    const result = validateConfig(doc({}), { env: {} })
    expect(result.issues).toEqual([])
    expect(result.config?.streams.s!.backpressure).toBe('refuse')
    expect(result.config?.spool.maxPauseMs).toBe(10_000)
    expect(issuesOf(doc({ backpressure: 'block' }))).toEqual([
      expect.stringMatching(/^streams\.s\.backpressure/),
    ])
  })

  it('must give up before the server times the request out, where a stream pauses', () => {
    const slow = { server: { requestTimeoutMs: 5000 } }
    expect(issuesOf(doc({ backpressure: 'pause' }))).toEqual([])
    expect(issuesOf(doc({ backpressure: 'pause' }, slow))).toEqual([
      'spool.maxPauseMs: must be less than server.requestTimeoutMs (5000) while a stream has backpressure: pause (s)',
    ])
    expect(issuesOf(doc({ backpressure: 'pause' }, { ...slow, spool: { maxPauseMs: 4000 } }))).toEqual([])
    expect(issuesOf(doc({}, slow))).toEqual([])
  })
})
