import { AggregatorRegistry, Gauge } from 'prom-client'
import type { MetricJson } from './messages.js'

// /metrics with `server.workers: N`: the primary asks every *ready* worker for its registry
// (getMetricsAsJSON) and sums what arrives within a bounded wait with prom-client's
// AggregatorRegistry.aggregate. A worker that is starting, being restarted, or too slow to answer is left
// out — the scrape still answers 200 and says so in `streamgate_cluster_workers` and a comment line — instead
// of failing the whole scrape as prom-client's clusterMetrics() did (it asked every cluster worker,
// including one that could not answer yet, and failed after its 5 s timeout).

/** What the primary knows about one scrape: which worker slots were asked, which answered. */
export interface ClusterScrape {
  /** `server.workers`. */
  configured: number
  /** The slots asked (ready and connected when the scrape came). */
  asked: readonly number[]
  /** Each answering slot's metrics. */
  answers: ReadonlyMap<number, MetricJson[]>
  /** How long the primary waited for the answers, for the comment line. */
  waitedMs: number
}

export const WORKERS_METRIC = 'streamgate_cluster_workers'

/** The aggregated exposition (Prometheus text) of the workers that answered. */
export async function renderClusterMetrics(
  scrape: ClusterScrape,
): Promise<{ contentType: string; body: string }> {
  const slots = [...scrape.answers.keys()].sort((a, b) => a - b)
  const registry = AggregatorRegistry.aggregate(slots.map((slot) => scrape.answers.get(slot)!))
  const workers = new Gauge({
    name: WORKERS_METRIC,
    help: 'Worker processes (server.workers): configured, ready (serving, asked by this scrape), answered (their series are in this scrape)',
    labelNames: ['state'],
    registers: [registry],
  })
  workers.set({ state: 'configured' }, scrape.configured)
  workers.set({ state: 'ready' }, scrape.asked.length)
  workers.set({ state: 'answered' }, slots.length)
  const missing = [
    ...Array.from({ length: scrape.configured }, (_, i) => i).filter((i) => !scrape.asked.includes(i)),
  ]
  const silent = scrape.asked.filter((i) => !scrape.answers.has(i))
  const notes: string[] = []
  if (missing.length > 0)
    notes.push(`# streamgate: worker ${missing.join(', ')} not ready (starting or restarting): left out`)
  if (silent.length > 0)
    notes.push(
      `# streamgate: worker ${silent.join(', ')} did not answer within ${scrape.waitedMs} ms: left out`,
    )
  const body = await registry.metrics()
  return { contentType: registry.contentType, body: notes.length ? `${notes.join('\n')}\n${body}` : body }
}
