import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { loadConfigFile } from '../../src/config/load.js'
import { start, type Running } from '../../src/main.js'
import { createLogger } from '../../src/telemetry/logger.js'
import { send } from '../support/http.js'
import { FlowServiceFake } from '../support/mocks/adobe-flow-service.js'
import { EmnifyApiFake } from '../support/mocks/emnify-api.js'

// `streamgate connect | connections | disconnect` as users run them: the built dist/cli.js against the
// vendor fakes, and the rule for writing a sink's key while a gateway does or does not own the spool.

const CLI = join(import.meta.dirname, '..', '..', 'dist', 'cli.js')
const EMNIFY_TOKEN = 'jwt-for-the-cli-test'
const SECRET = 'emnify-header-secret-42'
const ADMIN = 'cli-admin-token'
const ORG = 'ORG@AdobeOrg'
const API_KEY = 'cli-aep-key'

let dir: string
let emnify: EmnifyApiFake
let flow: FlowServiceFake
let gateway: Running | undefined

beforeAll(async () => {
  emnify = await EmnifyApiFake.start({ token: EMNIFY_TOKEN })
  flow = await FlowServiceFake.start({ apiKey: API_KEY, imsOrgId: ORG, inletId: 'c0ffee' })
})
afterAll(async () => {
  await Promise.all([emnify.close(), flow.close()])
})
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'streamgate-connect-cli-'))
})
afterEach(async () => {
  await gateway?.stop()
  gateway = undefined
  rmSync(dir, { recursive: true, force: true })
})

function configFile(): string {
  const file = join(dir, 'streamgate.yaml')
  writeFileSync(
    file,
    `server: { host: 127.0.0.1, port: 0, publicUrl: "https://gw.example" }
admin: { token: ${ADMIN} }
spool: { dir: ${join(dir, 'spool')} }
dataDir: ${dir}
log: { level: silent }
sinks:
  out: { type: stdout }
  aep: { type: adobe, schemaRef: "https://ns.adobe.com/t/schemas/s", imsOrgId: "${ORG}", apiKey: ${API_KEY} }
streams:
  emnify-events:
    source: emnify
    auth: { headers: { X-Emnify-Token: "${SECRET}" } }
    sinks: [out]
  raw: { source: ndjson, sinks: [aep] }
`,
  )
  return file
}

function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: {
        PATH: process.env.PATH,
        EMNIFY_API_URL: emnify.url,
        EMNIFY_API_TOKEN: EMNIFY_TOKEN,
        ADOBE_PLATFORM_URL: flow.url,
        ADOBE_ACCESS_TOKEN: flow.issueToken(),
      },
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()))
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000)
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })
}

describe('streamgate connect emnify', () => {
  it('--dry-run prints the exact requests with secrets masked and changes nothing', async () => {
    const res = await cli(['connect', 'emnify', 'emnify-events', '--config', configFile(), '--dry-run'])
    expect(res.stderr).toBe('')
    expect(res.code).toBe(0)
    expect(res.stdout).toContain('dry run: stream emnify-events: would create an emnify data stream')
    expect(res.stdout).toContain(`GET ${emnify.url}/api/v2/data_stream → 200`)
    expect(res.stdout).toContain(`POST ${emnify.url}/api/v2/data_stream (not sent)`)
    expect(res.stdout).toContain('authorization: Bearer ***')
    expect(res.stdout).toContain('"X-Emnify-Token:***"')
    expect(res.stdout).toContain('"url": "https://gw.example/ingest/emnify-events"')
    expect(res.stdout).not.toContain(SECRET)
    expect(res.stdout).not.toContain(EMNIFY_TOKEN)
    expect(emnify.streams.size).toBe(0)
  })

  it('creates, is a no-op the second time, lists, and disconnect deletes', async () => {
    const file = configFile()
    const made = await cli(['connect', 'emnify', 'emnify-events', '--config', file])
    expect(made.code).toBe(0)
    expect(made.stdout).toMatch(/^stream emnify-events: created emnify data stream \d+/)
    const again = await cli(['connect', 'emnify', 'emnify-events', '--config', file])
    expect(again.stdout).toMatch(/emnify data stream \d+ matches the config; nothing to change/)
    const list = await cli(['connections', 'emnify', '--config', file])
    expect(list.code).toBe(0)
    expect(list.stdout).toMatch(/emnify {2}stream emnify-events {2}id \d+ {2}Running {2}matches/)
    expect(list.stdout).toContain('headers: X-Emnify-Token (value not shown)')
    expect(list.stdout).not.toContain(SECRET)
    const json = JSON.parse((await cli(['connections', '--config', file, '--json'])).stdout) as {
      rows: unknown[]
    }
    expect(json.rows).toContainEqual(
      expect.objectContaining({ vendor: 'emnify', name: 'emnify-events', matches: true }),
    )
    const gone = await cli(['disconnect', 'emnify', 'emnify-events', '--config', file])
    expect(gone.stdout).toMatch(/deleted emnify data stream \d+/)
    expect(emnify.streams.size).toBe(0)
  })

  it("a vendor refusal: exit 1 with the call, status, emnify's message and what to do", async () => {
    emnify.failNext({
      method: 'POST',
      status: 422,
      body: { message: 'destination.credentials.url is unreachable' },
    })
    const res = await cli(['connect', 'emnify', 'emnify-events', '--config', configFile()])
    expect(res.code).toBe(1)
    expect(res.stderr).toContain(
      'emnify POST /api/v2/data_stream answered 422 Unprocessable Entity: destination.credentials.url is unreachable.',
    )
    expect(res.stderr).toContain('fix the config')
  })

  it('usage errors exit 2; a stream of another source exits 1 naming it', async () => {
    const file = configFile()
    expect((await cli(['connect', 'kafka', 'x', '--config', file])).code).toBe(2)
    expect((await cli(['connect', 'emnify', '--config', file])).code).toBe(2)
    const other = await cli(['connect', 'emnify', 'raw', '--config', file])
    expect(other.code).toBe(1)
    expect(other.stderr).toContain('stream "raw" has source ndjson')
  })
})

describe('streamgate connect adobe: where the inletUrl is written', () => {
  const startFromFile = async (file: string): Promise<Running> =>
    start(loadConfigFile(file), { logger: createLogger('silent') })

  it('no gateway running: into api-state.json under the spool lock; the next start applies it', async () => {
    const file = configFile()
    const res = await cli(['connect', 'adobe', 'aep', '--config', file])
    expect(res.stderr).toBe('')
    expect(res.code).toBe(0)
    expect(res.stdout).toContain(`inletUrl: "https://dcs.adobedc.net/collection/c0ffee" written to the sink`)
    const state = JSON.parse(readFileSync(join(dir, 'api-state.json'), 'utf8')) as {
      sinks: { aep: { definition: { inletUrl: string } } }
    }
    expect(state.sinks.aep.definition.inletUrl).toBe('https://dcs.adobedc.net/collection/c0ffee')
    expect(existsSync(join(dir, 'connections', 'adobe.sink.aep.json'))).toBe(true)
    gateway = await startFromFile(file)
    expect(gateway.gateway.config.sinks.aep).toMatchObject({
      inletUrl: 'https://dcs.adobedc.net/collection/c0ffee',
    })
    // The CLI sees the API's changes too: a re-run finds the connection and the key in place.
    await gateway.stop()
    gateway = undefined
    expect((await cli(['connect', 'adobe', 'aep', '--config', file])).stdout).toContain('nothing to change')
  })

  it('a gateway running: through its management API (--admin-url), applied live', async () => {
    const file = configFile()
    gateway = await startFromFile(file)
    const adminUrl = `http://127.0.0.1:${gateway.port}`
    const res = await cli(['connect', 'adobe', 'aep', '--config', file, '--admin-url', adminUrl])
    expect(res.stderr).toBe('')
    expect(res.code).toBe(0)
    expect(gateway.gateway.config.sinks.aep).toMatchObject({
      inletUrl: 'https://dcs.adobedc.net/collection/c0ffee',
    })
    const view = (
      await send(`${adminUrl}/api/v1/sinks/aep`, {
        method: 'GET',
        headers: { authorization: `Bearer ${ADMIN}` },
      })
    ).json<{
      inletUrl: string
    }>()
    expect(view.inletUrl).toBe('https://dcs.adobedc.net/collection/c0ffee')
    const off = await cli(['disconnect', 'adobe', 'aep', '--config', file, '--admin-url', adminUrl])
    expect(off.code).toBe(0)
    expect(gateway.gateway.config.sinks.aep).not.toHaveProperty('inletUrl')
  })

  it('a gateway running whose API cannot be found: refused before Adobe is called', async () => {
    const file = configFile()
    gateway = await startFromFile(file)
    const before = flow.calls.length
    const res = await cli(['connect', 'adobe', 'aep', '--config', file])
    expect(res.code).toBe(1)
    expect(res.stderr).toMatch(/a gateway \(process \d+\) owns the spool .*pass --admin-url/)
    expect(flow.calls.length).toBe(before)
  })
})
