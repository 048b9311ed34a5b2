// Peak memory of the gateway for emnify's documented maximum bulk: 10,000 PDP events in one POST (~15 MB;
// test/support/emnify-bulk.ts). Starts `node <cli> serve` with one emnify event stream at default settings
// and a file sink, posts the bulk `--posts` times one after the other (distinct ids each time, so dedupe does
// not short-cut them), and reads the kernel's high-water mark of the process's RSS (VmHWM) before and after.
// RSS also grows by what V8's young generation takes for any allocation-heavy work (parsing 10,000 records),
// so the gateway also runs a probe (`--import`, below) that samples process.memoryUsage() every 2 ms and
// reports the peak of `arrayBuffers` (Buffer memory: the body, its copies, spool frames) over its idle value:
// divided by the body size, that is how many copies of the body were alive at once. Samples are taken
// whenever the event loop is free, which includes the spool append (the body and the frame both alive).
// Buffer memory that exists only inside one synchronous step (a chunk list and its concatenation) escapes the
// sampling, so readBody of the same build is also measured alone, in this process (readBodyPeak).
// `--paused` starts the stream paused (status 2): records are spooled but not delivered, which isolates the
// ingest path from the delivery lane that reads the frame back. `--max-body-bytes` sets the stream's limit
// (for builds older than the 32 MiB emnify default).
//
//   npm run build && npx tsx bench/bulk-memory.ts [--cli dist/cli.js] [--posts 5] [--paused] [--chunked]

import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { parseArgs } from 'node:util'
import { freePort } from '../scripts/backends/daemon.js'
import { EMNIFY_MAX_BULK, pdpBulk } from '../test/support/emnify-bulk.js'
import { hwmBytes, rssBytes, waitForIdle } from './proc-stats.js'
import { NODE_FLAGS } from '../src/runtime-flags.js'

const { values } = parseArgs({
  options: {
    cli: { type: 'string', default: 'dist/cli.js' },
    posts: { type: 'string', default: '5' },
    paused: { type: 'boolean', default: false },
    chunked: { type: 'boolean', default: false },
    'max-body-bytes': { type: 'string' },
    'dedupe-off': { type: 'boolean', default: false },
  },
})
const posts = Number(values.posts)
const MB = 1024 * 1024

/**
 * Loaded into the gateway with --import: samples memoryUsage every 2 ms; on SIGUSR2 reports the peaks since
 * the last report (and resets them) to the file in STREAMGATE_PROBE_OUT.
 */
const PROBE = `
import { writeFileSync } from 'node:fs'
let peak = { rss: 0, heapUsed: 0, external: 0, arrayBuffers: 0 }
const sample = () => {
  const m = process.memoryUsage()
  for (const k of Object.keys(peak)) peak[k] = Math.max(peak[k], m[k])
}
setInterval(sample, 2).unref()
process.on('SIGUSR2', () => {
  sample()
  writeFileSync(process.env.STREAMGATE_PROBE_OUT, JSON.stringify({ peak, now: process.memoryUsage() }))
  peak = { rss: 0, heapUsed: 0, external: 0, arrayBuffers: 0 }
})
`

interface ProbeReport {
  peak: Record<'rss' | 'heapUsed' | 'external' | 'arrayBuffers', number>
  now: NodeJS.MemoryUsage
}

async function probe(pid: number, out: string): Promise<ProbeReport> {
  rmSync(out, { force: true })
  process.kill(pid, 'SIGUSR2')
  for (let i = 0; i < 200; i++) {
    try {
      return JSON.parse(readFileSync(out, 'utf8')) as ProbeReport
    } catch {
      await new Promise((r) => setTimeout(r, 10))
    }
  }
  throw new Error('the memory probe did not answer')
}

function post(url: string, body: Buffer, chunked: boolean): Promise<{ status: number; text: string }> {
  return new Promise((resolvePost, reject) => {
    const headers: Record<string, string> = { 'content-type': 'application/json' }
    if (!chunked) headers['content-length'] = String(body.length)
    const req = request(url, { method: 'POST', headers }, (res) => {
      let text = ''
      res.on('data', (c: Buffer) => (text += c.toString()))
      res.on('end', () => resolvePost({ status: res.statusCode ?? 0, text }))
    })
    req.on('error', reject)
    if (chunked) {
      for (let at = 0; at < body.length; at += 64 * 1024) req.write(body.subarray(at, at + 64 * 1024))
      req.end()
    } else req.end(body)
  })
}

type ReadBody = (body: AsyncIterable<Uint8Array>, limit: number, expected?: number) => Promise<Buffer>

/**
 * The most Buffer memory the build's readBody keeps reachable while it reads a body of `body.length`, per
 * body: full GCs at the end of the stream and inside Buffer.concat (where a chunk list and its
 * concatenation are both alive) leave only what readBody still references.
 */
async function readBodyPeak(cli: string, body: Buffer): Promise<number> {
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  const url = pathToFileURL(join(dirname(resolve(cli)), 'http', 'body.js')).href
  const { readBody } = (await import(url)) as { readBody: ReadBody }
  let base = 0
  let peak = 0
  const sample = (): void => {
    gc()
    peak = Math.max(peak, process.memoryUsage().arrayBuffers - base)
  }
  // Fresh 64 KiB chunks, as a socket delivers them; the last sample runs once all were consumed.
  async function* socket(): AsyncGenerator<Uint8Array> {
    for (let at = 0; at < body.length; at += 65536) {
      await Promise.resolve()
      yield Buffer.from(body.subarray(at, at + 65536))
    }
    sample()
  }
  const original = Object.getOwnPropertyDescriptor(Buffer, 'concat')!
  const concat = Buffer.concat.bind(Buffer)
  Object.defineProperty(Buffer, 'concat', {
    ...original,
    value: (list: readonly Uint8Array[], totalLength?: number): Buffer => {
      const out = concat(list, totalLength)
      sample()
      return out
    },
  })
  try {
    gc()
    base = process.memoryUsage().arrayBuffers
    const out = await readBody(socket(), 64 * MB, body.length)
    sample()
    return peak / out.length
  } finally {
    Object.defineProperty(Buffer, 'concat', original)
  }
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'streamgate-bulk-memory-'))
  const port = await freePort()
  const config = join(dir, 'config.json')
  writeFileSync(
    config,
    JSON.stringify({
      server: { host: '127.0.0.1', port },
      dataDir: dir,
      spool: { dir: join(dir, 'spool') },
      log: { level: 'warn' },
      sinks: { out: { type: 'file', dir: join(dir, 'out') } },
      streams: {
        'emnify-events': {
          source: 'emnify',
          recordType: 'event',
          ...(values.paused ? { status: 2 } : {}),
          ...(values['max-body-bytes'] ? { maxBodyBytes: Number(values['max-body-bytes']) } : {}),
          ...(values['dedupe-off'] ? { dedupe: false } : {}),
          sinks: ['out'],
        },
      },
    }),
  )
  const probeOut = join(dir, 'probe.json')
  const child = spawn(
    process.execPath,
    [
      ...NODE_FLAGS,
      '--import',
      `data:text/javascript,${encodeURIComponent(PROBE)}`,
      resolve(values.cli),
      'serve',
      '--config',
      config,
    ],
    { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, STREAMGATE_PROBE_OUT: probeOut } },
  )
  try {
    const url = `http://127.0.0.1:${port}`
    for (let i = 0; ; i++) {
      const up = await new Promise<boolean>((ok) => {
        request(`${url}/healthz`, (res) => ok(res.statusCode === 200))
          .on('error', () => ok(false))
          .end()
      })
      if (up) break
      if (i > 300) throw new Error('the gateway did not start')
      await new Promise((r) => setTimeout(r, 50))
    }
    const bodies = Array.from({ length: posts }, (_, i) =>
      pdpBulk(EMNIFY_MAX_BULK, 1_000_000_000_000 * (i + 1)),
    )
    await waitForIdle([child.pid!])
    const idleRss = rssBytes([child.pid!])
    const startHwm = hwmBytes(child.pid!)
    const idle = await probe(child.pid!, probeOut)
    for (const body of bodies) {
      const res = await post(`${url}/ingest/emnify-events`, body, values.chunked)
      if (res.status !== 200 || !res.text.includes(`"accepted":${EMNIFY_MAX_BULK}`))
        throw new Error(`unexpected answer ${res.status}: ${res.text.slice(0, 300)}`)
    }
    await waitForIdle([child.pid!], { maxMs: 60_000 })
    const peak = hwmBytes(child.pid!)
    const load = await probe(child.pid!, probeOut)
    const size = bodies[0]!.length
    console.log(
      JSON.stringify({
        cli: values.cli,
        paused: values.paused,
        dedupe: !values['dedupe-off'],
        chunked: values.chunked,
        posts,
        bodyMB: +(size / MB).toFixed(1),
        idleRssMB: +(idleRss / MB).toFixed(1),
        hwmAtStartMB: +(startHwm / MB).toFixed(1),
        peakRssMB: +(peak / MB).toFixed(1),
        growthMB: +((peak - idleRss) / MB).toFixed(1),
        growthInBodies: +((peak - idleRss) / size).toFixed(2),
        heapUsedPeakGrowthMB: +((load.peak.heapUsed - idle.now.heapUsed) / MB).toFixed(1),
        arrayBuffersPeakGrowthMB: +((load.peak.arrayBuffers - idle.now.arrayBuffers) / MB).toFixed(1),
        arrayBuffersPeakInBodies: +((load.peak.arrayBuffers - idle.now.arrayBuffers) / size).toFixed(2),
        readBodyPeakInBodies: +(await readBodyPeak(values.cli, bodies[0]!)).toFixed(2),
      }),
    )
  } finally {
    child.kill('SIGTERM')
    await new Promise((r) => child.once('exit', r))
    rmSync(dir, { recursive: true, force: true })
  }
}

await main()
