// The spool's round trip measured alone, in one process: a request's records appended as one frame (encode,
// CRC, writev, fdatasync) and read back by a caught-up lane's reader (decode into records), for two builds'
// dist/ (before and after a change) interleaved frame by frame, so that a busy shared machine slows both
// alike. CPU is process.cpuUsage() (user + system, the libuv threads' fs calls included) around each round
// trip; the two builds never run at the same time, so each delta is one build's.
//
//   npx tsx bench/spool-ab.ts --before /path/to/old/checkout --after . [--frames 200] [--scenario NAME]…
//
// Each build directory must hold a built dist/ (npm run build). The records are the scenario body as the
// after build's StreamRuntime.process frames it (the same records for both builds). Prints the median CPU ms
// and wall ms per round trip per build, and the ratio after ÷ before.

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { findScenario } from './scenarios.js'

interface Reader {
  next(): Promise<{ frame: { records: unknown[] } } | undefined>
  advance(position: { seq: number; index: number }): void
  close(): Promise<void>
}
interface Log {
  nextSeq: number
  append(kind: number, records: readonly unknown[], receivedAtMs: number): Promise<void>
  reader(from: { seq: number; index: number }): Reader
  deleteBefore(seq: number): Promise<number>
  close(): Promise<void>
}
interface Build {
  label: string
  log: Log
  reader: Reader
  cpu: number[]
  wall: number[]
}

async function openBuild(label: string, dir: string, spoolDir: string): Promise<Build> {
  const { StreamLog } = (await import(join(resolve(dir, 'dist'), 'spool', 'stream-log.js'))) as {
    StreamLog: { open(dir: string, stream: string, options: object): Promise<Log> }
  }
  const log = await StreamLog.open(join(spoolDir, label), 's', { segmentBytes: 64 << 20, fsync: 'always' })
  return { label, log, reader: log.reader({ seq: log.nextSeq, index: 0 }), cpu: [], wall: [] }
}

async function records(dir: string, scenarioName: string): Promise<unknown[]> {
  const scenario = findScenario(scenarioName)
  if (!scenario) throw new Error(`unknown scenario ${scenarioName}`)
  const dist = resolve(dir, 'dist')
  const { StreamRuntime } = (await import(join(dist, 'pipeline', 'stream.js'))) as {
    StreamRuntime: new (
      id: string,
      config: unknown,
      validators: unknown,
    ) => {
      process(body: Buffer, now: number): { records: unknown[] }
    }
  }
  const { Validators } = (await import(join(dist, 'validate', 'validators.js'))) as {
    Validators: new () => unknown
  }
  const { validateConfig } = (await import(join(dist, 'config', 'load.js'))) as {
    validateConfig: (
      raw: unknown,
      options: { env: Record<string, string> },
    ) => { config?: { streams: { s: unknown } } }
  }
  const { config } = validateConfig(
    { sinks: { out: { type: 'stdout' } }, streams: { s: { ...scenario.stream, sinks: ['out'] } } },
    { env: {} },
  )
  if (!config) throw new Error(`invalid stream config of ${scenarioName}`)
  const out = new StreamRuntime('s', config.streams.s, new Validators()).process(
    scenario.generate(),
    Date.now(),
  )
  if (out.records.length !== scenario.recordsPerRequest)
    throw new Error(`${scenarioName}: body not accepted whole`)
  return out.records
}

/** One append and the caught-up reader's read of it; CPU and wall ms into the build's lists. */
async function roundTrip(b: Build, recs: readonly unknown[], keep: boolean): Promise<void> {
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  const seq = b.log.nextSeq
  await b.log.append(1, recs, Date.now())
  const next = await b.reader.next()
  if (next?.frame.records.length !== recs.length) throw new Error(`${b.label}: read back a different frame`)
  b.reader.advance({ seq: seq + 1, index: 0 })
  const cpu = process.cpuUsage(cpu0)
  if (keep) {
    b.wall.push(performance.now() - t0)
    b.cpu.push((cpu.user + cpu.system) / 1000)
  }
  if (seq % 50 === 0) await b.log.deleteBefore(seq + 1)
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      before: { type: 'string' },
      after: { type: 'string', default: '.' },
      frames: { type: 'string', default: '200' },
      scenario: { type: 'string', multiple: true },
    },
  })
  if (values.before === undefined) throw new Error('--before DIR is required')
  const frames = Number(values.frames)
  const names = values.scenario ?? ['azion-ndjson-2000', 'emnify-usage-3000', 'emnify-single']
  console.log(
    '| scenario | before CPU ms | after CPU ms | CPU after ÷ before | before wall ms | after wall ms |',
  )
  console.log('| --- | ---: | ---: | ---: | ---: | ---: |')
  for (const name of names) {
    const spoolDir = mkdtempSync(join(tmpdir(), 'sg-spool-ab-'))
    try {
      const recs = await records(values.after, name)
      const builds = [
        await openBuild('before', values.before, spoolDir),
        await openBuild('after', values.after, spoolDir),
      ]
      const warm = Math.max(5, frames >> 3)
      for (let i = 0; i < warm + frames; i++) {
        const order = i % 2 === 0 ? builds : [...builds].reverse()
        for (const b of order) await roundTrip(b, recs, i >= warm)
      }
      const [b, a] = builds as [Build, Build]
      for (const x of builds) {
        await x.reader.close()
        await x.log.close()
      }
      const [bc, ac] = [median(b.cpu), median(a.cpu)]
      console.log(
        `| ${name} | ${bc.toFixed(3)} | ${ac.toFixed(3)} | ${(ac / bc).toFixed(3)} | ${median(b.wall).toFixed(3)} | ${median(a.wall).toFixed(3)} |`,
      )
    } finally {
      rmSync(spoolDir, { recursive: true, force: true })
    }
  }
}

await main()
