// Runs autocannon in its own process, so the load generator does not share an event loop (or a core's worth
// of time slices) with the harness. bench/load.ts forks it with an IPC channel and sends one message per
// load run; the process exits when the channel closes.
//
//   parent → child  { kind: 'run', id, options: AutocannonRun }
//   child → parent  { kind: 'ready' } once, then { kind: 'result', id, result } or { kind: 'error', id, message }

import { readFileSync } from 'node:fs'
import autocannon, { type Result } from 'autocannon'
import type { AutocannonRun, ChildMessage, ParentMessage } from './load.js'

const bodies = new Map<string, Buffer>()

function bodyOf(file: string): Buffer {
  let body = bodies.get(file)
  if (body === undefined) {
    body = readFileSync(file)
    bodies.set(file, body)
  }
  return body
}

function run(options: AutocannonRun): Promise<Result> {
  return new Promise((resolve, reject) => {
    autocannon(
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
      (err, result) => (err ? reject(err) : resolve(result)),
    )
  })
}

function send(message: ChildMessage): void {
  process.send?.(message)
}

process.on('message', (message: ParentMessage) => {
  run(message.options).then(
    (result) => send({ kind: 'result', id: message.id, result }),
    (err: unknown) => send({ kind: 'error', id: message.id, message: (err as Error).message }),
  )
})
process.on('disconnect', () => process.exit(0))
send({ kind: 'ready' })
