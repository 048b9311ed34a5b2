import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { start, type Running } from '../../src/main.js'
import { checkConfig } from '../../src/pipeline/config-check.js'
import { createLogger, type Logger } from '../../src/telemetry/logger.js'

export interface TestGateway extends Running {
  url: string
  /** The admin listener's URL (admin.listen), else undefined. */
  adminUrl?: string
  /** The metrics listener's URL (metrics.listen), else undefined. */
  metricsUrl?: string
  dir: string
  /** Stops the gateway and removes its temporary directory. */
  close(): Promise<void>
}

/**
 * Starts an in-process gateway on a free loopback port. `config` is a config document (as a user would
 * write it); `{dir}` inside string values is replaced by a fresh temporary directory, which is also the
 * dataDir (file sinks must write inside it) unless the config sets its own. Logs go nowhere unless
 * `options.logger` is given.
 */
export async function startGateway(
  config: Record<string, unknown>,
  env: NodeJS.ProcessEnv = {},
  options: { logger?: Logger } = {},
): Promise<TestGateway> {
  const dir = mkdtempSync(join(tmpdir(), 'streamgate-test-'))
  const doc = JSON.parse(JSON.stringify(config).replaceAll('{dir}', dir)) as Record<string, unknown>
  doc.server = { host: '127.0.0.1', port: 0, ...(doc.server as object) }
  doc.spool = { dir: join(dir, 'spool'), ...(doc.spool as object) }
  doc.log = { level: 'silent', ...(doc.log as object) }
  doc.dataDir ??= dir
  const { config: validated, issues } = await checkConfig(doc, { env, baseDir: process.cwd() })
  if (!validated)
    throw new Error(`test config invalid:\n${issues.map((i) => `${i.path}: ${i.message}`).join('\n')}`)
  const running = await start(validated, { logger: options.logger ?? createLogger('silent') })
  return {
    ...running,
    url: `http://127.0.0.1:${running.port}`,
    ...(running.adminPort !== undefined ? { adminUrl: `http://127.0.0.1:${running.adminPort}` } : {}),
    ...(running.metricsPort !== undefined ? { metricsUrl: `http://127.0.0.1:${running.metricsPort}` } : {}),
    dir,
    close: async () => {
      await running.stop()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

/** Every line of every NDJSON file under `dir` (sorted by file name), without the trailing newline. */
export function readNdjsonLines(dir: string): string[] {
  let files: string[]
  try {
    files = readdirSync(dir)
      .filter((f) => f.endsWith('.ndjson'))
      .sort()
  } catch {
    return []
  }
  return files.flatMap((f) =>
    readFileSync(join(dir, f), 'utf8')
      .split('\n')
      .filter((l) => l !== ''),
  )
}

export async function waitFor<T>(
  fn: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 10_000,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await fn()
    if (value !== undefined && value !== false) return value
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

export function fixture(path: string): Buffer {
  return readFileSync(join(import.meta.dirname, '..', 'fixtures', path))
}

/** A logger whose lines (parsed) land in `lines`, for tests that check what is logged. */
export function capturingLogger(level: 'info' | 'debug' = 'info'): {
  logger: Logger
  lines: Record<string, unknown>[]
} {
  const lines: Record<string, unknown>[] = []
  const logger = createLogger(level, {
    write: (line: string) => {
      lines.push(JSON.parse(line) as Record<string, unknown>)
    },
  })
  return { logger, lines }
}
