import { resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { ConfigError, formatIssues } from './config/load.js'
import type { Role } from './config/types.js'
import { CONNECT_USAGE, runConnect } from './connect/cli.js'
import { serve } from './cluster/serve.js'
import { existingShards } from './cluster/shards.js'
import { StartupError } from './main.js'
import { loadCheckedConfig } from './pipeline/config-check.js'
import { applyRuntimeFlags } from './runtime-flags.js'
import { replayDeadLetters } from './pipeline/replay.js'
import { formatStats, mergeStats, spoolStats } from './spool/inspect.js'
import { SpoolLockedError, spoolOwner } from './spool/lock.js'
import { createLogger } from './telemetry/logger.js'

const USAGE = `usage:
  streamgate serve [--config FILE] [--port N] [--role all|ingest|deliver]
                                                run the gateway (default config/streamgate.yaml); --role
                                                overrides the config's role (ingest and deliver need cluster)
  streamgate check-config FILE                  check a config file as serve would; exit 1 and list every error
  streamgate spool stats [--config FILE] [--json] [--shards]
                                                bytes, records and lag per stream and sink; the owner
                                                (summed over the worker shards; --shards shows each)
  streamgate spool replay-dead-letter STREAM [--config FILE]
                                                send a stream's dead letters through again (gateway stopped)
${CONNECT_USAGE}`

const ROLES: readonly Role[] = ['all', 'ingest', 'deliver']

function isRole(value: string): value is Role {
  return (ROLES as readonly string[]).includes(value)
}

export async function runCli(argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  switch (command) {
    case 'serve': {
      applyRuntimeFlags()
      const { values } = parseArgs({
        args: rest,
        options: {
          config: { type: 'string', short: 'c' },
          port: { type: 'string', short: 'p' },
          role: { type: 'string' },
        },
      })
      const role = values.role
      if (role !== undefined && !isRole(role)) {
        process.stderr.write(`--role must be one of ${ROLES.join(', ')}, got ${role}\n`)
        return 2
      }
      const config = await loadCheckedConfig(
        values.config ?? 'config/streamgate.yaml',
        process.env,
        role !== undefined ? { role } : {},
      )
      const port = values.port !== undefined ? Number(values.port) : undefined
      if (port !== undefined && (!Number.isInteger(port) || port < 0 || port > 65535)) {
        process.stderr.write(`--port must be an integer 0-65535, got ${values.port}\n`)
        return 2
      }
      await serve(config, port)
      return -1 // keep running
    }
    case 'check-config': {
      const file = rest[0]
      if (!file) {
        process.stderr.write(USAGE)
        return 2
      }
      try {
        await loadCheckedConfig(file)
        process.stdout.write(`${file}: ok\n`)
        return 0
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err
        process.stderr.write(`${file}: invalid configuration\n${formatIssues(err.issues)}\n`)
        return 1
      }
    }
    case 'spool':
      return runSpool(rest)
    case 'connect':
    case 'connections':
    case 'disconnect':
      return runConnect([command, ...rest])
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      process.stdout.write(USAGE)
      return command === undefined ? 2 : 0
    default:
      process.stderr.write(`unknown command "${command}"\n${USAGE}`)
      return 2
  }
}

async function runSpool(args: string[]): Promise<number> {
  const [sub, ...rest] = args
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c' },
      json: { type: 'boolean' },
      shards: { type: 'boolean' },
    },
  })
  const config = await loadCheckedConfig(values.config ?? 'config/streamgate.yaml')
  if (sub === 'stats') {
    // With worker shards (server.workers, src/cluster/shards.ts): the sum of spool.dir and every shard;
    // --shards shows each one as well.
    const shards = await existingShards(config.spool.dir)
    const spools = [
      { dir: resolve(config.spool.dir), stats: await spoolStats(config.spool) },
      ...(await Promise.all(
        shards.map(async ({ dir }) => ({ dir, stats: await spoolStats({ ...config.spool, dir }) })),
      )),
    ]
    const stats = shards.length === 0 ? spools[0]!.stats : mergeStats(spools.map((s) => s.stats))
    const owners = await Promise.all(spools.map((s) => spoolOwner(s.dir)))
    if (values.json) {
      const doc = values.shards
        ? {
            streams: stats,
            shards: spools.map((s, i) => ({ dir: s.dir, owner: owners[i] ?? null, streams: s.stats })),
          }
        : stats
      process.stdout.write(`${JSON.stringify(doc, null, 2)}\n`)
      return 0
    }
    const ownerText = (owner: number | undefined): string =>
      owner === undefined ? 'none (no gateway or replay holds the spool)' : `process ${owner}`
    let text = `${formatStats(stats, config.spool.maxBytes)}\nowner: ${ownerText(owners[0])}\n`
    if (shards.length > 0 && !values.shards)
      text += `summed over ${spools.length} spools (spool.dir and ${shards.length} worker shards; --shards shows each)\n`
    if (values.shards)
      spools.forEach((s, i) => {
        text += `\n${s.dir}:\n${formatStats(s.stats, config.spool.maxBytes)}\nowner: ${ownerText(owners[i])}\n`
      })
    process.stdout.write(text)
    return 0
  }
  if (sub === 'replay-dead-letter') {
    const stream = positionals[0]
    if (!stream) {
      process.stderr.write(USAGE)
      return 2
    }
    try {
      const report = await replayDeadLetters(config, stream, createLogger('warn'))
      process.stdout.write(
        `stream ${stream}: ${report.found} dead letters in ${report.files} files; ${report.replayed} back in the spool, ` +
          `${report.deadAgain} still invalid (dead-lettered again), ${report.filtered} filtered\n`,
      )
      return 0
    } catch (err) {
      if (err instanceof SpoolLockedError) {
        process.stderr.write(`${err.message}: stop the gateway before replaying\n`)
        return 1
      }
      throw err
    }
  }
  process.stderr.write(`unknown spool command "${sub ?? ''}"\n${USAGE}`)
  return 2
}

runCli(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code
  },
  (err: unknown) => {
    // Expected start-up failures (bad config, spool owned, address in use, spool not writable): the
    // message alone, no stack trace. Anything else is a bug and keeps its stack.
    if (err instanceof ConfigError || err instanceof StartupError || err instanceof SpoolLockedError)
      process.stderr.write(`${err.message}\n`)
    else process.stderr.write(`${(err as Error).stack ?? String(err)}\n`)
    process.exitCode = 1
  },
)
