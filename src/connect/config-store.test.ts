import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { validateConfig } from '../config/load.js'
import { readOverlay } from '../config/store.js'
import type { GatewayConfig } from '../config/types.js'
import { acquireSpoolLock } from '../spool/lock.js'
import { adminUrlOf, CliSinkStore, effectiveConfig } from './config-store.js'

let dir: string
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'streamgate-store-'))
})
afterEach(() => rmSync(dir, { recursive: true, force: true }))

function config(extra: Record<string, unknown> = {}): GatewayConfig {
  const { config: c, issues } = validateConfig(
    {
      spool: { dir: join(dir, 'spool') },
      dataDir: dir,
      sinks: { aep: { type: 'adobe', schemaRef: 'https://ns.adobe.com/t/s' } },
      streams: {},
      ...extra,
    },
    { env: {} },
  )
  if (!c) throw new Error(JSON.stringify(issues))
  return c
}

describe('where the CLI writes a sink key', () => {
  it('no gateway: into api-state.json beside the spool, through the same validation', async () => {
    const store = new CliSinkStore(config())
    await store.check('aep')
    await store.patchSink('aep', { inletUrl: 'https://dcs.adobedc.net/collection/abc' })
    const overlay = await readOverlay(join(dir, 'api-state.json'))
    expect(overlay.sinks.aep!.definition).toMatchObject({
      inletUrl: 'https://dcs.adobedc.net/collection/abc',
    })
    const { config: effective } = await effectiveConfig(config())
    expect(effective.sinks.aep).toMatchObject({ inletUrl: 'https://dcs.adobedc.net/collection/abc' })
    // A value the sink cannot use is refused like any API write.
    await expect(store.patchSink('aep', { inletUrl: 'not a url' })).rejects.toThrow(
      /does not validate|inletUrl/,
    )
  })

  it('a spool owned by this process (a gateway) without admin.token: refused, naming what to do', async () => {
    const lock = await acquireSpoolLock(join(dir, 'spool'))
    try {
      await expect(new CliSinkStore(config()).check('aep')).rejects.toThrow(
        /owns the spool .* management API is disabled \(admin\.token is not set\)/,
      )
    } finally {
      await lock.release()
    }
  })

  it('an unusable state file is ignored for reading, with a warning', async () => {
    writeFileSync(join(dir, 'api-state.json'), '{"version": 9}')
    const { config: effective, warnings } = await effectiveConfig(config())
    expect(effective.sinks.aep).not.toHaveProperty('inletUrl')
    expect(warnings[0]).toContain('unsupported version 9')
  })
})

it('the admin URL from the config: admin.listen, else the server listener, on loopback', () => {
  expect(adminUrlOf(config({ server: { host: '0.0.0.0', port: 8080 } }))).toBe('http://127.0.0.1:8080')
  expect(
    adminUrlOf(
      config({ server: { host: '::', port: 8080 }, admin: { listen: { host: '::1', port: 8081 } } }),
    ),
  ).toBe('http://[::1]:8081')
  expect(adminUrlOf(config({ server: { host: '127.0.0.1', port: 0 } }))).toBeUndefined()
})
