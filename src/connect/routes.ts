import { Hono, type Context } from 'hono'
import type { ConfigWriter } from '../admin/config-writer.js'
import { badRequest, readJsonObject } from '../admin/request-body.js'
import { problem, ProblemError } from '../errors.js'
import type { Gateway } from '../pipeline/gateway.js'
import type { Logger } from '../telemetry/logger.js'
import { writerStore } from './config-store.js'
import type { ConnectContext } from './context.js'
import { Ledger, ledgerDirOf } from './ledger.js'
import type { ConnectReport } from './plan.js'
import { connect, connections, disconnect, isVendor, SINK_VENDORS, STREAM_VENDORS } from './service.js'
import { ConnectProblem, VendorError, type Vendor } from './vendor-http.js'

// `streamgate connect` in the management API (SPEC §7), behind the same bearer token as the rest of /api/v1:
//   POST /streams/{id}/connect      {"vendor"?: "emnify"|"azion", "publicUrl"?: URL, "dryRun"?: bool}
//   POST /streams/{id}/disconnect   the same
//   POST /sinks/{name}/connect      {"dryRun"?: bool}       the vendor is the sink's type (adobe, domo)
//   POST /sinks/{name}/disconnect   the same
//   GET  /connections[?vendor=…&publicUrl=…]
// The body is optional; the vendor of a stream defaults to its source. Vendor tokens and API bases are the
// gateway's environment (EMNIFY_API_TOKEN, …); a sink's new key is written through the API's own
// ConfigWriter (validated, saved, applied at once). Answers: 200 with the report; 4xx when the target cannot
// be connected as configured (422 names what to set); 502 when the vendor refused, with what it said.

export interface ConnectRouteDeps {
  gateway: Gateway
  writer: ConfigWriter
  /** Where vendor tokens and API bases come from; default process.env. */
  env?: NodeJS.ProcessEnv
  /** One line per change made at a vendor (never a secret). */
  logger?: Logger
}

const TITLES: Record<number, string> = {
  400: 'Bad request',
  404: 'Not found',
  409: 'Conflict',
  422: 'Cannot connect',
}

export function connectRoutes({ gateway, writer, env = process.env, logger }: ConnectRouteDeps): Hono {
  const app = new Hono()
  const context = (dryRun: boolean, publicUrl?: string): ConnectContext => ({
    config: gateway.config,
    env,
    dryRun,
    ledger: new Ledger(ledgerDirOf(gateway.config)),
    store: writerStore(writer),
    ...(publicUrl !== undefined ? { publicUrl } : {}),
  })

  // One connect or disconnect of a stream or sink at a time (two concurrent creates would make two objects
  // at the vendor); each starts from the config as the one before left it.
  const inFlight = new Map<string, Promise<unknown>>()
  const serialised = <T>(key: string, fn: () => Promise<T>): Promise<T> => {
    const run = (inFlight.get(key) ?? Promise.resolve()).then(fn, fn)
    const settled = run.then(
      () => undefined,
      () => undefined,
    )
    inFlight.set(key, settled)
    void settled.then(() => {
      if (inFlight.get(key) === settled) inFlight.delete(key)
    })
    return run
  }

  const logged = (report: ConnectReport): ConnectReport => {
    if (!report.dryRun && report.action !== 'unchanged' && report.action !== 'absent')
      logger?.info(
        {
          vendor: report.vendor,
          [report.kind]: report.name,
          action: report.action,
          vendorId: report.vendorId,
        },
        'vendor connection changed',
      )
    return report
  }

  for (const action of ['connect', 'disconnect'] as const) {
    const run = action === 'connect' ? connect : disconnect
    app.post(`/streams/:id/${action}`, async (c) => {
      const body = await optionalBody(c, ['vendor', 'publicUrl', 'dryRun'])
      const id = c.req.param('id')
      const stream = Object.hasOwn(gateway.config.streams, id) ? gateway.config.streams[id] : undefined
      if (!stream) throw notFound('stream', id)
      const vendor = body.vendor ?? stream.source
      if (!(STREAM_VENDORS as readonly string[]).includes(vendor))
        throw badRequest(
          `stream ${JSON.stringify(id)} has source ${stream.source}: only emnify and azion streams are connected`,
          [{ pointer: body.vendor !== undefined ? '/vendor' : '', message: 'must be emnify or azion' }],
        )
      const report = await serialised(`stream:${id}`, () =>
        answer(run, context(body.dryRun ?? false, body.publicUrl), vendor as Vendor, id),
      )
      return c.json(logged(report))
    })
    app.post(`/sinks/:name/${action}`, async (c) => {
      const body = await optionalBody(c, ['dryRun'])
      const name = c.req.param('name')
      const sink = Object.hasOwn(gateway.config.sinks, name) ? gateway.config.sinks[name] : undefined
      if (!sink) throw notFound('sink', name)
      if (!(SINK_VENDORS as readonly string[]).includes(sink.type))
        throw badRequest(
          `sink ${JSON.stringify(name)} is a ${sink.type} sink: only adobe and domo sinks are connected`,
        )
      const report = await serialised(`sink:${name}`, () =>
        answer(run, context(body.dryRun ?? false), sink.type as Vendor, name),
      )
      return c.json(logged(report))
    })
  }

  app.get('/connections', async (c) => {
    const vendor = c.req.query('vendor')
    if (vendor !== undefined && !isVendor(vendor))
      throw badRequest('vendor must be emnify, azion, adobe or domo', [
        { pointer: '/vendor', message: 'must be emnify, azion, adobe or domo' },
      ])
    const publicUrl = c.req.query('publicUrl')
    try {
      return c.json(await connections(context(false, publicUrl), vendor))
    } catch (err) {
      throw problemOf(err)
    }
  })

  const allowed: Record<string, string> = {
    '/streams/:id/connect': 'POST',
    '/streams/:id/disconnect': 'POST',
    '/sinks/:name/connect': 'POST',
    '/sinks/:name/disconnect': 'POST',
    '/connections': 'GET',
  }
  for (const [path, allow] of Object.entries(allowed))
    app.all(path, (c) => {
      throw problem('method-not-allowed', `${c.req.path} accepts ${allow}`, {
        headers: { allow },
      })
    })
  return app
}

async function answer<T>(
  run: (ctx: ConnectContext, vendor: Vendor, name: string) => Promise<T>,
  ctx: ConnectContext,
  vendor: Vendor,
  name: string,
): Promise<T> {
  try {
    return await run(ctx, vendor, name)
  } catch (err) {
    throw problemOf(err)
  }
}

/** A connect failure as the management API answers it. */
export function problemOf(err: unknown): unknown {
  if (err instanceof ConnectProblem)
    return new ProblemError(err.status, err.slug, TITLES[err.status] ?? 'Cannot connect', err.message)
  if (err instanceof VendorError)
    return problem('vendor-error', err.message, {
      extra: {
        vendor: err.vendor,
        call: err.call,
        vendorStatus: err.status ?? null,
        vendorMessage: err.vendorMessage,
        hint: err.hint,
      },
    })
  return err
}

interface ConnectBody {
  vendor?: string
  publicUrl?: string
  dryRun?: boolean
}

/** The JSON object body, which may be left out; only `keys` are accepted. */
async function optionalBody(c: Context, keys: readonly (keyof ConnectBody)[]): Promise<ConnectBody> {
  const length = c.req.header('content-length')
  const chunked = c.req.header('transfer-encoding') !== undefined
  if ((length === undefined && !chunked) || length === '0') return {}
  const body = await readJsonObject(c)
  const errors: { pointer: string; message: string }[] = []
  for (const key of Object.keys(body))
    if (!(keys as readonly string[]).includes(key))
      errors.push({ pointer: `/${key}`, message: 'is not a known key' })
  if (body.vendor !== undefined && !isVendor(body.vendor))
    errors.push({ pointer: '/vendor', message: 'must be emnify or azion' })
  if (body.publicUrl !== undefined && typeof body.publicUrl !== 'string')
    errors.push({ pointer: '/publicUrl', message: 'must be a string' })
  if (body.dryRun !== undefined && typeof body.dryRun !== 'boolean')
    errors.push({ pointer: '/dryRun', message: 'must be true or false' })
  if (errors.length > 0) throw badRequest('the body does not fit this operation', errors)
  return body
}

function notFound(what: 'stream' | 'sink', name: string): ProblemError {
  return problem(`unknown-${what}`, `no ${what} ${JSON.stringify(name)} is configured`)
}
