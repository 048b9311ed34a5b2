import { spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import net from 'node:net'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startGateway, type TestGateway } from '../support/gateway.js'

// Schemathesis (property-based API testing, from PyPI via scripts/schemathesis.sh) against a live gateway,
// driven by the gateway's own /api/v1/openapi.json: no 5xx, every status code and answer body as documented,
// invalid input rejected, auth enforced, undeclared methods 405.
//
// The ingest operations are excluded from fuzzing: generated streams and sinks would then receive records
// (files written anywhere, connections to generated hosts); ingest has its row-by-row tests in
// ingest-status.test.ts. As a second net, this process refuses outbound connections except to loopback.

const ROOT = join(import.meta.dirname, '..', '..')
const TOKEN = 'schemathesis-admin-token'
const CHECKS = [
  'not_a_server_error',
  'status_code_conformance',
  'response_schema_conformance',
  'content_type_conformance',
  'negative_data_rejection',
  'ignored_auth',
  'unsupported_method',
].join(',')

let gw: TestGateway

/** Only loopback: a generated sink must never reach out to the network (SPEC tests stay on this machine). */
function allowOnlyLoopback(): () => void {
  type Connect = (this: net.Socket, ...args: unknown[]) => net.Socket
  const original = Reflect.get(net.Socket.prototype, 'connect') as Connect
  const loopback = (host: unknown): boolean =>
    host === undefined ||
    host === 'localhost' ||
    host === '::1' ||
    (typeof host === 'string' && host.startsWith('127.'))
  const guarded: Connect = function (this: net.Socket, ...args: unknown[]) {
    // net.connect() passes its normalised arguments as one array: [options, callback].
    const first: unknown = Array.isArray(args[0]) ? (args[0] as unknown[])[0] : args[0]
    const options =
      typeof first === 'object' && first !== null ? (first as { host?: unknown; path?: unknown }) : {}
    // A string `path` is a local (IPC) socket; http passes `path: null` for TCP.
    const host = typeof options.path === 'string' ? 'localhost' : options.host
    if (!loopback(host)) {
      process.nextTick(() =>
        this.destroy(new Error(`outbound connection to ${String(host)} blocked in this test`)),
      )
      return this
    }
    return original.apply(this, args)
  }
  Reflect.set(net.Socket.prototype, 'connect', guarded)
  return () => {
    Reflect.set(net.Socket.prototype, 'connect', original)
  }
}

let restoreNet: () => void

beforeAll(async () => {
  restoreNet = allowOnlyLoopback()
  gw = await startGateway({
    admin: { token: TOKEN },
    sinks: {
      out: { type: 'file', dir: '{dir}/out' },
      spare: { type: 'file', dir: '{dir}/spare' },
    },
    streams: {
      s: { source: 'ndjson', sinks: ['out'] },
      paused: { source: 'json', status: 2, sinks: ['spare'] },
    },
  })
  // Known ids half of the time, so that operations reach existing streams and sinks, not only 404.
  writeFileSync(
    join(gw.dir, 'schemathesis.toml'),
    [
      '[dictionaries.streams]',
      'values = ["s", "paused"]',
      '[dictionaries.sinks]',
      'values = ["out", "spare"]',
      '[parameters]',
      '"path.id" = { dictionary = "streams", probability = 0.5 }',
      '"path.name" = { dictionary = "sinks", probability = 0.5 }',
      '"body.sinks[*]" = { dictionary = "sinks", probability = 0.8 }',
      '',
    ].join('\n'),
  )
}, 60_000)

afterAll(async () => {
  await gw?.close()
  restoreNet?.()
})

function run(
  command: string,
  args: string[],
  timeoutMs: number,
): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: ROOT, env: { ...process.env, NO_COLOR: '1' } })
    let output = ''
    child.stdout.on('data', (c: Buffer) => (output += c.toString()))
    child.stderr.on('data', (c: Buffer) => (output += c.toString()))
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, output })
    })
  })
}

describe('schemathesis', () => {
  it('finds nothing wrong with the management API', async () => {
    const { code, output } = await run(
      'bash',
      [
        join(ROOT, 'scripts', 'schemathesis.sh'),
        '--config-file',
        join(gw.dir, 'schemathesis.toml'),
        'run',
        `${gw.url}/api/v1/openapi.json`,
        '--header',
        `Authorization: Bearer ${TOKEN}`,
        '--checks',
        CHECKS,
        '--exclude-path-regex',
        '^/ingest/',
        '--max-examples',
        '15',
        '--seed',
        '20261101',
        // One worker: CPython 3.11's ast module is not thread-safe ("AST constructor recursion depth
        // mismatch" inside hypothesis with two workers).
        '--workers',
        '1',
        '--request-timeout',
        '10',
      ],
      // The first run also creates the virtualenv (pip install), well under a minute here.
      420_000,
    )
    if (code !== 0) console.log(output)
    expect(code, 'schemathesis exit code (its output is printed above)').toBe(0)
    // It really ran: the operations were loaded and tested.
    expect(output).toMatch(/Tested: *[12][0-9]/)
  }, 480_000)
})
