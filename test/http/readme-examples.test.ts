import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readNdjsonLines, waitFor } from '../support/gateway.js'
import { send } from '../support/http.js'

// The README's "Try it against the default config" examples, run as the README shows them: the built CLI,
// the embedded default config/streamgate.yaml, the fixtures the curl lines post, the answers it prints.

const ROOT = join(import.meta.dirname, '..', '..')
const CLI = join(ROOT, 'dist', 'cli.js')
const fixture = (name: string): Buffer => readFileSync(join(ROOT, 'test', 'fixtures', name))

let cwd: string
let base: string
let stop: () => Promise<number | null>

beforeAll(async () => {
  cwd = mkdtempSync(join(tmpdir(), 'streamgate-readme-'))
  const child = spawn(
    process.execPath,
    [CLI, 'serve', '--config', join(ROOT, 'config', 'streamgate.yaml'), '--port', '0'],
    { cwd, env: { PATH: process.env.PATH, STREAMGATE_HOST: '127.0.0.1' } },
  )
  let logs = ''
  child.stdout.on('data', (c: Buffer) => (logs += c.toString()))
  child.stderr.on('data', (c: Buffer) => (logs += c.toString()))
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  const port = await waitFor(() => /"port":(\d+)/.exec(logs)?.[1], 15_000, 'the listening log line')
  base = `http://127.0.0.1:${port}`
  stop = () => {
    child.kill('SIGTERM')
    return exited
  }
})

afterAll(async () => {
  expect(await stop()).toBe(0)
  rmSync(cwd, { recursive: true, force: true })
})

const json = { 'content-type': 'application/json' }

describe('README examples against the embedded default config', () => {
  it('emnify events: accepted, then deduplicated on the second post', async () => {
    const headers = { ...json, 'x-emnify-token': 'change-me' }
    const body = fixture('emnify/events-bulk.json')
    const first = await send(`${base}/ingest/emnify-events`, { headers, body })
    expect(first.json()).toEqual({ accepted: 3, rejected: 0, filtered: 0, duplicates: 0 })
    const again = await send(`${base}/ingest/emnify-events`, { headers, body })
    expect(again.json()).toEqual({ accepted: 0, rejected: 0, filtered: 0, duplicates: 3 })
  })

  it('emnify usage, Azion template 2 NDJSON and the sidecar NDJSON stream are accepted whole', async () => {
    const usage = await send(`${base}/ingest/emnify-usage`, {
      headers: { ...json, 'x-emnify-token': 'change-me' },
      body: fixture('emnify/usage-data.json'),
    })
    expect(usage.json()).toMatchObject({ rejected: 0 })
    expect(usage.json<{ accepted: number }>().accepted).toBeGreaterThan(0)
    const azion = await send(`${base}/ingest/azion-http`, {
      headers: { ...json, 'x-azion-key': 'change-me' },
      body: fixture('azion/http-template2.ndjson'),
    })
    expect(azion.json()).toEqual({ accepted: 2, rejected: 0, filtered: 0, duplicates: 0 })
    const app = await send(`${base}/ingest/app`, {
      headers: { 'content-type': 'application/x-ndjson', authorization: 'Bearer change-me' },
      body: '{"hello":"world"}\n{"n":2}\n',
    })
    expect(app.json()).toEqual({ accepted: 2, rejected: 0, filtered: 0, duplicates: 0 })
    // Delivered byte for byte into ./data/out (relative to the working directory).
    const lines = await waitFor(
      () => {
        const out = readNdjsonLines(join(cwd, 'data', 'out'))
        return out.includes('{"n":2}') && out.length >= 3 + 2 + 2 ? out : undefined
      },
      10_000,
      'the records in data/out',
    )
    expect(lines).toContain('{"hello":"world"}')
    for (const record of fixture('azion/http-template2.ndjson').toString().split('\n'))
      expect(lines).toContain(record)
  })

  it('the Azion availability probe: 200 with the stream header, nothing stored', async () => {
    const probe = await send(`${base}/ingest/azion-http`, {
      method: 'GET',
      headers: { 'x-azion-key': 'change-me' },
    })
    expect(probe.status).toBe(200)
    expect(probe.json()).toEqual({ available: true })
  })

  it('a wrong token is 401 problem+json', async () => {
    const res = await send(`${base}/ingest/app`, {
      headers: { 'content-type': 'application/x-ndjson', authorization: 'Bearer wrong' },
      body: '{"n":1}\n',
    })
    expect(res.status).toBe(401)
    expect(res.headers['content-type']).toContain('application/problem+json')
  })
})
