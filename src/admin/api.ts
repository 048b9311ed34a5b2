import { Hono, type Context } from 'hono'
import type { GatewayConfig } from '../config/types.js'
import { problem, ProblemError } from '../errors.js'
import { connectRoutes } from '../connect/routes.js'
import type { Gateway } from '../pipeline/gateway.js'
import type { Logger } from '../telemetry/logger.js'
import { requireToken } from './auth.js'
import { DRIFT_PATHS, driftRoutes } from './drift.js'
import type { Change, ConfigWriter } from './config-writer.js'
import type { LoginThrottle } from './login-throttle.js'
import { SINK_TYPES, SOURCE_TYPES, STREAM_STATUS_LIST } from './lookups.js'
import { isPlainObject, mergePatch } from './merge-patch.js'
import { openApiDocument } from './openapi.js'
import { badRequest, readJsonObject } from './request-body.js'
import { restoreSecrets } from './secrets.js'
import { inletBase as inletBaseOf, sinkView, streamsUsing, streamView } from './views.js'

// The management API under /api/v1 (SPEC section 7), shaped after emnify's data-stream API: streams and
// sinks with GET/POST on the collection, GET/PATCH (JSON merge patch)/DELETE on an item, restart, lookups.
// Lookups and openapi.json are public; everything else needs the bearer token (admin.token).

/** Same rule as the config schema's `definitions.name`. */
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/

/** Path segments that are lookups, not ids: no stream or sink of these names can be created here. */
export const RESERVED_STREAM_IDS = ['statuses']
export const RESERVED_SINK_NAMES = ['types']

export interface ManagementDeps {
  gateway: Gateway
  writer: ConfigWriter
  /** Failed logins per source address (admin.loginThrottle); without it wrong tokens are only logged. */
  throttle?: LoginThrottle
  logger?: Logger
  /** The ingest listener's port, when the API has a listener of its own (admin.listen): for inletUrl. */
  ingestPort?: () => number
}

export function managementRoutes({ gateway, writer, throttle, logger, ingestPort }: ManagementDeps): Hono {
  const app = new Hono()
  const inletBase = (c: Context, server: GatewayConfig['server']): string =>
    inletBaseOf(c, server, ingestPort?.())

  // Public lookups (before the token middleware).
  app.get('/openapi.json', (c) => c.json(openApiDocument()))
  app.get('/streams/statuses', (c) => c.json(STREAM_STATUS_LIST))
  app.get('/source_types', (c) => c.json(SOURCE_TYPES))
  app.get('/sink_types', (c) => c.json(SINK_TYPES))
  app.get('/sinks/types', (c) => c.json(SINK_TYPES))

  const auth = requireToken({
    token: () => gateway.config.admin.token,
    what: 'admin',
    disabledDetail: 'the management API is disabled: set admin.token in the config file',
    ...(throttle ? { throttle } : {}),
    ...(logger ? { logger } : {}),
  })
  for (const path of ['/streams', '/streams/*', '/sinks', '/sinks/*', '/connections']) app.use(path, auth)

  // Vendor wiring (`streamgate connect`): POST /streams/{id}/connect, /sinks/{name}/connect, … (src/connect).
  app.route('/', connectRoutes({ gateway, writer, ...(logger ? { logger } : {}) }))

  // Streams.
  app.get('/streams', (c) => {
    const base = inletBase(c, gateway.config.server)
    const config = gateway.config
    return c.json(Object.keys(config.streams).map((id) => streamView(gateway, config, id, base)))
  })

  app.post('/streams', async (c) => {
    const body = await readJsonObject(c)
    const { id, ...definition } = body
    const name = checkName(id, 'id', RESERVED_STREAM_IDS)
    const status = takeStatus(definition)
    refuseMasks(definition)
    const next = await writer.write((current) => {
      if (Object.hasOwn(current.streams, name)) throw exists('stream', name, `/api/v1/streams/${name}`)
      return { kind: 'streams', name, definition, ...(status === 2 ? { status } : {}) }
    })
    c.header('location', `/api/v1/streams/${encodeURIComponent(name)}`)
    return c.json(streamView(gateway, next, name, inletBase(c, next.server)), 201)
  })

  app.get('/streams/:id', (c) => {
    const config = gateway.config
    const id = knownStream(config, c.req.param('id'))
    return c.json(streamView(gateway, config, id, inletBase(c, config.server)))
  })

  app.patch('/streams/:id', async (c) => {
    const patch = await readJsonObject(c)
    if (Object.hasOwn(patch, 'id'))
      throw badRequest('the id cannot be changed: create a new stream and delete this one', [
        { pointer: '/id', message: 'is read-only' },
      ])
    const status = takeStatus(patch)
    const id = c.req.param('id')
    const next = await writer.write((current) => {
      knownStream(current, id)
      return {
        kind: 'streams',
        name: id,
        definition: patched(current.streams[id], patch),
        ...(status !== undefined ? { status } : {}),
      }
    })
    return c.json(streamView(gateway, next, id, inletBase(c, next.server)))
  })

  app.delete('/streams/:id', async (c) => {
    const id = c.req.param('id')
    const force = forceParam(c)
    await writer.write((current) => {
      knownStream(current, id)
      const pending = gateway.pendingRecords(id)
      if (pending > 0 && !force)
        throw problem(
          'stream-has-records',
          `stream ${JSON.stringify(id)} has ${pending} records in the spool that its sinks have not received yet; ` +
            'resume it and let them drain, or DELETE with ?force=true (the records then stay in the spool and are ' +
            'delivered only if a stream of the same id is created again)',
          { extra: { pendingRecords: pending } },
        )
      return { kind: 'streams', name: id, definition: null }
    })
    return c.body(null, 204)
  })

  app.post('/streams/:id/restart', async (c) => {
    const id = c.req.param('id')
    const next = await writer.write((current): Change => {
      const stored = current.streams[knownStream(current, id)]!
      // Paused in the config: resume it there too (persisted). Otherwise only the live status changes.
      const definition = stored.status === 1 ? undefined : { ...stored, status: 1 }
      return { kind: 'streams', name: id, definition, status: 1 }
    })
    return c.json(streamView(gateway, next, id, inletBase(c, next.server)))
  })

  driftRoutes(app, gateway)

  // Sinks.
  app.get('/sinks', (c) => {
    const config = gateway.config
    return c.json(Object.keys(config.sinks).map((name) => sinkView(gateway, config, name)))
  })

  app.post('/sinks', async (c) => {
    const body = await readJsonObject(c)
    const { name: rawName, ...definition } = body
    const name = checkName(rawName, 'name', RESERVED_SINK_NAMES)
    refuseMasks(definition)
    const next = await writer.write((current) => {
      if (Object.hasOwn(current.sinks, name)) throw exists('sink', name, `/api/v1/sinks/${name}`)
      return { kind: 'sinks', name, definition }
    })
    c.header('location', `/api/v1/sinks/${encodeURIComponent(name)}`)
    return c.json(sinkView(gateway, next, name), 201)
  })

  app.get('/sinks/:name', (c) => {
    const config = gateway.config
    return c.json(sinkView(gateway, config, knownSink(config, c.req.param('name'))))
  })

  app.patch('/sinks/:name', async (c) => {
    const patch = await readJsonObject(c)
    if (Object.hasOwn(patch, 'name'))
      throw badRequest('the name cannot be changed: create a new sink and delete this one', [
        { pointer: '/name', message: 'is read-only' },
      ])
    const name = c.req.param('name')
    const next = await writer.write((current) => {
      knownSink(current, name)
      return { kind: 'sinks', name, definition: patched(current.sinks[name], patch) }
    })
    return c.json(sinkView(gateway, next, name))
  })

  app.delete('/sinks/:name', async (c) => {
    const name = c.req.param('name')
    await writer.write((current) => {
      knownSink(current, name)
      const users = streamsUsing(current, name)
      if (users.length > 0)
        throw problem(
          'sink-in-use',
          `sink ${JSON.stringify(name)} is used by stream${users.length === 1 ? '' : 's'} ${users.map((u) => JSON.stringify(u)).join(', ')} ` +
            '(as a sink or as the dead-letter sink); change or delete those first',
          { extra: { streams: users } },
        )
      return { kind: 'sinks', name, definition: null }
    })
    return c.body(null, 204)
  })

  // Known paths, other methods: 405 with Allow.
  const allowed: Record<string, string> = {
    '/openapi.json': 'GET',
    '/templates': 'GET',
    '/templates/:id': 'GET',
    '/streams/statuses': 'GET',
    '/source_types': 'GET',
    '/sink_types': 'GET',
    '/sinks/types': 'GET',
    '/streams': 'GET, POST',
    '/streams/:id': 'GET, PATCH, DELETE',
    '/streams/:id/restart': 'POST',
    '/sinks': 'GET, POST',
    '/sinks/:name': 'GET, PATCH, DELETE',
    ...DRIFT_PATHS,
  }
  for (const [path, allow] of Object.entries(allowed))
    app.all(path, (c) => {
      throw problem('method-not-allowed', `${c.req.path} accepts ${allow}`, {
        headers: { allow },
      })
    })

  return app
}

/** The merge patch applied to the stored object; a mask sent back where a secret is stored keeps it. */
function patched(stored: unknown, patch: Record<string, unknown>): Record<string, unknown> {
  const merged = mergePatch(stored, patch) as Record<string, unknown>
  const { value, issues } = restoreSecrets(merged, stored)
  if (issues.length > 0) throw badRequest('a masked secret cannot be kept: nothing is stored there', issues)
  return value as Record<string, unknown>
}

/** A create may not carry the mask as a secret (a copied answer would store "***" as the password). */
function refuseMasks(definition: Record<string, unknown>): void {
  const { issues } = restoreSecrets(definition, undefined)
  if (issues.length > 0) throw badRequest('send secrets themselves, not their mask', issues)
}

/**
 * emnify's status shapes: `2` or `{"id": 2}`; rewritten in place to the config's integer. Clients set 1
 * (Running) or 2 (Paused); 3 (Error) and 4 (Pending) are the gateway's to set. `null` (merge patch) resets
 * to the default, Running.
 */
function takeStatus(body: Record<string, unknown>): 1 | 2 | undefined {
  if (!Object.hasOwn(body, 'status')) return undefined
  const raw = body.status
  if (raw === null) return 1
  const id = isPlainObject(raw) && Object.keys(raw).length === 1 && Object.hasOwn(raw, 'id') ? raw.id : raw
  if (id !== 1 && id !== 2)
    throw badRequest('status must be 1 (Running) or 2 (Paused), as a number or as {"id": n}', [
      { pointer: '/status', message: 'must be 1, 2, {"id": 1} or {"id": 2}' },
    ])
  body.status = id
  return id
}

function checkName(value: unknown, key: 'id' | 'name', reserved: readonly string[]): string {
  const pointer = `/${key}`
  if (value === undefined) throw badRequest(`"${key}" is required`, [{ pointer, message: 'is required' }])
  if (typeof value !== 'string' || !NAME.test(value))
    throw badRequest(
      `"${key}" must be 1-128 characters of A-Z a-z 0-9 . _ - starting with a letter or digit`,
      [{ pointer, message: 'is not a valid name' }],
    )
  if (reserved.includes(value))
    throw badRequest(`"${value}" is reserved by the management API`, [{ pointer, message: 'is reserved' }])
  return value
}

function knownStream(config: GatewayConfig, id: string): string {
  if (!Object.hasOwn(config.streams, id))
    throw problem('unknown-stream', `no stream ${JSON.stringify(id)} is configured`)
  return id
}

function knownSink(config: GatewayConfig, name: string): string {
  if (!Object.hasOwn(config.sinks, name))
    throw problem('unknown-sink', `no sink ${JSON.stringify(name)} is configured`)
  return name
}

function exists(what: 'stream' | 'sink', name: string, location: string): ProblemError {
  return problem(`${what}-exists`, `a ${what} ${JSON.stringify(name)} exists already`, {
    headers: { location },
  })
}

function forceParam(c: Context): boolean {
  const force = c.req.query('force')
  if (force === undefined || force === 'false') return false
  if (force === 'true') return true
  throw badRequest('force must be true or false', [{ pointer: '/force', message: 'must be true or false' }])
}
