import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import {
  applyOverlay,
  definitionVersion,
  readOverlay,
  shadowedFileChanges,
  writeOverlay,
  type ApiOverlay,
} from './store.js'
import type { GatewayConfig } from './types.js'

const dir = mkdtempSync(join(tmpdir(), 'streamgate-store-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const base = {
  sinks: { out: { type: 'stdout' } },
  streams: { a: { source: 'ndjson', sinks: ['out'] }, b: { source: 'json', sinks: ['out'] } },
} as unknown as GatewayConfig

describe('api state store', () => {
  it('writes atomically with mode 0600 and reads back what it wrote', async () => {
    const file = join(dir, 'state.json')
    const overlay: ApiOverlay = {
      streams: { c: { definition: { source: 'lines', sinks: ['out'] } as never, fileVersion: null } },
      sinks: {},
    }
    await writeOverlay(file, overlay)
    expect(statSync(file).mode & 0o777).toBe(0o600)
    expect(await readOverlay(file)).toEqual(overlay)
    expect(JSON.parse(readFileSync(file, 'utf8'))).toMatchObject({ version: 1 })
  })

  it('a missing file is an empty overlay; a bad one is an error naming the file', async () => {
    expect(await readOverlay(join(dir, 'none.json'))).toEqual({ streams: {}, sinks: {} })
    const bad = join(dir, 'bad.json')
    for (const text of ['{', '[]', '{"version": 2}', '{"version": 1, "streams": {"../x": {}}}']) {
      writeFileSync(bad, text)
      await expect(readOverlay(bad)).rejects.toThrow(bad)
    }
  })

  it('applies replacements and tombstones without touching the base', () => {
    const overlay: ApiOverlay = {
      streams: {
        a: { definition: null, fileVersion: definitionVersion(base.streams.a) },
        c: { definition: { source: 'lines', sinks: ['out'] } as never, fileVersion: null },
      },
      sinks: {},
    }
    const next = applyOverlay(base, overlay)
    expect(Object.keys(next.streams)).toEqual(['b', 'c'])
    expect(Object.keys(base.streams)).toEqual(['a', 'b'])
    expect(shadowedFileChanges(base, overlay)).toEqual([])
    const changedFile = { ...base, streams: { ...base.streams, a: { source: 'json', sinks: ['out'] } } }
    expect(shadowedFileChanges(changedFile as unknown as GatewayConfig, overlay)).toEqual(['streams.a'])
  })

  it('fingerprints ignore key order', () => {
    expect(definitionVersion({ a: 1, b: [1, { c: 2, d: 3 }] })).toBe(
      definitionVersion({ b: [1, { d: 3, c: 2 }], a: 1 }),
    )
    expect(definitionVersion(undefined)).toBeNull()
  })
})
