import { readFileSync } from 'node:fs'
import { dirname, isAbsolute, relative, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv'
import { parse as parseYaml } from 'yaml'
import { exposureIssues } from './exposure.js'
import { headerPairs } from './headers.js'
import { interpolate, type InterpolationError } from './interpolate.js'
import { configPath } from './paths.js'
import type { DedupeConfig, GatewayConfig, ServerConfig, StreamConfig } from './types.js'

/**
 * The dedupe window of `dedupe: true` (and of a source that dedupes by default, such as emnify): the config
 * schema's defaults, on the record's `id`.
 */
export const DEFAULT_DEDUPE: Readonly<DedupeConfig> = {
  key: 'id',
  windowRecords: 100_000,
  windowMs: 3_600_000,
}

/**
 * A stream's body limit: its own `maxBodyBytes`, else the server's — at least `sourceMinBytes`, what its
 * source needs for the largest body its vendor documents (emnify: 32 MiB, src/ingest/sources/emnify.ts).
 */
export function streamBodyLimit(stream: StreamConfig, server: ServerConfig, sourceMinBytes = 0): number {
  if (stream.maxBodyBytes !== undefined) return stream.maxBodyBytes
  return Math.max(server.maxBodyBytes, sourceMinBytes)
}

/**
 * A stream's dedupe as it runs: `false` turns it off, `true` is the default window on `id`, an object is
 * itself; left out, on with the default window when its source dedupes by default (emnify), else off.
 */
export function streamDedupe(stream: StreamConfig, sourceDedupes = false): DedupeConfig | undefined {
  const d = stream.dedupe
  if (d === false) return undefined
  if (d === true) return { ...DEFAULT_DEDUPE }
  if (d !== undefined) return d
  return sourceDedupes ? { ...DEFAULT_DEDUPE } : undefined
}

export const SCHEMAS_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../schemas')

export interface ConfigIssue {
  path: string
  message: string
}

export class ConfigError extends Error {
  constructor(
    readonly issues: ConfigIssue[],
    readonly file?: string,
  ) {
    super(`${file ? `${file}: ` : ''}invalid configuration\n${formatIssues(issues)}`)
    this.name = 'ConfigError'
  }
}

export function formatIssues(issues: readonly ConfigIssue[]): string {
  return issues.map((i) => `${i.path}: ${i.message}`).join('\n')
}

let configValidator: ValidateFunction | undefined

/** The compiled config schema. The management API validates its writes with this same function. */
export function configSchemaValidator(): ValidateFunction {
  if (!configValidator) {
    const schema = JSON.parse(readFileSync(resolve(SCHEMAS_DIR, 'config.schema.json'), 'utf8')) as object
    // useDefaults fills in every documented default, so the rest of the code sees complete objects.
    const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false })
    configValidator = ajv.compile(schema)
  }
  return configValidator
}

export interface ValidateOptions {
  env?: NodeJS.ProcessEnv
  /** Directory that relative `schema` files are resolved against (the config file's directory). */
  baseDir?: string
  /**
   * What the components (sources) find wrong in a config that passed the schema, reported with the
   * cross-reference issues. Config sits at the bottom of the import graph, so the layer that knows the
   * components passes them in (src/pipeline/config-check.ts); left out, only the schema and the
   * cross-references are checked.
   */
  componentIssues?: (config: GatewayConfig) => ConfigIssue[]
}

/** Interpolates, validates and normalises a parsed config document. Never throws on bad input. */
export function validateConfig(
  raw: unknown,
  options: ValidateOptions = {},
): { config?: GatewayConfig; issues: ConfigIssue[] } {
  const interpolationErrors: InterpolationError[] = []
  const doc = interpolate(raw, options.env ?? process.env, interpolationErrors)
  const issues: ConfigIssue[] = [...interpolationErrors]
  const validate = configSchemaValidator()
  if (!validate(doc)) issues.push(...schemaIssues(validate.errors ?? []))
  if (issues.length > 0) return { issues }
  const config = doc as GatewayConfig
  issues.push(...semanticIssues(config, options.baseDir ?? process.cwd()))
  if (options.componentIssues) issues.push(...options.componentIssues(config))
  issues.push(...exposureIssues(config, raw))
  if (issues.length > 0) return { issues }
  for (const stream of Object.values(config.streams))
    normaliseStream(stream, options.baseDir ?? process.cwd())
  return { config, issues }
}

export function parseConfigText(text: string): unknown {
  // YAML 1.2 is a superset of JSON, so one parser serves both.
  return parseYaml(text, { uniqueKeys: true }) as unknown
}

/** A config file's document, parsed but not validated (src/pipeline/config-check.ts checks it). */
export function readConfigFile(file: string): unknown {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    throw new ConfigError([{ path: '(file)', message: (err as Error).message }], file)
  }
  try {
    return parseConfigText(text)
  } catch (err) {
    throw new ConfigError([{ path: '(syntax)', message: (err as Error).message.split('\n')[0]! }], file)
  }
}

/**
 * Schema and cross-references only, without the components' checks: the CLI and the gateway load files
 * through src/pipeline/config-check.ts loadCheckedConfig, which checks everything `serve` would refuse.
 */
export function loadConfigFile(file: string, env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  const { config, issues } = validateConfig(readConfigFile(file), { env, baseDir: dirname(resolve(file)) })
  if (!config) throw new ConfigError(issues, file)
  return config
}

function schemaIssues(errors: readonly ErrorObject[]): ConfigIssue[] {
  const out: ConfigIssue[] = []
  const seen = new Set<string>()
  for (const e of errors) {
    // "must match then schema" repeats the error that caused it; oneOf branches each report their own.
    if (e.keyword === 'if') continue
    let path = configPath(e.instancePath)
    let message = e.message ?? 'is invalid'
    if (e.keyword === 'additionalProperties') {
      const key = (e.params as { additionalProperty: string }).additionalProperty
      path = configPath(`${e.instancePath}/${key}`)
      message = `unknown key "${key}"`
    } else if (e.keyword === 'enum') {
      const allowed = (e.params as { allowedValues: unknown[] }).allowedValues
      message = `must be one of ${allowed.map((v) => JSON.stringify(v)).join(', ')}`
    } else if (e.keyword === 'required') {
      const missing = (e.params as { missingProperty: string }).missingProperty
      message = `missing required key "${missing}"`
    } else if (e.keyword === 'const') {
      continue // only reachable through a oneOf branch that did not apply
    } else if (e.keyword === 'propertyNames') {
      message = `invalid name "${(e.params as { propertyName: string }).propertyName}"`
    }
    const line = `${path}: ${message}`
    if (seen.has(line)) continue
    seen.add(line)
    out.push({ path, message })
  }
  // A failed oneOf also reports each branch's own failure; when a more precise error exists at the same
  // path, the generic "must match exactly one schema" line only adds noise.
  return out.filter(
    (i) =>
      i.message !== 'must match exactly one schema in oneOf' ||
      !out.some((o) => o !== i && o.path.startsWith(i.path)),
  )
}

function semanticIssues(config: GatewayConfig, baseDir: string): ConfigIssue[] {
  const issues: ConfigIssue[] = [
    ...fileSinkIssues(config),
    ...listenerIssues(config),
    ...spoolMarkIssues(config.spool),
    ...pauseIssues(config),
  ]
  for (const [id, stream] of Object.entries(config.streams)) {
    const at = `streams.${id}`
    stream.sinks.forEach((name, i) => {
      if (!Object.hasOwn(config.sinks, name))
        issues.push({ path: `${at}.sinks[${i}]`, message: `unknown sink "${name}"` })
    })
    if (new Set(stream.sinks).size !== stream.sinks.length)
      issues.push({ path: `${at}.sinks`, message: 'lists a sink twice' })
    if (stream.deadLetter !== undefined) {
      if (!Object.hasOwn(config.sinks, stream.deadLetter))
        issues.push({ path: `${at}.deadLetter`, message: `unknown sink "${stream.deadLetter}"` })
      else if (stream.sinks.includes(stream.deadLetter))
        issues.push({
          path: `${at}.deadLetter`,
          message: 'the dead-letter sink cannot also be a delivery sink',
        })
    }
    // Built-in emnify schemas and Azion presets describe what vendors send (their records grow): only a
    // contract the user wrote can refuse fields it does not know.
    if (
      stream.unknownFields === 'reject' &&
      stream.schema === undefined &&
      stream.templateModel === undefined
    )
      issues.push({
        path: `${at}.unknownFields`,
        message:
          'reject needs a contract of your own ("templateModel" or "schema"); built-in schemas and presets describe vendor records, they do not gate them',
      })
    if (stream.schema !== undefined) {
      try {
        JSON.parse(readFileSync(resolve(baseDir, stream.schema), 'utf8'))
      } catch (err) {
        issues.push({ path: `${at}.schema`, message: `cannot read JSON Schema: ${schemaFileProblem(err)}` })
      }
    }
    for (const [name, value] of headerPairs(stream.auth.headers))
      if (value === '')
        issues.push({
          path: `${at}.auth.headers.${name}`,
          message: 'is empty (is its environment variable set?)',
        })
    for (const [i, cidr] of (stream.auth.allowCidrs ?? []).entries())
      if (!isCidr(cidr))
        issues.push({ path: `${at}.auth.allowCidrs[${i}]`, message: `not a CIDR: "${cidr}"` })
  }
  return issues
}

/**
 * File sinks write only inside dataDir, so neither a config file nor an API write can make the gateway
 * create files in /etc or ../../. Paths are resolved lexically (against the working directory, like every
 * other directory); symlinks an operator placed inside dataDir are followed, the gateway creates none.
 * The implicit dead-letter sink next to spool.dir is not a configured sink and is not checked: spool.dir
 * is the operator's, set in the file only.
 */
function fileSinkIssues(config: GatewayConfig): ConfigIssue[] {
  const issues: ConfigIssue[] = []
  const dataDir = resolve(config.dataDir)
  for (const [name, sink] of Object.entries(config.sinks)) {
    if (sink.type !== 'file') continue
    const dir = resolve(sink.dir)
    const rel = relative(dataDir, dir)
    if (isAbsolute(rel) || rel === '..' || rel.startsWith(`..${sep}`))
      issues.push({
        path: `sinks.${name}.dir`,
        message: `must be inside dataDir "${dataDir}" (resolves to "${dir}")`,
      })
    if (/[/\\\0]/.test(sink.prefix))
      issues.push({
        path: `sinks.${name}.prefix`,
        message: `must be a plain file name prefix without "/" or "\\" (files go directly into dir; is "${sink.prefix}")`,
      })
  }
  return issues
}

/** admin.listen and metrics.listen must not take a port another listener binds (0 = any free port). */
/** The admission marks must nest: lowWaterBytes ≤ highWaterBytes ≤ maxBytes (src/pipeline/admission.ts). */
function spoolMarkIssues(spool: GatewayConfig['spool']): ConfigIssue[] {
  const issues: ConfigIssue[] = []
  const high = spool.highWaterBytes
  if (high !== undefined && high > spool.maxBytes)
    issues.push({
      path: 'spool.highWaterBytes',
      message: `must be at most spool.maxBytes (${spool.maxBytes})`,
    })
  const highOrDefault = high ?? Math.floor(spool.maxBytes * 0.9)
  if (spool.lowWaterBytes !== undefined && spool.lowWaterBytes > highOrDefault)
    issues.push({
      path: 'spool.lowWaterBytes',
      message: `must be at most the high-water mark (${highOrDefault} bytes${high === undefined ? ', 90 % of spool.maxBytes' : ''})`,
    })
  return issues
}

/**
 * A paused request (`backpressure: pause`) must be let in or refused before the server's own request timeout
 * answers 408 and closes it: spool.maxPauseMs < server.requestTimeoutMs, checked only where a stream pauses.
 */
function pauseIssues(config: GatewayConfig): ConfigIssue[] {
  const pausing = Object.keys(config.streams).filter((id) => config.streams[id]!.backpressure === 'pause')
  const maxPauseMs = config.spool.maxPauseMs ?? 0
  if (pausing.length === 0 || maxPauseMs < config.server.requestTimeoutMs) return []
  return [
    {
      path: 'spool.maxPauseMs',
      message: `must be less than server.requestTimeoutMs (${config.server.requestTimeoutMs}) while a stream has backpressure: pause (${pausing.join(', ')})`,
    },
  ]
}

function listenerIssues(config: GatewayConfig): ConfigIssue[] {
  const wildcard = (host: string): boolean => host === '' || host === '0.0.0.0' || host === '::'
  const taken = [{ path: 'server', host: config.server.host, port: config.server.port }]
  const issues: ConfigIssue[] = []
  for (const [path, listen] of [
    ['admin.listen', config.admin.listen],
    ['metrics.listen', config.metrics.listen],
  ] as const) {
    if (!listen) continue
    const clash = taken.find(
      (t) =>
        t.port !== 0 &&
        t.port === listen.port &&
        (t.host === listen.host || wildcard(t.host) || wildcard(listen.host)),
    )
    if (clash)
      issues.push({
        path: `${path}.port`,
        message: `port ${listen.port} is ${clash.path}'s already; each listener needs its own`,
      })
    taken.push({ path, host: listen.host, port: listen.port })
  }
  return issues
}

/**
 * Why a `schema` file cannot be used, without quoting it: the path can come through the management API, and
 * JSON.parse's message quotes the start of the text, which would hand any readable file's first bytes to an
 * API client.
 */
function schemaFileProblem(err: unknown): string {
  if (err instanceof SyntaxError) return 'the file is not valid JSON'
  const code = (err as NodeJS.ErrnoException).code
  if (code === 'ENOENT') return 'no such file'
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied'
  if (code === 'EISDIR') return 'is a directory'
  return code ?? 'unreadable'
}

function isCidr(text: string): boolean {
  const [addr, bits, extra] = text.split('/')
  if (extra !== undefined || !addr) return false
  const v4 = /^(\d{1,3})(\.\d{1,3}){3}$/.test(addr)
  const v6 = addr.includes(':')
  if (!v4 && !v6) return false
  if (bits === undefined) return true
  const n = Number(bits)
  return Number.isInteger(n) && n >= 0 && n <= (v4 ? 32 : 128)
}

function normaliseStream(stream: StreamConfig, baseDir: string): void {
  // emnify's webhook credentials list headers as "name:value" strings; from here on they are a map.
  if (Array.isArray(stream.auth.headers))
    stream.auth.headers = Object.fromEntries(headerPairs(stream.auth.headers))
  if (stream.schema !== undefined) stream.schema = resolve(baseDir, stream.schema)
}
