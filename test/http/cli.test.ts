import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readNdjsonLines, waitFor } from '../support/gateway.js'
import { send } from '../support/http.js'

// The CLI as users run it: the compiled dist/cli.js (npm test builds first).

const CLI = join(import.meta.dirname, '..', '..', 'dist', 'cli.js')
let dir: string

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'streamgate-cli-'))
})
afterAll(() => {
  rmSync(dir, { recursive: true, force: true })
})

function writeConfig(name: string, text: string): string {
  const file = join(dir, name)
  writeFileSync(file, text)
  return file
}

describe('streamgate check-config', () => {
  it('accepts the embedded default config', () => {
    const res = spawnSync(process.execPath, [CLI, 'check-config', 'config/streamgate.yaml'], {
      encoding: 'utf8',
    })
    expect(res.stderr).toBe('')
    expect(res.status).toBe(0)
  })

  it('exits 1 and prints every error with its path', () => {
    const file = writeConfig(
      'bad.yaml',
      `sinks:
  out: { type: file, dir: ./data/x, bogus: 1 }
  k: { type: kafka, topic: t }
streams:
  emnify-events:
    source: emnify
    recordType: events
    sinks: [kafak]
`,
    )
    const res = spawnSync(process.execPath, [CLI, 'check-config', file], { encoding: 'utf8' })
    expect(res.status).toBe(1)
    expect(res.stderr).toContain('sinks.out.bogus: unknown key "bogus"')
    expect(res.stderr).toContain('sinks.k: missing required key "brokers"')
    expect(res.stderr).toContain('streams.emnify-events.recordType: must be one of "event", "usage"')
  })

  it('reports unknown sink references with their path', () => {
    const file = writeConfig(
      'ref.yaml',
      'sinks: { out: { type: file, dir: ./data/x } }\nstreams:\n  emnify-events: { source: emnify, sinks: [out, kafak] }\n',
    )
    const res = spawnSync(process.execPath, [CLI, 'check-config', file], { encoding: 'utf8' })
    expect(res.status).toBe(1)
    expect(res.stderr).toContain('streams.emnify-events.sinks[1]: unknown sink "kafak"')
  })

  it('reports an unset environment variable', () => {
    const file = writeConfig(
      'env.yaml',
      'sinks: { out: { type: file, dir: ./data/x } }\nstreams:\n  s: { source: ndjson, auth: { headers: { X-Key: "${SG_TEST_UNSET}" } }, sinks: [out] }\n',
    )
    const res = spawnSync(process.execPath, [CLI, 'check-config', file], {
      encoding: 'utf8',
      env: { PATH: process.env.PATH },
    })
    expect(res.status).toBe(1)
    expect(res.stderr).toContain(
      'streams.s.auth.headers.X-Key: environment variable SG_TEST_UNSET is not set',
    )
  })
})

describe('one config check: what serve would refuse, check-config refuses first', () => {
  // A component (here the Kafka sink's constructor) refuses what the schema allows; both commands say so in
  // one line naming the path, and neither prints a stack trace.
  const config = (): string =>
    writeConfig(
      'kafka-acks.yaml',
      `server: { host: 127.0.0.1, port: 0 }
dataDir: ${dir}
spool: { dir: ${dir}/spool-kafka-acks }
sinks:
  k: { type: kafka, brokers: [127.0.0.1:9], topic: "bad topic!", idempotent: true, acks: 1 }
streams: { s: { source: ndjson, sinks: [k] } }
`,
    )
  const refusal =
    'sinks.k: an idempotent producer needs acks: -1 (all in-sync replicas); set idempotent: false to use acks: 1'

  it('check-config refuses a Kafka sink with idempotent: true, acks: 1 and a bad topic', () => {
    const file = config()
    const res = spawnSync(process.execPath, [CLI, 'check-config', file], { encoding: 'utf8' })
    expect(res.status).toBe(1)
    expect(res.stderr).toBe(`${file}: invalid configuration\n${refusal}\n`)
  })

  it('serve refuses the same file with the same line, no stack trace, before it listens', () => {
    const file = config()
    const res = spawnSync(process.execPath, [CLI, 'serve', '--config', file], {
      encoding: 'utf8',
      timeout: 15_000,
    })
    expect(res.status).toBe(1)
    expect(res.stderr).toBe(`${file}: invalid configuration\n${refusal}\n`)
    expect(res.stderr).not.toMatch(/^\s+at /m)
    expect(res.stdout).not.toContain('listening')
  })

  it('check-config refuses the topic alone with its path', () => {
    const file = writeConfig(
      'kafka-topic.yaml',
      `server: { host: 127.0.0.1 }
sinks: { k: { type: kafka, brokers: [127.0.0.1:9], topic: "bad topic!" } }
streams: { s: { source: ndjson, sinks: [k] } }
`,
    )
    const res = spawnSync(process.execPath, [CLI, 'check-config', file], { encoding: 'utf8' })
    expect(res.status).toBe(1)
    expect(res.stderr).toContain('sinks.k.topic: "bad topic!" is not a valid Kafka topic name')
  })

  it('check-config refuses a filter regex a stream cannot compile, at the stream', () => {
    const file = writeConfig(
      'regex.yaml',
      `server: { host: 127.0.0.1 }
sinks: { out: { type: stdout } }
streams: { s: { source: ndjson, sinks: [out], filters: [{ field: a, op: regex, value: "(" }] } }
`,
    )
    const res = spawnSync(process.execPath, [CLI, 'check-config', file], { encoding: 'utf8' })
    expect(res.status).toBe(1)
    expect(res.stderr).toMatch(/^streams\.s[.:].*/m)
    expect(res.stderr).not.toMatch(/^\s+at /m)
  })
})

describe('safe by default', () => {
  const cleanEnv = { PATH: process.env.PATH }
  const placeholderLines = [
    'streams.emnify-events.auth.headers.X-Emnify-Token: holds the placeholder secret "change-me"',
    'streams.emnify-usage.auth.headers.X-Emnify-Token: holds the placeholder secret "change-me"',
    'streams.azion-http.auth.headers.X-Azion-Key: holds the placeholder secret "change-me"',
    'streams.app.auth.headers.Authorization: holds the placeholder secret "change-me"',
  ]

  it('check-config and serve refuse the embedded default on 0.0.0.0 (the container) with its placeholders', () => {
    const env = { ...cleanEnv, STREAMGATE_HOST: '0.0.0.0' }
    const check = spawnSync(process.execPath, [CLI, 'check-config', 'config/streamgate.yaml'], {
      encoding: 'utf8',
      env,
    })
    expect(check.status).toBe(1)
    for (const line of placeholderLines) expect(check.stderr).toContain(line)
    expect(check.stderr).toContain('set EMNIFY_TOKEN, listen on 127.0.0.1, or set server.allowInsecure: true')
    // serve refuses the same config before it listens (it would otherwise bind every interface).
    const serve = spawnSync(
      process.execPath,
      [CLI, 'serve', '--config', 'config/streamgate.yaml', '--port', '0'],
      { encoding: 'utf8', env, timeout: 15_000 },
    )
    expect(serve.status).toBe(1)
    for (const line of placeholderLines) expect(serve.stderr).toContain(line)
    expect(serve.stdout).not.toContain('listening')
  })

  it('the embedded default on 0.0.0.0 passes once the tokens come through the environment', () => {
    const res = spawnSync(process.execPath, [CLI, 'check-config', 'config/streamgate.yaml'], {
      encoding: 'utf8',
      env: { ...cleanEnv, STREAMGATE_HOST: '0.0.0.0', EMNIFY_TOKEN: 'e1', AZION_KEY: 'a2', APP_TOKEN: 'p3' },
    })
    expect(res.stderr).toBe('')
    expect(res.status).toBe(0)
  })

  it('check-config refuses a file sink outside dataDir and a prefix with a path', () => {
    const file = writeConfig(
      'escape.yaml',
      `server: { host: 127.0.0.1 }
dataDir: ${dir}
sinks:
  a: { type: file, dir: /etc }
  b: { type: file, dir: ${dir}/../../x }
  c: { type: file, dir: ${dir}/c, prefix: ../c }
streams: { s: { source: ndjson, sinks: [a, b, c] } }
`,
    )
    const res = spawnSync(process.execPath, [CLI, 'check-config', file], { encoding: 'utf8', env: cleanEnv })
    expect(res.status).toBe(1)
    expect(res.stderr).toContain(`sinks.a.dir: must be inside dataDir "${dir}" (resolves to "/etc")`)
    expect(res.stderr).toContain(
      `sinks.b.dir: must be inside dataDir "${dir}" (resolves to "${join(dir, '../../x')}")`,
    )
    expect(res.stderr).toContain('sinks.c.prefix: must be a plain file name prefix')
  })
})

describe('streamgate serve', () => {
  it('serves, never logs the secret, and on SIGTERM finishes an in-flight request before exiting 0', async () => {
    const out = join(dir, 'out')
    const file = writeConfig(
      'serve.yaml',
      `server: { host: 127.0.0.1, port: 0 }
dataDir: ${dir}
spool: { dir: ${join(dir, 'spool')} }
log: { level: debug }
sinks: { out: { type: file, dir: ${out} } }
streams:
  s: { source: ndjson, auth: { headers: { X-Key: "\${SG_KEY}" } }, sinks: [out] }
`,
    )
    const child = spawn(process.execPath, [CLI, 'serve', '--config', file, '--port', '0'], {
      env: { PATH: process.env.PATH, SG_KEY: 'super-secret-value-123' },
    })
    let logs = ''
    child.stdout.on('data', (c: Buffer) => (logs += c.toString()))
    child.stderr.on('data', (c: Buffer) => (logs += c.toString()))
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
    const port = await waitFor(() => /"port":(\d+)/.exec(logs)?.[1], 15_000, 'the listening log line')
    const url = `http://127.0.0.1:${port}/ingest/s`

    // An in-flight request: headers and half the body now, the rest after SIGTERM.
    const { request } = await import('node:http')
    const answer = new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(url, { method: 'POST', headers: { 'x-key': 'super-secret-value-123' } }, (res) => {
        let body = ''
        res.on('data', (c: Buffer) => (body += c.toString()))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
      })
      req.on('error', reject)
      req.write('{"inflight":1}\n')
      setTimeout(() => {
        child.kill('SIGTERM')
        setTimeout(() => req.end('{"inflight":2}\n'), 300)
      }, 200)
    })
    const res = await answer
    expect(res.status).toBe(200)
    expect(JSON.parse(res.body)).toMatchObject({ accepted: 2 })
    expect(await exited).toBe(0)
    expect(readNdjsonLines(out)).toEqual(['{"inflight":1}', '{"inflight":2}'])
    expect(logs).toContain('shutting down')
    expect(logs).not.toContain('super-secret-value-123')
  })

  it('refuses new connections after SIGTERM while draining', async () => {
    const file = writeConfig(
      'serve2.yaml',
      `server: { host: 127.0.0.1, port: 0 }\ndataDir: ${dir}\nspool: { dir: ${join(dir, 'spool2')} }\nsinks: { out: { type: file, dir: ${join(dir, 'out2')} } }\nstreams: { s: { source: ndjson, sinks: [out] } }\n`,
    )
    const child = spawn(process.execPath, [CLI, 'serve', '--config', file])
    let logs = ''
    child.stdout.on('data', (c: Buffer) => (logs += c.toString()))
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
    const port = await waitFor(() => /"port":(\d+)/.exec(logs)?.[1], 15_000, 'the listening log line')
    expect((await send(`http://127.0.0.1:${port}/ingest/s`, { body: '{"a":1}' })).status).toBe(200)
    child.kill('SIGTERM')
    expect(await exited).toBe(0)
    await expect(send(`http://127.0.0.1:${port}/ingest/s`, { body: '{"a":1}' })).rejects.toThrow(
      /ECONNREFUSED/,
    )
  })
})
