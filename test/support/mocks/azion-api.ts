// A fake of Azion's Data Streaming API v3, built from /work/shared/vendor-docs/001, because no Azion server
// can run here:
//   GET    /data_streaming/streamings         {"results": [streaming, …], "schema_version": 3}
//   POST   /data_streaming/streamings         201 {"results": streaming, "schema_version": 3}
//   GET    /data_streaming/streamings/:id     200 {"results": streaming, …}
//   PATCH  /data_streaming/streamings/:id     200 (PUT too): the given fields replace the stored ones
//   DELETE /data_streaming/streamings/:id     204
// Every call needs `Accept: application/json; version=3` (else 406) and `Authorization: Token <token>`
// (001's examples write "Token" and "token"; else 401); a body needs `Content-Type: application/json`.
// Checked as 001 lists them: name (string), template_id (number) or template_model (string), domain_ids
// (numbers), data_source (http, waf, cells_console; rtm_activity from AZ-OAS3), endpoint by endpoint_type;
// a `standard` endpoint needs url, may have payload_format, log_line_separator and up to 5 headers
// (a {name: value} object, 001 §2b) — else 400. A streaming is shown as 001's answers show it: id, name,
// template_id (or template_model), data_source (default "http"), active (default true), domain_ids,
// endpoint with its header values in clear (unless `maskHeaders`).
// Not documented, so invented: the error bodies (Django REST style {"detail": …} and {"field": [msgs]}).

import type { IncomingMessage } from 'node:http'
import { isJsonRequest, isObject, VendorApiFake, type RecordedCall, type Reply } from './vendor-api.js'

const PREFIX = '/data_streaming/streamings'
const DATA_SOURCES = ['http', 'waf', 'cells_console', 'rtm_activity']
const ENDPOINT_TYPES = [
  'standard',
  'kafka',
  's3',
  'big_query',
  'elasticsearch',
  'aws_kinesis_firehose',
  'datadog',
  'qradar',
  'splunk',
]

export interface AzionStreaming {
  id: number
  name: string
  template_id?: number
  template_model?: string
  data_source: string
  active: boolean
  domain_ids: number[]
  endpoint: Record<string, unknown>
}

export interface AzionApiOptions {
  token: string
  /** Show header values as "***" (001 shows them in clear). */
  maskHeaders?: boolean
}

export class AzionApiFake extends VendorApiFake {
  readonly streamings = new Map<number, AzionStreaming>()
  private nextId = 56

  constructor(private readonly options: AzionApiOptions) {
    super()
  }

  static start(options: AzionApiOptions): Promise<AzionApiFake> {
    return new AzionApiFake(options).listen()
  }

  add(streaming: Omit<AzionStreaming, 'id'>): AzionStreaming {
    const created = { ...streaming, id: this.nextId++ }
    this.streamings.set(created.id, created)
    return created
  }

  protected errorBody(status: number): unknown {
    return { detail: `injected failure ${status}` }
  }

  protected handle(call: RecordedCall, req: IncomingMessage, reply: Reply): void {
    const url = new URL(call.path, 'http://x')
    if (url.pathname !== PREFIX && !url.pathname.startsWith(`${PREFIX}/`))
      return reply(404, { detail: 'Not found.' })
    const accept = (req.headers.accept ?? '').replace(/\s/g, '')
    if (!accept.includes('application/json') || !accept.includes('version=3'))
      return reply(406, { detail: 'Could not satisfy the request Accept header.' })
    const token = /^token (.+)$/i.exec(req.headers.authorization ?? '')?.[1]
    if (token !== this.options.token) return reply(401, { detail: 'Invalid token.' })
    const rest = url.pathname.slice(PREFIX.length).replace(/\/$/, '')
    if (rest === '') {
      if (call.method === 'GET')
        return reply(200, {
          results: [...this.streamings.values()].map((s) => this.view(s)),
          schema_version: 3,
        })
      if (call.method !== 'POST') return reply(405, { detail: `Method "${call.method}" not allowed.` })
      if (!isJsonRequest(req)) return reply(415, { detail: 'Unsupported media type.' })
      const errors = this.check(call.body, true)
      if (errors) return reply(400, errors)
      const b = call.body as Record<string, unknown>
      const created = this.add({
        name: b.name as string,
        ...(b.template_id !== undefined ? { template_id: b.template_id as number } : {}),
        ...(b.template_model !== undefined ? { template_model: b.template_model as string } : {}),
        data_source: (b.data_source as string | undefined) ?? 'http',
        active: (b.active as boolean | undefined) ?? true,
        domain_ids: b.domain_ids as number[],
        endpoint: b.endpoint as Record<string, unknown>,
      })
      return reply(201, { results: this.view(created), schema_version: 3 })
    }
    const id = Number(rest.slice(1))
    const streaming = this.streamings.get(id)
    if (!streaming) return reply(404, { detail: 'Not found.' })
    if (call.method === 'GET') return reply(200, { results: this.view(streaming), schema_version: 3 })
    if (call.method === 'DELETE') {
      this.streamings.delete(id)
      return reply(204)
    }
    if (call.method !== 'PATCH' && call.method !== 'PUT')
      return reply(405, { detail: `Method "${call.method}" not allowed.` })
    if (!isJsonRequest(req)) return reply(415, { detail: 'Unsupported media type.' })
    const errors = this.check(call.body, call.method === 'PUT')
    if (errors) return reply(400, errors)
    const patch = call.body as Record<string, unknown>
    for (const key of ['name', 'data_source', 'active', 'domain_ids', 'endpoint'] as const)
      if (patch[key] !== undefined) Object.assign(streaming, { [key]: patch[key] })
    if (patch.template_id !== undefined) {
      streaming.template_id = patch.template_id as number
      delete streaming.template_model
    }
    if (patch.template_model !== undefined) {
      streaming.template_model = patch.template_model as string
      delete streaming.template_id
    }
    return reply(200, { results: this.view(streaming), schema_version: 3 })
  }

  /** Field errors of a create (`full`) or an edit, as {"field": ["message"]}; undefined when fine. */
  private check(body: unknown, full: boolean): Record<string, string[]> | undefined {
    if (!isObject(body)) return { non_field_errors: ['Invalid data. Expected a dictionary.'] }
    const errors: Record<string, string[]> = {}
    const known = ['name', 'template_id', 'template_model', 'data_source', 'domain_ids', 'endpoint', 'active']
    for (const key of Object.keys(body)) if (!known.includes(key)) errors[key] = ['Unknown field.']
    if ((full || body.name !== undefined) && (typeof body.name !== 'string' || body.name === ''))
      errors.name = ['This field is required.']
    if (full && body.template_id === undefined && body.template_model === undefined)
      errors.template_id = ['template_id or template_model is required.']
    if (body.template_id !== undefined && body.template_model !== undefined)
      errors.template_model = ['Use template_id or template_model, not both.']
    if (body.template_id !== undefined && typeof body.template_id !== 'number')
      errors.template_id = ['A valid integer is required.']
    if (body.template_model !== undefined && typeof body.template_model !== 'string')
      errors.template_model = ['Not a valid string.']
    if (body.data_source !== undefined && !DATA_SOURCES.includes(body.data_source as string))
      errors.data_source = [`${JSON.stringify(body.data_source)} is not a valid choice.`]
    if (
      (full || body.domain_ids !== undefined) &&
      (!Array.isArray(body.domain_ids) || !body.domain_ids.every((d) => typeof d === 'number'))
    )
      errors.domain_ids = ['A list of domain ids is required.']
    if (full || body.endpoint !== undefined) {
      const e = body.endpoint
      if (!isObject(e) || !ENDPOINT_TYPES.includes(e.endpoint_type as string))
        errors.endpoint = ['endpoint_type is required and must be a known type.']
      else if (e.endpoint_type === 'standard') {
        if (typeof e.url !== 'string' || !/^https?:\/\//.test(e.url))
          errors['endpoint.url'] = ['Enter a valid URL.']
        for (const key of ['payload_format', 'log_line_separator'])
          if (e[key] !== undefined && typeof e[key] !== 'string')
            errors[`endpoint.${key}`] = ['Not a valid string.']
        if (e.headers !== undefined) {
          if (!isObject(e.headers) || !Object.values(e.headers).every((v) => typeof v === 'string'))
            errors['endpoint.headers'] = ['Headers must be an object of strings.']
          else if (Object.keys(e.headers).length > 5)
            errors['endpoint.headers'] = ['Ensure this field has no more than 5 headers.']
        }
      }
    }
    return Object.keys(errors).length > 0 ? errors : undefined
  }

  private view(s: AzionStreaming): Record<string, unknown> {
    const endpoint = { ...s.endpoint }
    if (this.options.maskHeaders && isObject(endpoint.headers))
      endpoint.headers = Object.fromEntries(Object.keys(endpoint.headers).map((k) => [k, '***']))
    return { ...s, endpoint }
  }
}
