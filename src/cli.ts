import { parseArgs } from 'node:util'
import { ConfigError, formatIssues, loadConfigFile } from './config/load.js'
import { start } from './main.js'

const USAGE = `usage:
  streamgate serve [--config FILE] [--port N]   run the gateway (default config/streamgate.yaml)
  streamgate check-config FILE                  validate a config file; exit 1 and list every error
`

export async function runCli(argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  switch (command) {
    case 'serve': {
      const { values } = parseArgs({
        args: rest,
        options: { config: { type: 'string', short: 'c' }, port: { type: 'string', short: 'p' } },
      })
      const config = loadConfigFile(values.config ?? 'config/streamgate.yaml')
      const port = values.port !== undefined ? Number(values.port) : undefined
      if (port !== undefined && (!Number.isInteger(port) || port < 0 || port > 65535)) {
        process.stderr.write(`--port must be an integer 0-65535, got ${values.port}\n`)
        return 2
      }
      await start(config, { signals: true, ...(port !== undefined ? { port } : {}) })
      return -1 // keep running
    }
    case 'check-config': {
      const file = rest[0]
      if (!file) {
        process.stderr.write(USAGE)
        return 2
      }
      try {
        loadConfigFile(file)
        process.stdout.write(`${file}: ok\n`)
        return 0
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err
        process.stderr.write(`${file}: invalid configuration\n${formatIssues(err.issues)}\n`)
        return 1
      }
    }
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

runCli(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code
  },
  (err: unknown) => {
    if (err instanceof ConfigError) process.stderr.write(`${err.message}\n`)
    else process.stderr.write(`${(err as Error).stack ?? String(err)}\n`)
    process.exitCode = 1
  },
)
