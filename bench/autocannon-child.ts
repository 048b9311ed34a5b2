// Runs autocannon in its own process, so the load generator does not share an event loop (or a core's worth
// of time slices) with the harness. bench/load.ts forks it with an IPC channel and sends one message per
// load run; the process exits when the channel closes.
//
//   parent → child  { kind: 'run', id, options: AutocannonRun }
//   child → parent  { kind: 'ready' } once, then { kind: 'result', id, result } or { kind: 'error', id, message }

import { readFileSync } from 'node:fs'
import autocannon, { type Result } from 'autocannon'
import { summariseByStatus } from './latency.js'
import type { AutocannonRun, ChildMessage, ParentMessage, StatusLatency } from './load.js'

const bodies = new Map<string, Buffer>()

function bodyOf(file: string): Buffer {
  let body = bodies.get(file)
  if (body === undefined) {
    body = readFileSync(file)
    bodies.set(file, body)
  }
  return body
}

function run(options: AutocannonRun): Promise<{ result: Result; byStatus?: Record<string, StatusLatency> }> {
  // Per-status times come from the instance's 'response' event (status, bytes, ms since the request was sent).
  const times = new Map<number, number[]>()
  return new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url: options.url,
        method: 'POST',
        headers: options.headers,
        body: bodyOf(options.bodyFile),
        connections: options.connections,
        duration: options.durationS,
        timeout: options.timeoutS,
        ...(options.overallRate !== undefined ? { overallRate: options.overallRate } : {}),
      },
      (err, result) =>
        err
          ? reject(err)
          : resolve({
              result,
              ...(options.byStatus === true ? { byStatus: summariseByStatus(times) } : {}),
            }),
    )
    if (options.byStatus === true) {
      instance.on('response', (_client, status, _bytes, ms) => {
        let list = times.get(status)
        if (list === undefined) times.set(status, (list = []))
        list.push(ms)
      })
    }
  })
}

function send(message: ChildMessage): void {
  process.send?.(message)
}

process.on('message', (message: ParentMessage) => {
  run(message.options).then(
    ({ result, byStatus }) =>
      send({ kind: 'result', id: message.id, result, ...(byStatus !== undefined ? { byStatus } : {}) }),
    (err: unknown) => send({ kind: 'error', id: message.id, message: (err as Error).message }),
  )
})
process.on('disconnect', () => process.exit(0))
send({ kind: 'ready' })
