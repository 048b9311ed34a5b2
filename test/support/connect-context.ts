import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { mergePatch } from '../../src/admin/merge-patch.js'
import type { ConnectContext } from '../../src/connect/context.js'
import { Ledger } from '../../src/connect/ledger.js'
import { validateConfig } from '../../src/config/load.js'
import type { GatewayConfig } from '../../src/config/types.js'

/** A ConnectContext over a config document, with a ledger in a fresh directory and an in-memory store. */
export interface TestConnect {
  ctx: (options?: { dryRun?: boolean; publicUrl?: string }) => ConnectContext
  config: GatewayConfig
  ledger: Ledger
  /** Every sink patch the store received. */
  patches: { name: string; patch: Record<string, unknown> }[]
  env: NodeJS.ProcessEnv
  cleanup(): void
}

export function testConnect(doc: Record<string, unknown>, env: NodeJS.ProcessEnv): TestConnect {
  const dir = mkdtempSync(join(tmpdir(), 'streamgate-connect-'))
  const { config, issues } = validateConfig(
    { spool: { dir: join(dir, 'spool') }, dataDir: dir, ...doc },
    { env: {}, baseDir: process.cwd() },
  )
  if (!config) throw new Error(`test config invalid: ${JSON.stringify(issues)}`)
  const ledger = new Ledger(join(dir, 'connections'))
  const patches: TestConnect['patches'] = []
  const t: TestConnect = {
    config,
    ledger,
    patches,
    env,
    ctx: (options = {}) => ({
      config: t.config,
      env: t.env,
      dryRun: options.dryRun ?? false,
      ledger,
      publicUrl: options.publicUrl ?? 'https://gw.example',
      store: {
        check: () => Promise.resolve(),
        patchSink: (name, patch) => {
          patches.push({ name, patch })
          t.config = {
            ...t.config,
            sinks: { ...t.config.sinks, [name]: mergePatch(t.config.sinks[name], patch) as never },
          }
          return Promise.resolve()
        },
      },
    }),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  }
  return t
}
