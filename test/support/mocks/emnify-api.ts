// A fake of emnify's Data Streamer API, built from /work/shared/vendor-docs/000 ("Data Streamer API") and
// the EM-OAS facts in vendor-formats.md §1.1, because no emnify server can run here:
//   GET    /api/v2/data_stream            the organisation's data streams (a JSON list)
//   GET    /api/v2/data_stream/{id}       one
//   POST   /api/v2/data_stream            create: {"data_stream_type": {"id": 1|2}, "destination":
//          {"connection_type", "credentials": {…}, "format": "Json"}, "filters"?: […]} (000's two examples)
//   PATCH  /api/v2/data_stream/{id}       update: the fields given replace the stored ones (000's example
//          {"status": {"id": 2}, "filters": []})
//   DELETE /api/v2/data_stream/{id}       delete
// Every call needs `Authorization: Bearer <token>` (000 "Authentication": a JWT), else 401; a body needs
// `Content-Type: application/json`, else 415. Checked as documented: data_stream_type.id 1 (usage) or 2
// (events); connection_type one of AwsKinesis, S3, RestAPI, KeenIO, Datadog, EventHubs, PubSub; RestAPI
// credentials need a `url`, `method` is POST (default), PUT or PATCH, `headers` a list of "name:value"
// strings; format "Json"; filters only on event streams, on the fields event_type_id and alert
// (filter_field_type), as {field, value} or {or: [...]} — anything else 422. Answers show a data stream as
// {id, status: {id, description}, data_stream_type: {id, description}, destination, filters}, header
// values masked ("name:***", EM-OAS: "Headers are masked in GET responses") unless `clearHeaders`.
// Not documented, so invented: the answer to a create (201 with the data stream, or an empty 201 with
// `emptyCreateAnswer`), to a delete (204), the error bodies ({"error_code", "error_token", "message"}).

import type { IncomingMessage } from 'node:http'
import { isJsonRequest, isObject, VendorApiFake, type RecordedCall, type Reply } from './vendor-api.js'

const PREFIX = '/api/v2/data_stream'
const CONNECTION_TYPES = ['AwsKinesis', 'S3', 'RestAPI', 'KeenIO', 'Datadog', 'EventHubs', 'PubSub']
const TYPE_NAMES: Record<number, string> = { 1: 'Usage Data', 2: 'Event Data' }
const STATUS_NAMES: Record<number, string> = { 1: 'Running', 2: 'Paused', 3: 'Error', 4: 'Pending' }
const FILTER_FIELDS = ['event_type_id', 'alert']

export interface EmnifyDataStream {
  id: number
  statusId: number
  typeId: number
  destination: {
    connection_type: string
    credentials: Record<string, unknown>
    format: string
  }
  filters: unknown[]
}

export interface EmnifyApiOptions {
  token: string
  /** Show header values in answers (emnify masks them). */
  clearHeaders?: boolean
  /** Answer a create with an empty 201 (the id must then be found by listing). */
  emptyCreateAnswer?: boolean
}

export class EmnifyApiFake extends VendorApiFake {
  readonly streams = new Map<number, EmnifyDataStream>()
  private nextId = 123

  constructor(private readonly options: EmnifyApiOptions) {
    super()
  }

  static start(options: EmnifyApiOptions): Promise<EmnifyApiFake> {
    return new EmnifyApiFake(options).listen()
  }

  /** A data stream made elsewhere (the Portal). */
  add(stream: Omit<EmnifyDataStream, 'id'>): EmnifyDataStream {
    const created = { ...stream, id: this.nextId++ }
    this.streams.set(created.id, created)
    return created
  }

  protected errorBody(status: number): unknown {
    return { error_code: status, error_token: 'injected', message: `injected failure ${status}` }
  }

  private error(reply: Reply, status: number, message: string): void {
    reply(status, { error_code: status, error_token: status === 401 ? 'unauthorized' : 'invalid', message })
  }

  protected handle(call: RecordedCall, req: IncomingMessage, reply: Reply): void {
    const url = new URL(call.path, 'http://x')
    if (url.pathname !== PREFIX && !url.pathname.startsWith(`${PREFIX}/`))
      return this.error(reply, 404, 'Not Found')
    if (req.headers.authorization !== `Bearer ${this.options.token}`)
      return this.error(reply, 401, 'Invalid or missing authentication token')
    const rest = url.pathname.slice(PREFIX.length)
    if (rest === '' || rest === '/') {
      if (call.method === 'GET')
        return reply(
          200,
          [...this.streams.values()].map((s) => this.view(s)),
        )
      if (call.method !== 'POST') return this.error(reply, 405, 'Method Not Allowed')
      if (!isJsonRequest(req)) return this.error(reply, 415, 'Content-Type must be application/json')
      const problem = this.check(call.body, true)
      if (problem) return this.error(reply, 422, problem)
      const body = call.body as Record<string, unknown>
      const created = this.add({
        statusId: 1,
        typeId: (body.data_stream_type as { id: number }).id,
        destination: normaliseDestination(body.destination as Record<string, unknown>),
        filters: (body.filters as unknown[] | undefined) ?? [],
      })
      return this.options.emptyCreateAnswer ? reply(201) : reply(201, this.view(created))
    }
    const id = Number(rest.slice(1))
    const stream = Number.isInteger(id) ? this.streams.get(id) : undefined
    if (!stream || rest.slice(1).includes('/'))
      return this.error(reply, 404, `DataStream ${rest.slice(1)} not found`)
    if (call.method === 'GET') return reply(200, this.view(stream))
    if (call.method === 'DELETE') {
      this.streams.delete(id)
      return reply(204)
    }
    if (call.method !== 'PATCH') return this.error(reply, 405, 'Method Not Allowed')
    if (!isJsonRequest(req)) return this.error(reply, 415, 'Content-Type must be application/json')
    const problem = this.check(call.body, false, stream)
    if (problem) return this.error(reply, 422, problem)
    const patch = call.body as Record<string, unknown>
    if (isObject(patch.status)) stream.statusId = patch.status.id as number
    if (isObject(patch.data_stream_type)) stream.typeId = patch.data_stream_type.id as number
    if (isObject(patch.destination)) stream.destination = normaliseDestination(patch.destination)
    if (Array.isArray(patch.filters)) stream.filters = patch.filters
    return reply(200, this.view(stream))
  }

  /** What is wrong with a create (`full`) or update body, as emnify's validation would say it. */
  private check(body: unknown, full: boolean, stored?: EmnifyDataStream): string | undefined {
    if (!isObject(body)) return 'the body must be a JSON object'
    const known = ['data_stream_type', 'destination', 'filters', 'status', 'name', 'relation_resolution']
    const unknown = Object.keys(body).filter((k) => !known.includes(k))
    if (unknown.length > 0) return `unknown field(s): ${unknown.join(', ')}`
    if (full || body.data_stream_type !== undefined) {
      const type = isObject(body.data_stream_type) ? body.data_stream_type.id : undefined
      if (type !== 1 && type !== 2) return 'data_stream_type.id must be 1 (usage) or 2 (events)'
    }
    if (body.status !== undefined) {
      const status = isObject(body.status) ? body.status.id : undefined
      if (status !== 1 && status !== 2) return 'status.id must be 1 or 2'
    }
    if (full || body.destination !== undefined) {
      const d = body.destination
      if (!isObject(d)) return 'destination is required'
      if (typeof d.connection_type !== 'string' || !CONNECTION_TYPES.includes(d.connection_type))
        return `destination.connection_type must be one of ${CONNECTION_TYPES.join(', ')}`
      if (d.format !== undefined && d.format !== 'Json') return 'destination.format must be "Json"'
      const c = d.credentials
      if (!isObject(c)) return 'destination.credentials is required'
      if (d.connection_type === 'RestAPI') {
        if (typeof c.url !== 'string' || !/^https?:\/\//.test(c.url))
          return 'destination.credentials.url must be a URL'
        if (c.method !== undefined && !['POST', 'PUT', 'PATCH'].includes(c.method as string))
          return 'destination.credentials.method must be POST, PUT or PATCH'
        if (
          c.headers !== undefined &&
          (!Array.isArray(c.headers) || !c.headers.every((h) => typeof h === 'string' && /^[^:]+:/.test(h)))
        )
          return 'destination.credentials.headers must be a list of "name:value" strings'
      }
    }
    if (body.filters !== undefined) {
      if (!Array.isArray(body.filters)) return 'filters must be a list'
      const typeId = isObject(body.data_stream_type) ? body.data_stream_type.id : stored?.typeId
      if (body.filters.length > 0 && typeId !== 2) return 'filters apply to event data streams only'
      const leaf = (f: unknown): boolean =>
        isObject(f) && typeof f.field === 'string' && FILTER_FIELDS.includes(f.field) && 'value' in f
      for (const f of body.filters)
        if (!leaf(f) && !(isObject(f) && Array.isArray(f.or) && f.or.every(leaf)))
          return `invalid filter ${JSON.stringify(f)}: fields are ${FILTER_FIELDS.join(', ')}`
    }
    return undefined
  }

  private view(s: EmnifyDataStream): Record<string, unknown> {
    const credentials = { ...s.destination.credentials }
    if (Array.isArray(credentials.headers) && !this.options.clearHeaders)
      credentials.headers = (credentials.headers as string[]).map((h) => `${h.slice(0, h.indexOf(':'))}:***`)
    return {
      id: s.id,
      status: { id: s.statusId, description: STATUS_NAMES[s.statusId] },
      data_stream_type: { id: s.typeId, description: TYPE_NAMES[s.typeId] },
      destination: { ...s.destination, credentials },
      filters: s.filters,
    }
  }
}

function normaliseDestination(d: Record<string, unknown>): EmnifyDataStream['destination'] {
  const credentials = { ...(d.credentials as Record<string, unknown>) }
  if (d.connection_type === 'RestAPI') credentials.method ??= 'POST'
  return {
    connection_type: d.connection_type as string,
    credentials,
    format: (d.format as string | undefined) ?? 'Json',
  }
}
