// The ingest and deliver roles (SPEC section 9) on the real broker, as users run them: the built CLI
// (`dist/cli.js serve --role …`) as child processes. 2 ingest + 2 deliver nodes; 50,000 records posted
// across both ingest nodes; the deliver nodes hand them to an HTTP sink whose target is a loopback relay
// fake that records every id. One deliver node is SIGKILLed mid-way and a new one started: every
// acknowledged id must reach the relay, the group must have rebalanced, and the duplicates (at least once)
// are counted and printed, not asserted away. And: an ingest node whose Kafka is unreachable answers 503.
import { spawn, type ChildProcess } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { Kafka, logLevel, type Admin } from 'kafkajs'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import { freePort } from '../../scripts/backends/daemon.js'
import { waitFor } from '../support/gateway.js'
import { send } from '../support/http.js'

const CLI = join(import.meta.dirname, '..', '..', 'dist', 'cli.js')
const brokers = inject('backends').KAFKA_BROKERS
const TOKEN = 'roles-test-token'
const ADMIN_TOKEN = 'roles-test-admin-token-0123456789'
let dir: string
let admin: Admin
const prefixes: string[] = []

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'streamgate-roles-'))
  admin = new Kafka({
    clientId: 'streamgate-roles-test',
    brokers: brokers.split(','),
    logLevel: logLevel.NOTHING,
  }).admin()
  await admin.connect()
})

afterAll(async () => {
  // The topics and groups this file's clusters made (unique prefixes): gone, so the shared broker stays tidy.
  const all = await admin.listTopics().catch(() => [] as string[])
  const mine = all.filter((t) => prefixes.some((p) => t.startsWith(`${p}-`)))
  if (mine.length > 0) await admin.deleteTopics({ topics: mine }).catch(() => undefined)
  const groups = (await admin.listGroups().catch(() => ({ groups: [] }))).groups
    .map((g) => g.groupId)
    .filter((g) => prefixes.some((p) => g.startsWith(`${p}-`)))
  if (groups.length > 0) await admin.deleteGroups(groups).catch(() => undefined)
  await admin.disconnect()
  rmSync(dir, { recursive: true, force: true })
})

/** The HTTP sink's target: counts every record id it receives (NDJSON bodies), a little slowly. */
class Relay {
  readonly seen = new Map<string, number>()
  received = 0
  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  static async start(delayMs: number): Promise<Relay> {
    const server = createServer((req, res) => {
      const chunks: Buffer[] = []
      req.on('data', (c: Buffer) => chunks.push(c))
      req.on('end', () => {
        setTimeout(() => {
          for (const line of Buffer.concat(chunks).toString('utf8').split('\n')) {
            if (line.length === 0) continue
            const id = (JSON.parse(line) as { id: string }).id
            relay.seen.set(id, (relay.seen.get(id) ?? 0) + 1)
            relay.received++
          }
          res.end('ok')
        }, delayMs)
      })
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const relay = new Relay(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}/in`)
    return relay
  }

  close(): Promise<void> {
    this.server.closeAllConnections()
    return new Promise((resolve) => this.server.close(() => resolve()))
  }
}

/** `dist/cli.js serve --role …` as a child process; its output goes to a log file (read by the test). */
class Node {
  private child: ChildProcess | undefined
  private exited: Promise<void> = Promise.resolve()

  constructor(
    readonly role: 'ingest' | 'deliver',
    private readonly configFile: string,
    readonly port: number,
    readonly logFile: string,
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`
  }

  /** Starts the node and waits until `/readyz` (or, for a node that cannot be ready, `/healthz`) answers 200. */
  async start(until: '/readyz' | '/healthz' = '/readyz'): Promise<void> {
    const fd = openSync(this.logFile, 'a')
    const child = spawn(
      process.execPath,
      [CLI, 'serve', '--config', this.configFile, '--role', this.role, '--port', String(this.port)],
      { env: { PATH: process.env.PATH }, stdio: ['ignore', fd, fd] },
    )
    closeSync(fd)
    this.child = child
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()))
    let dead = false
    void this.exited.then(() => (dead = true))
    await waitFor(
      async () => {
        if (dead) throw new Error(`the ${this.role} node exited during start:\n${this.log()}`)
        return (await send(`${this.url}${until}`, { method: 'GET' }).catch(() => undefined))?.status === 200
      },
      60_000,
      `${this.role} node on ${this.port} (${until})`,
    )
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    this.child?.kill(signal)
    return this.exited
  }

  async stop(): Promise<void> {
    this.child?.kill('SIGTERM')
    const stopped = await Promise.race([this.exited.then(() => true), sleep(20_000).then(() => false)])
    if (!stopped) await this.kill()
  }

  log(): string {
    try {
      return readFileSync(this.logFile, 'utf8')
    } catch {
      return '(no log)'
    }
  }

  /** Log lines (pino JSON) with this message. */
  lines(msg: string): Record<string, unknown>[] {
    return this.log()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.msg === msg)
  }
}

function writeConfig(name: string, doc: Record<string, unknown>): string {
  const file = join(dir, `${name}.json`)
  writeFileSync(file, JSON.stringify(doc, null, 2))
  return file
}

function clusterConfig(
  prefix: string,
  relayUrl: string,
  kafka: Record<string, unknown>,
): Record<string, unknown> {
  prefixes.push(prefix)
  return {
    server: { host: '127.0.0.1', port: 0 },
    dataDir: join(dir, prefix),
    spool: { dir: join(dir, prefix, 'spool') },
    log: { level: 'info' },
    cluster: { kafka, topicPrefix: prefix, partitions: 6, sessionTimeoutMs: 6_000 },
    sinks: {
      relay: { type: 'http', url: relayUrl, maxBatchRecords: 200, retry: { initialMs: 50, maxMs: 1_000 } },
      'dead-letter': { type: 'file', dir: join(dir, prefix, 'dead-letter') },
    },
    streams: {
      app: {
        source: 'ndjson',
        auth: { headers: { Authorization: `Bearer ${TOKEN}` } },
        sinks: ['relay'],
      },
    },
  }
}

async function post(url: string, ids: readonly string[]): Promise<number> {
  const body =
    ids.map((id) => JSON.stringify({ id, n: Number(id.slice(2)), pad: 'x'.repeat(40) })).join('\n') + '\n'
  const res = await send(`${url}/ingest/app`, {
    body,
    headers: { 'content-type': 'application/x-ndjson', authorization: `Bearer ${TOKEN}` },
  }).catch(() => undefined)
  if (res?.status === 200) expect(res.json()).toMatchObject({ accepted: ids.length })
  return res?.status ?? 0
}

describe('roles: ingest and deliver nodes on a Kafka consumer group', () => {
  it('2 ingest + 2 deliver nodes, one deliver node SIGKILLed mid-way: every acknowledged record reaches the sink', async () => {
    const relay = await Relay.start(15)
    const prefix = `rt-${randomUUID().slice(0, 8)}`
    const file = writeConfig(prefix, clusterConfig(prefix, relay.url, { brokers }))
    const node = async (role: 'ingest' | 'deliver', n: number): Promise<Node> =>
      new Node(role, file, await freePort(), join(dir, `${prefix}-${role}-${n}.log`))
    const ingest = [await node('ingest', 1), await node('ingest', 2)]
    const deliver = [await node('deliver', 1), await node('deliver', 2)]
    const replacement = await node('deliver', 3)
    const all = [...ingest, ...deliver, replacement]
    try {
      // One at a time: the first of each role creates the topics (a second one racing it is fine too).
      for (const n of [...ingest, ...deliver]) await n.start()

      const TOTAL = 50_000
      const BATCH = 500
      const acked = new Set<string>()
      let refused = 0
      const batches: string[][] = []
      for (let i = 0; i < TOTAL; i += BATCH)
        batches.push(Array.from({ length: BATCH }, (_, j) => `r-${i + j}`))
      // Four vendors' streamers, alternating between the two ingest nodes (a load balancer's round robin).
      let next = 0
      const producer = async (): Promise<void> => {
        for (;;) {
          const b = next++
          if (b >= batches.length) return
          const url = ingest[b % 2]!.url
          for (;;) {
            const status = await post(url, batches[b]!)
            if (status === 200) {
              for (const id of batches[b]!) acked.add(id)
              break
            }
            refused++
            await sleep(200)
          }
        }
      }
      const producing = Promise.all([producer(), producer(), producer(), producer()])

      // Mid-way: the first deliver node dies without a word; a new one joins.
      await waitFor(() => relay.received >= TOTAL / 5, 120_000, 'a fifth of the records at the relay')
      const killedAt = relay.received
      await deliver[0]!.kill('SIGKILL')
      await replacement.start()
      await producing
      expect(acked.size).toBe(TOTAL)

      await waitFor(
        () => [...acked].every((id) => relay.seen.has(id)),
        150_000,
        'every acknowledged id at the relay',
      )
      const duplicates = relay.received - relay.seen.size
      // The members that lived on took the dead one's partitions: a join after the kill, by the group.
      const joins = (n: Node): Record<string, unknown>[] =>
        n.lines('consumer group rebalanced: partitions assigned').filter((l) => l.group === `${prefix}-relay`)
      expect(joins(deliver[1]!).length).toBeGreaterThanOrEqual(2)
      expect(joins(replacement).length).toBeGreaterThanOrEqual(1)
      // …and counted where operators look: /metrics of the surviving node, by group.
      const scraped = (await send(`${deliver[1]!.url}/metrics`, { method: 'GET' })).text
      const counted = new RegExp(
        `^streamgate_cluster_rebalances_total\\{group="${prefix}-relay"\\} (\\d+)$`,
        'm',
      )
      expect(Number(counted.exec(scraped)?.[1])).toBe(joins(deliver[1]!).length)
      const unknown = [...relay.seen.keys()].filter((id) => !acked.has(id))
      expect(unknown).toEqual([])
      console.log(
        `roles: ${TOTAL} records acknowledged through 2 ingest nodes (${refused} requests answered non-200 and retried); ` +
          `deliver node 1 SIGKILLed after ${killedAt} records at the relay; ${relay.seen.size} distinct ids delivered, ` +
          `${duplicates} duplicates (at least once: the killed node's uncommitted batches were delivered again); ` +
          `rebalances seen by the surviving node: ${joins(deliver[1]!).length}, by the new node: ${joins(replacement).length}`,
      )
    } finally {
      await Promise.all(all.map((n) => n.stop()))
      await relay.close()
    }
  })

  it('pause and resume through the management API of one deliver node apply to every deliver node', async () => {
    const relay = await Relay.start(0)
    const prefix = `rt-${randomUUID().slice(0, 8)}`
    const doc = clusterConfig(prefix, relay.url, { brokers })
    doc.admin = { token: ADMIN_TOKEN }
    doc.streams = {
      ...(doc.streams as object),
      // The barrier: a stream that is never paused, delivered by the same group to the same sink.
      marker: { source: 'ndjson', auth: { headers: { Authorization: `Bearer ${TOKEN}` } }, sinks: ['relay'] },
    }
    const file = writeConfig(`${prefix}-pause`, doc)
    const ingest = new Node('ingest', file, await freePort(), join(dir, `${prefix}-pause-ingest.log`))
    const a = new Node('deliver', file, await freePort(), join(dir, `${prefix}-pause-a.log`))
    const b = new Node('deliver', file, await freePort(), join(dir, `${prefix}-pause-b.log`))
    const api = (n: Node, method: string, body?: unknown) =>
      send(`${n.url}/api/v1/streams/app`, {
        method,
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      })
    const statusOn = async (n: Node): Promise<number> =>
      (await api(n, 'GET')).json<{ status: { id: number } }>().status.id
    try {
      for (const n of [ingest, a, b]) await n.start()
      expect((await api(a, 'PATCH', { status: { id: 2 } })).status).toBe(200)
      await waitFor(async () => (await statusOn(b)) === 2, 15_000, 'the pause on the other deliver node')
      const paused = Array.from({ length: 20 }, (_, i) => `p-${i}`)
      expect(await post(ingest.url, paused)).toBe(200)
      const marker = await send(`${ingest.url}/ingest/marker`, {
        body: '{"id":"m-1"}\n',
        headers: { 'content-type': 'application/x-ndjson', authorization: `Bearer ${TOKEN}` },
      })
      expect(marker.status).toBe(200)
      await waitFor(() => relay.seen.has('m-1'), 30_000, 'the marker record at the relay')
      await sleep(1_000)
      expect(paused.filter((id) => relay.seen.has(id))).toEqual([])
      // Resumed through the other node: both deliver again, the records waiting in Kafka arrive.
      expect((await api(b, 'PATCH', { status: { id: 1 } })).status).toBe(200)
      await waitFor(async () => (await statusOn(a)) === 1, 15_000, 'the resume on the first deliver node')
      await waitFor(() => paused.every((id) => relay.seen.has(id)), 30_000, 'the paused records at the relay')
    } finally {
      await Promise.all([ingest, a, b].map((n) => n.stop()))
      await relay.close()
    }
  })

  it('an ingest node whose Kafka is unreachable answers 503 with Retry-After, never 200, and is not ready', async () => {
    const closed = await freePort() // nothing listens there
    const prefix = `rt-${randomUUID().slice(0, 8)}`
    const file = writeConfig(
      `${prefix}-down`,
      clusterConfig(prefix, 'http://127.0.0.1:9/in', { brokers: `127.0.0.1:${closed}`, timeoutMs: 3_000 }),
    )
    const n = new Node('ingest', file, await freePort(), join(dir, `${prefix}-down.log`))
    try {
      // Alive, but not ready: a load balancer polling /readyz sends the vendor to a node whose Kafka answers
      // (the ingest nodes of the tests above only start once their /readyz says 200).
      await n.start('/healthz')
      const ready = await send(`${n.url}/readyz`, { method: 'GET' })
      expect(ready.status).toBe(503)
      expect(ready.headers['content-type']).toMatch(/problem\+json/)
      expect(JSON.stringify(ready.json())).toContain('Kafka cluster does not answer')
      for (let i = 0; i < 3; i++) {
        const res = await send(`${n.url}/ingest/app`, {
          body: `{"id":"d-${i}"}\n`,
          headers: { 'content-type': 'application/x-ndjson', authorization: `Bearer ${TOKEN}` },
        })
        expect(res.status).toBe(503)
        expect(res.headers['retry-after']).toMatch(/^\d+$/)
        expect(res.headers['content-type']).toMatch(/problem\+json/)
        expect(res.json()).toMatchObject({ status: 503 })
      }
    } finally {
      await n.stop()
    }
  })
})
