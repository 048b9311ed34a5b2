import type { AdobeSinkConfig } from '../config/types.js'
import { ADOBE_TOKEN_URL, parseInletUrl } from '../sinks/adobe/sink.js'
import { HttpClient } from '../sinks/http-client.js'
import { ClientCredentialsToken } from '../sinks/oauth.js'
import type { ConnectContext } from './context.js'
import type { ConnectionRow, ConnectReport } from './plan.js'
import { oauthToken } from './tokens.js'
import {
  apiUrl,
  ConnectProblem,
  idText,
  isObject,
  VendorError,
  VendorHttp,
  VENDOR_TIMEOUT_MS,
  type VendorAnswer,
  type VendorProfile,
} from './vendor-http.js'

// Adobe Experience Platform "Create a streaming connection" through Flow Service (vendor-docs/003):
//   POST <platform>/data/foundation/flowservice/connections        → 201 {"id", "etag"}
//        {"name", "providerId": "521eee4d-8cbe-4906-bb48-fb6bd4450033", "description",
//         "connectionSpec": {"id": "bc7b00d6-623a-4dfc-9fdb-f1240aeadaeb", "version": "1.0"},
//         "auth": {"specName": "Streaming Connection",
//                  "params": {"sourceId", "dataType": "xdm", "name", "authenticationRequired": true?}}}
//   GET  <platform>/data/foundation/flowservice/connections/{id}   → {"items": [{…, "auth": {"params":
//        {"inletUrl", "inletId", …}}, "state", …}]}
// with `Authorization: Bearer <token>`, `x-api-key`, `x-gw-ims-org-id`, `x-sandbox-name` (and Content-Type
// with a body). The connection is authenticated (authenticationRequired: true) when the sink has `auth`,
// as the sink then sends a token to the inlet. Credentials are the sink's own: its static token or its
// OAuth client credentials (Adobe IMS), its apiKey (else the OAuth client id) and imsOrgId; sandboxName
// defaults to "prod", Platform's default production sandbox. A sink without `auth` (an unauthenticated
// inlet) has no token of its own for Flow Service: ADOBE_ACCESS_TOKEN is read from the environment then.
//
// The inletUrl read from the connection is written into the sink's config through the management API's
// store (src/connect/config-store.ts), and the connection id into the ledger (src/connect/ledger.ts):
// 003 documents no call that lists or finds connections, so a re-run reads the remembered connection by
// id instead of creating another. Nor does it document a delete: `disconnect adobe` removes inletUrl from
// the sink (which then holds its records as not connected) and leaves the connection at Adobe, where a
// later connect finds and reuses it.
//
// ADOBE_PLATFORM_URL is the Platform base (default https://platform.adobe.io); `/data/foundation` is added
// unless it already ends with it.

export const ADOBE_DEFAULT_PLATFORM_URL = 'https://platform.adobe.io'
/** 003: the provider and connection specification of streaming (HTTP API) connections. */
export const ADOBE_STREAMING_PROVIDER_ID = '521eee4d-8cbe-4906-bb48-fb6bd4450033'
export const ADOBE_STREAMING_CONNECTION_SPEC = { id: 'bc7b00d6-623a-4dfc-9fdb-f1240aeadaeb', version: '1.0' }
/** Platform's default production sandbox, sent when the sink names none (003: every call needs one). */
export const ADOBE_DEFAULT_SANDBOX = 'prod'

export interface FlowConnectionBody {
  name: string
  providerId: string
  description: string
  connectionSpec: { id: string; version: string }
  auth: {
    specName: 'Streaming Connection'
    params: { sourceId: string; dataType: 'xdm'; name: string; authenticationRequired?: true }
  }
}

/** The streaming connection a sink wants. */
export function adobeConnectionBody(name: string, sink: AdobeSinkConfig): FlowConnectionBody {
  const label = `streamgate ${name}`
  return {
    name: label,
    providerId: ADOBE_STREAMING_PROVIDER_ID,
    description: `Streaming connection of the streamgate sink "${name}"`,
    connectionSpec: { ...ADOBE_STREAMING_CONNECTION_SPEC },
    auth: {
      specName: 'Streaming Connection',
      params: {
        sourceId: `streamgate-${name}`,
        dataType: 'xdm',
        name: label,
        ...(sink.auth ? { authenticationRequired: true as const } : {}),
      },
    },
  }
}

/** The connection fields an answer of GET …/connections/{id} holds (its `items[0]`, or the object itself). */
export function readConnection(doc: unknown): {
  inletUrl: string | undefined
  state: string | undefined
  authenticationRequired: boolean | undefined
} {
  const items = isObject(doc) && Array.isArray(doc.items) ? doc.items : [doc]
  const item = items.find(isObject) ?? {}
  const auth = isObject(item.auth) ? item.auth : {}
  const params = isObject(auth.params) ? auth.params : {}
  return {
    inletUrl: typeof params.inletUrl === 'string' ? params.inletUrl : undefined,
    state: typeof item.state === 'string' ? item.state : undefined,
    authenticationRequired:
      typeof params.authenticationRequired === 'boolean' ? params.authenticationRequired : undefined,
  }
}

interface Client {
  http: VendorHttp
  collection: URL
  headers(): Promise<Record<string, string>>
}

function client(ctx: ConnectContext, name: string, sink: AdobeSinkConfig): Client {
  const at = `sinks.${name}`
  const auth = sink.auth
  const profile: VendorProfile = {
    vendor: 'adobe',
    label: 'Adobe Flow Service',
    credentials: auth
      ? `${at}.auth (its token, or its OAuth client credentials for Adobe IMS), ${at}.apiKey and ${at}.imsOrgId`
      : `ADOBE_ACCESS_TOKEN, ${at}.apiKey and ${at}.imsOrgId`,
    base: 'ADOBE_PLATFORM_URL',
    permission:
      'the Developer Console project needs the Experience Platform API with a product profile that may manage sources in this sandbox',
  }
  const apiKey = sink.apiKey ?? (auth && 'clientId' in auth ? auth.clientId : undefined)
  if (!apiKey)
    throw new ConnectProblem(
      `${at}.apiKey: Flow Service needs x-api-key (the client id of your Adobe Developer Console project)`,
    )
  if (!sink.imsOrgId)
    throw new ConnectProblem(`${at}.imsOrgId: Flow Service needs x-gw-ims-org-id (your IMS organization id)`)
  const envToken = ctx.env.ADOBE_ACCESS_TOKEN
  if (!auth && !envToken)
    throw new ConnectProblem(
      `${at} has no auth (an unauthenticated inlet), so it has no token for Flow Service: export ADOBE_ACCESS_TOKEN (an IMS access token), or configure ${at}.auth for an authenticated inlet`,
    )
  const secrets = [envToken, apiKey]
  if (auth && 'token' in auth) secrets.push(auth.token)
  if (auth && 'clientSecret' in auth) secrets.push(auth.clientSecret)
  const httpClient = new HttpClient({ timeoutMs: VENDOR_TIMEOUT_MS, connections: 2 })
  const http = new VendorHttp(profile, ctx.dryRun, secrets, httpClient)
  const tokenUrl = auth && 'clientId' in auth ? (auth.tokenUrl ?? ADOBE_TOKEN_URL) : undefined
  const oauth =
    auth && 'clientId' in auth
      ? new ClientCredentialsToken(
          {
            tokenUrl: tokenUrl!,
            clientId: auth.clientId,
            clientSecret: auth.clientSecret,
            ...(auth.scopes ? { scopes: auth.scopes } : {}),
            style: 'form',
          },
          httpClient,
          VENDOR_TIMEOUT_MS,
        )
      : undefined
  const collection = apiUrl(
    ctx.env.ADOBE_PLATFORM_URL || ADOBE_DEFAULT_PLATFORM_URL,
    '/data/foundation',
    '/flowservice/connections',
    'ADOBE_PLATFORM_URL',
  )
  return {
    http,
    collection,
    headers: async () => {
      const token = oauth
        ? await oauthToken(http, oauth, tokenUrl!, 'POST')
        : auth && 'token' in auth
          ? auth.token
          : envToken!
      return {
        authorization: `Bearer ${token}`,
        'x-api-key': apiKey,
        'x-gw-ims-org-id': sink.imsOrgId!,
        'x-sandbox-name': sink.sandboxName ?? ADOBE_DEFAULT_SANDBOX,
      }
    },
  }
}

function itemUrl(c: Client, id: string): URL {
  return new URL(`${c.collection.href}/${encodeURIComponent(id)}`)
}

function adobeSink(ctx: ConnectContext, name: string): AdobeSinkConfig {
  return ctx.config.sinks[name] as AdobeSinkConfig
}

/**
 * Creates the sink's streaming connection (or reads the one made before), and writes its inletUrl into
 * the sink's config.
 */
export async function connectAdobe(ctx: ConnectContext, name: string): Promise<ConnectReport> {
  const sink = adobeSink(ctx, name)
  const report: ConnectReport = {
    vendor: 'adobe',
    kind: 'sink',
    name,
    dryRun: ctx.dryRun,
    action: 'unchanged',
    changes: [],
    notes: [],
    requests: [],
  }
  const ledger = await ctx.ledger.get('adobe', 'sink', name)
  if (!ledger && sink.inletUrl) {
    report.notes.push(
      'inletUrl is set and was not made by streamgate connect: nothing to do (remove it to have connect create a streaming connection)',
    )
    return report
  }
  const c = client(ctx, name, sink)
  report.requests = c.http.requests
  try {
    if (!ctx.dryRun) await ctx.store.check(name)
    const headers = await c.headers()
    if (sink.sandboxName === undefined)
      report.notes.push(`no sandboxName: the "${ADOBE_DEFAULT_SANDBOX}" sandbox is used`)
    let id = ledger?.vendorId
    let answer: VendorAnswer | undefined
    if (id !== undefined) {
      answer = await c.http.read({ method: 'GET', url: itemUrl(c, id), headers }, [404])
      if (answer.status === 404) {
        report.notes.push(`the streaming connection ${id} made before is gone at Adobe: creating a new one`)
        id = undefined
        answer = undefined
      }
    }
    if (id === undefined) {
      const body = adobeConnectionBody(name, sink)
      const created = await c.http.write({ method: 'POST', url: c.collection, headers, body })
      report.action = 'created'
      if (!created) {
        // Dry run: the read that would follow, with the id the create would give.
        await c.http.write({ method: 'GET', url: itemUrl(c, '{CONNECTION_ID}'), headers })
        report.changes.push('inletUrl')
        report.config = { inletUrl: '(the inletUrl of the new connection)' }
        return report
      }
      id = idText(isObject(created.json) ? created.json.id : undefined)
      if (id === undefined)
        throw new VendorError(
          'adobe',
          `POST ${c.collection.pathname}`,
          created.status,
          'the answer has no connection "id"',
          'Unexpected answer from Adobe Flow Service: look for a new streaming connection in the Sources UI.',
          c.http.profile.label,
        )
      // Remembered at once: should reading the inlet fail, the next run reads this connection again.
      await ctx.ledger.put({ vendor: 'adobe', kind: 'sink', name, vendorId: id, created: true })
      answer = await c.http.read({ method: 'GET', url: itemUrl(c, id), headers })
    }
    report.vendorId = id
    const connection = readConnection(answer!.json)
    const wantsAuth = sink.auth !== undefined
    if (connection.authenticationRequired !== undefined && connection.authenticationRequired !== wantsAuth)
      report.notes.push(
        `the connection is ${connection.authenticationRequired ? '' : 'not '}authenticated but the sink ${wantsAuth ? 'has' : 'has no'} auth: run disconnect, delete the connection in Adobe and connect again`,
      )
    const inletUrl = connection.inletUrl
    if (!inletUrl || !parseInletUrl(inletUrl))
      throw new VendorError(
        'adobe',
        `GET ${itemUrl(c, id).pathname}`,
        answer!.status,
        inletUrl
          ? `auth.params.inletUrl is not an inlet URL: "${inletUrl}"`
          : 'the connection has no auth.params.inletUrl yet',
        `The streaming endpoint may still be provisioning: run \`streamgate connect adobe ${name}\` again in a minute (it reuses connection ${id}).`,
        c.http.profile.label,
      )
    if (sink.inletUrl !== inletUrl) {
      report.changes.push('inletUrl')
      report.config = { inletUrl }
      if (report.action === 'unchanged') report.action = 'updated'
      if (!ctx.dryRun) await ctx.store.patchSink(name, { inletUrl })
    }
    return report
  } finally {
    await c.http.close()
  }
}

/**
 * Removes inletUrl from the sink (it holds its records as not connected from then on). The connection
 * stays at Adobe (003 documents no delete); the ledger keeps its id, so a later connect reuses it.
 */
export async function disconnectAdobe(ctx: ConnectContext, name: string): Promise<ConnectReport> {
  const sink = adobeSink(ctx, name)
  const ledger = await ctx.ledger.get('adobe', 'sink', name)
  const report: ConnectReport = {
    vendor: 'adobe',
    kind: 'sink',
    name,
    dryRun: ctx.dryRun,
    action: 'absent',
    changes: [],
    notes: [],
    requests: [],
  }
  if (ledger) {
    report.vendorId = ledger.vendorId
    report.notes.push(
      `the streaming connection ${ledger.vendorId} stays at Adobe (the Flow Service calls streamgate follows have no delete): a later connect reuses it; delete it in Experience Platform → Sources to remove it`,
    )
  }
  if (sink.inletUrl === undefined) return report
  report.action = 'deleted'
  report.changes.push('inletUrl')
  report.config = { inletUrl: null }
  if (!ctx.dryRun) {
    await ctx.store.check(name)
    await ctx.store.patchSink(name, { inletUrl: null })
  }
  return report
}

/** Each adobe sink: its connection (when connect made one) and whether the inlet is the sink's. */
export async function listAdobe(ctx: ConnectContext): Promise<ConnectionRow[]> {
  const rows: ConnectionRow[] = []
  for (const [name, config] of Object.entries(ctx.config.sinks)) {
    if (config.type !== 'adobe') continue
    const local = { vendor: 'adobe' as const, kind: 'sink' as const, name }
    const ledger = await ctx.ledger.get('adobe', 'sink', name)
    if (!ledger) {
      rows.push(
        config.inletUrl
          ? {
              ...local,
              url: config.inletUrl,
              matches: null,
              differences: [],
              detail: 'inletUrl set in the config (not made by streamgate connect)',
            }
          : {
              ...local,
              matches: false,
              differences: [],
              detail: `not connected: run streamgate connect adobe ${name}`,
            },
      )
      continue
    }
    try {
      const c = client({ ...ctx, dryRun: false }, name, config)
      try {
        const answer = await c.http.read(
          { method: 'GET', url: itemUrl(c, ledger.vendorId), headers: await c.headers() },
          [404],
        )
        if (answer.status === 404) {
          rows.push({
            ...local,
            vendorId: ledger.vendorId,
            matches: false,
            differences: [],
            detail: 'the connection made by connect is gone at Adobe',
          })
          continue
        }
        const connection = readConnection(answer.json)
        const differences = connection.inletUrl === config.inletUrl ? [] : ['inletUrl']
        rows.push({
          ...local,
          vendorId: ledger.vendorId,
          ...(connection.state !== undefined ? { status: connection.state } : {}),
          ...(connection.inletUrl !== undefined ? { url: connection.inletUrl } : {}),
          matches: differences.length === 0,
          differences,
          ...(config.inletUrl === undefined
            ? { detail: `not connected: run streamgate connect adobe ${name}` }
            : {}),
        })
      } finally {
        await c.http.close()
      }
    } catch (err) {
      if (!(err instanceof ConnectProblem) && !(err instanceof VendorError)) throw err
      rows.push({ ...local, vendorId: ledger.vendorId, matches: null, differences: [], detail: err.message })
    }
  }
  return rows
}
