import { spawnSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { readNdjsonLines, startGateway, waitFor } from '../support/gateway.js'
import { send } from '../support/http.js'

// The spool seen from outside: paused streams, spool full, durability none, segment cleanup, and the
// spool CLI (stats, replay-dead-letter).

const CLI = join(import.meta.dirname, '..', '..', 'dist', 'cli.js')
const lines = (n: number, prefix: string): string =>
  Array.from({ length: n }, (_, i) => `{"k":"${prefix}-${i}","pad":"${'x'.repeat(40)}"}`).join('\n')

describe('spool', () => {
  it('a paused stream accepts into the spool, delivers nothing, and delivers everything once resumed', async () => {
    const gw = await startGateway({
      sinks: { out: { type: 'file', dir: '{dir}/out' } },
      streams: { s: { source: 'ndjson', status: 2, sinks: ['out'] } },
    })
    try {
      const res = await send(`${gw.url}/ingest/s`, { body: lines(5, 'paused') })
      expect(res.json()).toMatchObject({ accepted: 5 })
      const lane = gw.gateway.topology.lanesOf('s').find((l) => l.sinkName === 'out')!
      expect(lane.lag).toBe(5)
      expect(gw.gateway.state('s')!.status).toBe(2)
      expect(readNdjsonLines(`${gw.dir}/out`)).toEqual([])
      gw.gateway.setStatus('s', 1)
      await waitFor(() => readNdjsonLines(`${gw.dir}/out`).length === 5, 10_000, 'delivery after resume')
      await waitFor(() => lane.lag === 0, 5_000, 'lag 0')
    } finally {
      await gw.close()
    }
  })

  it('answers 503 with Retry-After when the spool is full, loses nothing, and recovers once delivered', async () => {
    const gw = await startGateway({
      spool: { maxBytes: 4000 },
      sinks: { out: { type: 'file', dir: '{dir}/out' } },
      streams: { s: { source: 'ndjson', status: 2, sinks: ['out'] } },
    })
    try {
      const accepted: string[] = []
      let full: Awaited<ReturnType<typeof send>> | undefined
      for (let i = 0; i < 50 && !full; i++) {
        const body = lines(5, `batch${i}`)
        const res = await send(`${gw.url}/ingest/s`, { body })
        if (res.status === 200) accepted.push(...body.split('\n'))
        else full = res
      }
      expect(full?.status).toBe(503)
      expect(full!.json()).toMatchObject({ title: 'Spool full' })
      expect(Number(full!.headers['retry-after'])).toBeGreaterThan(0)
      expect(accepted.length).toBeGreaterThan(0)
      gw.gateway.setStatus('s', 1)
      await waitFor(() => readNdjsonLines(`${gw.dir}/out`).length === accepted.length, 10_000, 'the backlog')
      expect(readNdjsonLines(`${gw.dir}/out`)).toEqual(accepted)
      // Once drained (and cleaned up, at most a second later), the spool takes records again.
      const after = await waitFor(
        async () => {
          const res = await send(`${gw.url}/ingest/s`, { body: lines(5, 'after') })
          return res.status === 200 ? res : undefined
        },
        10_000,
        'the spool to accept again',
      )
      expect(after.json()).toMatchObject({ accepted: 5 })
      const metrics = (await send(`${gw.url}/metrics`, { method: 'GET' })).text
      expect(metrics).toMatch(/streamgate_spool_full_total\{stream="s"\} [1-9]/)
    } finally {
      await gw.close()
    }
  })

  it('durability: none answers only after the sink wrote the records', async () => {
    const gw = await startGateway({
      sinks: { out: { type: 'file', dir: '{dir}/out' } },
      streams: { s: { source: 'ndjson', durability: 'none', sinks: ['out'] } },
    })
    try {
      const res = await send(`${gw.url}/ingest/s`, { body: '{"sync":1}\n{"sync":2}' })
      expect(res.status).toBe(200)
      // No polling: the 200 itself means the file sink has them.
      expect(readNdjsonLines(`${gw.dir}/out`)).toEqual(['{"sync":1}', '{"sync":2}'])
    } finally {
      await gw.close()
    }
  })

  it('gives disk space back once every lane has delivered', async () => {
    const gw = await startGateway({
      sinks: { out: { type: 'file', dir: '{dir}/out' }, out2: { type: 'file', dir: '{dir}/out2' } },
      streams: { s: { source: 'ndjson', sinks: ['out', 'out2'] } },
    })
    try {
      await send(`${gw.url}/ingest/s`, { body: lines(100, 'gc') })
      expect(gw.gateway.spool.usedBytes()).toBeGreaterThan(0)
      await waitFor(() => readNdjsonLines(`${gw.dir}/out2`).length === 100, 10_000, 'delivery')
      await waitFor(() => gw.gateway.spool.usedBytes() === 0, 10_000, 'segment cleanup')
    } finally {
      await gw.close()
    }
  })

  it('spool stats reports lag per lane, read-only while the gateway runs', async () => {
    const gw = await startGateway({
      sinks: { out: { type: 'file', dir: '{dir}/out' } },
      streams: { s: { source: 'ndjson', status: 2, sinks: ['out'] } },
    })
    try {
      await send(`${gw.url}/ingest/s`, { body: lines(7, 'stats') })
      await gw.gateway.spool.stream('s').then((s) => s.cursors.save(true))
      const config = join(gw.dir, 'stats.yaml')
      writeFileSync(
        config,
        `server: { host: 127.0.0.1 }\ndataDir: ${gw.dir}\nspool: { dir: ${gw.dir}/spool }\nsinks: { out: { type: file, dir: ${gw.dir}/out } }\nstreams: { s: { source: ndjson, sinks: [out] } }\n`,
      )
      const res = spawnSync(process.execPath, [CLI, 'spool', 'stats', '--config', config, '--json'], {
        encoding: 'utf8',
      })
      expect(res.stderr).toBe('')
      expect(res.status).toBe(0)
      const stats = JSON.parse(res.stdout) as {
        stream: string
        records: number
        lanes: { lane: string; lagRecords: number }[]
      }[]
      expect(stats).toEqual([
        expect.objectContaining({
          stream: 's',
          records: 7,
          lanes: expect.arrayContaining([expect.objectContaining({ lane: 'out', lagRecords: 7 })]) as unknown,
        }),
      ])
      const text = spawnSync(process.execPath, [CLI, 'spool', 'stats', '--config', config], {
        encoding: 'utf8',
      }).stdout
      expect(text).toContain('out: lag 7 records')
    } finally {
      await gw.close()
    }
  })

  it('replay-dead-letter sends dead letters through again (refused while the gateway holds the spool)', async () => {
    const doc = (validation: string): Record<string, unknown> => ({
      server: { host: '127.0.0.1' },
      dataDir: '{dir}',
      spool: { dir: '{dir}/spool' },
      sinks: { out: { type: 'file', dir: '{dir}/out' }, dl: { type: 'file', dir: '{dir}/dl' } },
      streams: {
        s: {
          source: 'ndjson',
          schema: join(import.meta.dirname, '..', 'fixtures', 'needs-n.schema.json'),
          validation,
          deadLetter: 'dl',
          sinks: ['out'],
        },
      },
    })
    const gw = await startGateway(doc('dead-letter'))
    const dir = gw.dir
    const config = join(dir, 'replay.yaml')
    writeFileSync(config, JSON.stringify(doc('off')).replaceAll('{dir}', dir))
    try {
      const res = await send(`${gw.url}/ingest/s`, { body: '{"n":1}\n{"bad":9007199254740993}' })
      expect(res.json()).toMatchObject({ accepted: 1, rejected: 1 })
      await waitFor(() => readNdjsonLines(`${dir}/dl`).length === 1, 10_000, 'the dead letter')
      const locked = spawnSync(
        process.execPath,
        [CLI, 'spool', 'replay-dead-letter', 's', '--config', config],
        { encoding: 'utf8' },
      )
      expect(locked.status).toBe(1)
      expect(locked.stderr).toContain('stop the gateway')
    } finally {
      await gw.stop()
    }
    // Offline, with validation now off: the dead letter goes back into the spool...
    const replay = spawnSync(
      process.execPath,
      [CLI, 'spool', 'replay-dead-letter', 's', '--config', config],
      { encoding: 'utf8' },
    )
    expect(replay.stderr).toBe('')
    expect(replay.stdout).toContain('1 dead letters in 1 files; 1 back in the spool')
    expect(readNdjsonLines(`${dir}/dl`)).toEqual([])
    // ...and the next start delivers it, bytes intact.
    const again = await startGateway(
      JSON.parse(JSON.stringify(doc('off')).replaceAll('{dir}', dir)) as Record<string, unknown>,
    )
    try {
      await waitFor(
        () => readNdjsonLines(`${dir}/out`).includes('{"bad":9007199254740993}'),
        10_000,
        'the replayed record',
      )
      expect(readNdjsonLines(`${dir}/out`)).toEqual(['{"n":1}', '{"bad":9007199254740993}'])
    } finally {
      await again.close()
    }
  })
})
