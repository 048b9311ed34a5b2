// One delivery lane draining a backlog into the file sink, in this process: the lane's own cost per record,
// with nothing else competing (no HTTP, no ingest). The spool is filled first with 2,000-record frames of
// Azion-like NDJSON lines (~0.8 MB each, the tail cache off: every frame is read back from its file and its
// CRC checked, as for a lane behind), then a DeliveryLane of the build under test delivers them to a file
// sink with fsync on. Reports wall time and the process's CPU (user + system) from the lane's start until
// every record was delivered. Builds compared back to back (each in its own process):
//
//   npm run build && npx tsx bench/lane-drain.ts [--mib 300] [--rounds 2] [--dist /tmp/old/dist …]

import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import type { DeliveryLane as Lane } from '../src/pipeline/lane.js'
import type { SinkRecord } from '../src/records/record.js'
import type { Spool as SpoolClass } from '../src/spool/spool.js'

const { values } = parseArgs({
  options: {
    dist: { type: 'string', multiple: true },
    mib: { type: 'string', default: '300' },
    rounds: { type: 'string', default: '2' },
    child: { type: 'string' },
  },
})

if (values.child !== undefined) await drain(values.child, Number(values.mib))
else {
  const dists = (values.dist ?? ['dist']).map((d) => resolve(d))
  for (let round = 0; round < Number(values.rounds); round++)
    for (const dist of round % 2 === 0 ? dists : [...dists].reverse()) {
      const run = spawnSync(
        process.execPath,
        [...process.execArgv, process.argv[1]!, '--child', dist, '--mib', values.mib],
        { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] },
      )
      process.stdout.write(run.stdout)
    }
}

async function drain(dist: string, mib: number): Promise<void> {
  const { Spool } = (await import(`${dist}/spool/spool.js`)) as { Spool: typeof SpoolClass }
  const { DeliveryLane } = (await import(`${dist}/pipeline/lane.js`)) as { DeliveryLane: typeof Lane }
  const { createFileSink } = (await import(
    `${dist}/sinks/file/sink.js`
  )) as typeof import('../src/sinks/file/sink.js')
  const { createLogger } = (await import(
    `${dist}/telemetry/logger.js`
  )) as typeof import('../src/telemetry/logger.js')
  const { Metrics } = (await import(
    `${dist}/telemetry/metrics.js`
  )) as typeof import('../src/telemetry/metrics.js')
  const logger = createLogger('silent')
  const dir = mkdtempSync(join(tmpdir(), 'sg-lane-drain-'))
  try {
    const lines = Array.from({ length: 2000 }, (_, i) =>
      JSON.stringify({ host: 'example.com', status: 200, path: `/p/${i}`, ua: 'x'.repeat(330) }),
    )
    const body = Buffer.from(`${lines.join('\n')}\n`)
    const records: SinkRecord[] = []
    for (let at = 0; at < body.length;) {
      const end = body.indexOf(0x0a, at)
      records.push({ stream: 's', payload: body.subarray(at, end), receivedAtMs: Date.now() })
      at = end + 1
    }
    const spool = await Spool.open(
      {
        dir: join(dir, 'spool'),
        maxBytes: 4 * 2 ** 30,
        fsync: 60_000,
        segmentBytes: 64 << 20,
        tailCacheBytes: 0,
      },
      logger,
    )
    const frames = Math.ceil((mib * 2 ** 20) / body.length)
    for (let f = 0; f < frames; f++) await spool.append('s', records, [], Date.now())
    const stream = await spool.stream('s')
    const sink = createFileSink(
      'out',
      {
        type: 'file',
        dir: join(dir, 'out'),
        prefix: 'out',
        maxFileBytes: 2 ** 30,
        maxFileAgeMs: 3_600_000,
        fsync: true,
        retry: { initialMs: 1, maxMs: 1, maxAttempts: 0 },
      },
      { logger },
    )
    const total = frames * records.length
    let delivered = 0
    const lane = new DeliveryLane({
      stream: 's',
      lane: 'out',
      kind: 1,
      sink,
      retry: { initialMs: 1, maxMs: 5, maxAttempts: 0 },
      spool: stream,
      metrics: new Metrics({ defaultMetrics: false }),
      logger,
      isPaused: () => false,
      deadLetter: async () => undefined,
      onDelivered: (n) => (delivered += n),
    })
    const cpu0 = process.cpuUsage()
    const started = performance.now()
    lane.start()
    while (delivered < total) await new Promise((r) => setTimeout(r, 2))
    const seconds = (performance.now() - started) / 1000
    const cpu = process.cpuUsage(cpu0)
    await lane.stop(1_000)
    await sink.close()
    await spool.close()
    const cpuS = (cpu.user + cpu.system) / 1e6
    console.log(
      `${dist}: ${total} records in ${seconds.toFixed(2)} s = ${Math.round(total / seconds / 1000)}k rec/s; ` +
        `CPU ${cpuS.toFixed(2)} s (user ${(cpu.user / 1e6).toFixed(2)} s) = ${Math.round(total / cpuS / 1000)}k rec/CPU-s`,
    )
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
