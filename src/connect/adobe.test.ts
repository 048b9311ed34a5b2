import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { testConnect, type TestConnect } from '../../test/support/connect-context.js'
import {
  CONNECTION_SPEC_ID,
  FlowServiceFake,
  PROVIDER_ID,
} from '../../test/support/mocks/adobe-flow-service.js'
import { connectAdobe, disconnectAdobe, listAdobe } from './adobe.js'
import { ConnectProblem, VendorError } from './vendor-http.js'

// Against the Flow Service fake (test/support/mocks/adobe-flow-service.ts), built from vendor-docs/003.

const ORG = '5F4D3C2B1A@AdobeOrg'
const API_KEY = 'adobe-client-id'
const SECRET = 'adobe-client-secret-value'
const INLET_ID = 'a868e1ce678a911ef1482b083329af3cafa4bafdc781285f25911eaae9e00eb2'
let flow: FlowServiceFake
let t: TestConnect

function sinkDoc(sink: Record<string, unknown>): Record<string, unknown> {
  return {
    sinks: { aep: { type: 'adobe', schemaRef: 'https://ns.adobe.com/t/schemas/s', imsOrgId: ORG, ...sink } },
    streams: {},
  }
}

beforeEach(async () => {
  flow = await FlowServiceFake.start({
    apiKey: API_KEY,
    imsOrgId: ORG,
    clientId: API_KEY,
    clientSecret: SECRET,
    inletId: INLET_ID,
  })
  t = testConnect(
    sinkDoc({
      sandboxName: 'dev',
      auth: { clientId: API_KEY, clientSecret: SECRET, tokenUrl: flow.tokenUrl },
    }),
    { ADOBE_PLATFORM_URL: flow.url },
  )
})
afterEach(async () => {
  await flow.close()
  t.cleanup()
})

const inletUrl = `https://dcs.adobedc.net/collection/${INLET_ID}`

describe('connect adobe', () => {
  it('creates an authenticated streaming connection, reads its inletUrl and writes it into the sink', async () => {
    const report = await connectAdobe(t.ctx(), 'aep')
    expect(report).toMatchObject({ action: 'created', changes: ['inletUrl'], config: { inletUrl } })
    expect(flow.calls.map((c) => `${c.method} ${c.path} ${c.status}`)).toEqual([
      'POST /ims/token/v3 200',
      'POST /data/foundation/flowservice/connections 201',
      `GET /data/foundation/flowservice/connections/${report.vendorId} 200`,
    ])
    const create = flow.calls[1]!
    expect(create.headers).toMatchObject({
      'x-api-key': API_KEY,
      'x-gw-ims-org-id': ORG,
      'x-sandbox-name': 'dev',
      'content-type': 'application/json',
    })
    expect(create.headers.authorization).toMatch(/^Bearer ims-/)
    expect(create.body).toEqual({
      name: 'streamgate aep',
      providerId: PROVIDER_ID,
      description: 'Streaming connection of the streamgate sink "aep"',
      connectionSpec: { id: CONNECTION_SPEC_ID, version: '1.0' },
      auth: {
        specName: 'Streaming Connection',
        params: {
          sourceId: 'streamgate-aep',
          dataType: 'xdm',
          name: 'streamgate aep',
          authenticationRequired: true,
        },
      },
    })
    expect(t.patches).toEqual([{ name: 'aep', patch: { inletUrl } }])
    expect(await t.ledger.get('adobe', 'sink', 'aep')).toMatchObject({
      vendorId: report.vendorId,
      created: true,
    })
    expect(JSON.stringify(report)).not.toContain(SECRET)
  })

  it('is idempotent: a re-run reads the remembered connection and writes nothing', async () => {
    await connectAdobe(t.ctx(), 'aep')
    flow.calls.length = 0
    const again = await connectAdobe(t.ctx(), 'aep')
    expect(again.action).toBe('unchanged')
    expect(flow.writes().filter((c) => c.path.includes('flowservice'))).toEqual([])
    expect(t.patches).toHaveLength(1)
  })

  it('an unauthenticated inlet (no auth): ADOBE_ACCESS_TOKEN for Flow Service, no authenticationRequired', async () => {
    t = testConnect(sinkDoc({ apiKey: API_KEY }), { ADOBE_PLATFORM_URL: flow.url })
    await expect(connectAdobe(t.ctx(), 'aep')).rejects.toThrow(/export ADOBE_ACCESS_TOKEN/)
    t.env.ADOBE_ACCESS_TOKEN = flow.issueToken()
    const report = await connectAdobe(t.ctx(), 'aep')
    expect(report.action).toBe('created')
    const create = flow.calls.find((c) => c.method === 'POST')!
    expect(create.headers['x-sandbox-name']).toBe('prod')
    expect((create.body as { auth: { params: object } }).auth.params).not.toHaveProperty(
      'authenticationRequired',
    )
    expect(report.notes).toContain('no sandboxName: the "prod" sandbox is used')
  })

  it('a connection still provisioning: an error that says run again, and the re-run reuses the connection', async () => {
    flow.provisioningReads = 1
    const err = (await connectAdobe(t.ctx(), 'aep').catch((e: unknown) => e)) as VendorError
    expect(err).toBeInstanceOf(VendorError)
    expect(err.message).toContain('the connection has no auth.params.inletUrl yet')
    expect(err.message).toContain('run `streamgate connect adobe aep` again')
    expect(t.patches).toEqual([])
    const report = await connectAdobe(t.ctx(), 'aep')
    expect(report.action).toBe('updated')
    expect(flow.connections.size).toBe(1)
    expect(t.patches).toEqual([{ name: 'aep', patch: { inletUrl } }])
  })

  it('a remembered connection deleted at Adobe is created again', async () => {
    await connectAdobe(t.ctx(), 'aep')
    flow.connections.clear()
    const report = await connectAdobe(t.ctx(), 'aep')
    expect(report.action).toBe('created')
    expect(report.notes.join()).toContain('is gone at Adobe')
    expect(flow.connections.size).toBe(1)
  })

  it('an inletUrl set by hand is left alone, without calling Adobe', async () => {
    t.config.sinks.aep = { ...t.config.sinks.aep!, inletUrl } as never
    const report = await connectAdobe(t.ctx(), 'aep')
    expect(report.action).toBe('unchanged')
    expect(flow.calls).toEqual([])
  })

  it('--dry-run: the token is fetched, the create and its read are shown, nothing written', async () => {
    const report = await connectAdobe(t.ctx({ dryRun: true }), 'aep')
    expect(report).toMatchObject({ action: 'created', dryRun: true })
    expect(flow.calls.map((c) => c.path)).toEqual(['/ims/token/v3'])
    expect(report.requests.map((r) => [r.method, r.url.replace(flow.url, ''), r.sent])).toEqual([
      ['POST', '/ims/token/v3', true],
      ['POST', '/data/foundation/flowservice/connections', false],
      ['GET', '/data/foundation/flowservice/connections/%7BCONNECTION_ID%7D', false],
    ])
    expect(report.requests[1]!.headers).toMatchObject({
      authorization: 'Bearer ***',
      'x-api-key': '***',
      'x-gw-ims-org-id': ORG,
      'x-sandbox-name': 'dev',
    })
    expect(t.patches).toEqual([])
    expect(await t.ledger.get('adobe', 'sink', 'aep')).toBeUndefined()
  })

  it('needs imsOrgId and an API key before calling anything', async () => {
    t = testConnect(sinkDoc({ imsOrgId: undefined, auth: { token: 't' }, apiKey: API_KEY }), t.env)
    await expect(connectAdobe(t.ctx(), 'aep')).rejects.toThrow(ConnectProblem)
    t = testConnect(sinkDoc({ auth: { token: 't' } }), t.env)
    await expect(connectAdobe(t.ctx(), 'aep')).rejects.toThrow(
      /sinks\.aep\.apiKey: Flow Service needs x-api-key/,
    )
    expect(flow.calls).toEqual([])
  })
})

describe('Adobe errors are made plain', () => {
  it('401: a token Adobe refuses', async () => {
    t = testConnect(sinkDoc({ auth: { token: 'expired-token' }, apiKey: API_KEY }), t.env)
    const err = (await connectAdobe(t.ctx(), 'aep').catch((e: unknown) => e)) as VendorError
    expect(err.message).toContain(
      'Adobe Flow Service POST /data/foundation/flowservice/connections answered 401 Unauthorized: Oauth token is not valid',
    )
    expect(err.hint).toContain('check sinks.aep.auth')
    expect(err.message).not.toContain('expired-token')
  })

  it('403: an API key Adobe refuses', async () => {
    t = testConnect(sinkDoc({ auth: { token: flow.issueToken() }, apiKey: 'other-key' }), t.env)
    const err = (await connectAdobe(t.ctx(), 'aep').catch((e: unknown) => e)) as VendorError
    expect(err).toMatchObject({ status: 403, vendorMessage: 'Api Key is invalid' })
    expect(err.hint).toContain('product profile')
  })

  it('the IMS token endpoint refusing the client', async () => {
    t = testConnect(
      sinkDoc({ auth: { clientId: API_KEY, clientSecret: 'bad-secret-xyz', tokenUrl: flow.tokenUrl } }),
      t.env,
    )
    const err = (await connectAdobe(t.ctx(), 'aep').catch((e: unknown) => e)) as VendorError
    expect(err.call).toBe('token request POST /ims/token/v3')
    expect(err.message).toContain('invalid client credentials')
    expect(err.message).not.toContain('bad-secret-xyz')
  })

  for (const [status, hint] of [
    [404, 'ADOBE_PLATFORM_URL does not point'],
    [409, 'streamgate connections adobe'],
    [422, 'fix the config'],
    [500, 'run again later'],
    [503, 'run again later'],
  ] as const)
    it(`${status} on the create`, async () => {
      t = testConnect(sinkDoc({ auth: { token: flow.issueToken() }, apiKey: API_KEY }), t.env)
      flow.failNext({
        method: 'POST',
        status,
        body: { title: 'Failed', status, detail: `adobe says ${status}` },
      })
      const err = (await connectAdobe(t.ctx(), 'aep').catch((e: unknown) => e)) as VendorError
      expect(err).toBeInstanceOf(VendorError)
      expect(err).toMatchObject({ status, call: 'POST /data/foundation/flowservice/connections' })
      expect(err.message).toContain(`adobe says ${status}`)
      expect(err.hint).toContain(hint)
      expect(t.patches).toEqual([])
    })
})

describe('list and disconnect', () => {
  it('lists the connection with its state and whether its inlet is the sink’s', async () => {
    expect(await listAdobe(t.ctx())).toEqual([
      {
        vendor: 'adobe',
        kind: 'sink',
        name: 'aep',
        matches: false,
        differences: [],
        detail: 'not connected: run streamgate connect adobe aep',
      },
    ])
    const report = await connectAdobe(t.ctx(), 'aep')
    expect(await listAdobe(t.ctx())).toEqual([
      {
        vendor: 'adobe',
        kind: 'sink',
        name: 'aep',
        vendorId: report.vendorId,
        status: 'enabled',
        url: inletUrl,
        matches: true,
        differences: [],
      },
    ])
  })

  it('disconnect removes inletUrl and keeps the connection, which the next connect reuses', async () => {
    const made = await connectAdobe(t.ctx(), 'aep')
    const report = await disconnectAdobe(t.ctx(), 'aep')
    expect(report).toMatchObject({ action: 'deleted', changes: ['inletUrl'], config: { inletUrl: null } })
    expect(report.notes.join()).toContain(`the streaming connection ${made.vendorId} stays at Adobe`)
    expect(t.config.sinks.aep).not.toHaveProperty('inletUrl')
    const posts = flow.calls.filter((c) => c.method === 'POST' && c.path.includes('flowservice')).length
    const again = await connectAdobe(t.ctx(), 'aep')
    expect(again).toMatchObject({ action: 'updated', vendorId: made.vendorId })
    expect(flow.calls.filter((c) => c.method === 'POST' && c.path.includes('flowservice')).length).toBe(posts)
    expect((await disconnectAdobe(t.ctx(), 'aep')).action).toBe('deleted')
    expect((await disconnectAdobe(t.ctx(), 'aep')).action).toBe('absent')
  })
})
