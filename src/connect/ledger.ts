import { mkdir, open, readdir, readFile, rename, unlink } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import type { GatewayConfig } from '../config/types.js'
import type { HeaderFingerprint } from './plan.js'
import type { Vendor } from './vendor-http.js'

// What `streamgate connect` made or adopted at each vendor, kept beside api-state.json in a directory
// `connections/`, one file per local object: `<vendor>.<stream|sink>.<name>.json`, mode 0600, replaced
// atomically (temporary file + rename). One file per object means two connects of different objects (the
// CLI and a running gateway's API, say) never overwrite each other's records; two of the same object write
// the same facts. Format, version 1:
//
//   { "version": 1, "vendor": "emnify", "kind": "stream", "name": "<id>", "vendorId": "<the vendor's id>",
//     "created": true|false, "headers": { "salt": "<hex>", "sha256": "<hex>" }?, "updatedAt": "<ISO time>" }
//
// `created`: connect made the object (false: it found it, e.g. a Domo stream by dataset name). `headers`:
// a salted fingerprint of the header names and values last sent (src/connect/plan.ts) — never the values.
// Only facts a vendor cannot be asked for live here: Adobe's documented Flow Service calls cannot list
// connections, so the connection id is only known from here; emnify (by destination URL) and Azion (by
// name) are always found again at the vendor itself. Losing the directory loses no data: connect then
// re-sends header values once and finds the rest again.

export const LEDGER_DIR = 'connections'
const LEDGER_VERSION = 1

export interface LedgerEntry {
  vendor: Vendor
  kind: 'stream' | 'sink'
  name: string
  vendorId: string
  created: boolean
  headers?: HeaderFingerprint
  updatedAt?: string
}

/** The ledger of a config: `connections/` beside api-state.json (beside the spool directory). */
export function ledgerDirOf(config: GatewayConfig): string {
  return resolve(dirname(resolve(config.spool.dir)), LEDGER_DIR)
}

export class Ledger {
  constructor(readonly dir: string) {}

  private file(vendor: Vendor, kind: string, name: string): string {
    return join(this.dir, `${vendor}.${kind}.${name}.json`)
  }

  async get(vendor: Vendor, kind: 'stream' | 'sink', name: string): Promise<LedgerEntry | undefined> {
    let text: string
    try {
      text = await readFile(this.file(vendor, kind, name), 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw err
    }
    return parseEntry(text)
  }

  async all(): Promise<LedgerEntry[]> {
    let names: string[]
    try {
      names = await readdir(this.dir)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
      throw err
    }
    const out: LedgerEntry[] = []
    for (const name of names.filter((n) => n.endsWith('.json')).sort()) {
      const entry = parseEntry(await readFile(join(this.dir, name), 'utf8').catch(() => ''))
      if (entry) out.push(entry)
    }
    return out
  }

  async put(entry: LedgerEntry): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 })
    const file = this.file(entry.vendor, entry.kind, entry.name)
    const temp = `${file}.${process.pid}.tmp`
    const doc = { version: LEDGER_VERSION, ...entry, updatedAt: new Date().toISOString() }
    const handle = await open(temp, 'w', 0o600)
    try {
      await handle.writeFile(`${JSON.stringify(doc, null, 2)}\n`)
      await handle.sync()
    } finally {
      await handle.close()
    }
    await rename(temp, file)
  }

  async remove(vendor: Vendor, kind: 'stream' | 'sink', name: string): Promise<void> {
    await unlink(this.file(vendor, kind, name)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err
    })
  }
}

/** An entry, or undefined when the file is not one (a torn or foreign file is ignored, not fatal). */
function parseEntry(text: string): LedgerEntry | undefined {
  try {
    const doc = JSON.parse(text) as Record<string, unknown>
    if (
      doc.version !== LEDGER_VERSION ||
      typeof doc.vendor !== 'string' ||
      (doc.kind !== 'stream' && doc.kind !== 'sink') ||
      typeof doc.name !== 'string' ||
      typeof doc.vendorId !== 'string'
    )
      return undefined
    const headers = doc.headers as HeaderFingerprint | undefined
    return {
      vendor: doc.vendor as Vendor,
      kind: doc.kind,
      name: doc.name,
      vendorId: doc.vendorId,
      created: doc.created === true,
      ...(headers && typeof headers.salt === 'string' && typeof headers.sha256 === 'string'
        ? { headers: { salt: headers.salt, sha256: headers.sha256 } }
        : {}),
      ...(typeof doc.updatedAt === 'string' ? { updatedAt: doc.updatedAt } : {}),
    }
  } catch {
    return undefined
  }
}
