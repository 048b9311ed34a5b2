// An open-loop load at a fixed rate, in its own process (bench/load.ts forks it over IPC, as it does
// autocannon): `connections` keep-alive node:http connections, connection i sending every
// connections / rate seconds on its own schedule, staggered evenly — not as soon as its last answer came.
// A request's latency counts from its scheduled time, so an answer that came late delays the connection's
// next request and that delay is counted too (no coordinated omission). Built for the half-load runs:
// autocannon's `overallRate` spends enough CPU on 0.9 MB bodies to put the bare node:http server's p99 at
// 127 ms at half its max, where this client measures 8 ms (bench/RESULTS.md, 2026-12-05).
//
//   parent → child  { kind: 'run', id, options: OpenLoopRun }
//   child → parent  { kind: 'ready' } once, then { kind: 'result', id, result } or { kind: 'error', id, message }

import { readFileSync } from 'node:fs'
import { Agent, request } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import { percentile, summariseByStatus } from './latency.js'
import type { OpenLoopChildMessage, OpenLoopParentMessage, OpenLoopResult, OpenLoopRun } from './load.js'

/** One request on `agent`: its status, or the error's code. */
function post(
  url: string,
  agent: Agent,
  headers: Record<string, string>,
  body: Buffer,
  timeoutMs: number,
): Promise<number | string> {
  return new Promise((done) => {
    const req = request(url, { method: 'POST', agent, headers, timeout: timeoutMs }, (res) => {
      res.resume()
      res.on('end', () => done(res.statusCode ?? 0))
      res.on('error', (err: NodeJS.ErrnoException) => done(err.code ?? 'response error'))
    })
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'timeout' })))
    req.on('error', (err: NodeJS.ErrnoException) => done(err.code ?? err.message))
    req.end(body)
  })
}

async function run(options: OpenLoopRun): Promise<OpenLoopResult> {
  const body = readFileSync(options.bodyFile)
  const headers = { ...options.headers, 'content-length': String(body.length) }
  const agent = new Agent({ keepAlive: true, maxSockets: options.connections })
  const intervalMs = (options.connections / options.rate) * 1000
  const start = performance.now() + 20
  const until = start + options.durationS * 1000
  const byStatus = new Map<number, number[]>()
  const errors = new Map<string, number>()
  let last = start
  const connection = async (i: number): Promise<void> => {
    let slot = start + (i * intervalMs) / options.connections
    while (slot < until) {
      const wait = slot - performance.now()
      if (wait > 0) await sleep(wait)
      const scheduled = slot
      slot += intervalMs
      const outcome = await post(options.url, agent, headers, body, options.timeoutS * 1000)
      last = performance.now()
      if (typeof outcome === 'string') errors.set(outcome, (errors.get(outcome) ?? 0) + 1)
      else {
        let times = byStatus.get(outcome)
        if (times === undefined) byStatus.set(outcome, (times = []))
        times.push(last - scheduled)
      }
    }
  }
  await Promise.all(Array.from({ length: options.connections }, (_, i) => connection(i)))
  agent.destroy()
  const all = [...byStatus.values()].flat().sort((a, b) => a - b)
  return {
    // The schedule's window, or longer when the last answers came after it.
    durationS: (Math.max(last, until) - start) / 1000,
    requests: all.length,
    non2xx: [...byStatus].reduce(
      (n, [status, times]) => n + (status >= 200 && status < 300 ? 0 : times.length),
      0,
    ),
    errors: [...errors.values()].reduce((a, b) => a + b, 0),
    errorDetail: [...errors].map(([code, n]) => `${code}×${n}`).join(' '),
    latencyMs: {
      p50: percentile(all, 50),
      p99: percentile(all, 99),
      max: all.at(-1) ?? 0,
      mean: all.length === 0 ? 0 : all.reduce((a, b) => a + b, 0) / all.length,
    },
    byStatus: summariseByStatus(byStatus),
  }
}

function send(message: OpenLoopChildMessage): void {
  process.send?.(message)
}

process.on('message', (message: OpenLoopParentMessage) => {
  run(message.options).then(
    (result) => send({ kind: 'result', id: message.id, result }),
    (err: unknown) => send({ kind: 'error', id: message.id, message: (err as Error).message }),
  )
})
process.on('disconnect', () => process.exit(0))
send({ kind: 'ready' })
