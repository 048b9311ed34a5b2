import { Writable } from 'node:stream'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createLogger } from '../../src/telemetry/logger.js'
import { startGateway, type TestGateway } from '../support/gateway.js'
import { send, type Answer } from '../support/http.js'

// Failed admin logins: each wrong bearer token is logged (source address, path; never the token) and
// counted per source address; after admin.loginThrottle.maxFailures within the window that address gets
// 429 + Retry-After, also with the right token, while other addresses are unaffected. Loopback has many
// addresses: 127.0.0.2 is "another client".

const TOKEN = 'throttle-admin-token'
const METRICS_TOKEN = 'throttle-metrics-token'
const WRONG = 'not-the-token-3f9a'

let gw: TestGateway
const logLines: Record<string, unknown>[] = []

beforeAll(async () => {
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n'))
        if (line) logLines.push(JSON.parse(line) as Record<string, unknown>)
      done()
    },
  })
  gw = await startGateway(
    {
      admin: { token: TOKEN, loginThrottle: { maxFailures: 3, windowMs: 60_000 } },
      metrics: { token: METRICS_TOKEN },
      sinks: { out: { type: 'file', dir: '{dir}/out' } },
      streams: { s: { source: 'ndjson', sinks: ['out'] } },
    },
    {},
    { logger: createLogger('info', sink) },
  )
})

afterAll(async () => {
  await gw?.close()
})

const api = (token: string | undefined, from?: string, path = '/api/v1/streams'): Promise<Answer> =>
  send(`${gw.url}${path}`, {
    method: 'GET',
    headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
    ...(from ? { localAddress: from } : {}),
  })

describe('failed admin logins', () => {
  it('requests without a bearer token are refused but not counted (they cannot guess anything)', async () => {
    for (let i = 0; i < 10; i++) expect((await api(undefined)).status).toBe(401)
    const malformed = await send(`${gw.url}/api/v1/streams`, {
      method: 'GET',
      headers: { authorization: 'SCHEMATHESIS-INVALID-VALUE' },
    })
    expect(malformed.status).toBe(401)
    expect((await api(TOKEN)).status).toBe(200)
    expect(logLines.filter((l) => l.msg === 'admin login failed: wrong bearer token')).toEqual([])
  })

  it('wrong tokens are logged; after maxFailures the address gets 429 + Retry-After, other addresses not', async () => {
    for (let i = 0; i < 3; i++) {
      const res = await api(WRONG, undefined, `/api/v1/streams/s?try=${i}`)
      expect(res.status).toBe(401)
      expect(res.headers['www-authenticate']).toContain('error="invalid_token"')
    }
    const failures = logLines.filter((l) => l.msg === 'admin login failed: wrong bearer token')
    expect(failures).toHaveLength(3)
    expect(failures[0]).toMatchObject({
      level: 40,
      remoteAddress: '127.0.0.1',
      method: 'GET',
      path: '/api/v1/streams/s',
      failures: 1,
    })
    expect(failures[2]).toMatchObject({ failures: 3, throttled: true })
    expect(JSON.stringify(logLines)).not.toContain(WRONG)

    // Refused now, also with the right token, for every protected path of the API (the /ui's calls too).
    for (const path of ['/api/v1/streams', '/api/v1/sinks/out']) {
      const refused = await api(TOKEN, undefined, path)
      expect(refused.status, path).toBe(429)
      expect(refused.headers['content-type']).toMatch(/^application\/problem\+json/)
      const retryAfter = Number(refused.headers['retry-after'])
      expect(retryAfter).toBeGreaterThanOrEqual(1)
      expect(retryAfter).toBeLessThanOrEqual(60)
      expect(refused.json()).toMatchObject({
        status: 429,
        detail: expect.stringMatching(/try again in \d+ s/) as string,
      })
    }
    // Refused attempts are not logged one by one (a flood cannot fill the log).
    expect(logLines.filter((l) => l.msg === 'admin login failed: wrong bearer token')).toHaveLength(3)

    // Another address is not affected; the public lookups and ingest are not behind the token at all.
    expect((await api(TOKEN, '127.0.0.2')).status).toBe(200)
    expect((await send(`${gw.url}/api/v1/streams/statuses`, { method: 'GET' })).status).toBe(200)
    expect((await send(`${gw.url}/ingest/s`, { body: '{"n":1}\n' })).status).toBe(200)
    // The metrics token's failures are counted apart: a throttled admin address can still scrape.
    const metrics = await send(`${gw.url}/metrics`, {
      method: 'GET',
      headers: { authorization: `Bearer ${METRICS_TOKEN}` },
    })
    expect(metrics.status).toBe(200)
  })

  it('wrong metrics tokens are throttled the same way, on their own count', async () => {
    const scrape = (token: string): Promise<Answer> =>
      send(`${gw.url}/metrics`, {
        method: 'GET',
        headers: { authorization: `Bearer ${token}` },
        localAddress: '127.0.0.3',
      })
    for (let i = 0; i < 3; i++) expect((await scrape(WRONG)).status).toBe(401)
    expect((await scrape(METRICS_TOKEN)).status).toBe(429)
    expect(logLines.filter((l) => l.msg === 'metrics login failed: wrong bearer token')).toHaveLength(3)
    // That address's admin logins are still fine.
    expect((await api(TOKEN, '127.0.0.3')).status).toBe(200)
  })
})
