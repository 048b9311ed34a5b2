import type { FilterConfig, StreamConfig } from '../config/types.js'
import type { ConnectContext } from './context.js'
import type { LedgerEntry } from './ledger.js'
import {
  compareHeaders,
  fingerprintHeaders,
  headerPairs,
  ingestUrl,
  publicBase,
  sameJson,
  streamOfIngestUrl,
  type ConnectionRow,
  type ConnectReport,
  type HeaderPairs,
  type SeenHeader,
} from './plan.js'
import {
  apiUrl,
  ConnectProblem,
  idText,
  isObject,
  listIn,
  VendorHttp,
  type VendorProfile,
  type VendorRequest,
} from './vendor-http.js'

// emnify Data Streamer API (vendor-docs/000 "Data Streamer API"; vendor-formats.md §1.1):
//   GET    /api/v2/data_stream          list        POST  /api/v2/data_stream        create
//   PATCH  /api/v2/data_stream/{id}     update      DELETE /api/v2/data_stream/{id}  delete
// with `Authorization: Bearer <JWT>` (EMNIFY_API_TOKEN) and `accept`/`Content-Type: application/json`.
// The data stream streamgate wants for a stream (000's webhook example):
//   {"data_stream_type": {"id": 1 usage | 2 event},
//    "destination": {"connection_type": "RestAPI",
//                    "credentials": {"url": "<public URL>/ingest/<stream>", "method": <stream's method>,
//                                    "headers": ["<name>:<value>", …]},   ← the stream's auth headers
//                    "format": "Json"},
//    "filters": [the stream's filters that emnify can apply]}
// It is found again by its destination URL (a gateway's ingest URL names one stream). A re-run PATCHes
// only what differs: `destination` as a whole, `filters`, `data_stream_type`. emnify masks header values in
// its answers, so they are compared by the fingerprint in the ledger (src/connect/plan.ts).
//
// Filters are mirrored so emnify drops what the gateway would filter anyway, before sending it. emnify
// filters event streams only, on `event_type_id` and `alert` (filter_field_type; 000's example
// [{"field":"event_type_id","value":[1,2,3]},{"or":[{"field":"alert","value":true}]}]); values are sent as
// configured (numbers, booleans). A top-level filter is mirrored when it is such a field with the default
// operator (`event_type.id` is written `event_type_id`), an `or` of such fields, or an `and` of them
// (flattened: top-level filters all apply). Anything else stays in the gateway only, with a note: emnify
// then sends more than the gateway keeps, never less.

export const EMNIFY_DEFAULT_API_URL = 'https://cdn.emnify.net'
/** data_stream_type ids (GET /api/v2/data_stream/type [EM-OAS]). */
export const EMNIFY_STREAM_TYPES = { usage: 1, event: 2 } as const
const EMNIFY_FILTER_FIELDS: Record<string, string> = {
  event_type_id: 'event_type_id',
  'event_type.id': 'event_type_id',
  alert: 'alert',
}
const STATUS_NAMES: Record<string, string> = { 1: 'Running', 2: 'Paused', 3: 'Error', 4: 'Pending' }

const PROFILE: VendorProfile = {
  vendor: 'emnify',
  label: 'emnify',
  credentials: 'EMNIFY_API_TOKEN (an emnify API auth token, a JWT)',
  base: 'EMNIFY_API_URL',
  permission:
    "the token's user needs a role that may manage integrations (data streams) in the emnify Portal",
}

export interface EmnifyDataStreamBody {
  data_stream_type: { id: number }
  destination: {
    connection_type: 'RestAPI'
    credentials: { url: string; method: string; headers?: string[] }
    format: 'Json'
  }
  filters?: unknown[]
}

export interface EmnifyPlan {
  url: string
  body: EmnifyDataStreamBody
  /** The body with header values masked. */
  shown: EmnifyDataStreamBody
  headers: HeaderPairs
  notes: string[]
}

/** The data stream a stream wants at emnify; throws ConnectProblem when emnify could not feed it. */
export function emnifyPlan(id: string, stream: StreamConfig, base: string): EmnifyPlan {
  const at = `streams.${id}`
  if (stream.auth.hmac)
    throw new ConnectProblem(
      `${at}.auth.hmac: emnify cannot sign its requests, so the gateway would refuse every one (401); remove the HMAC check or feed this stream otherwise`,
    )
  const methods = Array.isArray(stream.method) ? stream.method : [stream.method]
  const method = methods.includes('POST') ? 'POST' : methods[0]!
  const url = ingestUrl(base, id)
  const headers = headerPairs(stream.auth.headers)
  const notes: string[] = []
  const { mirrored, kept } = mirrorFilters(stream.filters, stream.recordType)
  notes.push(...kept.map((k) => `filters${k}: applied by the gateway only`))
  if (stream.auth.allowCidrs?.length)
    notes.push(`${at}.auth.allowCidrs: must include the addresses emnify sends from`)
  if (!url.startsWith('https://'))
    notes.push('emnify needs an https URL with a valid certificate to deliver (the public URL is http)')
  const destination = (values: boolean): EmnifyDataStreamBody['destination'] => ({
    connection_type: 'RestAPI',
    credentials: {
      url,
      method,
      ...(headers.length > 0 ? { headers: headers.map(([n, v]) => `${n}:${values ? v : '***'}`) } : {}),
    },
    format: 'Json',
  })
  const body = (values: boolean): EmnifyDataStreamBody => ({
    data_stream_type: { id: EMNIFY_STREAM_TYPES[stream.recordType] },
    destination: destination(values),
    ...(mirrored.length > 0 ? { filters: mirrored } : {}),
  })
  return { url, body: body(true), shown: body(false), headers, notes }
}

/** The stream's filters emnify can apply (see the header), and the JSON paths of those it cannot. */
export function mirrorFilters(
  filters: readonly FilterConfig[],
  recordType: StreamConfig['recordType'],
): { mirrored: unknown[]; kept: string[] } {
  if (recordType === 'usage') return { mirrored: [], kept: filters.length > 0 ? [''] : [] }
  const mirrored: unknown[] = []
  const kept: string[] = []
  filters.forEach((filter, i) => {
    const leaf = emnifyLeaf(filter)
    if (leaf) return void mirrored.push(leaf)
    if ('or' in filter) {
      const leaves = filter.or.map(emnifyLeaf)
      if (leaves.length > 0 && leaves.every(Boolean)) return void mirrored.push({ or: leaves })
    }
    if ('and' in filter) {
      const leaves = filter.and.map(emnifyLeaf)
      if (leaves.every(Boolean)) return void mirrored.push(...leaves)
    }
    kept.push(`[${i}]`)
  })
  return { mirrored, kept }
}

function emnifyLeaf(filter: FilterConfig): { field: string; value: unknown } | undefined {
  if (!('field' in filter) || (filter.op !== undefined && filter.op !== 'eq')) return undefined
  const field = EMNIFY_FILTER_FIELDS[filter.field]
  return field ? { field, value: filter.value } : undefined
}

/** A data stream as emnify shows it, read tolerantly (strings or {id, description} objects). */
export interface SeenDataStream {
  id: string
  connectionType: string | undefined
  url: string | undefined
  method: string | undefined
  headers: SeenHeader[]
  typeId: number | undefined
  format: string | undefined
  /** undefined: the answer has no `filters` (nothing to compare). */
  filters: unknown[] | undefined
  status: string | undefined
}

function label(value: unknown): string | undefined {
  if (typeof value === 'string') return value
  if (isObject(value)) {
    const text = [value.description, value.name, value.value].find((v) => typeof v === 'string')
    return text
  }
  return undefined
}

export function readDataStream(doc: unknown): SeenDataStream | undefined {
  if (!isObject(doc)) return undefined
  const id = idText(doc.id)
  if (id === undefined) return undefined
  const destination = isObject(doc.destination) ? doc.destination : {}
  const credentials = isObject(destination.credentials) ? destination.credentials : {}
  const headers: SeenHeader[] = []
  if (Array.isArray(credentials.headers))
    for (const h of credentials.headers) {
      if (typeof h !== 'string') continue
      const colon = h.indexOf(':')
      headers.push(
        colon < 0
          ? { name: h.trim(), value: undefined }
          : { name: h.slice(0, colon).trim(), value: h.slice(colon + 1).trim() },
      )
    }
  else if (isObject(credentials.headers))
    for (const [name, value] of Object.entries(credentials.headers))
      headers.push({ name, value: typeof value === 'string' ? value : undefined })
  const type = isObject(doc.data_stream_type) ? doc.data_stream_type.id : doc.data_stream_type
  const statusId = isObject(doc.status) ? doc.status.id : doc.status
  return {
    id,
    connectionType: label(destination.connection_type),
    url: typeof credentials.url === 'string' ? credentials.url : undefined,
    method: typeof credentials.method === 'string' ? credentials.method : undefined,
    headers,
    typeId: type === undefined || type === null ? undefined : Number(type),
    format: label(destination.format),
    filters: Array.isArray(doc.filters) ? doc.filters : doc.filters === null ? [] : undefined,
    status: label(doc.status) ?? (typeof statusId === 'number' ? STATUS_NAMES[statusId] : undefined),
  }
}

/** What differs between the wanted data stream and emnify's, and the PATCH body that fixes it. */
export function emnifyDiff(
  plan: EmnifyPlan,
  seen: SeenDataStream,
  ledger: LedgerEntry | undefined,
): {
  changes: string[]
  patch: Record<string, unknown>
  shownPatch: Record<string, unknown>
  notes: string[]
} {
  const changes: string[] = []
  const notes: string[] = []
  const wanted = plan.body
  // What an answer leaves out cannot be compared and is not sent again for it (the url always is).
  if (seen.typeId !== undefined && seen.typeId !== wanted.data_stream_type.id)
    changes.push('data_stream_type')
  const creds = wanted.destination.credentials
  if (seen.url !== creds.url) changes.push('destination.credentials.url')
  if ((seen.method ?? 'POST').toUpperCase() !== creds.method) changes.push('destination.credentials.method')
  if (seen.format !== undefined && seen.format.toLowerCase() !== 'json') changes.push('destination.format')
  if (seen.connectionType !== undefined && seen.connectionType.toLowerCase() !== 'restapi')
    changes.push('destination.connection_type')
  const fingerprint = ledger?.vendorId === seen.id ? ledger.headers : undefined
  const verdict = compareHeaders(plan.headers, seen.headers, fingerprint)
  if (verdict === 'differs') changes.push('destination.credentials.headers')
  if (verdict === 'unverifiable') {
    changes.push('destination.credentials.headers')
    notes.push(
      'emnify does not show header values and no fingerprint of the last ones sent is kept here: they are sent again',
    )
  }
  if (seen.filters !== undefined && !sameJson(seen.filters, wanted.filters ?? [])) changes.push('filters')
  const patch: Record<string, unknown> = {}
  const shownPatch: Record<string, unknown> = {}
  if (changes.includes('data_stream_type'))
    patch.data_stream_type = shownPatch.data_stream_type = wanted.data_stream_type
  if (changes.some((c) => c.startsWith('destination'))) {
    patch.destination = wanted.destination
    shownPatch.destination = plan.shown.destination
  }
  if (changes.includes('filters')) patch.filters = shownPatch.filters = wanted.filters ?? []
  return { changes, patch, shownPatch, notes }
}

interface Client {
  http: VendorHttp
  collection: URL
  headers: Record<string, string>
}

function client(ctx: ConnectContext, secrets: readonly string[]): Client {
  const token = ctx.env.EMNIFY_API_TOKEN
  if (!token)
    throw new ConnectProblem(
      'EMNIFY_API_TOKEN is not set: export an emnify API auth token (a JWT, see "Authentication" in emnify\'s Data Streamer API docs)',
    )
  const collection = apiUrl(
    ctx.env.EMNIFY_API_URL || EMNIFY_DEFAULT_API_URL,
    '/api/v2',
    '/data_stream',
    'EMNIFY_API_URL',
  )
  return {
    http: new VendorHttp(PROFILE, ctx.dryRun, [token, ...secrets]),
    collection,
    headers: { authorization: `Bearer ${token}` },
  }
}

function itemUrl(c: Client, id: string): URL {
  return new URL(`${c.collection.href}/${encodeURIComponent(id)}`)
}

async function listDataStreams(c: Client): Promise<SeenDataStream[]> {
  const answer = await c.http.read({ method: 'GET', url: c.collection, headers: c.headers })
  return listIn(answer.json)
    .map(readDataStream)
    .filter((d): d is SeenDataStream => d !== undefined)
}

function sendingTo(list: readonly SeenDataStream[], url: string): SeenDataStream[] {
  const norm = (u: string): string => u.replace(/\/+$/, '')
  return list.filter((d) => d.url !== undefined && norm(d.url) === norm(url))
}

/** Creates, or updates in place, the emnify data stream that feeds the stream. */
export async function connectEmnify(ctx: ConnectContext, id: string): Promise<ConnectReport> {
  const stream = ctx.config.streams[id]!
  const plan = emnifyPlan(id, stream, publicBase(ctx.config, ctx.publicUrl))
  const c = client(
    ctx,
    plan.headers.map(([, v]) => v),
  )
  const report: ConnectReport = {
    vendor: 'emnify',
    kind: 'stream',
    name: id,
    dryRun: ctx.dryRun,
    action: 'unchanged',
    changes: [],
    notes: [...plan.notes],
    requests: c.http.requests,
  }
  try {
    const all = await listDataStreams(c)
    const matches = sendingTo(all, plan.url)
    if (matches.length > 1)
      throw new ConnectProblem(
        `emnify has ${matches.length} data streams sending to ${plan.url} (ids ${matches.map((m) => m.id).join(', ')}); delete all but one in the emnify Portal, then run again`,
        409,
        'ambiguous',
      )
    const ledger = await ctx.ledger.get('emnify', 'stream', id)
    // Not found by URL, but the one connect made for this stream is still there: the public URL changed,
    // so that data stream is moved (PATCHed) rather than a second one created.
    const moved = matches.length === 0 ? all.find((d) => d.id === ledger?.vendorId) : undefined
    if (moved)
      report.notes.push(
        `data stream ${moved.id}, made for this stream before, sends to ${moved.url ?? '?'}: moved to ${plan.url}`,
      )
    const existing = matches[0] ?? moved
    if (!existing) {
      const request: VendorRequest = {
        method: 'POST',
        url: c.collection,
        headers: c.headers,
        body: plan.body,
        shownBody: plan.shown,
      }
      const answer = await c.http.write(request)
      report.action = 'created'
      if (!answer) return report
      // The documents show no answer body for a create: take its id, else find the new one by its URL.
      let created = idText(
        isObject(answer.json)
          ? (answer.json.id ?? (isObject(answer.json.data) ? answer.json.data.id : undefined))
          : undefined,
      )
      created ??= sendingTo(await listDataStreams(c), plan.url)[0]?.id
      if (created === undefined) {
        report.notes.push(
          "emnify did not say the new data stream's id; `streamgate connections emnify` shows it",
        )
        return report
      }
      report.vendorId = created
      await ctx.ledger.put({
        vendor: 'emnify',
        kind: 'stream',
        name: id,
        vendorId: created,
        created: true,
        headers: fingerprintHeaders(plan.headers),
      })
      return report
    }
    report.vendorId = existing.id
    const diff = emnifyDiff(plan, existing, ledger)
    report.notes.push(...diff.notes)
    if (diff.changes.length > 0) {
      report.action = 'updated'
      report.changes = diff.changes
      const answer = await c.http.write({
        method: 'PATCH',
        url: itemUrl(c, existing.id),
        headers: c.headers,
        body: diff.patch,
        shownBody: diff.shownPatch,
      })
      if (!answer) return report
    } else if (ledger?.vendorId === existing.id && ledger.headers) return report
    if (ctx.dryRun) return report
    await ctx.ledger.put({
      vendor: 'emnify',
      kind: 'stream',
      name: id,
      vendorId: existing.id,
      created: ledger?.vendorId === existing.id && ledger.created,
      headers: fingerprintHeaders(plan.headers),
    })
    return report
  } finally {
    await c.http.close()
  }
}

/** Deletes the emnify data stream(s) sending to the stream's ingest URL, and the one connect made for it. */
export async function disconnectEmnify(ctx: ConnectContext, id: string): Promise<ConnectReport> {
  const url = ingestUrl(publicBase(ctx.config, ctx.publicUrl), id)
  const c = client(ctx, [])
  const report: ConnectReport = {
    vendor: 'emnify',
    kind: 'stream',
    name: id,
    dryRun: ctx.dryRun,
    action: 'absent',
    changes: [],
    notes: [],
    requests: c.http.requests,
  }
  try {
    const all = await listDataStreams(c)
    const matches = sendingTo(all, url)
    // Also the one connect made for this stream, should it send elsewhere (the public URL changed since).
    const ledger = await ctx.ledger.get('emnify', 'stream', id)
    const made = all.find((d) => ledger?.created && d.id === ledger.vendorId)
    if (made && !matches.includes(made)) matches.push(made)
    for (const match of matches) {
      await c.http.write({ method: 'DELETE', url: itemUrl(c, match.id), headers: c.headers })
      report.action = 'deleted'
      report.vendorId = report.vendorId === undefined ? match.id : `${report.vendorId},${match.id}`
    }
    if (!ctx.dryRun) await ctx.ledger.remove('emnify', 'stream', id)
    return report
  } finally {
    await c.http.close()
  }
}

/** Every emnify data stream that sends to a gateway ingest URL, and every emnify stream with none. */
export async function listEmnify(ctx: ConnectContext): Promise<ConnectionRow[]> {
  let base: string | undefined
  try {
    base = publicBase(ctx.config, ctx.publicUrl)
  } catch {
    base = undefined
  }
  const c = client(ctx, [])
  try {
    const rows: ConnectionRow[] = []
    const seen = (await listDataStreams(c)).filter(
      (d) => d.url !== undefined && streamOfIngestUrl(d.url) !== undefined,
    )
    const local = Object.entries(ctx.config.streams).filter(([, s]) => s.source === 'emnify')
    const claimed = new Set<string>()
    for (const [id, stream] of local) {
      const ours = seen.filter((d) =>
        base !== undefined
          ? sendingTo([d], ingestUrl(base, id)).length > 0
          : streamOfIngestUrl(d.url!) === id,
      )
      if (ours.length === 0) {
        rows.push({
          vendor: 'emnify',
          kind: 'stream',
          name: id,
          matches: false,
          differences: [],
          detail: 'no emnify data stream sends here',
        })
        continue
      }
      for (const d of ours) {
        claimed.add(d.id)
        let differences: string[]
        try {
          const plan = emnifyPlan(id, stream, base ?? d.url!.replace(/\/ingest\/[^/]+\/?$/, ''))
          const diff = emnifyDiff(plan, d, await ctx.ledger.get('emnify', 'stream', id))
          differences = diff.changes.map((c) =>
            c === 'destination.credentials.headers' && diff.notes.length > 0
              ? `${c} (values not shown; unverified)`
              : c,
          )
        } catch (err) {
          differences = [(err as Error).message]
        }
        rows.push({
          vendor: 'emnify',
          kind: 'stream',
          name: id,
          vendorId: d.id,
          ...(d.status !== undefined ? { status: d.status } : {}),
          url: d.url!,
          headers: d.headers.map((h) => h.name),
          matches: differences.length === 0,
          differences,
        })
      }
    }
    // Without a public URL, data streams of other gateways cannot be told from orphans of this one.
    for (const d of seen) {
      if (base === undefined || claimed.has(d.id) || !d.url!.startsWith(`${base}/`)) continue
      rows.push({
        vendor: 'emnify',
        vendorId: d.id,
        ...(d.status !== undefined ? { status: d.status } : {}),
        url: d.url!,
        headers: d.headers.map((h) => h.name),
        matches: null,
        differences: [],
        detail: `no emnify stream "${streamOfIngestUrl(d.url!)}" in the config`,
      })
    }
    return rows
  } finally {
    await c.http.close()
  }
}
