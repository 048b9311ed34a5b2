import { mkdir, readdir, readFile, unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { GatewayConfig } from '../config/types.js'
import { parseDeadLetter } from '../records/dead-letter.js'
import { Spool } from '../spool/spool.js'
import { writeFileAtomic } from '../spool/stream-log.js'
import type { Logger } from '../telemetry/logger.js'
import { Validators } from '../validate/validators.js'
import { DEFAULT_DEAD_LETTER_SINK } from './gateway.js'
import { StreamRuntime } from './stream.js'

// `streamgate spool replay-dead-letter <stream>`: the stream's dead letters (in its file dead-letter sink)
// go through validation and filters again and into the stream's spool, so the next `serve` delivers them
// to every sink of the stream (a record that one sink had rejected may reach the others a second time:
// at least once). Records still invalid become dead letters again. Replayed lines move to
// `<dead-letter dir>/replayed/`. Runs offline: Spool.open makes it the spool's one owner while it runs,
// so it is refused (SpoolLockedError naming the gateway's PID) while a gateway holds the spool.

export interface ReplayReport {
  files: number
  found: number
  replayed: number
  deadAgain: number
  filtered: number
}

const REPLAY_BATCH = 1000

export async function replayDeadLetters(
  config: GatewayConfig,
  streamId: string,
  logger: Logger,
): Promise<ReplayReport> {
  const streamConfig = config.streams[streamId]
  if (!streamConfig) throw new Error(`no stream "${streamId}" is configured`)
  const sinkName = streamConfig.deadLetter ?? DEFAULT_DEAD_LETTER_SINK
  const sinkConfig = config.sinks[sinkName]
  let dir: string
  if (sinkConfig) {
    if (sinkConfig.type !== 'file')
      throw new Error(
        `the dead-letter sink "${sinkName}" is a ${sinkConfig.type} sink; replay reads file dead-letter sinks only`,
      )
    dir = sinkConfig.dir
  } else dir = join(config.spool.dir, '..', 'dead-letter')
  const runtime = new StreamRuntime(streamId, streamConfig, new Validators())
  const spool = await Spool.open(config.spool, logger)
  const report: ReplayReport = { files: 0, found: 0, replayed: 0, deadAgain: 0, filtered: 0 }
  try {
    const files = (await readdir(dir).catch(() => [] as string[])).filter((f) => f.endsWith('.ndjson')).sort()
    await mkdir(join(dir, 'replayed'), { recursive: true })
    for (const file of files) {
      const path = join(dir, file)
      const lines = (await readFile(path, 'utf8')).split('\n').filter((l) => l !== '')
      const mine: string[] = []
      const others: string[] = []
      for (const line of lines) (parseDeadLetter(line)?.stream === streamId ? mine : others).push(line)
      if (mine.length === 0) continue
      report.files++
      report.found += mine.length
      for (let i = 0; i < mine.length; i += REPLAY_BATCH) {
        const raws = mine.slice(i, i + REPLAY_BATCH).map((l) => Buffer.from(parseDeadLetter(l)!.raw, 'utf8'))
        const now = Date.now()
        const outcome = runtime.processRecords(raws, now)
        await spool.append(streamId, outcome.records, outcome.deadLetters, now)
        report.replayed += outcome.records.length
        report.deadAgain += outcome.deadLetters.length
        report.filtered += outcome.filtered
      }
      // Only after the records are durable in the spool: move the replayed lines out of the file.
      await writeFile(join(dir, 'replayed', file), mine.join('\n') + '\n', { flag: 'a' })
      if (others.length === 0) await unlink(path)
      else await writeFileAtomic(path, others.join('\n') + '\n')
    }
  } finally {
    await spool.close()
  }
  return report
}
