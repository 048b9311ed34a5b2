import { createHash } from 'node:crypto'
import { open, readFile, rename, unlink } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import type { GatewayConfig, SinkConfig, StreamConfig } from './types.js'

// The management API's changes, persisted as an overlay on the config file, so that they survive a restart.
//
// File: `api-state.json` next to the spool directory (`./data/api-state.json` for `spool.dir: ./data/spool`),
// mode 0600 (it holds secrets), replaced atomically (write a temporary file, fsync, rename, fsync the
// directory): a crash leaves the old or the new version, never a torn one. Format, version 1:
//
//   { "version": 1, "updatedAt": "<ISO time>",
//     "streams": { "<id>":   { "definition": {…the stream's keys…} | null, "fileVersion": "<sha256>" | null } },
//     "sinks":   { "<name>": { "definition": {…the sink's keys…}   | null, "fileVersion": "<sha256>" | null } } }
//
// `definition` is the object as the API last validated it (defaults filled in, secrets in clear); null is a
// tombstone: the object was deleted through the API. `fileVersion` is a hash of the config file's definition
// of the same object when the API last wrote it (null: the file had none), so that a start can warn when the
// file changed an object the API overrides. At start the overlay is applied on the config file's objects and
// the result validated as a whole (src/admin/api-state.ts).

export const API_STATE_FILE = 'api-state.json'
export const API_STATE_VERSION = 1

/** Same rule as the config schema's `definitions.name`. */
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/

export interface OverlayEntry<T> {
  definition: T | null
  fileVersion: string | null
}

export interface ApiOverlay {
  streams: Record<string, OverlayEntry<StreamConfig>>
  sinks: Record<string, OverlayEntry<SinkConfig>>
}

export type OverlayKind = keyof ApiOverlay

export class ApiStateError extends Error {
  constructor(
    message: string,
    readonly file: string,
    options?: { cause?: unknown },
  ) {
    super(`${file}: ${message}`, options)
    this.name = 'ApiStateError'
  }
}

export function emptyOverlay(): ApiOverlay {
  return { streams: {}, sinks: {} }
}

/** Where the API's changes live for a config: beside the spool directory. */
export function apiStatePath(config: GatewayConfig): string {
  return resolve(dirname(resolve(config.spool.dir)), API_STATE_FILE)
}

/** A stable fingerprint of one object of the config file (key order does not matter). */
export function definitionVersion(definition: unknown): string | null {
  if (definition === undefined) return null
  return createHash('sha256').update(canonicalJson(definition)).digest('hex')
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`
  if (value !== null && typeof value === 'object')
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`)
      .join(',')}}`
  return JSON.stringify(value) ?? 'null'
}

/** Sets an own property, also for a key such as `__proto__` (never the prototype). */
export function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true })
}

/** The overlay stored in `file`; an empty one when there is no file. Throws ApiStateError when unusable. */
export async function readOverlay(file: string): Promise<ApiOverlay> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return emptyOverlay()
    throw new ApiStateError(`cannot read: ${(err as Error).message}`, file, { cause: err })
  }
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch (err) {
    throw new ApiStateError(`not JSON: ${(err as Error).message}`, file, { cause: err })
  }
  if (!isObject(doc)) throw new ApiStateError('not a JSON object', file)
  if (doc.version !== API_STATE_VERSION)
    throw new ApiStateError(`unsupported version ${JSON.stringify(doc.version)}`, file)
  const overlay = emptyOverlay()
  for (const kind of ['streams', 'sinks'] as const) {
    const entries = doc[kind] ?? {}
    if (!isObject(entries)) throw new ApiStateError(`"${kind}" is not an object`, file)
    for (const [name, entry] of Object.entries(entries)) {
      if (!NAME.test(name)) throw new ApiStateError(`${kind}: invalid name ${JSON.stringify(name)}`, file)
      if (
        !isObject(entry) ||
        !(entry.definition === null || isObject(entry.definition)) ||
        !(entry.fileVersion === null || typeof entry.fileVersion === 'string')
      )
        throw new ApiStateError(`${kind}.${name}: not a {definition, fileVersion} entry`, file)
      setOwn(overlay[kind], name, { definition: entry.definition, fileVersion: entry.fileVersion })
    }
  }
  return overlay
}

/** Replaces `file` atomically with the overlay; mode 0600. */
export async function writeOverlay(file: string, overlay: ApiOverlay): Promise<void> {
  const doc = { version: API_STATE_VERSION, updatedAt: new Date().toISOString(), ...overlay }
  const temp = `${file}.${process.pid}.tmp`
  const handle = await open(temp, 'w', 0o600)
  try {
    await handle.writeFile(`${JSON.stringify(doc, null, 2)}\n`)
    await handle.sync()
  } finally {
    await handle.close()
  }
  try {
    await rename(temp, file)
  } catch (err) {
    await unlink(temp).catch(() => undefined)
    throw err
  }
  // The rename itself must be durable too.
  const dir = await open(dirname(file), 'r')
  try {
    await dir.sync()
  } finally {
    await dir.close()
  }
}

/** Moves an unusable state file aside (`api-state.json.rejected-<time>`) and says where it went. */
export async function setAside(file: string): Promise<string> {
  const aside = `${file}.rejected-${new Date().toISOString().replace(/[:.]/g, '-')}`
  await rename(file, aside)
  return aside
}

/**
 * The config file's streams and sinks with the overlay applied: entries replace or delete whole objects.
 * Returns a new config (the inputs are not changed); it still has to be validated as a whole.
 */
export function applyOverlay(base: GatewayConfig, overlay: ApiOverlay): GatewayConfig {
  const next = structuredClone(base)
  for (const kind of ['streams', 'sinks'] as const) {
    const target = next[kind] as Record<string, unknown>
    for (const [name, entry] of entriesOf(overlay, kind)) {
      if (entry.definition === null) delete target[name]
      else setOwn(target, name, structuredClone(entry.definition))
    }
  }
  return next
}

/** Overlay entries whose config-file object changed since the API last wrote them (the API's version wins). */
export function shadowedFileChanges(base: GatewayConfig, overlay: ApiOverlay): string[] {
  const out: string[] = []
  for (const kind of ['streams', 'sinks'] as const)
    for (const [name, entry] of entriesOf(overlay, kind)) {
      const current = definitionVersion(Object.hasOwn(base[kind], name) ? base[kind][name] : undefined)
      if (current !== entry.fileVersion) out.push(`${kind}.${name}`)
    }
  return out
}

function entriesOf(overlay: ApiOverlay, kind: OverlayKind): [string, OverlayEntry<object>][] {
  return Object.entries(overlay[kind] as Record<string, OverlayEntry<object>>)
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}
