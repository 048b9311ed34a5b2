import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { bodyPool } from '../buffer-pool.js'
import { checkConfig } from '../pipeline/config-check.js'
import { Gateway } from '../pipeline/gateway.js'
import { createLogger } from '../telemetry/logger.js'
import { Metrics } from '../telemetry/metrics.js'
import { IngestHandler } from './ingest.js'

// The request body's buffer is given back to the pool (src/buffer-pool.ts) only when the stream's hand-off
// copied the records (the spool's frames): what reaches the sink must be the request's bytes even when the
// next request was read into the same buffer. `durability: none` hands the sinks views into the body, so
// its bodies are never given back. A real gateway (spool on disk, file sink); bodies are fed in pieces as
// the listener's request stream would, with their Content-Length.

const KEY = 'k-body-pool-7c1e'
const open: { gateway: Gateway; dir: string }[] = []
afterEach(async () => {
  for (const { gateway, dir } of open.splice(0)) {
    await gateway.close(0)
    rmSync(dir, { recursive: true, force: true })
  }
})

async function handlerWith(durability: 'spool' | 'none'): Promise<{ handler: IngestHandler; out: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'sg-body-pool-'))
  const out = join(dir, 'out')
  const doc = {
    server: { host: '127.0.0.1' },
    dataDir: dir,
    spool: { dir: join(dir, 'spool') },
    sinks: { out: { type: 'file', dir: out, fsync: false } },
    streams: { s: { source: 'ndjson', durability, auth: { headers: { 'X-Key': KEY } }, sinks: ['out'] } },
  }
  const { config, issues } = await checkConfig(doc, { env: {} })
  if (!config) throw new Error(issues.map((i) => `${i.path}: ${i.message}`).join('\n'))
  const metrics = new Metrics()
  const logger = createLogger('silent')
  const gateway = await Gateway.create(config, { logger, metrics })
  open.push({ gateway, dir })
  return { handler: new IngestHandler(gateway.entry, config.server, metrics, logger), out }
}

/** 2,000 records of ~60 bytes (~120 KB: a pooled size), each naming its batch. */
function batch(tag: string): { body: Buffer; lines: string[] } {
  const lines = Array.from({ length: 2000 }, (_, i) => JSON.stringify({ batch: tag, i, pad: tag.repeat(8) }))
  return { body: Buffer.from(lines.join('\n')), lines }
}

async function* pieces(body: Buffer, size = 16 * 1024): AsyncGenerator<Uint8Array> {
  for (let o = 0; o < body.length; o += size) yield body.subarray(o, o + size)
}

function post(handler: IngestHandler, body: Buffer): ReturnType<IngestHandler['handle']> {
  return handler.handle({
    streamId: 's',
    method: 'POST',
    headers: { 'x-key': KEY, 'content-length': String(body.length) },
    body: pieces(body),
  })
}

function delivered(dir: string): string[] {
  let files: string[]
  try {
    files = readdirSync(dir).filter((f) => f.endsWith('.ndjson'))
  } catch {
    return []
  }
  return files.sort().flatMap((f) => readFileSync(join(dir, f), 'utf8').split('\n').filter(Boolean))
}

async function deliveredAll(dir: string, n: number): Promise<string[]> {
  const deadline = Date.now() + 10_000
  for (;;) {
    const lines = delivered(dir)
    if (lines.length >= n) return lines
    if (Date.now() > deadline) throw new Error(`${lines.length} of ${n} records delivered`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

describe('request bodies and the body pool', () => {
  it('spooled: the next body is read into the same buffer, and each request reaches the sink as sent', async () => {
    const { handler, out } = await handlerWith('spool')
    const a = batch('a')
    const b = batch('b')
    const before = bodyPool.stats
    expect((await post(handler, a.body)).status).toBe(200)
    expect((await post(handler, b.body)).status).toBe(200)
    expect(bodyPool.stats.gives).toBe(before.gives + 2)
    expect(bodyPool.stats.reuses).toBe(before.reuses + 1) // b was read into a's buffer
    expect(await deliveredAll(out, 4000)).toEqual([...a.lines, ...b.lines])
  })

  it('durability none: the sinks got views into the body, so it is never given back', async () => {
    const { handler, out } = await handlerWith('none')
    const a = batch('c')
    const b = batch('d')
    const before = bodyPool.stats
    expect((await post(handler, a.body)).status).toBe(200)
    expect((await post(handler, b.body)).status).toBe(200)
    expect(bodyPool.stats.takes).toBe(before.takes + 2)
    expect(bodyPool.stats.gives).toBe(before.gives)
    expect(await deliveredAll(out, 4000)).toEqual([...a.lines, ...b.lines])
  })

  it('a refused body is not given back either', async () => {
    const { handler } = await handlerWith('spool')
    const bad = Buffer.concat([batch('e').body, Buffer.from('\n{not json')])
    const before = bodyPool.stats
    expect((await post(handler, bad)).status).toBe(400)
    expect(bodyPool.stats.takes).toBe(before.takes + 1)
    expect(bodyPool.stats.gives).toBe(before.gives)
  })
})
