import { mkdir, mkdtemp, access, constants, rm } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import { openApiState } from './admin/api-state.js'
import { createApp, type AppDeps, type Surface } from './app.js'
import type { GatewayConfig, ListenConfig, ServerConfig } from './config/types.js'
import { IngestHandler } from './http/ingest.js'
import { createAppListener, createListener, startServer, type RunningServer } from './http/server.js'
import { Gateway } from './pipeline/gateway.js'
import { KafkaDelivery } from './roles/deliver.js'
import { KafkaHandOff } from './roles/ingest.js'
import {
  acquireSpoolLock,
  SpoolLockedError,
  SpoolLockUnsupportedError,
  type SpoolLock,
} from './spool/lock.js'
import { createLogger, RefusalLog, type Logger } from './telemetry/logger.js'
import { Metrics } from './telemetry/metrics.js'

// Process wiring only: build the gateway from a validated config, start the listeners, handle signals.
//
// Listeners: `server` always (ingest, /healthz, /readyz). Without admin.listen and metrics.listen it serves
// everything, as one port. admin.listen moves /api/v1 and /ui to a listener of their own, and /metrics too
// unless metrics.listen gives /metrics its own. Every listener also answers /healthz and /readyz; a path
// that lives on another listener answers 404 problem+json.

export interface Running {
  /** The ingest listener's port. */
  port: number
  /** The admin listener's port (admin.listen), else undefined. */
  adminPort?: number
  /** The metrics listener's port (metrics.listen), else undefined. */
  metricsPort?: number
  gateway: Gateway
  /** The ingest listener. */
  server: RunningServer
  logger: Logger
  metrics: Metrics
  /** The app that serves /api/v1 and /ui, whichever listener it is on (a cluster's leader answers others'). */
  adminApp: { fetch(request: Request, env?: unknown): Response | Promise<Response> }
  /** Graceful stop: readyz 503, stop accepting, finish in-flight requests, flush sinks. */
  stop(): Promise<void>
}

/**
 * An expected reason the gateway cannot start (spool directory not writable, listen address in use…): the
 * CLI prints the message as one line and exits 1, no stack trace. SpoolLockedError and ConfigError are
 * the other two expected start-up failures.
 */
export class StartupError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'StartupError'
  }
}

export interface StartOptions {
  port?: number
  logger?: Logger
  /** Install SIGTERM/SIGINT handlers (the CLI does; tests do not). */
  signals?: boolean
  /**
   * A cluster worker (src/cluster/worker.ts): the listeners hand /api/v1 and /ui to this (AppDeps.forward);
   * `adminApp` is then an app of its own that serves them, for the cluster's leader to answer with.
   */
  forward?: AppDeps['forward']
}

export async function start(config: GatewayConfig, options: StartOptions = {}): Promise<Running> {
  const logger = options.logger ?? createLogger(config.log.level)
  const metrics = new Metrics()
  // Roles (SPEC section 9, src/roles/): Kafka holds the records, so the node keeps no spool of its own;
  // the gateway gets a throwaway one (empty: nothing is appended to it), removed at stop. It sits beside
  // spool.dir, so what is placed relative to that (the default dead-letter file sink) stays where the
  // config says, and several nodes may share one machine and config.
  const role = config.role ?? 'all'
  const cluster = config.cluster
  let scratch: string | undefined
  if (role !== 'all') {
    const configured = resolve(config.spool.dir)
    await mkdir(dirname(configured), { recursive: true })
    scratch = await mkdtemp(`${configured}-${role}-`)
    config = { ...config, spool: { ...config.spool, dir: scratch } }
  }
  const handOff = role === 'ingest' && cluster ? new KafkaHandOff(cluster, { logger, metrics }) : undefined
  if (handOff) await handOff.prepare(Object.keys(config.streams))
  // Own the spool before touching anything that belongs to it (api-state.json beside it included): a
  // second gateway on the same spool stops here.
  const spoolLock = await ownSpool(config.spool.dir)
  let gateway: Gateway
  let api: Awaited<ReturnType<typeof openApiState>>
  try {
    // The management API's saved changes (api-state.json beside the spool) applied on the config file's.
    api = await openApiState(config, logger)
    gateway = await Gateway.create(api.config, {
      logger,
      metrics,
      spoolLock,
      ...(handOff ? { handOff: () => handOff } : {}),
    })
  } catch (err) {
    await spoolLock.release() // a no-op when the gateway's spool released it already
    await handOff?.close()
    if (scratch) await rm(scratch, { recursive: true, force: true })
    throw err
  }
  let delivery: KafkaDelivery | undefined
  if (role === 'deliver' && cluster) {
    delivery = new KafkaDelivery(gateway, cluster, { logger, metrics })
    try {
      await delivery.start()
    } catch (err) {
      await delivery.stop()
      await gateway.close(0)
      if (scratch) await rm(scratch, { recursive: true, force: true })
      throw new StartupError(`cannot join the cluster's consumer groups: ${(err as Error).message}`, {
        cause: err,
      })
    }
  }
  // An ingest node writes to Kafka only: its sinks are never written to, so not checked either.
  await Promise.all(
    [...gateway.topology.sinks()]
      .filter(() => role !== 'ingest')
      .map(async (sink) => {
        try {
          await sink.healthcheck(AbortSignal.timeout(10_000))
        } catch (err) {
          // A sink that is down at start is not fatal: records wait (and are retried) until it is back.
          logger.warn({ sink: sink.name, err: (err as Error).message }, 'sink health check failed at start')
        }
      }),
  )
  const ingest = new IngestHandler(gateway.entry, config.server, metrics, logger)
  const deps: AppDeps = {
    gateway,
    metrics,
    logger,
    apiState: api.state,
    ready: async () => {
      // An ingest node stores nothing locally: it is ready while its Kafka cluster answers.
      if (handOff) return handOff.ready()
      try {
        await access(config.spool.dir, constants.W_OK)
        return undefined
      } catch {
        return `spool directory ${config.spool.dir} is not writable`
      }
    },
  }
  // Refused requests: one rate-limited line each; log.access adds a line for every request, on every listener.
  const refusals = new RefusalLog(logger)
  const accessLog = config.log.access ? { access: logger } : {}
  const adminListen = config.admin.listen
  const metricsListen = config.metrics.listen
  const forwarding = options.forward ? { forward: options.forward } : {}
  const ingestSurfaces: Surface[] = ['ingest']
  if (!adminListen) ingestSurfaces.push('admin')
  if (!adminListen && !metricsListen) ingestSurfaces.push('metrics')
  const servers: RunningServer[] = []
  let server: RunningServer
  let adminServer: RunningServer | undefined
  let metricsServer: RunningServer | undefined
  let adminApp: Running['adminApp']
  try {
    const ingestApp = createApp({ ...deps, ...forwarding, surfaces: ingestSurfaces })
    adminApp = ingestApp
    server = await startServer(
      config.server,
      // A deliver node takes no records: /ingest answers 404 there, like any path this listener lacks.
      role === 'deliver'
        ? createAppListener(ingestApp, accessLog)
        : createListener(
            ingestApp,
            ingest,
            metrics,
            { refusals, ...accessLog },
            { maxConnections: config.server.maxConnections },
          ),
      options.port,
      { refusals },
    )
    servers.push(server)
    const ingestPort = server.port
    if (adminListen) {
      const surfaces: Surface[] = metricsListen ? ['admin'] : ['admin', 'metrics']
      const app = createApp({ ...deps, ...forwarding, surfaces, ingestPort: () => ingestPort })
      adminApp = app
      adminServer = await startServer(
        listenerConfig(config.server, adminListen),
        createAppListener(app, accessLog),
        undefined,
        { refusals },
      )
      servers.push(adminServer)
    }
    if (metricsListen) {
      const app = createApp({ ...deps, ...forwarding, surfaces: ['metrics'] })
      metricsServer = await startServer(
        listenerConfig(config.server, metricsListen),
        createAppListener(app, accessLog),
        undefined,
        { refusals },
      )
      servers.push(metricsServer)
    }
    if (options.forward) {
      const ingestPort = server.port
      adminApp = createApp({
        ...deps,
        surfaces: ['admin'],
        ...(adminListen ? { ingestPort: () => ingestPort } : {}),
      })
    }
  } catch (err) {
    await Promise.all(servers.map((s) => s.close(0)))
    await delivery?.stop()
    await handOff?.close()
    await gateway.close(0)
    const code = (err as NodeJS.ErrnoException).code
    if (code === undefined) throw err
    const where = `${config.server.host}:${options.port ?? config.server.port}`
    throw new StartupError(
      code === 'EADDRINUSE'
        ? `cannot listen on ${where}: the address is in use (is another gateway running?)`
        : `cannot listen on ${where}: ${(err as Error).message}`,
      { cause: err },
    )
  }
  const where = (s: RunningServer | undefined, listen: ListenConfig | undefined) =>
    s && listen ? { host: listen.host, port: s.port, tls: listen.tls !== undefined } : undefined
  logger.info(
    {
      port: server.port,
      host: config.server.host,
      role,
      admin: where(adminServer, adminListen),
      metrics: where(metricsServer, metricsListen),
      streams: gateway.topology.streamIds(),
      sinks: [...gateway.topology.sinks()].map((s) => s.name),
    },
    'streamgate listening',
  )

  let stopping: Promise<void> | undefined
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      logger.info('shutting down: no new requests, finishing in-flight ones')
      gateway.startDraining()
      // Half the shutdown budget for in-flight requests, half for deliveries in progress.
      await Promise.all(servers.map((s) => s.close(config.server.shutdownTimeoutMs / 2)))
      // A deliver node leaves its groups first: its partitions move to the other members at once.
      await delivery?.stop()
      await handOff?.close()
      await gateway.close(config.server.shutdownTimeoutMs / 2)
      if (scratch) await rm(scratch, { recursive: true, force: true })
      refusals.close()
      logger.info('stopped')
    })())

  if (options.signals) {
    const onSignal = (signal: NodeJS.Signals): void => {
      logger.info({ signal }, 'signal received')
      const hardStop = setTimeout(() => {
        logger.error('shutdown timed out; exiting')
        process.exit(1)
      }, config.server.shutdownTimeoutMs + 5_000)
      hardStop.unref()
      stop().then(
        () => process.exit(0),
        (err: unknown) => {
          logger.error({ err }, 'shutdown failed')
          process.exit(1)
        },
      )
    }
    process.once('SIGTERM', onSignal)
    process.once('SIGINT', onSignal)
  }

  return {
    port: server.port,
    ...(adminServer ? { adminPort: adminServer.port } : {}),
    ...(metricsServer ? { metricsPort: metricsServer.port } : {}),
    gateway,
    server,
    logger,
    metrics,
    adminApp,
    stop,
  }
}

/**
 * An extra listener takes its address and TLS from its own `listen` block and the rest (timeouts, limits)
 * from `server`; server.tls is the ingest listener's alone.
 */
function listenerConfig(server: ServerConfig, listen: ListenConfig): ServerConfig {
  const { tls: _ingestTls, ...rest } = server
  return { ...rest, host: listen.host, port: listen.port, ...(listen.tls ? { tls: listen.tls } : {}) }
}

/** Creates the spool directory, checks it is writable and takes ownership of it. */
async function ownSpool(dir: string): Promise<SpoolLock> {
  try {
    await mkdir(dir, { recursive: true })
    await access(dir, constants.W_OK)
  } catch (err) {
    throw new StartupError(`the spool directory ${dir} is not writable: ${(err as Error).message}`, {
      cause: err,
    })
  }
  try {
    return await acquireSpoolLock(dir)
  } catch (err) {
    if (err instanceof SpoolLockedError) throw err
    if (err instanceof SpoolLockUnsupportedError) throw new StartupError(err.message, { cause: err })
    throw new StartupError(`cannot take ownership of the spool ${dir}: ${(err as Error).message}`, {
      cause: err,
    })
  }
}
