import { dirname, resolve } from 'node:path'
import {
  ConfigError,
  readConfigFile,
  validateConfig,
  type ConfigIssue,
  type ValidateOptions,
} from '../config/load.js'
import type { GatewayConfig, Role } from '../config/types.js'
import { sourceIssues } from '../ingest/sources/registry.js'
import { createSink, sinkIssues } from '../sinks/registry.js'
import { createLogger } from '../telemetry/logger.js'
import { Validators } from '../validate/validators.js'
import { StreamRuntime } from './stream.js'

// The one config check. `check-config`, `serve` (and the other CLI commands that read a config file), the
// management API's candidate configs and the API state saved beside the spool all go through it, in this
// order: the schema → cross-references (src/config/load.ts) → what each stream's source finds wrong
// (src/ingest/sources/) → a dry build of every component: each sink's constructor (no connection is made,
// nothing is written) and each stream's runtime (framer, validator, filters, templates). A component that
// throws becomes a config issue at its JSON path, never a stack trace; so whatever `serve` would refuse,
// `check-config` refuses first.

export interface CheckOptions extends Omit<ValidateOptions, 'componentIssues'> {
  /** The running config: sinks and streams equal to its own are not built again. */
  current?: GatewayConfig
}

/** The synchronous part of the check: schema, cross-references and the sources', sinks' and roles' checks. */
export function validateWithComponents(
  raw: unknown,
  options: Omit<ValidateOptions, 'componentIssues'> = {},
): { config?: GatewayConfig; issues: ConfigIssue[] } {
  return validateConfig(raw, {
    ...options,
    componentIssues: (config) => [...sourceIssues(config), ...sinkIssues(config), ...roleIssues(config)],
  })
}

/**
 * The roles of SPEC section 9 (src/roles/): ingest and deliver nodes meet in a Kafka cluster, so they need
 * `cluster`; they run as one process each (more nodes, not more workers, is how they scale).
 */
export function roleIssues(config: GatewayConfig): ConfigIssue[] {
  const role = config.role ?? 'all'
  if (role === 'all') return []
  const issues: ConfigIssue[] = []
  if (!config.cluster)
    issues.push({
      path: 'cluster',
      message: `role ${role} needs a cluster (cluster.kafka.brokers at least): ingest and deliver nodes meet in its Kafka topics`,
    })
  if (config.server.workers !== 1)
    issues.push({
      path: 'server.workers',
      message: `role ${role} runs as one process (workers: 1); run more ${role} nodes instead`,
    })
  return issues
}

/** Interpolates, validates and dry-builds a parsed config document. Never throws on bad input. */
export async function checkConfig(
  raw: unknown,
  options: CheckOptions = {},
): Promise<{ config?: GatewayConfig; issues: ConfigIssue[] }> {
  const { current, ...validate } = options
  const { config, issues } = validateWithComponents(raw, validate)
  if (!config) return { issues }
  const built = await dryBuild(config, current)
  return built.length > 0 ? { issues: built } : { config, issues: [] }
}

/** Reads, parses and checks a config file; a ConfigError lists every issue. `overrides` win over the file. */
export async function loadCheckedConfig(
  file: string,
  env: NodeJS.ProcessEnv = process.env,
  overrides: { role?: Role } = {},
): Promise<GatewayConfig> {
  let raw = readConfigFile(file)
  // `serve --role` replaces the file's role before the check, so the check sees what will run.
  if (overrides.role !== undefined && raw !== null && typeof raw === 'object' && !Array.isArray(raw))
    raw = { ...raw, role: overrides.role }
  const { config, issues } = await checkConfig(raw, {
    env,
    baseDir: dirname(resolve(file)),
  })
  if (!config) throw new ConfigError(issues, file)
  return config
}

const quiet = createLogger('silent')

/**
 * Builds (and closes again) every sink and stream of `next` that is new or differs from `current` (all of
 * them without `current`). Sink constructors only check and store their options; no connection is opened.
 */
export async function dryBuild(
  next: GatewayConfig,
  current: GatewayConfig | undefined,
): Promise<ConfigIssue[]> {
  const issues: ConfigIssue[] = []
  for (const [name, sinkConfig] of Object.entries(next.sinks)) {
    if (current && JSON.stringify(current.sinks[name]) === JSON.stringify(sinkConfig)) continue
    try {
      const sink = createSink(name, sinkConfig, { logger: quiet })
      await sink.close()
    } catch (err) {
      issues.push(componentIssue(`sinks.${name}`, err))
    }
  }
  const validators = new Validators()
  for (const [id, streamConfig] of Object.entries(next.streams)) {
    if (current && JSON.stringify(current.streams[id]) === JSON.stringify(streamConfig)) continue
    try {
      new StreamRuntime(id, streamConfig, validators)
    } catch (err) {
      issues.push(componentIssue(`streams.${id}`, err))
    }
  }
  return issues
}

/**
 * A component's constructor error as a config issue at `at`. Factories throw "sinks.x.url: not a URL"; the
 * path they name is kept when it is inside the component.
 */
export function componentIssue(at: string, err: unknown): ConfigIssue {
  const message = err instanceof Error ? err.message : String(err)
  const colon = message.indexOf(': ')
  if (colon > 0) {
    const path = message.slice(0, colon)
    if (path === at || path.startsWith(`${at}.`) || path.startsWith(`${at}[`))
      return { path, message: message.slice(colon + 2) }
  }
  return { path: at, message }
}
