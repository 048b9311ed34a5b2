// A fake of Adobe Experience Platform's Flow Service, as far as /work/shared/vendor-docs/003 ("Create a
// streaming connection using the API") documents it, because no Adobe server can run here:
//   POST /data/foundation/flowservice/connections        {"name", "providerId", "description",
//        "connectionSpec": {"id", "version"}, "auth": {"specName": "Streaming Connection", "params":
//        {"sourceId", "dataType": "xdm", "name", "authenticationRequired"?}}} → 201 {"id", "etag"}
//   GET  /data/foundation/flowservice/connections/{id}   → 200 {"items": [{…, "auth": {"specName", "params":
//        {"sourceId", "inletUrl", "inletId", "dataType", "name"}}, "state": "enabled", …}]}
//   POST /ims/token/v3                                    an IMS-style client-credentials token endpoint
// Checked as 003 says: the provider id 521eee4d-8cbe-4906-bb48-fb6bd4450033, the connection spec
// bc7b00d6-623a-4dfc-9fdb-f1240aeadaeb version 1.0, specName "Streaming Connection", dataType "xdm",
// sourceId and name; the headers every Platform call needs: `Authorization: Bearer <token>`, `x-api-key`,
// `x-gw-ims-org-id`, `x-sandbox-name`, and `Content-Type: application/json` with a body.
// Not documented, so invented: the error answers (401 {"error_code": "401013", "message": "Oauth token is
// not valid"}, 403 for a wrong x-api-key, 400 problem bodies, 404 for an unknown connection), and
// `provisioningReads` (reads that show no inletUrl yet). The inlet URL is `<inletBase>/collection/<inletId>`,
// so a test can point it at the inlet fake (adobe-inlet.ts).

import { randomBytes, randomUUID } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import { isJsonRequest, isObject, VendorApiFake, type RecordedCall, type Reply } from './vendor-api.js'

export const PROVIDER_ID = '521eee4d-8cbe-4906-bb48-fb6bd4450033'
export const CONNECTION_SPEC_ID = 'bc7b00d6-623a-4dfc-9fdb-f1240aeadaeb'
const PREFIX = '/data/foundation/flowservice/connections'

export interface FlowConnection {
  id: string
  body: Record<string, unknown>
  inletId: string
  sandbox: string
}

export interface FlowServiceOptions {
  apiKey: string
  imsOrgId: string
  /** Client credentials the token endpoint accepts. */
  clientId?: string
  clientSecret?: string
  /** Where inlet URLs point (default https://dcs.adobedc.net). */
  inletBase?: string
  /** The inlet id of the next connection (default random). */
  inletId?: string
}

export class FlowServiceFake extends VendorApiFake {
  readonly connections = new Map<string, FlowConnection>()
  private readonly tokens = new Set<string>()
  /** Reads of a connection that show no inletUrl yet (a streaming endpoint still provisioning). */
  provisioningReads = 0

  constructor(private readonly options: FlowServiceOptions) {
    super()
  }

  static start(options: FlowServiceOptions): Promise<FlowServiceFake> {
    return new FlowServiceFake(options).listen()
  }

  get tokenUrl(): string {
    return `${this.url}/ims/token/v3`
  }

  /** An access token the fake accepts (for sinks with a static token). */
  issueToken(): string {
    const token = `ims-${randomUUID()}`
    this.tokens.add(token)
    return token
  }

  protected errorBody(status: number): unknown {
    return {
      type: 'https://ns.adobe.com/aep/errors/FLOW-injected',
      title: 'Injected',
      status,
      detail: `injected failure ${status}`,
    }
  }

  protected handle(call: RecordedCall, req: IncomingMessage, reply: Reply): void {
    const url = new URL(call.path, 'http://x')
    if (url.pathname === '/ims/token/v3') return this.token(call, reply)
    if (url.pathname !== PREFIX && !url.pathname.startsWith(`${PREFIX}/`))
      return reply(404, { title: 'Not Found', status: 404, detail: `no route ${url.pathname}` })
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1]
    if (!token || !this.tokens.has(token))
      return reply(401, { error_code: '401013', message: 'Oauth token is not valid' })
    if (req.headers['x-api-key'] !== this.options.apiKey)
      return reply(403, { error_code: '403003', message: 'Api Key is invalid' })
    if (req.headers['x-gw-ims-org-id'] !== this.options.imsOrgId)
      return reply(403, { error_code: '403027', message: 'User is not part of the IMS org' })
    const sandbox = req.headers['x-sandbox-name']
    if (typeof sandbox !== 'string' || sandbox === '')
      return reply(400, { title: 'Bad Request', status: 400, detail: 'x-sandbox-name header is required' })
    const rest = url.pathname.slice(PREFIX.length)
    if (rest === '' || rest === '/') {
      if (call.method !== 'POST') return reply(405, { title: 'Method Not Allowed', status: 405 })
      if (!isJsonRequest(req))
        return reply(415, {
          title: 'Unsupported Media Type',
          status: 415,
          detail: 'Content-Type must be application/json',
        })
      const problem = check(call.body)
      if (problem)
        return reply(400, {
          type: 'https://ns.adobe.com/aep/errors/FLOW-1103-400',
          title: 'Bad Request',
          status: 400,
          detail: problem,
        })
      const id = randomUUID()
      const inletId = this.options.inletId ?? randomBytes(32).toString('hex')
      this.connections.set(id, { id, body: call.body as Record<string, unknown>, inletId, sandbox })
      return reply(201, { id, etag: `"${randomUUID()}"` })
    }
    const connection = this.connections.get(decodeURIComponent(rest.slice(1)))
    if (!connection || connection.sandbox !== sandbox)
      return reply(404, { title: 'Not Found', status: 404, detail: `connection ${rest.slice(1)} not found` })
    if (call.method !== 'GET') return reply(405, { title: 'Method Not Allowed', status: 405 })
    return reply(200, { items: [this.view(connection)] })
  }

  private view(c: FlowConnection): Record<string, unknown> {
    const auth = c.body.auth as { specName: string; params: Record<string, unknown> }
    const provisioning = this.provisioningReads > 0
    if (provisioning) this.provisioningReads--
    const inletUrl = `${this.options.inletBase ?? 'https://dcs.adobedc.net'}/collection/${c.inletId}`
    return {
      createdAt: 1583971856947,
      updatedAt: 1583971856947,
      createdBy: this.options.apiKey,
      updatedBy: this.options.apiKey,
      id: c.id,
      name: c.body.name,
      description: c.body.description,
      connectionSpec: c.body.connectionSpec,
      state: 'enabled',
      auth: {
        specName: auth.specName,
        params: { ...auth.params, ...(provisioning ? {} : { inletUrl, inletId: c.inletId }) },
      },
      version: '"56008aee-0000-0200-0000-5e697e150000"',
      etag: '"56008aee-0000-0200-0000-5e697e150000"',
    }
  }

  private token(call: RecordedCall, reply: Reply): void {
    const form = new URLSearchParams(call.raw)
    if (
      call.method !== 'POST' ||
      form.get('grant_type') !== 'client_credentials' ||
      form.get('client_id') !== this.options.clientId ||
      form.get('client_secret') !== this.options.clientSecret
    )
      return reply(401, { error: 'invalid_client', error_description: 'invalid client credentials' })
    const token = this.issueToken()
    reply(200, { access_token: token, token_type: 'bearer', expires_in: 86399 })
  }
}

/** What is wrong with a create body, by 003's request example and property table. */
function check(body: unknown): string | undefined {
  if (!isObject(body)) return 'the body must be a JSON object'
  if (typeof body.name !== 'string' || body.name === '') return 'name is required'
  if (body.providerId !== PROVIDER_ID) return `providerId must be ${PROVIDER_ID} for streaming connections`
  const spec = body.connectionSpec
  if (!isObject(spec) || spec.id !== CONNECTION_SPEC_ID || spec.version !== '1.0')
    return `connectionSpec must be {"id": "${CONNECTION_SPEC_ID}", "version": "1.0"}`
  const auth = body.auth
  if (!isObject(auth) || auth.specName !== 'Streaming Connection')
    return 'auth.specName must be "Streaming Connection"'
  const params = auth.params
  if (!isObject(params)) return 'auth.params is required'
  if (typeof params.sourceId !== 'string' || params.sourceId === '') return 'auth.params.sourceId is required'
  if (params.dataType !== 'xdm') return 'auth.params.dataType must be xdm'
  if (typeof params.name !== 'string' || params.name === '') return 'auth.params.name is required'
  if (params.authenticationRequired !== undefined && typeof params.authenticationRequired !== 'boolean')
    return 'auth.params.authenticationRequired must be a boolean'
  return undefined
}
