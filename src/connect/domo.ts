import type { DomoSinkConfig } from '../config/types.js'
import {
  DOMO_DEVELOPER_TOKEN_HEADER,
  domoApiOf,
  domoOAuth,
  domoSchemaColumns,
  domoSearchMatches,
  domoStreamsUrl,
  idOf,
  type Route,
} from '../sinks/domo/sink.js'
import { HttpClient } from '../sinks/http-client.js'
import type { ConnectContext } from './context.js'
import type { ConnectionRow, ConnectReport } from './plan.js'
import { oauthToken } from './tokens.js'
import {
  ConnectProblem,
  isObject,
  VendorError,
  VendorHttp,
  VENDOR_TIMEOUT_MS,
  type VendorProfile,
} from './vendor-http.js'

// Domo Streams (vendor-docs/002; vendor-formats.md §4), through the Domo sink's own API code
// (src/sinks/domo/sink.ts: collection URL, routes, OAuth, create bodies, search matching), with the sink's
// credentials and API (`api: public | instance`):
//   search   GET  …/streams/search?q=dataSource.name:<name>     the stream whose dataset has the name
//   create   POST …/streams (public: {"dataSet": {name, description, schema: {columns}}, "updateMethod"};
//            instance: {"transport", "dataSource"}, then PUT …/streams/{id} {"schemaDefinition": {columns}})
//   read     GET  …/streams/{id}
//   delete   DELETE …/streams/{id} (the dataset stays, DOMO-PY)
// The dataset name is `create.name`, else the sink's name; the schema is `create.columns`, else every
// `columns` path as STRING. The stream found or created is written into the sink as `streamId` (and
// `create` removed: the sink then no longer searches at run time), through the management API's store. The
// ledger says whether connect created it: `disconnect domo` deletes only a stream connect created, and in
// every case removes streamId (the sink then holds its records as not connected).

function profileOf(name: string, sink: DomoSinkConfig): VendorProfile {
  const at = `sinks.${name}`
  return {
    vendor: 'domo',
    label: 'Domo',
    credentials:
      sink.api === 'instance'
        ? `${at}.developerToken`
        : `${at}.clientId and ${at}.clientSecret (a client with the "data" scope)`,
    base: sink.api === 'instance' ? `${at}.instanceUrl` : `${at}.apiBase`,
    permission: "the client's (or token's) user needs the right to manage DataSets and streams",
  }
}

interface Client {
  http: VendorHttp
  streamsUrl: string
  api: ReturnType<typeof domoApiOf>
  headers(): Promise<Record<string, string>>
}

function client(ctx: ConnectContext, name: string, sink: DomoSinkConfig): Client {
  const at = `sinks.${name}`
  const httpClient = new HttpClient({ timeoutMs: VENDOR_TIMEOUT_MS, connections: 2 })
  let streamsUrl: string
  let oauth: ReturnType<typeof domoOAuth>
  try {
    streamsUrl = domoStreamsUrl(sink, at)
    oauth = domoOAuth(sink, at, httpClient, VENDOR_TIMEOUT_MS)
  } catch (err) {
    void httpClient.close()
    throw new ConnectProblem((err as Error).message)
  }
  const http = new VendorHttp(
    profileOf(name, sink),
    ctx.dryRun,
    [sink.clientSecret, sink.developerToken],
    httpClient,
  )
  let cached: Record<string, string> | undefined
  return {
    http,
    streamsUrl,
    api: domoApiOf(sink),
    headers: async () => {
      cached ??= oauth
        ? {
            authorization: `bearer ${await oauthToken(http, oauth, sink.tokenUrl, 'GET', { grant_type: 'client_credentials', scope: 'data' })}`,
          }
        : { [DOMO_DEVELOPER_TOKEN_HEADER]: sink.developerToken! }
      return cached
    },
  }
}

function urlOf(c: Client, route: Route | string): URL {
  return new URL(c.streamsUrl + (typeof route === 'string' ? route : route.path))
}

function domoSink(ctx: ConnectContext, name: string): DomoSinkConfig {
  return ctx.config.sinks[name] as DomoSinkConfig
}

/** The config value of a Domo id: a number when it is one (the schema takes both). */
function streamIdValue(id: string): number | string {
  return /^\d{1,15}$/.test(id) ? Number(id) : id
}

/** Finds the sink's stream by dataset name or creates it, and writes its id into the sink as streamId. */
export async function connectDomo(ctx: ConnectContext, name: string): Promise<ConnectReport> {
  const sink = domoSink(ctx, name)
  const c = client(ctx, name, sink)
  const dataset = sink.create?.name ?? name
  const report: ConnectReport = {
    vendor: 'domo',
    kind: 'sink',
    name,
    dryRun: ctx.dryRun,
    action: 'unchanged',
    changes: [],
    notes: [],
    requests: c.http.requests,
  }
  try {
    if (!ctx.dryRun) await ctx.store.check(name)
    const headers = await c.headers()
    const ledger = await ctx.ledger.get('domo', 'sink', name)
    if (sink.streamId !== undefined) {
      const id = String(sink.streamId)
      const answer = await c.http.read(
        { method: 'GET', url: urlOf(c, `/${encodeURIComponent(id)}`), headers },
        [404],
      )
      if (answer.status !== 404) {
        report.vendorId = id
        if (!ctx.dryRun && ledger?.vendorId !== id)
          await ctx.ledger.put({ vendor: 'domo', kind: 'sink', name, vendorId: id, created: false })
        return report
      }
      report.notes.push(
        `the stream ${id} in streamId is gone at Domo: finding or creating one for dataset "${dataset}"`,
      )
    }
    const search = await c.http.read({ method: 'GET', url: urlOf(c, c.api.search(dataset)), headers }, [404])
    const matches = search.status === 404 ? [] : domoSearchMatches(c.api, search.json, dataset)
    if (matches.length > 1)
      throw new ConnectProblem(
        `${matches.length} Domo streams have a dataset named "${dataset}" (ids ${matches.map((m) => m.id).join(', ')}); set sinks.${name}.streamId to the one to use`,
        409,
        'ambiguous',
      )
    let id = matches[0]?.id
    let created = false
    if (id === undefined) {
      const columns = domoSchemaColumns(sink)
      const body = c.api.create({ name: dataset, ...(sink.create ?? {}) }, columns, sink.updateMethod)
      const answer = await c.http.write({ method: 'POST', url: urlOf(c, ''), headers, body })
      report.action = 'created'
      created = true
      if (answer) {
        id = idOf(isObject(answer.json) ? answer.json.id : undefined)
        if (id === undefined)
          throw new VendorError(
            'domo',
            `POST ${new URL(c.streamsUrl).pathname}`,
            answer.status,
            'the answer has no stream "id"',
            `Unexpected answer from Domo: look for a new stream of dataset "${dataset}" before running again.`,
            'Domo',
          )
      }
      if (c.api.schema) {
        const { route, body: schema } = c.api.schema(id ?? '{STREAM_ID}', columns)
        await c.http.write({ method: route.method, url: urlOf(c, route), headers, body: schema })
      }
      if (id === undefined) {
        report.changes.push('streamId')
        report.config = { streamId: '(the id of the new stream)', create: null }
        return report
      }
    } else report.action = 'updated'
    report.vendorId = id
    report.changes.push('streamId')
    report.config = { streamId: streamIdValue(id), ...(sink.create !== undefined ? { create: null } : {}) }
    if (ctx.dryRun) return report
    await ctx.ledger.put({ vendor: 'domo', kind: 'sink', name, vendorId: id, created })
    await ctx.store.patchSink(name, report.config)
    return report
  } finally {
    await c.http.close()
  }
}

/** Removes streamId from the sink; deletes the stream at Domo only when connect created it. */
export async function disconnectDomo(ctx: ConnectContext, name: string): Promise<ConnectReport> {
  const sink = domoSink(ctx, name)
  const ledger = await ctx.ledger.get('domo', 'sink', name)
  const report: ConnectReport = {
    vendor: 'domo',
    kind: 'sink',
    name,
    dryRun: ctx.dryRun,
    action: 'absent',
    changes: [],
    notes: [],
    requests: [],
  }
  const configured = sink.streamId === undefined ? undefined : String(sink.streamId)
  if (sink.create !== undefined && configured === undefined)
    report.notes.push(
      `the sink finds or creates its stream by create.name ("${sink.create.name}") at run time: remove create to disconnect it`,
    )
  if (!ctx.dryRun && configured !== undefined) await ctx.store.check(name)
  const ours = ledger?.created && (configured === undefined || configured === ledger.vendorId)
  if (ours) {
    const c = client(ctx, name, sink)
    report.requests = c.http.requests
    try {
      const answer = await c.http.write(
        {
          method: 'DELETE',
          url: urlOf(c, `/${encodeURIComponent(ledger.vendorId)}`),
          headers: await c.headers(),
        },
        [404],
      )
      report.vendorId = ledger.vendorId
      report.action = answer?.status === 404 ? 'absent' : 'deleted'
      report.notes.push('the dataset stays in Domo (deleting a stream keeps its dataset)')
    } finally {
      await c.http.close()
    }
  } else if (configured !== undefined) {
    report.vendorId = configured
    report.notes.push(`the Domo stream ${configured} was not made by streamgate connect: it stays at Domo`)
  }
  if (configured !== undefined) {
    report.action = 'deleted'
    report.changes.push('streamId')
    report.config = { streamId: null }
    if (!ctx.dryRun) await ctx.store.patchSink(name, { streamId: null })
  }
  if (!ctx.dryRun) await ctx.ledger.remove('domo', 'sink', name)
  return report
}

/** Each domo sink and its stream at Domo. */
export async function listDomo(ctx: ConnectContext): Promise<ConnectionRow[]> {
  const rows: ConnectionRow[] = []
  for (const [name, config] of Object.entries(ctx.config.sinks)) {
    if (config.type !== 'domo') continue
    const local = { vendor: 'domo' as const, kind: 'sink' as const, name }
    if (config.streamId === undefined) {
      rows.push({
        ...local,
        matches: config.create ? null : false,
        differences: [],
        detail: config.create
          ? `finds or creates the stream of dataset "${config.create.name}" at run time`
          : `not connected: run streamgate connect domo ${name}`,
      })
      continue
    }
    const id = String(config.streamId)
    try {
      const c = client({ ...ctx, dryRun: false }, name, config)
      try {
        const answer = await c.http.read(
          { method: 'GET', url: urlOf(c, `/${encodeURIComponent(id)}`), headers: await c.headers() },
          [404],
        )
        if (answer.status === 404) {
          rows.push({
            ...local,
            vendorId: id,
            matches: false,
            differences: [],
            detail: `stream ${id} not found at Domo`,
          })
          continue
        }
        const doc = isObject(answer.json) ? answer.json : {}
        const dataset = c.api.datasetName(doc)
        rows.push({
          ...local,
          vendorId: id,
          ...(typeof doc.updateMethod === 'string' ? { status: doc.updateMethod } : {}),
          matches: true,
          differences: [],
          ...(typeof dataset === 'string' ? { detail: `dataset "${dataset}"` } : {}),
        })
      } finally {
        await c.http.close()
      }
    } catch (err) {
      if (!(err instanceof ConnectProblem) && !(err instanceof VendorError)) throw err
      rows.push({ ...local, vendorId: id, matches: null, differences: [], detail: err.message })
    }
  }
  return rows
}
