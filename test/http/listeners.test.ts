import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { request as httpsRequest } from 'node:https'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { validateConfig } from '../../src/config/load.js'
import { startGateway, type TestGateway } from '../support/gateway.js'
import { send, type Answer } from '../support/http.js'

// admin.listen puts the management API, /ui and /metrics on a listener of their own; metrics.listen gives
// /metrics its own (with metrics.token as its bearer token). The ingest port then serves only /ingest/*,
// /healthz and /readyz; everything else answers 404 problem+json there.

const TOKEN = 'listeners-admin-token'
const METRICS_TOKEN = 'listeners-metrics-token'
const auth = { authorization: `Bearer ${TOKEN}` }

const base = {
  sinks: { out: { type: 'file', dir: '{dir}/out' } },
  streams: { s: { source: 'ndjson', sinks: ['out'] } },
}

const get = (url: string, headers: Record<string, string> = {}): Promise<Answer> =>
  send(url, { method: 'GET', headers })

function expectNotFound(res: Answer, path: string): void {
  expect(res.status, path).toBe(404)
  expect(res.headers['content-type'], path).toMatch(/^application\/problem\+json/)
  expect(res.json(), path).toMatchObject({ status: 404, detail: expect.stringContaining(path) as string })
}

/** Resolves true once nothing accepts connections on the port any more. */
function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    socket.once('connect', () => {
      socket.destroy()
      resolve(false)
    })
    socket.once('error', () => resolve(true))
  })
}

describe('admin.listen: the admin surface on its own listener', () => {
  let gw: TestGateway

  beforeAll(async () => {
    gw = await startGateway({ ...base, admin: { token: TOKEN, listen: { host: '127.0.0.1', port: 0 } } })
  })
  afterAll(async () => {
    await gw?.close()
  })

  it('the ingest port serves /ingest/*, /healthz and /readyz only', async () => {
    expect(gw.adminUrl).toBeDefined()
    expect(gw.adminPort).not.toBe(gw.port)
    const res = await send(`${gw.url}/ingest/s`, { body: '{"n":1}\n' })
    expect(res.json()).toMatchObject({ accepted: 1 })
    expect((await get(`${gw.url}/healthz`)).status).toBe(200)
    expect((await get(`${gw.url}/readyz`)).status).toBe(200)
    for (const path of [
      '/api/v1/streams',
      '/api/v1/streams/s',
      '/api/v1/openapi.json',
      '/api/v1/streams/statuses',
      '/ui',
      '/metrics',
    ])
      expectNotFound(await get(`${gw.url}${path}`, auth), path)
    expectNotFound(await send(`${gw.url}/api/v1/streams`, { headers: auth, body: '{}' }), '/api/v1/streams')
  })

  it('the admin port serves the API, /ui, /metrics, /healthz and /readyz, and no ingest', async () => {
    const admin = gw.adminUrl!
    const stream = await get(`${admin}/api/v1/streams/s`, auth)
    expect(stream.status).toBe(200)
    // The inlet URL vendors need is the ingest listener's, not the one the API was asked on.
    expect(stream.json().inletUrl).toBe(`http://127.0.0.1:${gw.port}/ingest/s`)
    expect((await get(`${admin}/api/v1/streams`)).status).toBe(401)
    const ui = await get(`${admin}/ui`)
    expect(ui.status).toBe(200)
    expect(ui.headers['content-type']).toMatch(/^text\/html/)
    const metrics = await get(`${admin}/metrics`)
    expect(metrics.status).toBe(200)
    expect(metrics.text).toMatch(/streamgate_records_accepted_total\{stream="s"\} 1/)
    expect((await get(`${admin}/healthz`)).status).toBe(200)
    expect((await get(`${admin}/readyz`)).status).toBe(200)
    expectNotFound(await send(`${admin}/ingest/s`, { body: '{"n":2}\n' }), '/ingest/s')
  })
})

describe('metrics.listen and metrics.token', () => {
  it('/metrics only on its own listener, behind its bearer token; stop closes all three listeners', async () => {
    const gw = await startGateway({
      ...base,
      admin: { token: TOKEN, listen: { host: '127.0.0.1', port: 0 } },
      metrics: { token: METRICS_TOKEN, listen: { host: '127.0.0.1', port: 0 } },
    })
    const ports = [gw.port, gw.adminPort!, gw.metricsPort!]
    try {
      const m = gw.metricsUrl!
      const none = await get(`${m}/metrics`)
      expect(none.status).toBe(401)
      expect(none.headers['www-authenticate']).toMatch(/^Bearer realm="streamgate-metrics"/)
      expect((await get(`${m}/metrics`, auth)).status).toBe(401) // the admin token is not the metrics token
      const ok = await get(`${m}/metrics`, { authorization: `Bearer ${METRICS_TOKEN}` })
      expect(ok.status).toBe(200)
      expect(ok.text).toContain('streamgate_build_info')
      expect((await get(`${m}/healthz`)).status).toBe(200)
      expect((await get(`${m}/readyz`)).status).toBe(200)
      for (const path of ['/api/v1/streams', '/ui']) expectNotFound(await get(`${m}${path}`, auth), path)
      expectNotFound(await send(`${m}/ingest/s`, { body: '{}\n' }), '/ingest/s')
      // Neither the admin nor the ingest listener serves it.
      const bearer = { authorization: `Bearer ${METRICS_TOKEN}` }
      expectNotFound(await get(`${gw.adminUrl!}/metrics`, bearer), '/metrics')
      expectNotFound(await get(`${gw.url}/metrics`, bearer), '/metrics')
      expect((await get(`${gw.adminUrl!}/api/v1/streams`, auth)).status).toBe(200)
    } finally {
      await gw.close()
    }
    for (const port of ports) expect(await refused(port), `port ${port} after stop`).toBe(true)
  })

  it('metrics.listen alone: the ingest port keeps the API and /ui, /metrics moves', async () => {
    const gw = await startGateway({
      ...base,
      admin: { token: TOKEN },
      metrics: { listen: { host: '127.0.0.1', port: 0 } },
    })
    try {
      expect(gw.adminUrl).toBeUndefined()
      expect((await get(`${gw.url}/api/v1/streams`, auth)).status).toBe(200)
      expect((await get(`${gw.url}/ui`)).status).toBe(200)
      expectNotFound(await get(`${gw.url}/metrics`), '/metrics')
      // No metrics.token: open to whoever reaches the listener.
      expect((await get(`${gw.metricsUrl!}/metrics`)).status).toBe(200)
    } finally {
      await gw.close()
    }
  })

  it('metrics.token without metrics.listen guards /metrics on the one port', async () => {
    const gw = await startGateway({ ...base, metrics: { token: METRICS_TOKEN } })
    try {
      expect((await get(`${gw.url}/metrics`)).status).toBe(401)
      expect((await get(`${gw.url}/metrics`, { authorization: `Bearer ${METRICS_TOKEN}` })).status).toBe(200)
      expect((await send(`${gw.url}/ingest/s`, { body: '{}\n' })).status).toBe(200)
    } finally {
      await gw.close()
    }
  })
})

describe('without admin.listen (the default)', () => {
  it('one port serves ingest, the API, /ui and /metrics as before', async () => {
    const gw = await startGateway({ ...base, admin: { token: TOKEN } })
    try {
      expect(gw.adminPort).toBeUndefined()
      expect(gw.metricsPort).toBeUndefined()
      expect((await send(`${gw.url}/ingest/s`, { body: '{}\n' })).status).toBe(200)
      expect((await get(`${gw.url}/api/v1/streams`, auth)).status).toBe(200)
      expect((await get(`${gw.url}/ui`)).status).toBe(200)
      expect((await get(`${gw.url}/metrics`)).status).toBe(200)
    } finally {
      await gw.close()
    }
  })
})

describe('admin.listen.tls', () => {
  let dir: string
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'streamgate-tls-'))
    await promisify(execFile)('openssl', [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
      '-days',
      '1',
      '-keyout',
      join(dir, 'key.pem'),
      '-out',
      join(dir, 'cert.pem'),
    ])
  })
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  it('serves the admin listener over HTTPS while ingest stays plain HTTP', async () => {
    const gw = await startGateway({
      ...base,
      admin: {
        token: TOKEN,
        listen: {
          host: '127.0.0.1',
          port: 0,
          tls: { certFile: join(dir, 'cert.pem'), keyFile: join(dir, 'key.pem') },
        },
      },
    })
    try {
      const ca = readFileSync(join(dir, 'cert.pem'))
      const status = await new Promise<number>((resolve, reject) => {
        const req = httpsRequest(
          `https://127.0.0.1:${gw.adminPort!}/api/v1/streams`,
          { method: 'GET', headers: auth, ca },
          (res) => {
            res.resume()
            resolve(res.statusCode ?? 0)
          },
        )
        req.on('error', reject)
        req.end()
      })
      expect(status).toBe(200)
      // Plain HTTP on the TLS port is not answered as HTTP.
      await expect(get(`http://127.0.0.1:${gw.adminPort!}/healthz`)).rejects.toThrow()
      expect((await send(`${gw.url}/ingest/s`, { body: '{}\n' })).status).toBe(200)
    } finally {
      await gw.close()
    }
  })
})

describe('config', () => {
  const plain = {
    sinks: { out: { type: 'stdout' } },
    streams: { s: { source: 'ndjson', auth: { headers: { 'x-key': 'k3y' } }, sinks: ['out'] } },
  }
  const check = (doc: Record<string, unknown>) =>
    validateConfig({ ...plain, ...doc }, { env: {} }).issues.map((i) => `${i.path}: ${i.message}`)

  it('defaults: admin and metrics listeners bind 127.0.0.1; login throttle 5 per minute', () => {
    const { config } = validateConfig(
      { ...plain, admin: { listen: { port: 8081 } }, metrics: { listen: { port: 9464 } } },
      { env: {} },
    )
    expect(config!.admin.listen).toEqual({ host: '127.0.0.1', port: 8081 })
    expect(config!.metrics.listen).toEqual({ host: '127.0.0.1', port: 9464 })
    expect(config!.admin.loginThrottle).toEqual({ maxFailures: 5, windowMs: 60_000 })
    expect(config!.health).toEqual({ lagWindowMs: 30_000, sampleIntervalMs: 5_000 })
  })

  it('a listener on a port another listener binds is a config error naming the path', () => {
    expect(check({ server: { port: 8080 }, admin: { listen: { port: 8080 } } })).toEqual([
      "admin.listen.port: port 8080 is server's already; each listener needs its own",
    ])
    expect(
      check({
        server: { port: 8080 },
        admin: { listen: { port: 8081 } },
        metrics: { listen: { host: '127.0.0.1', port: 8081 } },
      }),
    ).toEqual(["metrics.listen.port: port 8081 is admin.listen's already; each listener needs its own"])
    // Different addresses may share a port; port 0 never clashes.
    expect(
      check({
        server: { host: '127.0.0.1', port: 8080 },
        admin: { listen: { host: '127.0.0.2', port: 8080 } },
      }),
    ).toEqual([])
    expect(check({ server: { port: 0 }, admin: { listen: { port: 0 } } })).toEqual([])
    expect(check({ admin: { listen: { host: '127.0.0.1' } } })).toEqual([
      'admin.listen: missing required key "port"',
    ])
  })
})
