import { BlockList, isIP } from 'node:net'
import { isSecretKey } from '../telemetry/logger.js'
import { urlCredentials } from '../telemetry/url-credentials.js'
import type { ConfigIssue } from './load.js'
import type { GatewayConfig, StreamConfig } from './types.js'

// Safe by default: a gateway that listens beyond this machine must not take records from anyone, nor run
// on the example secrets of the embedded default. On a non-loopback server.host (and unless
// server.allowInsecure is true) these are config errors, found by the same validateConfig that serve,
// check-config and every management-API write go through:
//   - a stream without auth: no auth headers, no hmac and no allowCidrs (an allowCidrs list counts as auth,
//     like the vendors' published source ranges do, unless one of its ranges is /0, which lets everyone in);
//   - a placeholder secret ("change-me", "changeme", "change_me", any case, also as one word of a value
//     such as "Bearer change-me") in any value the API masks as a secret (stream auth headers, hmac
//     secrets, admin.token, sink passwords, tokens, keys and headers) or as a credential inside a URL.
// Loopback is 127.0.0.0/8, ::1 (also IPv4-mapped) and the name "localhost"; any other name counts as
// reachable (no DNS lookup at validation time).

const LOOPBACK = new BlockList()
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4')
LOOPBACK.addAddress('::1', 'ipv6')

const PLACEHOLDER = /^change[-_]?me$/i

/** Whether binding `host` keeps the listener on this machine. */
export function isLoopbackHost(host: string): boolean {
  const name = host
    .trim()
    .toLowerCase()
    .replace(/^\[(.*)\]$/, '$1')
  if (name === 'localhost' || name === 'localhost.') return true
  const family = isIP(name)
  return family !== 0 && LOOPBACK.check(name, family === 6 ? 'ipv6' : 'ipv4')
}

/** The placeholder word in `value` ("Bearer change-me", "X-Token:changeme"), if there is one. */
export function placeholderIn(value: string): string | undefined {
  return value.split(/[\s:=,]+/).find((word) => PLACEHOLDER.test(word))
}

/**
 * Streams with no auth and placeholder secrets, when the listener that serves them is not loopback-only.
 * Ingest (streams, and every secret outside admin/metrics) is judged by server.host; admin.token by the
 * listener that serves the management API (admin.listen, else server.host); metrics.token by the one that
 * serves /metrics (metrics.listen, else admin.listen, else server.host).
 */
export function exposureIssues(config: GatewayConfig, raw: unknown): ConfigIssue[] {
  if (config.server.allowInsecure) return []
  const ingestHost = config.server.host
  const admin: [string, string] = config.admin.listen
    ? ['admin.listen.host', config.admin.listen.host]
    : ['server.host', ingestHost]
  const metrics: [string, string] = config.metrics?.listen
    ? ['metrics.listen.host', config.metrics.listen.host]
    : admin
  const exposed = (key: string, host: string): string => `${key} "${host}" is not a loopback address`
  const ways = (key: string): string =>
    `listen on 127.0.0.1${key === 'server.host' ? '' : ` (${key})`}, or set server.allowInsecure: true`
  const issues: ConfigIssue[] = []
  if (!isLoopbackHost(ingestHost))
    for (const [id, stream] of Object.entries(config.streams))
      if (!hasAuth(stream.auth))
        issues.push({
          path: `streams.${id}.auth`,
          message: `none (no headers, hmac or allowCidrs) and ${exposed('server.host', ingestHost)}: anyone who reaches the port can post records; add auth, ${ways('server.host')}`,
        })
  for (const leaf of stringLeaves(config, '', [], false)) {
    const [key, host] = leaf.path.startsWith('admin.')
      ? admin
      : leaf.path.startsWith('metrics.')
        ? metrics
        : ['server.host', ingestHost]
    if (isLoopbackHost(host)) continue
    const word = leaf.secret ? placeholderIn(leaf.value) : firstPlaceholderCredential(leaf.value)
    if (word === undefined) continue
    const vars = envNames(rawAt(raw, leaf.rawPath))
    const fix = vars.length > 0 ? `set ${vars.join(' or ')}` : 'replace it with a real secret'
    issues.push({
      path: leaf.path,
      message: `holds the placeholder secret "${word}" and ${exposed(key, host)}: ${fix}, ${ways(key)}`,
    })
  }
  return issues
}

function hasAuth(auth: StreamConfig['auth']): boolean {
  const headers = Array.isArray(auth.headers) ? auth.headers : Object.keys(auth.headers ?? {})
  if (headers.length > 0 || auth.hmac !== undefined) return true
  const cidrs = auth.allowCidrs ?? []
  return cidrs.length > 0 && !cidrs.some((cidr) => /\/0+$/.test(cidr.trim()))
}

function firstPlaceholderCredential(value: string): string | undefined {
  for (const credential of urlCredentials(value)) {
    const word = placeholderIn(credential)
    if (word !== undefined) return word
  }
  return undefined
}

interface Leaf {
  /** The config path as issues name it (`streams.s.auth.headers.X-Key`). */
  path: string
  /** The same place in the document as written (array indexes for emnify's "name:value" header lists). */
  rawPath: (string | number)[]
  value: string
  /** Under a key whose values are secrets (isSecretKey). */
  secret: boolean
}

function* stringLeaves(
  value: unknown,
  path: string,
  rawPath: (string | number)[],
  secret: boolean,
): Generator<Leaf> {
  if (typeof value === 'string') {
    yield { path, rawPath, value, secret }
    return
  }
  if (Array.isArray(value)) {
    for (const [i, item] of (value as unknown[]).entries()) {
      // emnify's header list form: "X-Token:value" is named by its header.
      const name = secret && typeof item === 'string' ? item.slice(0, Math.max(0, item.indexOf(':'))) : ''
      const at = name.trim() !== '' ? `${path}.${name.trim()}` : `${path}[${i}]`
      yield* stringLeaves(item, at, [...rawPath, i], secret)
    }
    return
  }
  if (value !== null && typeof value === 'object')
    for (const [key, item] of Object.entries(value))
      yield* stringLeaves(item, path ? `${path}.${key}` : key, [...rawPath, key], secret || isSecretKey(key))
}

function rawAt(raw: unknown, path: readonly (string | number)[]): unknown {
  let at = raw
  for (const key of path) {
    if (at === null || typeof at !== 'object' || !Object.hasOwn(at, key)) return undefined
    at = (at as Record<string | number, unknown>)[key]
  }
  return at
}

/** The environment variables a value was written with (`${EMNIFY_TOKEN:-change-me}`), not `$${` escapes. */
function envNames(raw: unknown): string[] {
  if (typeof raw !== 'string') return []
  return [...raw.matchAll(/(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)/g)].map((m) => m[1]!)
}
