import type { ConfigIssue } from '../config/load.js'
import type { GatewayConfig } from '../config/types.js'
import { checkConfig, validateWithComponents } from '../pipeline/config-check.js'

// A candidate config (the effective config with one change, or the config file with the API's saved
// changes) is checked exactly like a config file, by the one config check (src/pipeline/config-check.ts):
// schema, cross-references, the sources' checks, then a dry build of every sink and stream that differs
// from the running ones (sink factories and stream compilers check what a schema cannot: URLs, Kafka topic
// names, template syntax, regular expressions).

/**
 * Validates a whole config whose values are literal: the running config was interpolated when the file was
 * loaded, and the API stores values as sent (`${VAR}` in an API write is not read from the environment, so an
 * API caller cannot read the gateway's environment). `$${` keeps every `${` literal through interpolation.
 * Everything but the dry build (checkCandidate adds it).
 */
export function validateLiteralConfig(candidate: GatewayConfig): {
  config?: GatewayConfig
  issues: ConfigIssue[]
} {
  return validateWithComponents(escapeInterpolation(candidate), { env: {}, baseDir: process.cwd() })
}

/** The whole check of a candidate: components equal to `current`'s are not built again. */
export function checkCandidate(
  candidate: GatewayConfig,
  current: GatewayConfig | undefined,
): Promise<{ config?: GatewayConfig; issues: ConfigIssue[] }> {
  return checkConfig(escapeInterpolation(candidate), {
    env: {},
    baseDir: process.cwd(),
    ...(current ? { current } : {}),
  })
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
