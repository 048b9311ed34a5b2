import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { EMNIFY_MAX_BULK, pdpBulk, pdpEvents } from '../support/emnify-bulk.js'
import { fixture, readNdjsonLines, startGateway, waitFor, type TestGateway } from '../support/gateway.js'
import { send } from '../support/http.js'

// Real emnify records, exactly as the documents show them, are accepted and forwarded byte for byte: the
// filter example of emnify's Data Streamer guide, records with nulls, the documented 10,000-record bulk, and
// dedupe on the record id that survives a restart (emnify streams overlap on migration and retries).

const CLI = join(import.meta.dirname, '..', '..', 'dist', 'cli.js')
const json = { 'content-type': 'application/json' }
const text = (name: string): string => fixture(`emnify/${name}`).toString('utf8').trim()
const filters = (JSON.parse(text('create-stream-kinesis-filters.json')) as { filters: unknown[] }).filters

/** The stream's spool holds no record bytes any more: every segment was delivered and deleted. */
function segmentsDeleted(spoolDir: string, stream: string): boolean {
  const dir = join(spoolDir, 'streams', stream)
  const segs = readdirSync(dir).filter((f) => f.endsWith('.seg'))
  return segs.every((f) => statSync(join(dir, f)).size === 0)
}

describe('emnify records as documented', () => {
  let gw: TestGateway
  beforeAll(async () => {
    gw = await startGateway({
      sinks: {
        out: { type: 'file', dir: '{dir}/out' },
        usageOut: { type: 'file', dir: '{dir}/usage' },
        bulkOut: { type: 'file', dir: '{dir}/bulk' },
        filteredOut: { type: 'file', dir: '{dir}/filtered' },
      },
      streams: {
        events: { source: 'emnify', recordType: 'event', sinks: ['out'] },
        usage: { source: 'emnify', recordType: 'usage', sinks: ['usageOut'] },
        bulk: { source: 'emnify', recordType: 'event', sinks: ['bulkOut'] },
        small: { source: 'emnify', recordType: 'event', maxBodyBytes: 10 * 1024 * 1024, sinks: ['out'] },
        plain: { source: 'json', sinks: ['out'] },
        filtered: { source: 'emnify', recordType: 'event', filters, sinks: ['filteredOut'] },
      },
    })
  })
  afterAll(async () => {
    await gw.close()
  })

  it("filters as emnify's guide means them: event type 1, 2 or 3, or any alert", async () => {
    const location = text('event-update-location.json') // type 1
    const pdp = text('event-delete-pdp.json') // type 5
    const auth = text('event-user-auth-failed.json') // type 6
    const alert = auth
      .replace('"alert":false', '"alert":true')
      .replace('"id":13096831909', '"id":13096831910')
    expect(alert).not.toBe(auth)
    const res = await send(`${gw.url}/ingest/filtered`, {
      headers: json,
      body: `[${location},${pdp},${auth},${alert}]`,
    })
    expect(res.json()).toEqual({ accepted: 2, rejected: 0, filtered: 2, duplicates: 0 })
    await waitFor(() => readNdjsonLines(`${gw.dir}/filtered`).length === 2, 10_000, 'delivery')
    expect(readNdjsonLines(`${gw.dir}/filtered`)).toEqual([location, alert])
  })

  it('accepts records with null values and forwards them byte for byte', async () => {
    const bodies = ['event-delete-pdp-nulls.json', 'event-nulls.json', 'event-bigint-id.json']
    for (const name of bodies) {
      const res = await send(`${gw.url}/ingest/events`, { headers: json, body: fixture(`emnify/${name}`) })
      expect(res.json()).toEqual({ accepted: 1, rejected: 0, filtered: 0, duplicates: 0 })
    }
    const usage = await send(`${gw.url}/ingest/usage`, {
      headers: json,
      body: fixture('emnify/usage-data-nulls.json'),
    })
    expect(usage.json()).toEqual({ accepted: 1, rejected: 0, filtered: 0, duplicates: 0 })
    await waitFor(() => readNdjsonLines(`${gw.dir}/out`).length >= 3, 10_000, 'event delivery')
    expect(readNdjsonLines(`${gw.dir}/out`)).toEqual(bodies.map(text))
    await waitFor(() => readNdjsonLines(`${gw.dir}/usage`).length === 1, 10_000, 'usage delivery')
    const usageRecord = text('usage-data-nulls.json').slice(1, -1) // the one element of the array
    expect(readNdjsonLines(`${gw.dir}/usage`)).toEqual([usageRecord])
    expect(readNdjsonLines(`${gw.dir}/dead-letter`)).toEqual([])
  })

  it('accepts the documented maximum bulk (10,000 PDP events, ~15 MB) with default settings', async () => {
    const body = pdpBulk()
    expect(body.length).toBeGreaterThan(14_000_000)
    const res = await send(`${gw.url}/ingest/bulk`, { headers: json, body })
    expect(res.status).toBe(200)
    expect(res.json()).toEqual({ accepted: EMNIFY_MAX_BULK, rejected: 0, filtered: 0, duplicates: 0 })
    // Without Content-Length (chunked), the same limit holds; distinct ids, so nothing is a duplicate.
    const second = pdpBulk(EMNIFY_MAX_BULK, 2_000_000_000_000)
    const pieces = Array.from({ length: 16 }, (_, i) =>
      second.subarray((i * second.length) / 16, ((i + 1) * second.length) / 16),
    )
    const chunked = await send(`${gw.url}/ingest/bulk`, { headers: json, body: pieces })
    expect(chunked.json()).toMatchObject({ accepted: EMNIFY_MAX_BULK, duplicates: 0 })
    const lines = await waitFor(
      () => {
        const l = readNdjsonLines(`${gw.dir}/bulk`)
        return l.length === 2 * EMNIFY_MAX_BULK ? l : undefined
      },
      60_000,
      'the two bulks delivered',
    )
    const events = pdpEvents()
    expect(lines[0]).toBe(events[0])
    expect(lines[EMNIFY_MAX_BULK - 1]).toBe(events.at(-1))
    expect(lines[EMNIFY_MAX_BULK]).toBe(pdpEvents(1, 2_000_000_000_000)[0])
  }, 120_000)

  it('the 32 MiB emnify default gives way to a stream limit, and other sources keep the server limit', async () => {
    const body = pdpBulk()
    for (const stream of ['small', 'plain']) {
      const res = await send(`${gw.url}/ingest/${stream}`, { headers: json, body })
      expect(res.status).toBe(413)
      expect(res.json()).toMatchObject({ limitBytes: 10 * 1024 * 1024 })
    }
  }, 60_000)
})

describe('emnify dedupe', () => {
  it('is on by default and `dedupe: false` turns it off', async () => {
    const gw = await startGateway({
      sinks: { out: { type: 'file', dir: '{dir}/out' } },
      streams: {
        on: { source: 'emnify', recordType: 'event', sinks: ['out'] },
        off: { source: 'emnify', recordType: 'event', dedupe: false, sinks: ['out'] },
      },
    })
    try {
      const body = fixture('emnify/events-bulk.json')
      for (const [stream, second] of [
        ['on', { accepted: 0, duplicates: 3 }],
        ['off', { accepted: 3, duplicates: 0 }],
      ] as const) {
        expect((await send(`${gw.url}/ingest/${stream}`, { headers: json, body })).json()).toMatchObject({
          accepted: 3,
        })
        expect((await send(`${gw.url}/ingest/${stream}`, { headers: json, body })).json()).toMatchObject(
          second,
        )
      }
    } finally {
      await gw.close()
    }
  })

  it('survives a restart after the delivered records left the spool: nothing is delivered twice', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'streamgate-dedupe-'))
    const config = {
      dataDir: dir,
      spool: { dir: join(dir, 'spool') },
      sinks: { out: { type: 'file', dir: join(dir, 'out') } },
      streams: { ev: { source: 'emnify', recordType: 'event', sinks: ['out'] } },
    }
    const body = fixture('emnify/events-bulk.json')
    try {
      const first = await startGateway(config)
      expect((await send(`${first.url}/ingest/ev`, { headers: json, body })).json()).toMatchObject({
        accepted: 3,
      })
      await waitFor(() => readNdjsonLines(join(dir, 'out')).length === 3, 10_000, 'delivery')
      // Delivered and deleted: only a snapshot can remember these ids now.
      await waitFor(() => segmentsDeleted(join(dir, 'spool'), 'ev'), 20_000, 'the segments to be deleted')
      await first.stop()
      expect(existsSync(join(dir, 'spool', 'streams', 'ev', 'dedupe.json'))).toBe(true)

      const second = await startGateway(config)
      try {
        const again = await send(`${second.url}/ingest/ev`, { headers: json, body })
        expect(again.json()).toEqual({ accepted: 0, rejected: 0, filtered: 0, duplicates: 3 })
        // A record emnify had not sent before still goes through.
        const fresh = await send(`${second.url}/ingest/ev`, {
          headers: json,
          body: fixture('emnify/event-bigint-id.json'),
        })
        expect(fresh.json()).toMatchObject({ accepted: 1, duplicates: 0 })
        await waitFor(() => readNdjsonLines(join(dir, 'out')).length === 4, 10_000, 'the fresh record')
        await waitFor(() => second.gateway.pendingRecords('ev') === 0, 10_000, 'lag 0')
        expect(readNdjsonLines(join(dir, 'out'))).toEqual([
          ...body.toString().trim().slice(1, -1).split(',\n'),
          text('event-bigint-id.json'),
        ])
      } finally {
        await second.stop()
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  describe('after SIGKILL', () => {
    let dir: string
    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), 'streamgate-dedupe-kill-'))
    })
    afterAll(() => {
      rmSync(dir, { recursive: true, force: true })
    })

    async function serve(
      config: string,
    ): Promise<{ url: string; kill: (signal: NodeJS.Signals) => Promise<void> }> {
      const child = spawn(process.execPath, [CLI, 'serve', '--config', config, '--port', '0'], {
        env: { PATH: process.env.PATH },
      })
      let logs = ''
      child.stdout.on('data', (c: Buffer) => (logs += c.toString()))
      child.stderr.on('data', (c: Buffer) => (logs += c.toString()))
      const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()))
      const port = await waitFor(() => /"port":(\d+)/.exec(logs)?.[1], 15_000, 'the listening log line')
      return {
        url: `http://127.0.0.1:${port}`,
        kill: (signal) => {
          child.kill(signal)
          return exited
        },
      }
    }

    function writeConfig(name: string, status: 1 | 2): string {
      const file = join(dir, `${name}.json`)
      writeFileSync(
        file,
        JSON.stringify({
          server: { host: '127.0.0.1', port: 0 },
          dataDir: join(dir, name),
          spool: { dir: join(dir, name, 'spool') },
          log: { level: 'info' },
          sinks: { out: { type: 'file', dir: join(dir, name, 'out') } },
          streams: { ev: { source: 'emnify', recordType: 'event', status, sinks: ['out'] } },
        }),
      )
      return file
    }

    const body = fixture('emnify/events-bulk.json')

    it('rebuilds the window from the spooled records when no snapshot was written (or it is damaged)', async () => {
      // Paused: nothing is delivered, so no segment is deleted and no snapshot is taken before the kill.
      const config = writeConfig('paused', 2)
      const first = await serve(config)
      expect((await send(`${first.url}/ingest/ev`, { headers: json, body })).json()).toMatchObject({
        accepted: 3,
      })
      await first.kill('SIGKILL')
      const snapshot = join(dir, 'paused', 'spool', 'streams', 'ev', 'dedupe.json')
      expect(existsSync(snapshot)).toBe(false)
      // A damaged snapshot is logged and ignored: the spool alone still knows these ids.
      writeFileSync(snapshot, '{"version":1,"key":"id","keys":["17677')
      const second = await serve(config)
      try {
        expect((await send(`${second.url}/ingest/ev`, { headers: json, body })).json()).toEqual({
          accepted: 0,
          rejected: 0,
          filtered: 0,
          duplicates: 3,
        })
      } finally {
        await second.kill('SIGTERM')
      }
    })

    it('remembers ids whose records were delivered and deleted before the kill', async () => {
      const config = writeConfig('running', 1)
      const first = await serve(config)
      expect((await send(`${first.url}/ingest/ev`, { headers: json, body })).json()).toMatchObject({
        accepted: 3,
      })
      const out = join(dir, 'running', 'out')
      await waitFor(() => readNdjsonLines(out).length === 3, 10_000, 'delivery')
      await waitFor(
        () => segmentsDeleted(join(dir, 'running', 'spool'), 'ev'),
        20_000,
        'the segments to be deleted',
      )
      await first.kill('SIGKILL')
      const second = await serve(config)
      try {
        expect((await send(`${second.url}/ingest/ev`, { headers: json, body })).json()).toMatchObject({
          accepted: 0,
          duplicates: 3,
        })
        expect(readNdjsonLines(out)).toHaveLength(3)
      } finally {
        await second.kill('SIGTERM')
      }
    })
  })
})
