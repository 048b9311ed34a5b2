import { ConfigWriter, type ConfigTarget } from '../admin/config-writer.js'
import { validateLiteralConfig } from '../admin/candidate.js'
import { mergePatch } from '../admin/merge-patch.js'
import { formatIssues } from '../config/load.js'
import { apiStatePath, applyOverlay, readOverlay, ApiStateError } from '../config/store.js'
import type { GatewayConfig } from '../config/types.js'
import { ProblemError } from '../errors.js'
import { answerDetail, HttpClient, NEVER } from '../sinks/http-client.js'
import { acquireSpoolLock, SpoolLockedError, spoolOwner } from '../spool/lock.js'
import { createLogger } from '../telemetry/logger.js'
import type { SinkStore } from './context.js'
import { ConnectProblem } from './vendor-http.js'

// Where `connect adobe|domo` writes the sink's new key (inletUrl, streamId), and `disconnect` removes it:
// always through the management API's store (api-state.json beside the spool, src/config/store.ts), so the
// change survives restarts and a running gateway applies it at once. The rule that keeps that file whole
// is the spool's: exactly one process writes the state beside a spool, the one that owns the spool
// (src/spool/lock.ts).
//   - Inside a gateway (the API's POST /sinks/{name}/connect): its own ConfigWriter (validated, saved,
//     hot-applied, serialised with every other API write).
//   - From the CLI while a gateway owns the spool: the change is sent to that gateway's management API
//     (PATCH /api/v1/sinks/{name}, bearer admin.token, at admin.listen or the server listener on loopback;
//     --admin-url overrides), checked reachable before any vendor call.
//   - From the CLI with no gateway: the CLI takes the spool lock itself for the write (a gateway starting
//     meanwhile waits its turn: its start fails with "spool in use by process …" for that moment, so start
//     it again), then writes through the same ConfigWriter on the saved state. Should a gateway take the
//     spool between the check and the write, the write goes to its API instead.

const ADMIN_TIMEOUT_MS = 15_000

/** The in-gateway store: the management API's own ConfigWriter. */
export function writerStore(writer: ConfigWriter): SinkStore {
  return {
    check: () => Promise.resolve(),
    patchSink: async (name, patch) => {
      await writer.write((current) => {
        if (!Object.hasOwn(current.sinks, name))
          throw new ConnectProblem(`no sink ${JSON.stringify(name)} is configured`, 404, 'unknown-sink')
        return {
          kind: 'sinks',
          name,
          definition: mergePatch(current.sinks[name], patch) as Record<string, unknown>,
        }
      })
    },
  }
}

/** The config file's config with the management API's saved changes, read-only (a gateway may own them). */
export async function effectiveConfig(
  fileConfig: GatewayConfig,
): Promise<{ config: GatewayConfig; warnings: string[] }> {
  const file = apiStatePath(fileConfig)
  try {
    const overlay = await readOverlay(file)
    if (Object.keys(overlay.streams).length === 0 && Object.keys(overlay.sinks).length === 0)
      return { config: fileConfig, warnings: [] }
    const { config, issues } = validateLiteralConfig(applyOverlay(fileConfig, overlay))
    if (config) return { config, warnings: [] }
    return {
      config: fileConfig,
      warnings: [
        `${file}: the saved API changes do not fit the config file (ignored):\n${formatIssues(issues)}`,
      ],
    }
  } catch (err) {
    if (!(err instanceof ApiStateError)) throw err
    return { config: fileConfig, warnings: [`${err.message} (ignored)`] }
  }
}

export interface CliStoreOptions {
  /** The running gateway's management API base (…/api/v1 is added); default from the config. */
  adminUrl?: string
}

/** The CLI's store: the running gateway's API when one owns the spool, else the state file under the lock. */
export class CliSinkStore implements SinkStore {
  private api: { base: string; token: string; owner: number } | undefined

  constructor(
    private readonly fileConfig: GatewayConfig,
    private readonly options: CliStoreOptions = {},
  ) {}

  async check(name: string): Promise<void> {
    const owner = await spoolOwner(this.fileConfig.spool.dir)
    if (owner === undefined) {
      this.api = undefined
      return
    }
    await this.useApi(name, owner)
  }

  async patchSink(name: string, patch: Record<string, unknown>): Promise<void> {
    if (!this.api) {
      try {
        await this.patchFile(name, patch)
        return
      } catch (err) {
        if (!(err instanceof SpoolLockedError)) throw err
        // A gateway took the spool since the check: it owns the state now.
        await this.useApi(name, err.pid)
      }
    }
    await this.patchApi(name, patch)
  }

  private async patchFile(name: string, patch: Record<string, unknown>): Promise<void> {
    const lock = await acquireSpoolLock(this.fileConfig.spool.dir)
    try {
      const file = apiStatePath(this.fileConfig)
      const overlay = await readOverlay(file)
      const { config, issues } = validateLiteralConfig(applyOverlay(this.fileConfig, overlay))
      if (!config)
        throw new ConnectProblem(
          `${file}: the saved API changes do not fit the config file, so nothing was written; start the gateway once (it sets them aside) or fix them:\n${formatIssues(issues)}`,
        )
      const target: ConfigTarget = {
        config,
        apply: (next) => {
          target.config = next
          return Promise.resolve()
        },
        setStatus: () => undefined,
      }
      const writer = new ConfigWriter(
        target,
        { file, fileConfig: this.fileConfig, overlay },
        createLogger('silent'),
      )
      await writerStore(writer).patchSink(name, patch)
    } finally {
      await lock.release()
    }
  }

  private async useApi(name: string, owner: number | undefined): Promise<void> {
    const dir = this.fileConfig.spool.dir
    const who = `a gateway (process ${owner ?? '?'}) owns the spool ${dir}`
    const token = this.fileConfig.admin.token
    if (!token)
      throw new ConnectProblem(
        `${who} and its management API is disabled (admin.token is not set): stop it and run again, or set admin.token`,
        409,
        'gateway-running',
      )
    const base = this.options.adminUrl ?? adminUrlOf(this.fileConfig)
    if (!base)
      throw new ConnectProblem(
        `${who}; its management API listens on a port chosen at start: pass --admin-url http://127.0.0.1:<port>`,
        409,
        'gateway-running',
      )
    this.api = { base: base.replace(/\/+$/, ''), token, owner: owner ?? 0 }
    const answer = await this.call('GET', name)
    if (answer.status === 200) return
    this.api = undefined
    throw new ConnectProblem(
      `${who}, and its management API at ${base} answered GET /api/v1/sinks/${name} with ${answer.status}: ${answer.detail}`,
      answer.status === 404 ? 404 : 409,
      'gateway-running',
    )
  }

  private async patchApi(name: string, patch: Record<string, unknown>): Promise<void> {
    const answer = await this.call('PATCH', name, patch)
    if (answer.status === 200) return
    throw new ProblemError(
      answer.status >= 400 && answer.status < 600 ? answer.status : 502,
      'gateway-refused',
      'The running gateway refused the change',
      `the running gateway's management API answered PATCH /api/v1/sinks/${name} with ${answer.status}: ${answer.detail}`,
    )
  }

  private async call(
    method: 'GET' | 'PATCH',
    name: string,
    patch?: Record<string, unknown>,
  ): Promise<{ status: number; detail: string }> {
    const api = this.api!
    const url = new URL(`${api.base}/api/v1/sinks/${encodeURIComponent(name)}`)
    const http = new HttpClient({ timeoutMs: ADMIN_TIMEOUT_MS, connections: 1 })
    try {
      const answer = await http.request({
        url,
        method,
        headers: {
          authorization: `Bearer ${api.token}`,
          accept: 'application/json',
          ...(patch ? { 'content-type': 'application/merge-patch+json' } : {}),
        },
        ...(patch ? { body: JSON.stringify(patch) } : {}),
        signal: NEVER,
      })
      return { status: answer.status, detail: answerDetail(answer.body) }
    } catch (err) {
      throw new ConnectProblem(
        `a gateway (process ${api.owner}) owns the spool ${this.fileConfig.spool.dir}, but its management API at ${api.base} did not answer (${(err as Error).message}); pass --admin-url`,
        409,
        'gateway-running',
      )
    } finally {
      await http.close()
    }
  }
}

/** Where the config's management API listens, seen from this machine; undefined for a port chosen at start. */
export function adminUrlOf(config: GatewayConfig): string | undefined {
  const listen = config.admin.listen ?? config.server
  if (listen.port === 0) return undefined
  let host = listen.host
  if (host === '' || host === '0.0.0.0') host = '127.0.0.1'
  else if (host === '::') host = '::1'
  if (host.includes(':') && !host.startsWith('[')) host = `[${host}]`
  return `${listen.tls ? 'https' : 'http'}://${host}:${listen.port}`
}
