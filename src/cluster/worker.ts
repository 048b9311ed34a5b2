import type { GatewayConfig } from '../config/types.js'
import { problem } from '../errors.js'
import { problemAnswer } from '../http/ingest.js'
import { start, type Running } from '../main.js'
import type { Logger } from '../telemetry/logger.js'
import {
  fromWire,
  isOurs,
  responseFromWire,
  responseToWire,
  toWire,
  type Change,
  type ToPrimary,
  type ToWorker,
  type WireResponse,
} from './messages.js'
import { addFigures, carriesFigures, gatewayFigures } from './figures.js'
import { workerConfig } from './shards.js'

// One worker of `server.workers: N`: a complete gateway (src/main.ts start) on its own spool shard and the
// shared ingest port. Worker 0 is the leader: it alone answers /api/v1 and /ui (the others forward those
// requests to it through the primary), so management writes are serialised in one process as they are
// without workers; every change it applies (a new config, a live pause or resume) is sent to the others,
// which apply it to their own gateway. /metrics on any worker answers with the ready workers' metrics
// summed by the primary (src/cluster/metrics.ts).

/** A forwarded request or a /metrics aggregation that gets no answer within this time answers 503. */
const ASK_TIMEOUT_MS = 10_000

export interface WorkerProcess {
  running: Running
  index: number
}

export async function runWorker(
  config: GatewayConfig,
  index: number,
  count: number,
  logger: Logger,
  port: number | undefined,
): Promise<WorkerProcess> {
  const own = workerConfig(config, index, count)
  const waiting = new Map<number, (message: ToWorker) => void>()
  let nextId = 0
  const send = (message: ToPrimary): void => {
    if (process.connected) process.send!(message)
  }
  const ask = <T>(make: (id: number) => ToPrimary, answer: (reply: ToWorker | undefined) => T): Promise<T> =>
    new Promise((resolve, reject) => {
      const id = nextId++
      // `answer` may throw (a refusal: metrics not gathered in time): that rejects this ask. Thrown in the
      // timer or the message handler it was an uncaught exception that killed the worker (seen under load:
      // a /metrics scrape whose gathering timed out restarted both workers over and over).
      const settle = (reply: ToWorker | undefined): void => {
        try {
          resolve(answer(reply))
        } catch (err) {
          reject(err instanceof Error ? err : new Error(String(err)))
        }
      }
      const timer = setTimeout(() => {
        waiting.delete(id)
        settle(undefined)
      }, ASK_TIMEOUT_MS)
      waiting.set(id, (reply) => {
        clearTimeout(timer)
        waiting.delete(id)
        settle(reply)
      })
      send(make(id))
    })

  const forward = async (request: Request, remoteAddress: string): Promise<Response> => {
    const wire = await toWire(request, remoteAddress)
    return ask(
      (id) => ({ sg: 'forward', id, request: wire }),
      (reply) => responseFromWire(reply?.sg === 'forwarded' ? reply.response : leaderSilent()),
    )
  }

  // The leader answers /api/v1 and /ui with its own admin app, adding the other workers' live figures.
  const leader: { app?: Running['adminApp'] } = {}
  const answerHere = async (request: Request, remoteAddress: string): Promise<Response> => {
    if (!leader.app) return responseFromWire(leaderSilent())
    const response = await leader.app.fetch(request, { incoming: { socket: { remoteAddress } } })
    if (response.status !== 200 || !carriesFigures(request.method, new URL(request.url).pathname))
      return response
    const peers = await ask(
      (id) => ({ sg: 'figures', id }),
      (reply) => (reply?.sg === 'figures' ? reply.figures : []),
    )
    const headers = new Headers(response.headers)
    headers.delete('content-length')
    const body = addFigures(await response.json(), peers)
    return new Response(JSON.stringify(body), { status: 200, headers })
  }

  const running = await start(own, {
    logger,
    ...(port !== undefined ? { port } : {}),
    forward: index === 0 ? answerHere : forward,
  })
  leader.app = running.adminApp
  const { gateway, metrics } = running

  // /metrics: the primary asks each ready worker for its registry (metrics-ask) and sums the answers.
  metrics.renderWith(() =>
    ask(
      (id) => ({ sg: 'metrics', id }),
      (reply) => {
        if (reply?.sg !== 'metrics' || reply.error !== undefined)
          throw problem(
            'metrics-unavailable',
            `the workers' metrics could not be gathered (${reply?.sg === 'metrics' ? reply.error : 'no answer'})`,
          )
        return { contentType: reply.contentType, body: reply.body }
      },
    ),
  )

  if (index === 0) {
    // The leader: what its management API applies, the other workers apply too.
    const apply = gateway.apply.bind(gateway)
    const setStatus = gateway.setStatus.bind(gateway)
    gateway.apply = async (next: GatewayConfig): Promise<void> => {
      await apply(next)
      send({ sg: 'broadcast', change: { config: next } })
    }
    gateway.setStatus = (stream: string, status: 1 | 2): void => {
      setStatus(stream, status)
      send({ sg: 'broadcast', change: { stream, status } })
    }
  }

  const applyChange = async (change: Change): Promise<void> => {
    if ('config' in change) await gateway.apply({ ...change.config, spool: own.spool })
    else gateway.setStatus(change.stream, change.status)
  }

  process.on('message', (message: unknown) => {
    if (!isOurs(message)) return
    const m = message as ToWorker
    switch (m.sg) {
      case 'forward':
        void answerForward(running, answerHere, m.request.remoteAddress, fromWire(m.request)).then(
          (response) => send({ sg: 'forwarded', id: m.id, response }),
        )
        return
      case 'figures-ask':
        send({ sg: 'figures-reply', id: m.id, figures: gatewayFigures(gateway) })
        return
      case 'metrics-ask':
        // Unanswered on failure: the primary leaves this worker out of the scrape after its wait.
        metrics.registry.getMetricsAsJSON().then(
          (json) => send({ sg: 'metrics-reply', id: m.id, metrics: json }),
          (err: unknown) => logger.error({ err }, "this worker's metrics could not be read for /metrics"),
        )
        return
      case 'apply':
        applyChange(m.change).catch((err: unknown) =>
          logger.error({ err }, "applying the leader's management change failed on this worker"),
        )
        return
      default:
        waiting.get(m.id)?.(m)
    }
  })
  send({ sg: 'ready', port: running.port })
  return { running, index }
}

async function answerForward(
  running: Running,
  answerHere: (request: Request, remoteAddress: string) => Promise<Response>,
  remoteAddress: string,
  request: Request,
): Promise<WireResponse> {
  try {
    const response = await answerHere(request, remoteAddress)
    return await responseToWire(response)
  } catch (err) {
    running.logger.error({ err }, 'a forwarded management request failed')
    const answer = problemAnswer(problem('internal', 'the request could not be processed'))
    return {
      status: 500,
      headers: Object.entries(answer.headers),
      body: Buffer.from(answer.body).toString('base64'),
    }
  }
}

function leaderSilent(): WireResponse {
  const answer = problemAnswer(
    problem(
      'leader-unavailable',
      'the worker that answers the management API did not answer; retry shortly',
      {
        headers: { 'retry-after': '1' },
      },
    ),
  )
  return {
    status: 503,
    headers: Object.entries(answer.headers),
    body: Buffer.from(answer.body).toString('base64'),
  }
}
