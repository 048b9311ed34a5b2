import { Hono, type Context } from 'hono'
import { managementRoutes } from './admin/api.js'
import { requireToken } from './admin/auth.js'
import { ConfigWriter, type ApiState } from './admin/config-writer.js'
import { LoginThrottle } from './admin/login-throttle.js'
import { templatesRoutes } from './admin/templates.js'
import { uiRoutes } from './admin/ui.js'
import { problem, ProblemError } from './errors.js'
import { problemAnswer } from './http/ingest.js'
import type { Gateway } from './pipeline/gateway.js'
import type { Logger } from './telemetry/logger.js'
import type { Metrics } from './telemetry/metrics.js'

export interface AppDeps {
  gateway: Gateway
  metrics: Metrics
  logger: Logger
  /** Extra readiness checks (spool writable, …); the gateway's draining state is always checked. */
  ready?: () => Promise<string | undefined>
  /** The management API's persisted changes (src/admin/api-state.ts); without it changes live in memory only. */
  apiState?: ApiState
  /**
   * What this app serves besides /healthz and /readyz (default: everything, one listener). `ingest`:
   * /ingest/* (answered by the listener before the app, src/http/server.ts); `admin`: /api/v1 and /ui; `metrics`: /metrics. Each surface is served by exactly one app
   * (src/main.ts), so the admin surface's ConfigWriter and login throttle exist once per process.
   */
  surfaces?: readonly Surface[]
  /** The ingest listener's port when this app's listener is another one (admin.listen): for inletUrl. */
  ingestPort?: () => number
  /**
   * A cluster worker other than the leader (src/cluster/worker.ts): /api/v1 and /ui are answered by the
   * leader worker, so that management writes are serialised in one process and applied to every worker.
   */
  forward?: (request: Request, remoteAddress: string) => Promise<Response>
}

export type Surface = 'ingest' | 'admin' | 'metrics'

export const ALL_SURFACES: readonly Surface[] = ['ingest', 'admin', 'metrics']

type Env = { Bindings: { incoming?: { socket?: { remoteAddress?: string } } } }

/**
 * The hono app, without listen(): tests call app.request(). In production the node:http listener sends
 * /ingest/* straight to the ingest handler (no Request/Response conversion) and everything else here.
 * A path of a surface this app does not serve answers 404 problem+json, like any unknown path.
 */
export function createApp(deps: AppDeps): Hono<Env> {
  const app = new Hono<Env>()
  const surfaces = new Set(deps.surfaces ?? ALL_SURFACES)
  const config = deps.gateway.config

  app.use(async (c, next) => {
    await next()
    deps.metrics.httpAnswered(routeGroup(c.req.path), c.res.status)
  })

  app.get('/healthz', (c) => c.json({ status: 'ok' }))

  app.get('/readyz', async (c) => {
    const reason = deps.gateway.isDraining ? 'draining' : await deps.ready?.()
    if (reason !== undefined) {
      const answer = problemAnswer(problem('not-ready', reason, { headers: { 'retry-after': '5' } }))
      return c.body(answer.body, 503, answer.headers)
    }
    return c.json({ status: 'ready' })
  })

  if (surfaces.has('metrics')) {
    if (config.metrics.token !== undefined)
      app.use(
        '/metrics',
        requireToken({
          token: () => deps.gateway.config.metrics.token,
          what: 'metrics',
          throttle: new LoginThrottle(config.admin.loginThrottle),
          logger: deps.logger,
        }),
      )
    app.get('/metrics', async (c) => {
      const { contentType, body } = await deps.metrics.render()
      return c.body(body, 200, { 'content-type': contentType })
    })
  }

  if (surfaces.has('admin') && deps.forward) {
    const forward = deps.forward
    const handler = (c: Context<Env>): Promise<Response> =>
      forward(c.req.raw, c.env?.incoming?.socket?.remoteAddress ?? '127.0.0.1')
    app.all('/api/*', handler)
    app.all('/ui', handler)
    app.all('/ui/*', handler)
  } else if (surfaces.has('admin')) {
    app.route('/api/v1', templatesRoutes())
    const apiState = deps.apiState ?? {
      file: undefined,
      fileConfig: deps.gateway.config,
      overlay: { streams: {}, sinks: {} },
    }
    const writer = new ConfigWriter(deps.gateway, apiState, deps.logger)
    app.route(
      '/api/v1',
      managementRoutes({
        gateway: deps.gateway,
        writer,
        throttle: new LoginThrottle(config.admin.loginThrottle),
        logger: deps.logger,
        ...(deps.ingestPort ? { ingestPort: deps.ingestPort } : {}),
      }),
    )
    app.route('/', uiRoutes())
  }

  app.notFound((c) => {
    const answer = problemAnswer(problem('not-found', `no route for ${c.req.method} ${c.req.path}`))
    return c.body(answer.body, 404, answer.headers)
  })

  app.onError((err, c) => {
    if (err instanceof ProblemError) {
      const answer = problemAnswer(err, c.req.path)
      return c.body(answer.body, answer.status as 400, answer.headers)
    }
    deps.logger.error({ err, path: c.req.path }, 'request failed')
    const answer = problemAnswer(problem('internal', 'the request could not be processed'))
    return c.body(answer.body, 500, answer.headers)
  })

  return app
}

export function routeGroup(path: string): string {
  if (path.startsWith('/ingest/')) return 'ingest'
  if (path.startsWith('/api/')) return 'api'
  if (path === '/healthz' || path === '/readyz' || path === '/metrics') return path.slice(1)
  if (path.startsWith('/ui')) return 'ui'
  return 'other'
}
