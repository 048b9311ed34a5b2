import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startGateway, waitFor, type TestGateway } from '../support/gateway.js'
import { send, type Answer } from '../support/http.js'
import { HttpTargetMock } from '../support/mocks/http-target.js'

// The management API (SPEC section 7) over a real socket: every endpoint, bad input, auth, and secrets that
// never come back out.

const TOKEN = 'admin-token-for-tests'
const SECRETS = {
  streamHeader: 'stream-header-secret-1',
  hmac: 'hmac-secret-2',
  sinkHeader: 'Bearer sink-header-secret-3',
  kafkaPassword: 'kafka-password-secret-4',
  awsSecret: 'aws-secret-access-key-5',
  adobeSecret: 'adobe-client-secret-6',
  newHeader: 'patched-header-secret-7',
  urlPassword: 'url-password-secret-8',
  urlKey: 'url-api-key-secret-9',
}

let gw: TestGateway
/** Every answer body of this file, to check that no secret ever appears in one. */
const bodies: string[] = []

async function api(
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = { authorization: `Bearer ${TOKEN}` },
): Promise<Answer> {
  const answer = await send(`${gw.url}/api/v1${path}`, {
    method,
    headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
    ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  })
  bodies.push(answer.text)
  return answer
}

interface Problem {
  type: string
  title: string
  status: number
  detail: string
  errors?: { path?: string; pointer?: string; message: string }[]
  [key: string]: unknown
}

function expectProblem(answer: Answer, status: number): Problem {
  expect(answer.status, answer.text).toBe(status)
  expect(answer.headers['content-type']).toMatch(/^application\/problem\+json/)
  const problem = answer.json<Problem>()
  expect(problem).toMatchObject({ status, type: expect.stringMatching(/^https:\/\//) as string })
  return problem
}

beforeAll(async () => {
  gw = await startGateway({
    admin: { token: TOKEN },
    sinks: {
      out: { type: 'file', dir: '{dir}/out' },
      dl: { type: 'file', dir: '{dir}/dl' },
      hook: { type: 'http', url: 'http://127.0.0.1:9/hook', headers: { Authorization: SECRETS.sinkHeader } },
    },
    streams: {
      events: {
        source: 'ndjson',
        auth: {
          headers: { 'X-Key': SECRETS.streamHeader },
          hmac: { header: 'X-Signature', secret: SECRETS.hmac },
        },
        sinks: ['out'],
        deadLetter: 'dl',
      },
      plain: { source: 'ndjson', sinks: ['out'] },
    },
  })
})

afterAll(async () => {
  await gw?.close()
})

describe('lookups (public)', () => {
  it('GET /streams/statuses lists emnify’s four statuses', async () => {
    const res = await api('GET', '/streams/statuses', undefined, {})
    expect(res.status).toBe(200)
    expect(res.json()).toEqual([
      { id: 1, description: 'Running' },
      { id: 2, description: 'Paused' },
      { id: 3, description: 'Error' },
      { id: 4, description: 'Pending' },
    ])
  })

  it('GET /source_types, /sink_types and /sinks/types', async () => {
    const sources = (await api('GET', '/source_types', undefined, {})).json<
      { id: string; description: string }[]
    >()
    expect(sources.map((s) => s.id)).toEqual(['emnify', 'azion', 'ndjson', 'json', 'lines'])
    expect(sources.every((s) => s.description.length > 10)).toBe(true)
    const sinks = await api('GET', '/sink_types', undefined, {})
    expect(
      sinks
        .json<{ id: string }[]>()
        .map((s) => s.id)
        .sort(),
    ).toEqual(['adobe', 'domo', 'file', 'http', 'kafka', 'kinesis', 's3', 'stdout'].sort())
    expect((await api('GET', '/sinks/types', undefined, {})).text).toBe(sinks.text)
  })

  it('templates and openapi.json stay public', async () => {
    expect((await api('GET', '/templates', undefined, {})).json()).toMatchObject({ schema_version: 3 })
    expect((await api('GET', '/templates/86', undefined, {})).json()).toMatchObject({ results: { id: 86 } })
    const doc = (await api('GET', '/openapi.json', undefined, {})).json<{
      openapi: string
      paths: Record<string, unknown>
      components: { schemas: Record<string, unknown>; securitySchemes: Record<string, unknown> }
    }>()
    expect(doc.openapi).toBe('3.1.0')
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        '/ingest/{stream}',
        '/api/v1/streams',
        '/api/v1/streams/{id}',
        '/api/v1/sinks/{name}',
      ]),
    )
    // Generated from the config schema: its definitions are there, refs rewritten.
    expect(doc.components.schemas).toHaveProperty('stream')
    expect(doc.components.schemas).toHaveProperty('kafkaSink')
    expect(JSON.stringify(doc)).not.toContain('#/definitions/')
    expect(doc.components.securitySchemes).toEqual({
      bearer: expect.objectContaining({ scheme: 'bearer' }) as object,
    })
  })
})

describe('auth', () => {
  it('401 with WWW-Authenticate without a token, with a wrong one, or a malformed header', async () => {
    for (const path of ['/streams', '/streams/events', '/sinks', '/sinks/out']) {
      const none = await api('GET', path, undefined, {})
      expectProblem(none, 401)
      expect(none.headers['www-authenticate']).toBe('Bearer realm="streamgate"')
    }
    const wrong = await api('GET', '/streams', undefined, { authorization: 'Bearer nope' })
    expectProblem(wrong, 401)
    expect(wrong.headers['www-authenticate']).toBe('Bearer realm="streamgate", error="invalid_token"')
    expectProblem(await api('GET', '/streams', undefined, { authorization: `Basic ${TOKEN}` }), 401)
    expectProblem(await api('GET', '/streams', undefined, { authorization: `Bearer ${TOKEN}x` }), 401)
    // Writes too, before anything is read or changed.
    expectProblem(await api('POST', '/streams', { id: 'x', source: 'ndjson', sinks: ['out'] }, {}), 401)
    expectProblem(await api('DELETE', '/sinks/out', undefined, {}), 401)
    expect((await api('GET', '/streams')).status).toBe(200)
  })

  it('without admin.token the API answers 401 for everything but the lookups', async () => {
    const open = await startGateway({
      sinks: { out: { type: 'file', dir: '{dir}/out' } },
      streams: { s: { source: 'ndjson', sinks: ['out'] } },
    })
    try {
      for (const token of ['', 'anything']) {
        const res = await send(`${open.url}/api/v1/streams`, {
          method: 'GET',
          headers: token ? { authorization: `Bearer ${token}` } : {},
        })
        expect(res.status).toBe(401)
        expect(res.json<Problem>().detail).toMatch(/admin\.token/)
      }
      expect((await send(`${open.url}/api/v1/streams/statuses`, { method: 'GET' })).status).toBe(200)
      expect((await send(`${open.url}/api/v1/openapi.json`, { method: 'GET' })).status).toBe(200)
    } finally {
      await open.close()
    }
  })
})

describe('streams', () => {
  it('GET /streams and /streams/{id}: the stored shape, emnify status, inletUrl, live figures', async () => {
    const list = (await api('GET', '/streams')).json<Record<string, unknown>[]>()
    expect(list.map((s) => s.id)).toEqual(['events', 'plain'])
    const events = (await api('GET', '/streams/events')).json<Record<string, unknown>>()
    expect(events).toMatchObject({
      id: 'events',
      source: 'ndjson',
      sinks: ['out'],
      deadLetter: 'dl',
      validation: 'dead-letter',
      status: { id: 1, description: 'Running' },
      inletUrl: `${gw.url}/ingest/events`,
      figures: { received: 0, accepted: 0, rejected: 0, filtered: 0, duplicates: 0 },
      lastError: null,
    })
    expect(events.delivery).toEqual([
      { sink: 'out', deadLetter: false, delivered: 0, lag: 0, lastError: null },
      { sink: 'dl', deadLetter: true, delivered: 0, lag: 0, lastError: null },
    ])
    // Behind a proxy: X-Forwarded-Proto / X-Forwarded-Host.
    const proxied = await api('GET', '/streams/events', undefined, {
      authorization: `Bearer ${TOKEN}`,
      'x-forwarded-proto': 'https',
      'x-forwarded-host': 'gateway.example',
    })
    expect(proxied.json()).toMatchObject({ inletUrl: 'https://gateway.example/ingest/events' })
  })

  it('figures follow ingest', async () => {
    const res = await send(`${gw.url}/ingest/plain`, { body: '{"a":1}\n{"a":2}\n' })
    expect(res.status).toBe(200)
    const plain = (await api('GET', '/streams/plain')).json<{ figures: object }>()
    expect(plain.figures).toMatchObject({ received: 2, accepted: 2 })
  })

  it('POST creates (201 + Location), GET reads, a second POST is 409', async () => {
    const created = await api('POST', '/streams', {
      id: 'new-one',
      source: 'json',
      sinks: ['out'],
      filters: [{ field: 'kind', value: ['a', 'b'] }],
    })
    expect(created.status, created.text).toBe(201)
    expect(created.headers.location).toBe('/api/v1/streams/new-one')
    expect(created.json()).toMatchObject({
      id: 'new-one',
      source: 'json',
      status: { id: 1, description: 'Running' },
      filters: [{ field: 'kind', value: ['a', 'b'] }],
      inletUrl: `${gw.url}/ingest/new-one`,
    })
    expect((await api('GET', '/streams/new-one')).status).toBe(200)
    const again = expectProblem(
      await api('POST', '/streams', { id: 'new-one', source: 'json', sinks: ['out'] }),
      409,
    )
    expect(again.detail).toMatch(/new-one/)
  })

  it('PATCH is a merge patch in emnify’s shapes: {"status":{"id":2}} pauses, {"filters":[]} clears', async () => {
    const paused = await api('PATCH', '/streams/new-one', { status: { id: 2 }, filters: [] })
    expect(paused.status, paused.text).toBe(200)
    expect(paused.json()).toMatchObject({ status: { id: 2, description: 'Paused' }, filters: [] })
    expect(gw.gateway.state('new-one')!.status).toBe(2)
    const resumed = await api(
      'PATCH',
      '/streams/new-one',
      { status: 1, validation: 'drop' },
      {
        authorization: `Bearer ${TOKEN}`,
        'content-type': 'application/merge-patch+json',
      },
    )
    expect(resumed.json()).toMatchObject({
      status: { id: 1 },
      validation: 'drop',
      source: 'json',
      sinks: ['out'],
    })
    // null deletes a key (back to its default).
    const reset = await api('PATCH', '/streams/new-one', { validation: null })
    expect(reset.json()).toMatchObject({ validation: 'dead-letter' })
  })

  it('POST /streams/{id}/restart: Paused or Error → Running', async () => {
    await api('PATCH', '/streams/new-one', { status: { id: 2 } })
    const restarted = await api('POST', '/streams/new-one/restart')
    expect(restarted.status).toBe(200)
    expect(restarted.json()).toMatchObject({ status: { id: 1, description: 'Running' }, lastError: null })
    expect(gw.gateway.config.streams['new-one']!.status).toBe(1)
  })

  it('DELETE removes the stream (204), then it is 404 everywhere', async () => {
    expect((await api('DELETE', '/streams/new-one')).status).toBe(204)
    expectProblem(await api('GET', '/streams/new-one'), 404)
    expect((await send(`${gw.url}/ingest/new-one`, { body: '[]' })).status).toBe(404)
  })

  it('DELETE of a stream with records waiting in the spool is 409 unless ?force=true', async () => {
    expect(
      (await api('POST', '/streams', { id: 'backlog', source: 'ndjson', status: 2, sinks: ['out'] })).status,
    ).toBe(201)
    expect((await send(`${gw.url}/ingest/backlog`, { body: '{"n":1}\n{"n":2}\n' })).status).toBe(200)
    const refused = expectProblem(await api('DELETE', '/streams/backlog'), 409)
    expect(refused.detail).toMatch(/force=true/)
    expect(refused.pendingRecords).toBe(2)
    expectProblem(await api('DELETE', '/streams/backlog?force=maybe'), 400)
    expect((await api('DELETE', '/streams/backlog?force=true')).status).toBe(204)
    expectProblem(await api('GET', '/streams/backlog'), 404)
  })
})

describe('bad input', () => {
  it('unknown fields and wrong types: 400 listing every error with path and pointer', async () => {
    const unknown = expectProblem(
      await api('POST', '/streams', { id: 'x', source: 'ndjson', sinks: ['out'], bogus: 1 }),
      400,
    )
    expect(unknown.errors).toEqual([
      { path: 'streams.x.bogus', pointer: '/bogus', message: 'unknown key "bogus"' },
    ])
    const types = expectProblem(
      await api('POST', '/streams', { id: 'x', source: 5, sinks: 'out', maxBodyBytes: 'big' }),
      400,
    )
    expect(types.errors!.map((e) => e.pointer).sort()).toEqual(['/maxBodyBytes', '/sinks', '/source'])
    const sink = expectProblem(
      await api('POST', '/streams', { id: 'x', source: 'ndjson', sinks: ['kafak'] }),
      400,
    )
    expect(sink.errors).toEqual([
      { path: 'streams.x.sinks[0]', pointer: '/sinks/0', message: 'unknown sink "kafak"' },
    ])
    const patch = expectProblem(await api('PATCH', '/streams/plain', { filters: 'none', nope: true }), 400)
    expect(patch.errors!.map((e) => e.pointer).sort()).toEqual(['/filters', '/nope'])
    const sinkPatch = expectProblem(await api('PATCH', '/sinks/out', { maxFileBytes: -1 }), 400)
    expect(sinkPatch.errors![0]).toMatchObject({ path: 'sinks.out.maxFileBytes', pointer: '/maxFileBytes' })
    // Nothing was changed by the refused writes.
    expectProblem(await api('GET', '/streams/x'), 404)
    expect(gw.gateway.config.streams.plain!.filters).toEqual([])
  })

  it('what a dry build of the sink finds is a 400 too (a URL that is no URL)', async () => {
    const res = expectProblem(
      await api('POST', '/sinks', { name: 'bad-url', type: 'http', url: 'not a url' }),
      400,
    )
    expect(res.errors).toEqual([expect.objectContaining({ path: 'sinks.bad-url.url', pointer: '/url' })])
  })

  it('the one config check: a Kafka sink check-config refuses is a 400 naming its path (POST and PATCH)', async () => {
    const kafka = { type: 'kafka', brokers: ['127.0.0.1:9'], topic: 'bad topic!', idempotent: true, acks: 1 }
    const refusal = {
      path: 'sinks.k-acks',
      pointer: '',
      message:
        'an idempotent producer needs acks: -1 (all in-sync replicas); set idempotent: false to use acks: 1',
    }
    const post = expectProblem(await api('POST', '/sinks', { name: 'k-acks', ...kafka }), 400)
    expect(post.errors).toEqual([refusal])
    const topic = expectProblem(
      await api('POST', '/sinks', { name: 'k-topic', ...kafka, idempotent: false }),
      400,
    )
    expect(topic.errors).toEqual([
      {
        path: 'sinks.k-topic.topic',
        pointer: '/topic',
        message: '"bad topic!" is not a valid Kafka topic name',
      },
    ])
    const created = await api('POST', '/sinks', { name: 'k-ok', ...kafka, topic: 'ok', idempotent: false })
    expect(created.status, created.text).toBe(201)
    const patch = expectProblem(await api('PATCH', '/sinks/k-ok', { topic: 'bad topic!' }), 400)
    expect(patch.errors).toEqual([expect.objectContaining({ path: 'sinks.k-ok.topic', pointer: '/topic' })])
    expect(gw.gateway.config.sinks['k-ok']).toMatchObject({ topic: 'ok' })
    expect((await api('DELETE', '/sinks/k-ok')).status).toBe(204)
  })

  it("the one config check: a stream's source refuses what it cannot use (POST), nothing changes", async () => {
    const template = expectProblem(
      await api('POST', '/streams', { id: 'az', source: 'azion', template: 99, sinks: ['out'] }),
      400,
    )
    expect(template.errors).toEqual([
      { path: 'streams.az.template', pointer: '/template', message: 'unknown Azion template 99' },
    ])
    const foreign = expectProblem(
      await api('POST', '/streams', { id: 'nd', source: 'ndjson', template: 2, sinks: ['out'] }),
      400,
    )
    expect(foreign.errors).toEqual([
      { path: 'streams.nd.template', pointer: '/template', message: 'only applies to source azion' },
    ])
    expectProblem(await api('GET', '/streams/az'), 404)
  })

  it('a file sink outside dataDir is a 400 naming the path (POST and PATCH), nothing changes', async () => {
    const etc = expectProblem(await api('POST', '/sinks', { name: 'evil', type: 'file', dir: '/etc' }), 400)
    expect(etc.errors).toEqual([
      {
        path: 'sinks.evil.dir',
        pointer: '/dir',
        message: `must be inside dataDir "${gw.dir}" (resolves to "/etc")`,
      },
    ])
    const up = expectProblem(await api('PATCH', '/sinks/out', { dir: `${gw.dir}/../../x` }), 400)
    expect(up.errors).toEqual([expect.objectContaining({ path: 'sinks.out.dir', pointer: '/dir' })])
    const prefix = expectProblem(await api('PATCH', '/sinks/out', { prefix: '../x' }), 400)
    expect(prefix.errors).toEqual([expect.objectContaining({ path: 'sinks.out.prefix', pointer: '/prefix' })])
    expectProblem(await api('GET', '/sinks/evil'), 404)
    expect(gw.gateway.config.sinks.out).toMatchObject({ dir: `${gw.dir}/out`, prefix: 'records' })
  })

  it('ids, status and body shape', async () => {
    expectProblem(await api('POST', '/streams', { source: 'ndjson', sinks: ['out'] }), 400)
    expectProblem(await api('POST', '/streams', { id: 'has space', source: 'ndjson', sinks: ['out'] }), 400)
    expectProblem(await api('POST', '/streams', { id: 42, source: 'ndjson', sinks: ['out'] }), 400)
    expectProblem(await api('POST', '/streams', { id: 'statuses', source: 'ndjson', sinks: ['out'] }), 400)
    expectProblem(await api('POST', '/sinks', { name: 'types', type: 'stdout' }), 400)
    const status = expectProblem(await api('PATCH', '/streams/plain', { status: { id: 3 } }), 400)
    expect(status.errors).toEqual([expect.objectContaining({ pointer: '/status' })])
    expectProblem(await api('PATCH', '/streams/plain', { status: { id: 2, extra: 1 } }), 400)
    expectProblem(await api('PATCH', '/streams/plain', { id: 'renamed' }), 400)
    expectProblem(await api('PATCH', '/sinks/out', { name: 'renamed' }), 400)
    expectProblem(await api('POST', '/streams', '{"id": "x",'), 400)
    expectProblem(await api('POST', '/streams', '[]'), 400)
    expectProblem(await api('POST', '/streams', ''), 400)
    const form = await send(`${gw.url}/api/v1/streams`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: 'id=x',
    })
    expectProblem(form, 415)
  })

  it('bodies over 1 MiB: 413, by Content-Length and when streamed', async () => {
    const huge = JSON.stringify({
      id: 'big',
      source: 'ndjson',
      sinks: ['out'],
      contentTypes: ['x'.repeat(2 * 1024 * 1024)],
    })
    expectProblem(await api('POST', '/streams', huge), 413)
    const chunked = await send(`${gw.url}/api/v1/streams`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: [Buffer.from(huge.slice(0, 600_000)), Buffer.from(huge.slice(600_000))],
    })
    expectProblem(chunked, 413)
    expect((await api('GET', '/streams/plain')).status).toBe(200)
  })

  it('unknown ids: 404; other methods: 405 with Allow', async () => {
    expectProblem(await api('GET', '/streams/nope'), 404)
    expectProblem(await api('PATCH', '/streams/nope', { status: 2 }), 404)
    expectProblem(await api('DELETE', '/streams/nope'), 404)
    expectProblem(await api('POST', '/streams/nope/restart'), 404)
    expectProblem(await api('GET', '/sinks/nope'), 404)
    expectProblem(await api('PATCH', '/sinks/nope', { prefix: 'x' }), 404)
    expectProblem(await api('DELETE', '/sinks/nope'), 404)
    const put = expectProblem(await api('PUT', '/streams/plain', {}), 405)
    expect(put.detail).toMatch(/GET, PATCH, DELETE/)
    expect((await api('PUT', '/streams/plain', {})).headers.allow).toBe('GET, PATCH, DELETE')
    expect((await api('DELETE', '/streams/statuses', undefined, {})).status).toBe(401)
    expectProblem(await api('GET', '/nothing-here'), 404)
  })
})

describe('sinks', () => {
  it('POST, GET, PATCH and DELETE a sink', async () => {
    const created = await api('POST', '/sinks', { name: 'spare', type: 'file', dir: `${gw.dir}/spare` })
    expect(created.status, created.text).toBe(201)
    expect(created.headers.location).toBe('/api/v1/sinks/spare')
    expect(created.json()).toMatchObject({
      name: 'spare',
      type: 'file',
      dir: `${gw.dir}/spare`,
      prefix: 'records',
      figures: { delivered: 0, lag: 0 },
      lastError: null,
      usedBy: [],
    })
    expectProblem(await api('POST', '/sinks', { name: 'spare', type: 'stdout' }), 409)
    const patched = await api('PATCH', '/sinks/spare', { prefix: 'spare' })
    expect(patched.json()).toMatchObject({ prefix: 'spare', dir: `${gw.dir}/spare` })
    const list = (await api('GET', '/sinks')).json<{ name: string; usedBy: string[] }[]>()
    expect(list.map((s) => s.name)).toEqual(['out', 'dl', 'hook', 'spare'])
    expect(list.find((s) => s.name === 'out')!.usedBy).toEqual(['events', 'plain'])
    expect((await api('DELETE', '/sinks/spare')).status).toBe(204)
    expectProblem(await api('GET', '/sinks/spare'), 404)
  })

  it('DELETE of a sink a stream uses (also as dead-letter sink) is 409 naming the streams', async () => {
    const out = expectProblem(await api('DELETE', '/sinks/out'), 409)
    expect(out.streams).toEqual(['events', 'plain'])
    expect(out.detail).toMatch(/"events", "plain"/)
    const dl = expectProblem(await api('DELETE', '/sinks/dl'), 409)
    expect(dl.streams).toEqual(['events'])
    expect(gw.gateway.config.sinks).toHaveProperty('out')
  })

  it('sink figures: delivered and lag over the streams that use it', async () => {
    await send(`${gw.url}/ingest/plain`, { body: '{"b":1}\n' })
    const out = await waitFor(
      async () => {
        const s = (await api('GET', '/sinks/out')).json<{ figures: { delivered: number; lag: number } }>()
        return s.figures.delivered >= 3 && s.figures.lag === 0 ? s : undefined
      },
      10_000,
      'delivery figures',
    )
    expect(out.figures.delivered).toBe(3)
  })
})

describe('secrets are write-only', () => {
  it('creates sinks with secrets of every kind', async () => {
    const kafka = await api('POST', '/sinks', {
      name: 'kafka-sink',
      type: 'kafka',
      brokers: ['127.0.0.1:9'],
      topic: 'events',
      sasl: { mechanism: 'plain', username: 'user', password: SECRETS.kafkaPassword },
    })
    expect(kafka.status, kafka.text).toBe(201)
    expect(kafka.json()).toMatchObject({ sasl: { mechanism: 'plain', username: 'user', password: '***' } })
    const s3 = await api('POST', '/sinks', {
      name: 's3-sink',
      type: 's3',
      bucket: 'b',
      endpoint: 'http://127.0.0.1:9',
      credentials: { accessKeyId: 'AKIATEST', secretAccessKey: SECRETS.awsSecret },
    })
    expect(s3.status, s3.text).toBe(201)
    expect(s3.json()).toMatchObject({ credentials: { accessKeyId: '***', secretAccessKey: '***' } })
    const adobe = await api('POST', '/sinks', {
      name: 'adobe-sink',
      type: 'adobe',
      inletUrl: 'https://dcs.adobedc.net/collection/abc',
      schemaRef: 'https://ns.adobe.com/tenant/schemas/x',
      auth: { clientId: 'client', clientSecret: SECRETS.adobeSecret, tokenUrl: 'https://ims.example/token' },
    })
    expect(adobe.status, adobe.text).toBe(201)
    // tokenUrl is no secret; clientSecret is.
    expect(adobe.json()).toMatchObject({
      auth: { clientId: 'client', clientSecret: '***', tokenUrl: 'https://ims.example/token' },
    })
  })

  it('answers mask stream auth headers, HMAC secrets and sink headers', async () => {
    const events = (await api('GET', '/streams/events')).json<Record<string, unknown>>()
    expect(events.auth).toEqual({
      headers: { 'X-Key': '***' },
      hmac: { header: 'X-Signature', secret: '***', algorithm: 'sha256', encoding: 'hex', prefix: '' },
    })
    expect((await api('GET', '/sinks/hook')).json()).toMatchObject({ headers: { Authorization: '***' } })
  })

  it('PATCH sending the mask back keeps the stored secret; a new value replaces it', async () => {
    const round = await api('PATCH', '/streams/events', {
      auth: { headers: { 'X-Key': '***' }, hmac: { header: 'X-Signature', secret: '***' } },
      validation: 'drop',
    })
    expect(round.status, round.text).toBe(200)
    expect(gw.gateway.config.streams.events!.auth.headers).toEqual({ 'X-Key': SECRETS.streamHeader })
    expect(gw.gateway.config.streams.events!.auth.hmac!.secret).toBe(SECRETS.hmac)
    // emnify's list form with the mask works the same way.
    const list = await api('PATCH', '/streams/events', { auth: { headers: ['X-Key:***'] } })
    expect(list.status, list.text).toBe(200)
    expect(gw.gateway.config.streams.events!.auth.headers).toEqual({ 'X-Key': SECRETS.streamHeader })
    expect((await send(`${gw.url}/ingest/events`, { headers: { 'x-key': '***' }, body: '{}' })).status).toBe(
      401,
    )
    // A sink's whole object sent back as answered: secrets kept.
    const hook = (await api('GET', '/sinks/hook')).json<Record<string, unknown>>()
    const { name: _n, figures: _f, lastError: _l, usedBy: _u, ...stored } = hook
    expect((await api('PATCH', '/sinks/hook', stored)).status).toBe(200)
    expect(gw.gateway.config.sinks.hook).toMatchObject({ headers: { Authorization: SECRETS.sinkHeader } })
    const changed = await api('PATCH', '/streams/plain', {
      auth: { headers: { 'X-New': SECRETS.newHeader } },
    })
    expect(changed.json()).toMatchObject({ auth: { headers: { 'X-New': '***' } } })
    expect(
      (await send(`${gw.url}/ingest/plain`, { headers: { 'x-new': SECRETS.newHeader }, body: '{}' })).status,
    ).toBe(200)
  })

  it('the mask where no secret is stored is refused (POST, or a new header name)', async () => {
    const post = expectProblem(
      await api('POST', '/streams', {
        id: 'copy',
        source: 'ndjson',
        sinks: ['out'],
        auth: { headers: { 'X-Key': '***' } },
      }),
      400,
    )
    expect(post.errors).toEqual([expect.objectContaining({ pointer: '/auth/headers/X-Key' })])
    const patch = expectProblem(
      await api('PATCH', '/streams/plain', { auth: { headers: { 'X-Other': '***' } } }),
      400,
    )
    expect(patch.errors).toEqual([expect.objectContaining({ pointer: '/auth/headers/X-Other' })])
  })

  it('credentials inside URLs are masked; the masked URL sent back keeps them, a new host must bring its own', async () => {
    const target = await HttpTargetMock.start()
    try {
      const url = `${target.url.replace('//', `//relay:${SECRETS.urlPassword}@`)}/in?api_key=${SECRETS.urlKey}&x=1`
      const maskedUrl = `${target.url.replace('//', '//relay:***@')}/in?api_key=***&x=1`
      const created = await api('POST', '/sinks', { name: 'url-sink', type: 'http', url })
      expect(created.status, created.text).toBe(201)
      expect(created.json()).toMatchObject({ url: maskedUrl })
      expect((await api('GET', '/sinks/url-sink')).json()).toMatchObject({ url: maskedUrl })
      // The whole answer sent back unchanged (the status page and API clients do this): the URL is kept.
      const answered = (await api('GET', '/sinks/url-sink')).json<Record<string, unknown>>()
      const { name: _n, figures: _f, lastError: _l, usedBy: _u, ...asAnswered } = answered
      const back = await api('PATCH', '/sinks/url-sink', { ...asAnswered, timeoutMs: 4000 })
      expect(back.status, back.text).toBe(200)
      expect(gw.gateway.config.sinks['url-sink']).toMatchObject({ url, timeoutMs: 4000 })
      // And it is the stored URL the sink really posts to.
      const stream = { id: 'via-url', source: 'ndjson', sinks: ['url-sink'] }
      expect((await api('POST', '/streams', stream)).status).toBe(201)
      expect((await send(`${gw.url}/ingest/via-url`, { body: '{"n":1}' })).status).toBe(200)
      const delivered = await waitFor(() => target.requests[0], 10_000, 'delivery through url-sink')
      expect(delivered.path).toBe(`/in?api_key=${SECRETS.urlKey}&x=1`)
      // The mask towards another host would hand the stored key to it: refused with the pointer.
      const moved = expectProblem(
        await api('PATCH', '/sinks/url-sink', { url: 'http://relay:***@127.0.0.1:9/in?api_key=***' }),
        400,
      )
      expect(moved.errors).toEqual(expect.arrayContaining([expect.objectContaining({ pointer: '/url' })]))
      expect(gw.gateway.config.sinks['url-sink']).toMatchObject({ url })
      // A changed URL with its own credentials replaces the stored one.
      const fresh = `${target.url}/v2?token=new-token-value`
      expect((await api('PATCH', '/sinks/url-sink', { url: fresh })).status).toBe(200)
      expect(gw.gateway.config.sinks['url-sink']).toMatchObject({ url: fresh })
      expect((await api('DELETE', '/streams/via-url?force=true')).status).toBe(204)
    } finally {
      await target.close()
    }
  })

  it('no answer of this file ever contained a secret', async () => {
    // Read everything once more, then look through every body.
    await api('GET', '/streams')
    await api('GET', '/sinks')
    for (const name of ['hook', 'kafka-sink', 's3-sink', 'adobe-sink', 'url-sink'])
      await api('GET', `/sinks/${name}`)
    const all = bodies.join('\n')
    expect(bodies.length).toBeGreaterThan(50)
    for (const secret of Object.values(SECRETS)) expect(all).not.toContain(secret.replace('Bearer ', ''))
    expect(all).not.toContain('new-token-value')
    expect(all).not.toContain(TOKEN)
  })
})
