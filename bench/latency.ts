// Latency summaries shared by the load generators' child processes (autocannon-child.ts, open-loop-child.ts).

import type { StatusLatency } from './load.js'

/** Nearest-rank percentile of sorted values. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? 0
}

/** Count, p50, p99 and max of the answer times per status code (the lists are sorted in place). */
export function summariseByStatus(times: Map<number, number[]>): Record<string, StatusLatency> {
  const out: Record<string, StatusLatency> = {}
  for (const [status, values] of times) {
    const sorted = values.sort((a, b) => a - b)
    out[String(status)] = {
      count: sorted.length,
      p50: percentile(sorted, 50),
      p99: percentile(sorted, 99),
      max: sorted[sorted.length - 1] ?? 0,
    }
  }
  return out
}
