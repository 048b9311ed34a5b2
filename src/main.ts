import { mkdir, access, constants } from 'node:fs/promises'
import { openApiState } from './admin/api-state.js'
import { createApp } from './app.js'
import type { GatewayConfig } from './config/types.js'
import { IngestHandler } from './http/ingest.js'
import { createListener, startServer, type RunningServer } from './http/server.js'
import { Gateway } from './pipeline/gateway.js'
import { createLogger, type Logger } from './telemetry/logger.js'
import { Metrics } from './telemetry/metrics.js'

// Process wiring only: build the gateway from a validated config, start the listener, handle signals.

export interface Running {
  port: number
  gateway: Gateway
  server: RunningServer
  logger: Logger
  metrics: Metrics
  /** Graceful stop: readyz 503, stop accepting, finish in-flight requests, flush sinks. */
  stop(): Promise<void>
}

export interface StartOptions {
  port?: number
  logger?: Logger
  /** Install SIGTERM/SIGINT handlers (the CLI does; tests do not). */
  signals?: boolean
}

export async function start(config: GatewayConfig, options: StartOptions = {}): Promise<Running> {
  const logger = options.logger ?? createLogger(config.log.level)
  const metrics = new Metrics()
  await mkdir(config.spool.dir, { recursive: true })
  // The management API's saved changes (api-state.json beside the spool) applied on the config file's.
  const api = await openApiState(config, logger)
  const gateway = await Gateway.create(api.config, { logger, metrics })
  await Promise.all(
    [...gateway.sinks.values()].map(async (sink) => {
      try {
        await sink.healthcheck(AbortSignal.timeout(10_000))
      } catch (err) {
        // A sink that is down at start is not fatal: records wait (and are retried) until it is back.
        logger.warn({ sink: sink.name, err: (err as Error).message }, 'sink health check failed at start')
      }
    }),
  )
  const ingest = new IngestHandler(gateway, config.server, metrics, logger)
  const app = createApp({
    gateway,
    ingest,
    metrics,
    logger,
    apiState: api.state,
    ready: async () => {
      try {
        await access(config.spool.dir, constants.W_OK)
        return undefined
      } catch {
        return `spool directory ${config.spool.dir} is not writable`
      }
    },
  })
  let server: RunningServer
  try {
    server = await startServer(config.server, createListener(app, ingest, metrics), options.port)
  } catch (err) {
    await gateway.close(0)
    throw err
  }
  logger.info(
    {
      port: server.port,
      host: config.server.host,
      streams: [...gateway.streams.keys()],
      sinks: [...gateway.sinks.keys()],
    },
    'streamgate listening',
  )

  let stopping: Promise<void> | undefined
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      logger.info('shutting down: no new requests, finishing in-flight ones')
      gateway.startDraining()
      // Half the shutdown budget for in-flight requests, half for deliveries in progress.
      await server.close(config.server.shutdownTimeoutMs / 2)
      await gateway.close(config.server.shutdownTimeoutMs / 2)
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

  return { port: server.port, gateway, server, logger, metrics, stop }
}
