import { createHash, randomBytes } from 'node:crypto'
import type { GatewayConfig, StreamConfig } from '../config/types.js'
import { headerPairs as parseHeaderPairs } from '../config/headers.js'
import type { RequestRecord, Vendor } from './vendor-http.js'
import { ConnectProblem, isObject } from './vendor-http.js'

// What connect wants at a vendor versus what is there, and how a difference is decided.
//
// Header values (the stream's auth headers, copied into the vendor's destination) are credentials, and
// vendors may answer them masked or not at all (emnify masks webhook headers in its answers [EM-OAS];
// Azion's v3 document shows them in clear, its Terraform provider marks them sensitive). So:
//   - the names are always compared (case-insensitively);
//   - values the vendor shows in clear are compared exactly;
//   - values it masks are compared through a fingerprint connect keeps locally for the object it last
//     wrote (src/connect/ledger.ts: a salted SHA-256 of the names and values, never the values): equal
//     fingerprint = unchanged; a different one, or none (the object was made elsewhere, or the ledger
//     lost), = the headers are sent again. One PATCH, after which the fingerprint makes re-runs no-ops.

export type HeaderPairs = [name: string, value: string][]

/** The stream's auth headers as (name, value) pairs in their configured order (parsed in config/headers.ts). */
export function headerPairs(headers: StreamConfig['auth']['headers']): HeaderPairs {
  return parseHeaderPairs(headers)
}

/** A header as the vendor shows it: the value undefined when it is masked or left out. */
export interface SeenHeader {
  name: string
  value: string | undefined
}

/** A value that hides the real one: empty, all `*`, or containing the mask `***`. */
export function isMaskedValue(value: unknown): boolean {
  return typeof value !== 'string' || value === '' || /^\*+$/.test(value) || value.includes('***')
}

export interface HeaderFingerprint {
  salt: string
  sha256: string
}

export function fingerprintHeaders(
  pairs: HeaderPairs,
  salt = randomBytes(16).toString('hex'),
): HeaderFingerprint {
  const canonical = pairs
    .map(([name, value]) => `${name.toLowerCase()}:${value}`)
    .sort()
    .join('\n')
  return { salt, sha256: createHash('sha256').update(`${salt}\n${canonical}`).digest('hex') }
}

export type HeaderVerdict = 'same' | 'differs' | 'unverifiable'

/**
 * Whether the vendor's headers are the desired ones. `unverifiable`: the names match but the vendor masks
 * the values and no fingerprint of what connect last sent says they are the same.
 */
export function compareHeaders(
  desired: HeaderPairs,
  seen: readonly SeenHeader[],
  fingerprint: HeaderFingerprint | undefined,
): HeaderVerdict {
  const want = new Map(desired.map(([n, v]) => [n.toLowerCase(), v]))
  const have = new Map(seen.map((h) => [h.name.toLowerCase(), h.value]))
  if (want.size !== have.size || [...want.keys()].some((n) => !have.has(n))) return 'differs'
  let masked = false
  for (const [name, value] of want) {
    const shown = have.get(name)
    if (shown === undefined || isMaskedValue(shown)) masked = true
    else if (shown !== value) return 'differs'
  }
  if (!masked) return 'same'
  if (fingerprint && fingerprintHeaders(desired, fingerprint.salt).sha256 === fingerprint.sha256)
    return 'same'
  return 'unverifiable'
}

/** JSON equality that ignores key order. */
export function sameJson(a: unknown, b: unknown): boolean {
  return canonical(a) === canonical(b)
}

function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`
  if (isObject(value))
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`)
      .join(',')}}`
  return JSON.stringify(value) ?? 'null'
}

/** What a connect, disconnect or check did (or, in a dry run, would do). */
export interface ConnectReport {
  vendor: Vendor
  kind: 'stream' | 'sink'
  name: string
  dryRun: boolean
  action: 'created' | 'updated' | 'unchanged' | 'deleted' | 'absent'
  /** The vendor's id of the object (data stream, streaming, connection, stream). */
  vendorId?: string
  /** The fields that differed and were (or would be) changed. */
  changes: string[]
  /** What the operator should know: filters kept in the gateway, values that cannot be verified, … */
  notes: string[]
  /** The sink keys written to the gateway's config (adobe inletUrl, domo streamId); null = removed. */
  config?: Record<string, unknown>
  requests: RequestRecord[]
}

/** One object at a vendor, or one local stream/sink, in `streamgate connections`. */
export interface ConnectionRow {
  vendor: Vendor
  /** The local stream or sink it belongs to; undefined: made for this gateway, but no such stream any more. */
  kind?: 'stream' | 'sink'
  name?: string
  vendorId?: string
  /** The vendor's state (emnify status, Azion active, Adobe state), as text. */
  status?: string
  /** Where the vendor sends (emnify, Azion) or the inlet (Adobe). */
  url?: string
  /** Header names the vendor has (values are never shown). */
  headers?: string[]
  /** Whether it matches the config; null when there is nothing to compare. */
  matches: boolean | null
  differences: string[]
  detail?: string
}

/**
 * The base URL vendors reach the gateway at: the given one, else server.publicUrl; the ingest URL of a
 * stream is `<base>/ingest/<stream>`, as the management API's inletUrl.
 */
export function publicBase(config: GatewayConfig, given: string | undefined): string {
  const base = (given ?? config.server.publicUrl ?? '').trim()
  if (base === '')
    throw new ConnectProblem(
      'no public URL: pass --public-url https://gateway.example (API: "publicUrl") or set server.publicUrl — the vendor must be able to reach it',
    )
  let url: URL
  try {
    url = new URL(base)
  } catch {
    throw new ConnectProblem(`the public URL "${base}" is not a URL`, 400)
  }
  if ((url.protocol !== 'https:' && url.protocol !== 'http:') || url.search || url.hash)
    throw new ConnectProblem(`the public URL "${base}" must be http(s) without query or fragment`, 400)
  return base.replace(/\/+$/, '')
}

export function ingestUrl(base: string, stream: string): string {
  return `${base}/ingest/${encodeURIComponent(stream)}`
}

/** The stream id an ingest URL names (`…/ingest/<id>`), if it is one. */
export function streamOfIngestUrl(url: string): string | undefined {
  try {
    const m = /\/ingest\/([^/]+)\/?$/.exec(new URL(url).pathname)
    return m ? decodeURIComponent(m[1]!) : undefined
  } catch {
    return undefined
  }
}
