import type { Scenario } from './scenarios.js'

/**
 * POSTs the scenario's body `samples` times; undefined when every answer is 200 with `accepted` = records per
 * request, else what was wrong with the first answer that was not.
 */
export async function answerProblem(
  url: string,
  scenario: Scenario,
  body: Buffer,
  samples = 3,
): Promise<string | undefined> {
  for (let i = 0; i < samples; i++) {
    try {
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...scenario.headers },
        body,
        signal: AbortSignal.timeout(20_000),
      })
      const text = await res.text()
      const accepted = res.ok ? (JSON.parse(text) as { accepted?: unknown }).accepted : undefined
      if (res.status !== 200 || accepted !== scenario.recordsPerRequest)
        return `HTTP ${res.status}, accepted ${String(accepted)} of ${scenario.recordsPerRequest}: ${text.slice(0, 300)}`
    } catch (err) {
      return (err as Error).message
    }
  }
  return undefined
}
