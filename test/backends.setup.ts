// vitest globalSetup for the integration project: real Kafka, MinIO and kinesis-local on 127.0.0.1.
//
// Backends already up (`npm run backends:up`) and answering are reused and left running. Otherwise they are
// started here (installed on first use) and the ones started here are stopped in teardown. A backend that
// cannot start fails the run: integration tests never skip silently.
// Tests read the addresses with `inject('backends')` (also copied into process.env under the same keys).
import type { TestProject } from 'vitest/node'
import { backendsAnswer, readBackendsEnv, startAll, type BackendsEnv } from '../scripts/backends/index.js'

declare module 'vitest' {
  export interface ProvidedContext {
    backends: BackendsEnv
  }
}

let stopOnTeardown: (() => Promise<void>) | undefined

export async function setup(project: TestProject): Promise<void> {
  let env = readBackendsEnv()
  if (env !== undefined && (await backendsAnswer(env))) {
    process.stderr.write('[backends] reusing the running backends described in .backends/env\n')
  } else {
    const started = Date.now()
    const running = await startAll()
    env = running.env
    stopOnTeardown = () => running.stopStarted()
    process.stderr.write(`[backends] ready in ${((Date.now() - started) / 1000).toFixed(1)} s\n`)
  }
  Object.assign(process.env, env)
  project.provide('backends', env)
}

export async function teardown(): Promise<void> {
  await stopOnTeardown?.()
}
