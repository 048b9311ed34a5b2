import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { problem, ProblemError } from '../errors.js'
import { createLogger } from '../telemetry/logger.js'
import { Metrics } from '../telemetry/metrics.js'
import { checkConfig } from './config-check.js'
import { Gateway, type GatewayDeps } from './gateway.js'
import type { HandOff } from './hand-off.js'
import { SpoolHandOff } from './spool-hand-off.js'
import type { IngestMeta } from './ingest-entry.js'

// The pipeline's ingest entry without HTTP: a real gateway (real spool on disk, real file sink), bodies
// given as bytes, meta as a carrier would pass it. What reaches the sink is read back from its files.

const KEY = 'k-entry-test-3f9a'
const META: IngestMeta = { headers: { 'x-key': KEY }, remoteAddress: '127.0.0.1' }

const open: { gateway: Gateway; dir: string }[] = []
afterEach(async () => {
  for (const { gateway, dir } of open.splice(0)) {
    await gateway.close(0)
    rmSync(dir, { recursive: true, force: true })
  }
})

async function gatewayWith(
  stream: Record<string, unknown>,
  spool: Record<string, unknown> = {},
  handOff?: GatewayDeps['handOff'],
): Promise<{ gateway: Gateway; out: string; metrics: Metrics }> {
  const dir = mkdtempSync(join(tmpdir(), 'sg-ingest-entry-'))
  const out = join(dir, 'out')
  const doc = {
    server: { host: '127.0.0.1' },
    dataDir: dir,
    spool: { dir: join(dir, 'spool'), ...spool },
    sinks: { out: { type: 'file', dir: out, fsync: false } },
    streams: {
      s: { source: 'ndjson', auth: { headers: { 'X-Key': KEY } }, sinks: ['out'], ...stream },
    },
  }
  const { config, issues } = await checkConfig(doc, { env: {} })
  if (!config) throw new Error(issues.map((i) => `${i.path}: ${i.message}`).join('\n'))
  const metrics = new Metrics()
  const gateway = await Gateway.create(config, {
    logger: createLogger('silent'),
    metrics,
    ...(handOff ? { handOff } : {}),
  })
  open.push({ gateway, dir })
  return { gateway, out, metrics }
}

function lines(dir: string): string[] {
  let files: string[]
  try {
    files = readdirSync(dir).filter((f) => f.endsWith('.ndjson'))
  } catch {
    return []
  }
  return files.sort().flatMap((f) =>
    readFileSync(join(dir, f), 'utf8')
      .split('\n')
      .filter((l) => l !== ''),
  )
}

async function waitFor<T>(fn: () => T | undefined, what: string): Promise<T> {
  const deadline = Date.now() + 10_000
  for (;;) {
    const v = fn()
    if (v !== undefined) return v
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

async function refusal(work: Promise<unknown>): Promise<ProblemError> {
  const err = await work.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(ProblemError)
  return err as ProblemError
}

const ndjson = (...records: object[]): Buffer => Buffer.from(records.map((r) => JSON.stringify(r)).join('\n'))

describe('IngestEntry: admit → process → rate limit → hand-off → commit → counts', () => {
  it('accepts: the counts come back, the live figures add up, the records reach the sink from the spool', async () => {
    const { gateway, out } = await gatewayWith({})
    const stream = gateway.entry.stream('s')!
    expect(gateway.entry.admit(stream, META)).toBeUndefined()
    const counts = await gateway.entry.ingest(stream, ndjson({ a: 1 }, { a: 2 }), META)
    expect(counts).toEqual({ accepted: 2, rejected: 0, filtered: 0, duplicates: 0 })
    expect(gateway.states.get('s')!.counts).toEqual({
      received: 2,
      accepted: 2,
      rejected: 0,
      filtered: 0,
      duplicates: 0,
    })
    expect(await waitFor(() => (lines(out).length === 2 ? lines(out) : undefined), 'delivery')).toEqual([
      '{"a":1}',
      '{"a":2}',
    ])
  })

  it('refuses a request without the auth header before any body (401), and a wrong HMAC with it', async () => {
    const { gateway } = await gatewayWith({
      auth: {
        headers: { 'X-Key': KEY },
        hmac: { header: 'X-Sig', secret: 's3cr3t-entry', algorithm: 'sha256' },
      },
    })
    const stream = gateway.entry.stream('s')!
    expect(() => gateway.entry.admit(stream, { headers: {} })).toThrow(
      expect.objectContaining({ status: 401, slug: 'unauthorized' }),
    )
    const bad = await refusal(
      gateway.entry.ingest(stream, ndjson({ a: 1 }), { headers: { 'x-key': KEY, 'x-sig': 'nope' } }),
    )
    expect([bad.status, bad.slug]).toEqual([401, 'unauthorized'])
    expect(gateway.states.get('s')!.counts.received).toBe(0)
  })

  it('rejects the whole request with 422 under validation: reject, and counts the records as rejected', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sg-ingest-entry-schema-'))
    const schema = join(dir, 'needs-n.schema.json')
    const { writeFileSync } = await import('node:fs')
    writeFileSync(
      schema,
      JSON.stringify({
        $id: 'https://example.test/entry-needs-n.json',
        type: 'object',
        required: ['n'],
        properties: { n: { type: 'integer' } },
      }),
    )
    try {
      const { gateway, out } = await gatewayWith({ schema, validation: 'reject' })
      const stream = gateway.entry.stream('s')!
      const err = await refusal(gateway.entry.ingest(stream, ndjson({ n: 1 }, { x: 2 }, { y: 3 }), META))
      expect([err.status, err.slug, err.errors?.map((e) => e.index)]).toEqual([
        422,
        'invalid-records',
        [1, 2],
      ])
      expect(gateway.states.get('s')!.counts).toMatchObject({ received: 0, accepted: 0, rejected: 2 })
      // Nothing of a refused request is stored: the next accepted one is all the sink gets.
      await gateway.entry.ingest(stream, ndjson({ n: 7 }), META)
      expect(await waitFor(() => (lines(out).length > 0 ? lines(out) : undefined), 'delivery')).toEqual([
        '{"n":7}',
      ])
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('dedupes within the window, and only keys whose records were handed off are remembered', async () => {
    const { gateway } = await gatewayWith({ dedupe: { key: 'id', windowRecords: 100, windowMs: 60_000 } })
    const stream = gateway.entry.stream('s')!
    const first = await gateway.entry.ingest(stream, ndjson({ id: 'a' }, { id: 'b' }, { id: 'a' }), META)
    expect(first).toEqual({ accepted: 2, rejected: 0, filtered: 0, duplicates: 1 })
    const again = await gateway.entry.ingest(stream, ndjson({ id: 'b' }, { id: 'c' }), META)
    expect(again).toEqual({ accepted: 1, rejected: 0, filtered: 0, duplicates: 1 })
    expect(gateway.states.get('s')!.counts).toMatchObject({ received: 5, accepted: 3, duplicates: 2 })
  })

  it('rate limit: a request over the bucket gets 429 with Retry-After and is neither stored nor counted', async () => {
    const { gateway, out } = await gatewayWith({ rateLimit: { recordsPerSecond: 2, burstRecords: 2 } })
    const stream = gateway.entry.stream('s')!
    await gateway.entry.ingest(stream, ndjson({ a: 1 }, { a: 2 }), META)
    const err = await refusal(gateway.entry.ingest(stream, ndjson({ a: 3 }, { a: 4 }), META))
    expect([err.status, err.slug, err.headers['retry-after']]).toEqual([429, 'rate-limited', '1'])
    expect(gateway.states.get('s')!.counts).toMatchObject({ received: 2, accepted: 2 })
    await waitFor(() => (lines(out).length === 2 ? true : undefined), 'delivery')
    expect(lines(out)).toEqual(['{"a":1}', '{"a":2}'])
  })

  it('spool full: the hand-off refuses with 503 spool-full and Retry-After; nothing counts, the dedupe keys stay free', async () => {
    const { gateway, metrics } = await gatewayWith(
      { dedupe: { key: 'id', windowRecords: 100, windowMs: 60_000 } },
      { maxBytes: 200 },
    )
    const stream = gateway.entry.stream('s')!
    const big = ndjson(...Array.from({ length: 20 }, (_, i) => ({ id: `r${i}`, pad: 'x'.repeat(20) })))
    const err = await refusal(gateway.entry.ingest(stream, big, META))
    expect([err.status, err.slug, err.headers['retry-after']]).toEqual([503, 'spool-full', '30'])
    expect(gateway.states.get('s')!.counts).toMatchObject({ received: 0, accepted: 0 })
    expect(await metrics.registry.metrics()).toMatch(/^streamgate_spool_full_total\{stream="s"\} 1$/m)
    // The refused records were not remembered: sent again when there is room, they are not duplicates.
    const small = await gateway.entry.ingest(stream, ndjson({ id: 'r0' }), META)
    expect(small).toEqual({ accepted: 1, rejected: 0, filtered: 0, duplicates: 0 })
  })

  it('durability none: resolves only once the sink wrote the records, with nothing spooled', async () => {
    const { gateway, out } = await gatewayWith({ durability: 'none' })
    const stream = gateway.entry.stream('s')!
    const counts = await gateway.entry.ingest(stream, ndjson({ d: 1 }, { d: 2 }, { d: 3 }), META)
    expect(counts.accepted).toBe(3)
    // No waiting: the answer came after the sink's write.
    expect(lines(out)).toEqual(['{"d":1}', '{"d":2}', '{"d":3}'])
    expect(gateway.spool.usedBytes()).toBe(0)
  })

  it('refuses new work while draining (503 shutting-down), probes included', async () => {
    const { gateway } = await gatewayWith({})
    const stream = gateway.entry.stream('s')!
    gateway.startDraining()
    expect(() => gateway.entry.checkOpen()).toThrow(expect.objectContaining({ slug: 'shutting-down' }))
    expect(() => gateway.entry.probe(stream, META)).toThrow(expect.objectContaining({ status: 503 }))
  })
  it('GatewayDeps.handOff replaces the hand-off (the seam of another durable log, as the Kafka one of --role ingest)', async () => {
    const seen: string[] = []
    let refuse = false
    // Another role's hand-off: here one that refuses on demand and otherwise stores in the spool as usual.
    const handOff = (spool: ConstructorParameters<typeof SpoolHandOff>[0]): HandOff => {
      const inner = new SpoolHandOff(spool, { metrics: new Metrics(), logger: createLogger('silent') })
      return {
        accept: async (stream, outcome) => {
          seen.push(`${stream.id}:${outcome.records.length}`)
          if (refuse) throw problem('spool-unavailable', 'log down')
          await inner.accept(stream, outcome)
        },
      }
    }
    const { gateway, out } = await gatewayWith({}, {}, handOff)
    const stream = gateway.entry.stream('s')!
    expect(await gateway.entry.ingest(stream, ndjson({ h: 1 }), META)).toMatchObject({ accepted: 1 })
    refuse = true
    const err = await refusal(gateway.entry.ingest(stream, ndjson({ h: 2 }), META))
    expect([err.status, err.slug]).toEqual([503, 'spool-unavailable'])
    expect(seen).toEqual(['s:1', 's:1'])
    expect(gateway.states.get('s')!.counts.accepted).toBe(1)
    expect(await waitFor(() => (lines(out).length > 0 ? lines(out) : undefined), 'delivery')).toEqual([
      '{"h":1}',
    ])
  })

  it('the spool hand-off lets go of the records once their frames are encoded, before the write is durable; the counts stay right', async () => {
    // Per request, what the outcome still held while the spool's write was under way.
    const held: { records: number; deadLetters: number }[] = []
    const handOff = (spool: ConstructorParameters<typeof SpoolHandOff>[0]): HandOff => {
      const inner = new SpoolHandOff(spool, { metrics: new Metrics(), logger: createLogger('silent') })
      return {
        accept: (stream, outcome) => {
          const accepted = inner.accept(stream, outcome)
          held.push({ records: outcome.records.length, deadLetters: outcome.deadLetters.length })
          return accepted
        },
      }
    }
    const schema = join(mkdtempSync(join(tmpdir(), 'sg-ingest-schema-')), 's.json')
    writeFileSync(schema, JSON.stringify({ type: 'object', required: ['a'] }))
    const { gateway, out } = await gatewayWith({ schema, validation: 'dead-letter' }, {}, handOff)
    const stream = gateway.entry.stream('s')!
    // The first append opens the stream's log (asynchronously); from then on the frames are encoded at once.
    expect(await gateway.entry.ingest(stream, ndjson({ a: 0 }), META)).toMatchObject({ accepted: 1 })
    const counts = await gateway.entry.ingest(stream, ndjson({ a: 1 }, { b: 2 }, { a: 3 }), META)
    expect(counts).toEqual({ accepted: 2, rejected: 1, filtered: 0, duplicates: 0 })
    expect(held[1]).toEqual({ records: 0, deadLetters: 0 })
    expect(gateway.states.get('s')!.counts).toMatchObject({ received: 4, accepted: 3, rejected: 1 })
    expect(await waitFor(() => (lines(out).length === 3 ? lines(out) : undefined), 'delivery')).toEqual([
      '{"a":0}',
      '{"a":1}',
      '{"a":3}',
    ])
  })
})
