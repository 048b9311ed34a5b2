import type { StreamConfig } from '../config/types.js'
import { findAzionTemplate } from '../ingest/azion-templates.js'
import type { ConnectContext } from './context.js'
import type { LedgerEntry } from './ledger.js'
import {
  compareHeaders,
  fingerprintHeaders,
  headerPairs,
  ingestUrl,
  publicBase,
  sameJson,
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

// Azion Data Streaming API v3 (vendor-docs/001):
//   GET    /data_streaming/streamings        list       POST  /data_streaming/streamings      create (201)
//   PATCH  /data_streaming/streamings/:id    edit       DELETE /data_streaming/streamings/:id  delete (204)
// every call with `Accept: application/json; version=3` and `Authorization: Token <AZION_API_TOKEN>`
// (Content-Type: application/json with a body). Answers wrap the object(s): {"results": …, "schema_version": 3}.
// The streaming streamgate wants for a stream (001 §2b "Inserting Headers to HTTP POST Endpoints"):
//   {"name": "streamgate-<stream>", "template_id": <template> | "template_model": <templateModel>,
//    "data_source": <dataSource>, "domain_ids": <domainIds>,
//    "endpoint": {"endpoint_type": "standard", "url": "<public URL>/ingest/<stream>",
//                 "payload_format": <payloadFormat>, "log_line_separator": <logLineSeparator>,
//                 "headers": {<the stream's auth headers, at most 5>}}}
// It is found again by its name. A re-run PATCHes only the fields that differ (the endpoint as a whole).
// 001 shows header values in clear in its answers; should Azion mask them, the ledger's fingerprint decides
// (src/connect/plan.ts). `active` is left as it is: pausing at Azion is the operator's call.
// dataSource defaults to the built-in template's data source (2 → http, 4 → waf, 86 → cells_console,
// 251 → rtm_activity), else http (001: "Edge Applications (default)").

export const AZION_DEFAULT_API_URL = 'https://api.azionapi.net'
export const AZION_ACCEPT = 'application/json; version=3'
/** Azion sends at most 5 custom headers to an HTTP POST endpoint (001 §2b). */
export const AZION_MAX_HEADERS = 5
/** Pages followed through `links.next` when a list is paginated (001 shows none; v3 lists may be). */
const AZION_MAX_PAGES = 50

const PROFILE: VendorProfile = {
  vendor: 'azion',
  label: 'Azion',
  credentials: 'AZION_API_TOKEN (an Azion personal token)',
  base: 'AZION_API_URL',
  permission: 'the token\'s account needs "Edit Data Streaming" (and "View Data Streaming" to list)',
}

/** The name connect gives a stream's streaming at Azion, and finds it by. */
export function azionName(id: string): string {
  return `streamgate-${id}`
}

export interface AzionEndpoint {
  endpoint_type: 'standard'
  url: string
  payload_format: string
  log_line_separator: string
  headers?: Record<string, string>
}

export interface AzionStreamingBody {
  name: string
  template_id?: number
  template_model?: string
  data_source: string
  domain_ids: number[]
  endpoint: AzionEndpoint
}

export interface AzionPlan {
  body: AzionStreamingBody
  shown: AzionStreamingBody
  headers: HeaderPairs
  notes: string[]
}

/** The streaming a stream wants at Azion; throws ConnectProblem when Azion could not feed it. */
export function azionPlan(id: string, stream: StreamConfig, base: string): AzionPlan {
  const at = `streams.${id}`
  if (stream.auth.hmac)
    throw new ConnectProblem(
      `${at}.auth.hmac: Azion cannot sign its requests, so the gateway would refuse every one (401); use auth.headers instead`,
    )
  const methods = Array.isArray(stream.method) ? stream.method : [stream.method]
  if (!methods.includes('POST'))
    throw new ConnectProblem(`${at}.method: Azion sends POST, which the stream does not accept`)
  const headers = headerPairs(stream.auth.headers)
  if (headers.length > AZION_MAX_HEADERS)
    throw new ConnectProblem(`${at}.auth.headers: Azion sends at most ${AZION_MAX_HEADERS} headers`)
  if (stream.domainIds === undefined)
    throw new ConnectProblem(
      `${at}.domainIds: set the ids of the Azion domains whose logs this stream receives (Azion's domain_ids)`,
    )
  const notes: string[] = []
  if (stream.auth.allowCidrs?.length) notes.push(`${at}.auth.allowCidrs: must include Azion's edge addresses`)
  const template =
    stream.templateModel !== undefined
      ? { template_model: stream.templateModel }
      : { template_id: stream.template! }
  const dataSource =
    stream.dataSource ??
    (stream.template !== undefined ? findAzionTemplate(stream.template)?.dataSource : undefined) ??
    'http'
  const body = (values: boolean): AzionStreamingBody => ({
    name: azionName(id),
    ...template,
    data_source: dataSource,
    domain_ids: [...stream.domainIds!],
    endpoint: {
      endpoint_type: 'standard',
      url: ingestUrl(base, id),
      payload_format: stream.payloadFormat,
      log_line_separator: stream.logLineSeparator,
      ...(headers.length > 0
        ? { headers: Object.fromEntries(headers.map(([n, v]) => [n, values ? v : '***'])) }
        : {}),
    },
  })
  return { body: body(true), shown: body(false), headers, notes }
}

export interface SeenStreaming {
  id: string
  name: string | undefined
  templateId: number | undefined
  templateModel: string | undefined
  dataSource: string | undefined
  active: boolean | undefined
  domainIds: number[] | undefined
  endpointType: string | undefined
  url: string | undefined
  payloadFormat: string | undefined
  logLineSeparator: string | undefined
  headers: SeenHeader[]
}

/** A streaming as Azion answers it (also the v3 OpenAPI's header form, a list of one-key objects). */
export function readStreaming(doc: unknown): SeenStreaming | undefined {
  if (!isObject(doc)) return undefined
  const id = idText(doc.id)
  if (id === undefined) return undefined
  const endpoint = isObject(doc.endpoint) ? doc.endpoint : {}
  const headers: SeenHeader[] = []
  const add = (name: string, value: unknown): void =>
    void headers.push({ name, value: typeof value === 'string' ? value : undefined })
  if (isObject(endpoint.headers)) for (const [n, v] of Object.entries(endpoint.headers)) add(n, v)
  else if (Array.isArray(endpoint.headers))
    for (const h of endpoint.headers) if (isObject(h)) for (const [n, v] of Object.entries(h)) add(n, v)
  const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined)
  // 001's custom-template answer spells it "data_souce"; read both.
  return {
    id,
    name: str(doc.name),
    templateId: typeof doc.template_id === 'number' ? doc.template_id : undefined,
    templateModel: str(doc.template_model) ?? str(doc.Template_model),
    dataSource: str(doc.data_source) ?? str(doc.data_souce),
    active: typeof doc.active === 'boolean' ? doc.active : undefined,
    domainIds: Array.isArray(doc.domain_ids) ? doc.domain_ids.map(Number) : undefined,
    endpointType: str(endpoint.endpoint_type),
    url: str(endpoint.url),
    payloadFormat: str(endpoint.payload_format),
    logLineSeparator: str(endpoint.log_line_separator),
    headers,
  }
}

export function azionDiff(
  plan: AzionPlan,
  seen: SeenStreaming,
  ledger: LedgerEntry | undefined,
): {
  changes: string[]
  patch: Record<string, unknown>
  shownPatch: Record<string, unknown>
  unverified: boolean
} {
  // What an answer leaves out cannot be compared and is not sent again for it (001's detail example has no
  // template_id, for one); the url and the endpoint type are always there for a standard endpoint.
  const want = plan.body
  const changes: string[] = []
  const template = seen.templateModel !== undefined || seen.templateId !== undefined
  if (
    template &&
    (want.template_model !== undefined
      ? seen.templateModel !== want.template_model
      : seen.templateId !== want.template_id)
  )
    changes.push(want.template_model !== undefined ? 'template_model' : 'template_id')
  if (seen.dataSource !== undefined && seen.dataSource !== want.data_source) changes.push('data_source')
  if (seen.domainIds !== undefined && !sameJson([...seen.domainIds].sort(), [...want.domain_ids].sort()))
    changes.push('domain_ids')
  const e = want.endpoint
  const endpointChanges: string[] = []
  const differs = (shown: string | undefined, wanted: string): boolean =>
    shown !== undefined && shown !== wanted
  if (seen.endpointType !== e.endpoint_type) endpointChanges.push('endpoint.endpoint_type')
  if (seen.url !== e.url) endpointChanges.push('endpoint.url')
  if (differs(seen.payloadFormat, e.payload_format)) endpointChanges.push('endpoint.payload_format')
  if (differs(seen.logLineSeparator, e.log_line_separator))
    endpointChanges.push('endpoint.log_line_separator')
  const fingerprint = ledger?.vendorId === seen.id ? ledger.headers : undefined
  const verdict = compareHeaders(plan.headers, seen.headers, fingerprint)
  if (verdict !== 'same') endpointChanges.push('endpoint.headers')
  changes.push(...endpointChanges)
  const patch: Record<string, unknown> = {}
  const shownPatch: Record<string, unknown> = {}
  for (const key of ['template_id', 'template_model', 'data_source', 'domain_ids'] as const)
    if (changes.includes(key)) patch[key] = shownPatch[key] = want[key]
  if (endpointChanges.length > 0) {
    patch.endpoint = want.endpoint
    shownPatch.endpoint = plan.shown.endpoint
  }
  return { changes, patch, shownPatch, unverified: verdict === 'unverifiable' }
}

interface Client {
  http: VendorHttp
  collection: URL
  headers: Record<string, string>
}

function client(ctx: ConnectContext, secrets: readonly string[]): Client {
  const token = ctx.env.AZION_API_TOKEN
  if (!token)
    throw new ConnectProblem(
      'AZION_API_TOKEN is not set: export an Azion personal token (Real-Time Manager → Personal Tokens)',
    )
  const collection = apiUrl(
    ctx.env.AZION_API_URL || AZION_DEFAULT_API_URL,
    '/data_streaming',
    '/streamings',
    'AZION_API_URL',
  )
  return {
    http: new VendorHttp(PROFILE, ctx.dryRun, [token, ...secrets]),
    collection,
    headers: { accept: AZION_ACCEPT, authorization: `Token ${token}` },
  }
}

function itemUrl(c: Client, id: string): URL {
  return new URL(`${c.collection.href}/${encodeURIComponent(id)}`)
}

async function listStreamings(c: Client): Promise<SeenStreaming[]> {
  const out: SeenStreaming[] = []
  let url: URL | undefined = c.collection
  for (let page = 0; url && page < AZION_MAX_PAGES; page++) {
    const answer = await c.http.read({ method: 'GET', url, headers: c.headers })
    for (const item of listIn(
      isObject(answer.json) && 'results' in answer.json ? answer.json.results : answer.json,
    )) {
      const seen = readStreaming(item)
      if (seen) out.push(seen)
    }
    const links = isObject(answer.json) && isObject(answer.json.links) ? answer.json.links : undefined
    const next: unknown = links?.next
    url = undefined
    if (typeof next === 'string' && next !== '') {
      const candidate = new URL(next, c.collection)
      if (candidate.origin === c.collection.origin) url = candidate
    }
  }
  return out
}

function named(list: readonly SeenStreaming[], id: string): SeenStreaming[] {
  return list.filter((s) => s.name === azionName(id))
}

function ambiguous(matches: readonly SeenStreaming[], id: string): ConnectProblem {
  return new ConnectProblem(
    `Azion has ${matches.length} data streamings named "${azionName(id)}" (ids ${matches.map((m) => m.id).join(', ')}); delete or rename all but one, then run again`,
    409,
    'ambiguous',
  )
}

/** Creates, or updates in place, the Azion data streaming that feeds the stream. */
export async function connectAzion(ctx: ConnectContext, id: string): Promise<ConnectReport> {
  const plan = azionPlan(id, ctx.config.streams[id]!, publicBase(ctx.config, ctx.publicUrl))
  const c = client(
    ctx,
    plan.headers.map(([, v]) => v),
  )
  const report: ConnectReport = {
    vendor: 'azion',
    kind: 'stream',
    name: id,
    dryRun: ctx.dryRun,
    action: 'unchanged',
    changes: [],
    notes: [...plan.notes],
    requests: c.http.requests,
  }
  try {
    const matches = named(await listStreamings(c), id)
    if (matches.length > 1) throw ambiguous(matches, id)
    const ledger = await ctx.ledger.get('azion', 'stream', id)
    const [existing] = matches
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
      const results = isObject(answer.json) ? answer.json.results : undefined
      const created = readStreaming(results)?.id ?? named(await listStreamings(c), id)[0]?.id
      if (created === undefined) {
        report.notes.push("Azion did not say the new streaming's id; `streamgate connections azion` shows it")
        return report
      }
      report.vendorId = created
      await ctx.ledger.put({
        vendor: 'azion',
        kind: 'stream',
        name: id,
        vendorId: created,
        created: true,
        headers: fingerprintHeaders(plan.headers),
      })
      return report
    }
    report.vendorId = existing.id
    const diff = azionDiff(plan, existing, ledger)
    if (diff.unverified)
      report.notes.push(
        'Azion does not show the header values and no fingerprint of the last ones sent is kept here: they are sent again',
      )
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
      vendor: 'azion',
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

/** Deletes the Azion data streaming connect made for the stream (found by name). */
export async function disconnectAzion(ctx: ConnectContext, id: string): Promise<ConnectReport> {
  const c = client(ctx, [])
  const report: ConnectReport = {
    vendor: 'azion',
    kind: 'stream',
    name: id,
    dryRun: ctx.dryRun,
    action: 'absent',
    changes: [],
    notes: [],
    requests: c.http.requests,
  }
  try {
    const matches = named(await listStreamings(c), id)
    if (matches.length > 1) throw ambiguous(matches, id)
    const [existing] = matches
    if (existing) {
      report.vendorId = existing.id
      await c.http.write({ method: 'DELETE', url: itemUrl(c, existing.id), headers: c.headers })
      report.action = 'deleted'
    }
    if (!ctx.dryRun) await ctx.ledger.remove('azion', 'stream', id)
    return report
  } finally {
    await c.http.close()
  }
}

/** Every `streamgate-*` streaming at Azion and every azion stream of the config. */
export async function listAzion(ctx: ConnectContext): Promise<ConnectionRow[]> {
  let base: string | undefined
  try {
    base = publicBase(ctx.config, ctx.publicUrl)
  } catch {
    base = undefined
  }
  const c = client(ctx, [])
  try {
    const all = (await listStreamings(c)).filter((s) => s.name?.startsWith(azionName('')))
    const rows: ConnectionRow[] = []
    const claimed = new Set<string>()
    for (const [id, stream] of Object.entries(ctx.config.streams)) {
      if (stream.source !== 'azion') continue
      const matches = named(all, id)
      if (matches.length === 0) {
        rows.push({
          vendor: 'azion',
          kind: 'stream',
          name: id,
          matches: false,
          differences: [],
          detail: `no Azion data streaming "${azionName(id)}"`,
        })
        continue
      }
      for (const s of matches) {
        claimed.add(s.id)
        let differences: string[]
        try {
          const streamBase = base ?? s.url?.replace(/\/ingest\/[^/]+\/?$/, '') ?? ''
          const diff = azionDiff(
            azionPlan(id, stream, streamBase),
            s,
            await ctx.ledger.get('azion', 'stream', id),
          )
          differences = diff.changes.map((ch) =>
            ch === 'endpoint.headers' && diff.unverified ? `${ch} (values not shown; unverified)` : ch,
          )
        } catch (err) {
          differences = [(err as Error).message]
        }
        rows.push(azionRow(s, { kind: 'stream', name: id }, differences))
      }
    }
    for (const s of all)
      if (!claimed.has(s.id))
        rows.push({
          ...azionRow(s, {}, []),
          matches: null,
          detail: `no azion stream "${s.name!.slice(azionName('').length)}" in the config`,
        })
    return rows
  } finally {
    await c.http.close()
  }
}

function azionRow(
  s: SeenStreaming,
  local: { kind?: 'stream'; name?: string },
  differences: string[],
): ConnectionRow {
  return {
    vendor: 'azion',
    ...local,
    vendorId: s.id,
    ...(s.active !== undefined ? { status: s.active ? 'active' : 'inactive' } : {}),
    ...(s.url !== undefined ? { url: s.url } : {}),
    headers: s.headers.map((h) => h.name),
    matches: differences.length === 0,
    differences,
  }
}
