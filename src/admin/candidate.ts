import { validateConfig, type ConfigIssue } from '../config/load.js'
import type { GatewayConfig } from '../config/types.js'
import { StreamRuntime } from '../pipeline/stream.js'
import { createSink } from '../sinks/registry.js'
import { createLogger } from '../telemetry/logger.js'
import { Validators } from '../validate/validators.js'

// A candidate config (the effective config with one change, or the config file with the API's saved
// changes) is checked exactly like a config file: the same validateConfig, then a dry build of every sink
// and stream that differs from the running ones (sink factories and stream compilers check what a schema
// cannot: URLs, Kafka topic names, template syntax, regular expressions).

/**
 * Validates a whole config whose values are literal: the running config was interpolated when the file was
 * loaded, and the API stores values as sent (`${VAR}` in an API write is not read from the environment, so an
 * API caller cannot read the gateway's environment). `$${` keeps every `${` literal through interpolation.
 */
export function validateLiteralConfig(candidate: GatewayConfig): {
  config?: GatewayConfig
  issues: ConfigIssue[]
} {
  return validateConfig(escapeInterpolation(candidate), { env: {}, baseDir: process.cwd() })
}

function escapeInterpolation(value: unknown): unknown {
  if (typeof value === 'string') return value.replaceAll('${', '$${')
  if (Array.isArray(value)) return value.map(escapeInterpolation)
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {}
    for (const [key, item] of Object.entries(value))
      Object.defineProperty(out, key, {
        value: escapeInterpolation(item),
        enumerable: true,
        writable: true,
        configurable: true,
      })
    return out
  }
  return value
}

const quiet = createLogger('silent')

/** Builds (and closes again) every sink and stream of `next` that is new or differs from `current`. */
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
      issues.push(issueOf(`sinks.${name}`, err))
    }
  }
  const validators = new Validators()
  for (const [id, streamConfig] of Object.entries(next.streams)) {
    if (current && JSON.stringify(current.streams[id]) === JSON.stringify(streamConfig)) continue
    try {
      new StreamRuntime(id, streamConfig, validators)
    } catch (err) {
      issues.push(issueOf(`streams.${id}`, err))
    }
  }
  return issues
}

/** Factories throw "sinks.x.url: not a URL"; keep the path they name when it is inside the object. */
function issueOf(at: string, err: unknown): ConfigIssue {
  const message = err instanceof Error ? err.message : String(err)
  const colon = message.indexOf(': ')
  if (colon > 0) {
    const path = message.slice(0, colon)
    if (path === at || path.startsWith(`${at}.`) || path.startsWith(`${at}[`))
      return { path, message: message.slice(colon + 2) }
  }
  return { path: at, message }
}
