import type { ConfigIssue } from '../config/load.js'
import {
  definitionVersion,
  setOwn,
  writeOverlay,
  type ApiOverlay,
  type OverlayKind,
} from '../config/store.js'
import type { GatewayConfig } from '../config/types.js'
import { problem, ProblemError } from '../errors.js'
import type { Logger } from '../telemetry/logger.js'
import { checkCandidate } from './candidate.js'

// Every management-API write goes through here, one at a time: the candidate config is built from the
// latest effective config inside the critical section, validated as a whole with the config file's
// validator, dry-built, persisted (api-state.json), and then hot-applied with gateway.apply — no restart,
// in-flight ingest requests finish on the runtime they started with.

/** The API's persisted state: the config file's config (as loaded at start) and the overlay on it. */
export interface ApiState {
  /** api-state.json; undefined keeps changes in memory only. */
  file: string | undefined
  fileConfig: GatewayConfig
  overlay: ApiOverlay
}

/** One object created, replaced (`definition`) or deleted (`null`); `undefined`: no config change. */
export interface Change {
  kind: OverlayKind
  name: string
  definition: Record<string, unknown> | null | undefined
  /** Pause before the change is applied, or resume (and clear the last error) after it. */
  status?: 1 | 2
}

export class ValidationProblem extends ProblemError {
  constructor(detail: string, errors: { path: string; pointer?: string; message: string }[]) {
    super(400, 'invalid-config', 'Invalid configuration', detail, { extra: { errors } })
  }
}

/**
 * What a write changes: the running gateway, or (`streamgate connect` with no gateway running, see
 * src/connect/config-store.ts) a stand-in that only keeps the config, so the same validation and
 * persistence apply.
 */
/** What a write changes: the running gateway (src/pipeline/gateway.ts), or a stand-in that only keeps the config. */
export interface ConfigTarget {
  config: GatewayConfig
  apply(next: GatewayConfig): Promise<void>
  setStatus(stream: string, status: 1 | 2): void
}

export class ConfigWriter {
  private queue: Promise<unknown> = Promise.resolve()

  constructor(
    private readonly gateway: ConfigTarget,
    private readonly state: ApiState,
    private readonly logger: Logger,
  ) {}

  get overlay(): ApiOverlay {
    return this.state.overlay
  }

  /**
   * Runs `plan` against the latest config and applies what it returns. Serialised: a write starts only after
   * the previous one was applied (or failed), so concurrent writes never lose each other's changes.
   */
  write(plan: (current: GatewayConfig) => Change): Promise<GatewayConfig> {
    const run = this.queue.then(() => this.writeNow(plan))
    this.queue = run.catch(() => undefined)
    return run
  }

  private async writeNow(plan: (current: GatewayConfig) => Change): Promise<GatewayConfig> {
    const current = this.gateway.config
    const change = plan(current)
    if (change.definition === undefined) {
      if (change.status !== undefined) this.gateway.setStatus(change.name, change.status)
      return current
    }
    const candidate: GatewayConfig = {
      ...current,
      streams: { ...current.streams },
      sinks: { ...current.sinks },
    }
    const objects = candidate[change.kind] as Record<string, unknown>
    if (change.definition === null) delete objects[change.name]
    else setOwn(objects, change.name, change.definition)

    const { config: next, issues } = await checkCandidate(candidate, current)
    if (!next) throw invalid(issues, change)

    const previous = this.state.overlay
    const overlay = withEntry(previous, this.state.fileConfig, change.kind, change.name, next)
    if (this.state.file) {
      try {
        await writeOverlay(this.state.file, overlay)
      } catch (err) {
        this.logger.error({ err, file: this.state.file }, 'could not save a management API change')
        throw problem(
          'not-saved',
          `the change could not be saved (${(err as NodeJS.ErrnoException).code ?? 'error'}); nothing was changed`,
          { headers: { 'retry-after': '10' }, cause: err },
        )
      }
    }
    try {
      if (change.status === 2) this.gateway.setStatus(change.name, 2)
      await this.gateway.apply(next)
      if (change.status === 1) this.gateway.setStatus(change.name, 1)
    } catch (err) {
      this.logger.error(
        { err, [change.kind]: change.name },
        'applying a management API change failed; undoing it',
      )
      if (this.state.file)
        await writeOverlay(this.state.file, previous).catch((e: unknown) => {
          this.logger.error({ err: e, file: this.state.file }, 'could not restore the saved API state')
        })
      await this.gateway.apply(current).catch((e: unknown) => {
        this.logger.error({ err: e }, 'could not re-apply the previous config')
      })
      throw problem('apply-failed', 'the change could not be applied; nothing was changed', {
        cause: err,
      })
    }
    this.state.overlay = overlay
    // One line per change (never the definition: it holds secrets).
    this.logger.info(
      { [change.kind === 'streams' ? 'stream' : 'sink']: change.name, deleted: change.definition === null },
      'management API change applied',
    )
    return next
  }
}

/**
 * The overlay after one change. An object that ends up exactly as the config file defines it (a paused file
 * stream resumed again) drops out of the overlay: the file owns it again.
 */
function withEntry(
  overlay: ApiOverlay,
  fileConfig: GatewayConfig,
  kind: OverlayKind,
  name: string,
  next: GatewayConfig,
): ApiOverlay {
  const out: ApiOverlay = { streams: { ...overlay.streams }, sinks: { ...overlay.sinks } }
  const entries = out[kind] as Record<string, unknown>
  const fileObjects = fileConfig[kind] as Record<string, unknown>
  const fromFile = Object.hasOwn(fileObjects, name) ? fileObjects[name] : undefined
  const nextObjects = next[kind] as Record<string, unknown>
  const definition = Object.hasOwn(nextObjects, name) ? nextObjects[name] : undefined
  if (definitionVersion(definition) === definitionVersion(fromFile)) delete entries[name]
  else setOwn(entries, name, { definition: definition ?? null, fileVersion: definitionVersion(fromFile) })
  return out
}

/** 400 with every issue; paths inside the written object also get a JSON pointer into the request body. */
function invalid(issues: ConfigIssue[], change: Change): ValidationProblem {
  const prefix = `${change.kind}.${change.name}`
  const errors = issues.map((issue) => {
    const pointer = pointerOf(issue.path, prefix)
    return pointer === undefined ? { ...issue } : { path: issue.path, pointer, message: issue.message }
  })
  const what = change.kind === 'streams' ? 'stream' : 'sink'
  return new ValidationProblem(
    `the ${what} ${JSON.stringify(change.name)} does not validate against the config schema (${errors.length} error${errors.length === 1 ? '' : 's'})`,
    errors,
  )
}

/** `streams.x.sinks[0]` → `/sinks/0` for prefix `streams.x`; undefined outside the object. */
export function pointerOf(path: string, prefix: string): string | undefined {
  if (path === prefix) return ''
  if (!path.startsWith(prefix)) return undefined
  const rest = path.slice(prefix.length)
  if (!rest.startsWith('.') && !rest.startsWith('[')) return undefined
  let pointer = ''
  for (const m of rest.matchAll(/\.([^.[]+)|\[(\d+)\]/g))
    pointer += `/${(m[1] ?? m[2]!).replace(/~/g, '~0').replace(/\//g, '~1')}`
  return pointer
}
