import { Counter, Gauge, Registry } from 'prom-client'
import { describe, expect, it } from 'vitest'
import type { MetricJson } from './messages.js'
import { renderClusterMetrics } from './metrics.js'

async function worker(accepted: number, up: number): Promise<MetricJson[]> {
  const registry = new Registry()
  new Counter({ name: 'accepted_total', help: 'h', labelNames: ['stream'], registers: [registry] }).inc(
    { stream: 's' },
    accepted,
  )
  new Gauge({ name: 'up', help: 'h', aggregator: 'min', registers: [registry] }).set(up)
  return registry.getMetricsAsJSON()
}

const line = (body: string, name: string): string | undefined =>
  body.split('\n').find((l) => l.startsWith(`${name} `))

describe('/metrics over the ready workers', () => {
  it('sums the workers that answered, with their own aggregators, and counts them', async () => {
    const answers = new Map([
      [0, await worker(3, 1)],
      [1, await worker(4, 0)],
    ])
    const { body, contentType } = await renderClusterMetrics({
      configured: 2,
      asked: [0, 1],
      answers,
      waitedMs: 3,
    })
    expect(contentType).toContain('text/plain')
    expect(line(body, 'accepted_total{stream="s"}')).toBe('accepted_total{stream="s"} 7')
    expect(line(body, 'up')).toBe('up 0')
    expect(line(body, 'streamgate_cluster_workers{state="configured"}')).toMatch(/ 2$/)
    expect(line(body, 'streamgate_cluster_workers{state="ready"}')).toMatch(/ 2$/)
    expect(line(body, 'streamgate_cluster_workers{state="answered"}')).toMatch(/ 2$/)
    expect(body).not.toContain('left out')
  })

  it('leaves out a worker that is not ready and one that did not answer, and says so', async () => {
    const { body } = await renderClusterMetrics({
      configured: 3,
      asked: [0, 2],
      answers: new Map([[2, await worker(5, 1)]]),
      waitedMs: 1000,
    })
    expect(line(body, 'accepted_total{stream="s"}')).toBe('accepted_total{stream="s"} 5')
    expect(line(body, 'streamgate_cluster_workers{state="configured"}')).toMatch(/ 3$/)
    expect(line(body, 'streamgate_cluster_workers{state="ready"}')).toMatch(/ 2$/)
    expect(line(body, 'streamgate_cluster_workers{state="answered"}')).toMatch(/ 1$/)
    expect(body).toContain('# streamgate: worker 1 not ready (starting or restarting): left out')
    expect(body).toContain('# streamgate: worker 0 did not answer within 1000 ms: left out')
  })

  it('answers with only the worker count when no worker is ready', async () => {
    const { body } = await renderClusterMetrics({ configured: 2, asked: [], answers: new Map(), waitedMs: 0 })
    expect(line(body, 'streamgate_cluster_workers{state="answered"}')).toMatch(/ 0$/)
    expect(body).not.toContain('accepted_total')
  })
})
