import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { request } from 'node:http'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { acquireSpoolLock } from '../../src/spool/lock.js'
import { readNdjsonLines, waitFor } from '../support/gateway.js'
import { send } from '../support/http.js'

// server.workers (src/cluster/) through the compiled CLI: N processes on one port, each with its own spool
// shard; a SIGKILLed worker is restarted and its shard recovered with nothing acknowledged lost; the whole
// is seen as one (/metrics, the management API, spool stats); shards left by a larger `workers` count are
// drained. File sinks only: no shared backend is touched.

const CLI = join(import.meta.dirname, '..', '..', 'dist', 'cli.js')
const TOKEN = 'workers-test-token-0123456789'

let root: string
const children: ChildProcessWithoutNullStreams[] = []

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'streamgate-workers-'))
})
afterAll(() => {
  for (const child of children)
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  rmSync(root, { recursive: true, force: true })
})

async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  await new Promise((resolve) => server.close(resolve))
  return port
}

interface Setup {
  dir: string
  config: string
  url: string
  out: string
  spool: string
}

async function setup(name: string, workers: number | 'auto', status: 1 | 2 = 1): Promise<Setup> {
  const dir = join(root, name)
  const port = await freePort()
  const setupDoc = { dir, config: join(dir, 'streamgate.json'), url: `http://127.0.0.1:${port}` }
  writeConfig(setupDoc.config, dir, port, workers, status)
  return { ...setupDoc, out: join(dir, 'out'), spool: join(dir, 'spool') }
}

function writeConfig(file: string, dir: string, port: number, workers: number | 'auto', status: 1 | 2): void {
  mkdirSync(dir, { recursive: true })
  writeFileSync(
    file,
    JSON.stringify({
      server: { host: '127.0.0.1', port, workers, shutdownTimeoutMs: 10_000 },
      admin: { token: TOKEN },
      spool: { dir: join(dir, 'spool') },
      dataDir: dir,
      log: { level: 'info' },
      sinks: { out: { type: 'file', dir: join(dir, 'out') } },
      streams: { s: { source: 'ndjson', sinks: ['out'], status } },
    }),
  )
}

interface Serve {
  child: ChildProcessWithoutNullStreams
  output: () => string
  exited: Promise<number | null>
}

function serve(config: string): Serve {
  const child = spawn(process.execPath, [CLI, 'serve', '--config', config], {
    env: { PATH: process.env.PATH },
  })
  children.push(child)
  let out = ''
  child.stdout.on('data', (c: Buffer) => (out += c.toString()))
  child.stderr.on('data', (c: Buffer) => (out += c.toString()))
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  return { child, output: () => out, exited }
}

/** Every line of the primary's log that has `msg`. */
function logged(s: Serve, msg: string): Record<string, unknown>[] {
  return s
    .output()
    .split('\n')
    .filter((l) => l.includes(`"msg":"${msg}`))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
}

async function listening(s: Serve, workers: number): Promise<void> {
  await waitFor(
    () =>
      s.child.exitCode === null &&
      (workers === 1
        ? logged(s, 'streamgate listening').length > 0
        : logged(s, 'streamgate workers listening').length > 0),
    60_000,
    `the gateway to listen\n${s.output()}`,
  )
}

/** The PID in a spool shard's LOCK file (written by the worker that owns it). */
function lockPid(spoolDir: string): number | undefined {
  try {
    const pid = Number(readFileSync(join(spoolDir, 'LOCK'), 'utf8').trim())
    return pid > 0 ? pid : undefined
  } catch {
    return undefined
  }
}

/**
 * A request on a new connection (Connection: close), so the cluster hands each one to the next worker.
 * Resolves with the status, or 0 when the connection failed or got no answer within 15 s (a worker killed
 * with the request in flight): not acknowledged.
 */
function post(url: string, ids: string[]): Promise<number> {
  return new Promise((resolve) => {
    const req = request(`${url}/ingest/s`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson', connection: 'close' },
      timeout: 15_000,
      agent: false,
    })
    req.on('response', (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode ?? 0))
      res.on('error', () => resolve(0))
    })
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.on('error', () => resolve(0))
    req.end(ids.map((id) => JSON.stringify({ id, pad: 'x'.repeat(40) })).join('\n'))
  })
}

function api(url: string, path: string, method = 'GET', body?: unknown): ReturnType<typeof send> {
  return send(`${url}/api/v1${path}`, {
    method,
    headers: {
      authorization: `Bearer ${TOKEN}`,
      connection: 'close',
      ...(body !== undefined ? { 'content-type': 'application/merge-patch+json' } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  })
}

function sinkIds(out: string): string[] {
  return readNdjsonLines(out).map((l) => (JSON.parse(l) as { id: string }).id)
}

async function metric(url: string, line: string): Promise<number | undefined> {
  const res = await send(`${url}/metrics`, { method: 'GET', headers: { connection: 'close' } })
  const found = res.text.split('\n').find((l) => l.startsWith(`${line} `))
  return found === undefined ? undefined : Number(found.slice(line.length + 1))
}

async function stop(s: Serve): Promise<number | null> {
  s.child.kill('SIGTERM')
  return s.exited
}

describe('server.workers', () => {
  it('a SIGKILLed worker is restarted and recovers its shard: every acknowledged id reaches the sink', async () => {
    const t = await setup('fault', 2)
    const gw = serve(t.config)
    await listening(gw, 2)
    const acked = new Set<string>()
    let sent = 0
    let posting = true
    const poster = async (p: number): Promise<void> => {
      for (let n = 0; posting; n++) {
        const ids = Array.from({ length: 25 }, (_, j) => `p${p}-${n}-${j}`)
        sent += ids.length
        // Anything but 200 (the connection died with its worker): not acknowledged, may be delivered.
        if ((await post(t.url, ids)) === 200) for (const id of ids) acked.add(id)
      }
    }
    const posters = [0, 1, 2, 3].map(poster)
    const shard = (i: number): string => `${t.spool}-w${i}`
    // Three kills: worker 1, worker 0 (the leader), worker 1 again; each after the worker (re)started and
    // acknowledged more records.
    const killed: number[] = []
    for (const index of [1, 0, 1]) {
      const pid = await waitFor(
        () => {
          const p = lockPid(shard(index))
          return p !== undefined && !killed.includes(p) ? p : undefined
        },
        60_000,
        `worker ${index} to own its shard (kills so far: ${killed.length})`,
      )
      const before = acked.size
      await waitFor(() => acked.size >= before + 200, 60_000, 'more acknowledged records')
      process.kill(pid, 'SIGKILL')
      killed.push(pid)
    }
    // Every slot restarted (new PIDs in the LOCK files) and still acknowledging.
    await waitFor(
      () =>
        [0, 1].every((i) => {
          const p = lockPid(shard(i))
          return p !== undefined && !killed.includes(p)
        }),
      60_000,
      'restarted workers',
    )
    const before = acked.size
    await waitFor(() => acked.size >= before + 200, 60_000, 'records acknowledged after the restarts')
    posting = false
    await Promise.all(posters)
    expect(logged(gw, 'worker died').length).toBe(3)
    const missing = await waitFor(
      () => {
        const delivered = new Set(sinkIds(t.out))
        const lost = [...acked].filter((id) => !delivered.has(id))
        return lost.length === 0 ? lost : undefined
      },
      60_000,
      'every acknowledged id in the sink',
    ).catch(() => [...acked].filter((id) => !new Set(sinkIds(t.out)).has(id)))
    expect(missing).toEqual([])
    expect(acked.size).toBeGreaterThan(600)
    expect(sent).toBeGreaterThanOrEqual(acked.size)
    expect(await stop(gw)).toBe(0)
  }, 300_000)

  it('workers that die together are all restarted: the primary stays up with every worker dead', async () => {
    const t = await setup('together', 2)
    const gw = serve(t.config)
    await listening(gw, 2)
    const shard = (i: number): string => `${t.spool}-w${i}`
    const killed = [0, 1].map((i) => lockPid(shard(i)))
    expect(killed.every((p) => p !== undefined)).toBe(true)
    // Both in one tick: both are dead while their restarts wait (RESTART_MIN_MS).
    for (const pid of killed) process.kill(pid!, 'SIGKILL')
    await waitFor(
      () => {
        if (gw.child.exitCode !== null)
          throw new Error(`the primary exited ${gw.child.exitCode}\n${gw.output()}`)
        return [0, 1].every((i) => {
          const p = lockPid(shard(i))
          return p !== undefined && !killed.includes(p)
        })
      },
      60_000,
      'both workers restarted',
    )
    await waitFor(async () => (await post(t.url, ['t0'])) === 200, 30_000, 'a record acknowledged')
    expect(logged(gw, 'worker died').length).toBe(2)
    expect(await stop(gw)).toBe(0)
  }, 120_000)

  it('a worker that cannot start stops the cluster: the primary exits 1 naming it', async () => {
    const t = await setup('nostart', 2)
    // Worker 1's shard is owned by this process: its worker stops at start (SpoolLockedError).
    const held = await acquireSpoolLock(`${t.spool}-w1`)
    try {
      const gw = serve(t.config)
      const code = await Promise.race([
        gw.exited,
        new Promise<string>((resolve) => setTimeout(() => resolve('still running after 30 s'), 30_000)),
      ])
      expect(code, gw.output()).toBe(1)
      expect(gw.output()).toContain('worker 1 exited during start')
    } finally {
      await held.release()
    }
  }, 60_000)

  it('is seen as one: /metrics sums the workers, a pause through any worker pauses all, spool stats sums the shards', async () => {
    const t = await setup('one', 2)
    const gw = serve(t.config)
    await listening(gw, 2)
    for (let n = 0; n < 10; n++) expect(await post(t.url, [`a${n}-0`, `a${n}-1`, `a${n}-2`])).toBe(200)
    // Both workers served (one NDJSON file per process) and /metrics, whichever worker answers, counts all.
    await waitFor(() => sinkIds(t.out).length === 30, 20_000, 'the first records delivered')
    expect(
      new Set(
        readdirSync(t.out)
          .filter((f) => f.endsWith('.ndjson'))
          .map((f) => /-(\d+)-\d+\.ndjson$/.exec(f)?.[1]),
      ).size,
    ).toBe(2)
    for (let i = 0; i < 4; i++)
      expect(await metric(t.url, 'streamgate_records_accepted_total{stream="s"}')).toBe(30)
    expect(await metric(t.url, 'streamgate_spool_capacity_bytes')).toBe(1073741824)
    // The management API (answered by worker 0 whichever worker took the connection) shows the totals too.
    for (let i = 0; i < 4; i++) {
      const stream = (await api(t.url, '/streams/s')).json<{
        figures: { accepted: number }
        delivery: { sink: string; delivered: number }[]
      }>()
      expect(stream.figures.accepted).toBe(30)
      expect(stream.delivery.find((d) => d.sink === 'out')?.delivered).toBe(30)
      const sinks = (await api(t.url, '/sinks')).json<{ name: string; figures: { delivered: number } }[]>()
      expect(sinks.find((s) => s.name === 'out')?.figures.delivered).toBe(30)
    }

    // Pause through the API (answered by the leader, whichever worker took the connection): every worker
    // keeps its records in its shard.
    expect((await api(t.url, '/streams/s', 'PATCH', { status: 2 })).status).toBe(200)
    for (let n = 0; n < 10; n++) expect(await post(t.url, [`b${n}`])).toBe(200)
    await waitFor(
      async () => (await metric(t.url, 'streamgate_sink_lag_records{stream="s",sink="out"}')) === 10,
      20_000,
      'ten records held by the pause',
    )
    expect(sinkIds(t.out)).toHaveLength(30)
    for (let i = 0; i < 4; i++) {
      const view = (await api(t.url, '/streams/s')).json<{ status: { id: number } }>()
      expect(view.status.id).toBe(2)
    }
    const stats = spawnSync(
      process.execPath,
      [CLI, 'spool', 'stats', '--config', t.config, '--json', '--shards'],
      {
        encoding: 'utf8',
      },
    )
    expect(stats.status).toBe(0)
    const doc = JSON.parse(stats.stdout) as {
      streams: { stream: string; lanes: { lane: string; lagRecords: number }[] }[]
      shards: { dir: string; owner: number | null }[]
    }
    expect(doc.streams.find((s) => s.stream === 's')?.lanes.find((l) => l.lane === 'out')?.lagRecords).toBe(
      10,
    )
    expect(doc.shards.map((s) => s.dir)).toEqual([t.spool, `${t.spool}-w0`, `${t.spool}-w1`])
    expect(doc.shards.every((s) => typeof s.owner === 'number')).toBe(true)

    expect((await api(t.url, '/streams/s', 'PATCH', { status: 1 })).status).toBe(200)
    await waitFor(() => sinkIds(t.out).length === 40, 20_000, 'the held records delivered after resume')
    expect(await stop(gw)).toBe(0)
  }, 180_000)

  it('/metrics answers at once while a worker restarts: the surviving worker, then both again', async () => {
    const t = await setup('scrape', 2)
    const gw = serve(t.config)
    await listening(gw, 2)
    const shard = (i: number): string => `${t.spool}-w${i}`
    const pids = [0, 1].map((i) => lockPid(shard(i))!)
    for (let n = 0; n < 20; n++) expect(await post(t.url, [`e${n}`])).toBe(200)
    await waitFor(() => sinkIds(t.out).length === 20, 20_000, 'the records delivered')
    // Each process writes its own files (`…-<pid>-<n>.ndjson`): what worker 0 accepted.
    const byPid = (pid: number): number =>
      readdirSync(t.out)
        .filter((f) => f.includes(`-${pid}-`) && f.endsWith('.ndjson'))
        .reduce(
          (n, f) =>
            n +
            readFileSync(join(t.out, f), 'utf8')
              .split('\n')
              .filter((l) => l !== '').length,
          0,
        )
    const survivor = byPid(pids[0]!)
    expect(survivor).toBeGreaterThan(0)
    expect(survivor).toBeLessThan(20)
    /** GET /metrics on a new connection; status 0 when the connection failed or got no answer in 10 s. */
    const scrape = (): Promise<{ status: number; text: string; ms: number }> =>
      new Promise((resolve) => {
        const began = Date.now()
        const done = (status: number, text: string): void => resolve({ status, text, ms: Date.now() - began })
        const req = request(`${t.url}/metrics`, {
          headers: { connection: 'close' },
          agent: false,
          timeout: 10_000,
        })
        req.on('response', (res) => {
          let text = ''
          res.on('data', (c: Buffer) => (text += c.toString()))
          res.on('end', () => done(res.statusCode ?? 0, text))
          res.on('error', (err) => done(0, err.message))
        })
        req.on('timeout', () => req.destroy(new Error('no answer in 10 s')))
        req.on('error', (err) => done(0, err.message))
        req.end()
      })
    const value = (text: string, line: string): number | undefined => {
      const found = text.split('\n').find((l) => l.startsWith(`${line} `))
      return found === undefined ? undefined : Number(found.slice(line.length + 1))
    }

    process.kill(pids[1]!, 'SIGKILL')
    // Once the primary has seen the death (before that, node:cluster may still hand it a new connection,
    // which then gets no answer at all — not /metrics' doing): worker 1 is being forked again.
    await waitFor(() => logged(gw, 'worker died').length === 1, 10_000, "the primary to see worker 1's death")
    const during = await scrape()
    // prom-client's clusterMetrics() waited 5 s for the dead or starting worker and then failed the scrape.
    expect(during.status, during.text).toBe(200)
    expect(during.ms).toBeLessThan(2_500)
    expect(value(during.text, 'streamgate_records_accepted_total{stream="s"}')).toBe(survivor)
    expect(value(during.text, 'streamgate_cluster_workers{state="configured"}')).toBe(2)
    expect(value(during.text, 'streamgate_cluster_workers{state="answered"}')).toBe(1)
    expect(during.text).toMatch(/# streamgate: worker 1 (not ready|did not answer)/)

    // Scrapes while worker 1 restarts (forked, recovering its shard, not yet listening) answer at once too.
    const restarting: number[] = []
    await waitFor(
      async () => {
        const r = await scrape()
        expect(r.status).toBe(200)
        restarting.push(r.ms)
        return value(r.text, 'streamgate_cluster_workers{state="answered"}') === 2
      },
      60_000,
      'both workers answering /metrics again',
    )
    expect(Math.max(...restarting)).toBeLessThan(2_500)
    const restarted = lockPid(shard(1))
    expect(restarted).not.toBe(pids[1])
    // Both series again: worker 1 starts its counters from zero, so the sum is worker 0's and what follows.
    for (let n = 0; n < 10; n++) expect(await post(t.url, [`f${n}`])).toBe(200)
    // (Worker 1's recovery may deliver again what it delivered before the kill: at least once, so ids.)
    await waitFor(() => new Set(sinkIds(t.out)).size === 30, 20_000, 'the later records delivered')
    expect(byPid(restarted!)).toBeGreaterThan(0)
    const after = await scrape()
    expect(value(after.text, 'streamgate_records_accepted_total{stream="s"}')).toBe(survivor + 10)
    expect(value(after.text, 'streamgate_cluster_workers{state="answered"}')).toBe(2)
    expect(after.text).not.toContain('left out')
    expect(await stop(gw)).toBe(0)
  }, 180_000)

  it('a SIGTERM the moment the listening line is logged, or while the workers start, is a graceful stop', async () => {
    const t = await setup('early-term', 2)
    // The primary's handlers were installed only once its start promise had polled `started` (up to 20 ms
    // after the line): a SIGTERM in that window killed it by signal (exit code null). Sent from the stdout
    // listener itself, the signal lands inside that window.
    for (let round = 0; round < 3; round++) {
      const gw = serve(t.config)
      const onData = (): void => {
        if (gw.output().includes('"msg":"streamgate workers listening"')) {
          gw.child.stdout.off('data', onData)
          gw.child.kill('SIGTERM')
        }
      }
      gw.child.stdout.on('data', onData)
      expect(await gw.exited).toBe(0)
      expect(gw.child.signalCode).toBeNull()
      expect(logged(gw, 'signal received; stopping every worker')).toHaveLength(1)
    }
    // Before any worker is ready: the primary stops the workers it forked and exits 0.
    const early = serve(t.config)
    early.child.stdout.once('data', () => early.child.kill('SIGTERM'))
    expect(await early.exited).toBe(0)
    expect(lockPid(t.spool)).toBeUndefined()
  }, 120_000)

  it('shards left by a larger workers count are drained by a smaller one (down to one process)', async () => {
    const t = await setup('shrink', 3, 2)
    const port = Number(new URL(t.url).port)
    const gw = serve(t.config)
    await listening(gw, 3)
    for (let n = 0; n < 12; n++) expect(await post(t.url, [`c${n}`])).toBe(200)
    // Paused: everything is still in the shards when the cluster stops (SIGTERM stops every worker).
    expect(await stop(gw)).toBe(0)
    expect(sinkIds(t.out)).toEqual([])

    writeConfig(t.config, t.dir, port, 2, 1)
    const two = serve(t.config)
    await listening(two, 2)
    await waitFor(() => sinkIds(t.out).length === 12, 30_000, 'shard w2 drained by worker 0 of 2')
    expect(await stop(two)).toBe(0)

    writeConfig(t.config, t.dir, port, 3, 2)
    const again = serve(t.config)
    await listening(again, 3)
    for (let n = 0; n < 6; n++) expect(await post(t.url, [`d${n}`])).toBe(200)
    expect(await stop(again)).toBe(0)

    writeConfig(t.config, t.dir, port, 1, 1)
    const one = serve(t.config)
    await listening(one, 1)
    await waitFor(() => sinkIds(t.out).length === 18, 30_000, 'every shard drained by one process')
    expect(new Set(sinkIds(t.out)).size).toBe(18)
    expect(await stop(one)).toBe(0)
  }, 240_000)
})
