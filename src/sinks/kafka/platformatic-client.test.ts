import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { createLogger } from '../../telemetry/logger.js'
import type { KafkaClientSettings } from './client.js'
import { createPlatformaticClient } from './platformatic-client.js'

// The worker thread's life as the sink sees it, with a stand-in worker: a thread that dies fails the calls
// it had (transiently, so they are retried) and is logged once; the next call starts a new thread.

const dir = mkdtempSync(join(tmpdir(), 'sg-plt-worker-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** Answers `ping` with ok; exits (code 3) on `send`, leaving the call unanswered. */
const standIn = join(dir, 'stand-in.mjs')
writeFileSync(
  standIn,
  `import { parentPort, threadId } from 'node:worker_threads'
parentPort.on('message', (req) => {
  if (req.op === 'send') process.exit(3)
  parentPort.postMessage({ id: req.id, ok: true, value: req.op === 'topicExists' ? threadId : undefined })
})
`,
)

function settings(lines: string[]): KafkaClientSettings {
  return {
    where: 'sinks.k',
    brokers: ['127.0.0.1:9'],
    clientId: 'test',
    timeoutMs: 1_000,
    acks: -1,
    idempotent: true,
    compression: 'none',
    producers: 1,
    logger: createLogger('debug', { write: (line: string) => void lines.push(line) }),
  }
}

describe('platformatic client: its worker thread', () => {
  it('fails the calls of a thread that died transiently, logs it once, and starts a new thread for the next call', async () => {
    const lines: string[] = []
    const client = createPlatformaticClient(settings(lines), pathToFileURL(standIn))
    const first = (await client.topicExists('t')) as unknown as number
    const err = await client
      .send(0, 't', [
        { key: null, value: Buffer.from('{}'), headers: {}, timestamp: 0, route: 0, bytes: 0, index: 0 },
      ])
      .then(
        () => undefined,
        (e: { retriable?: boolean; reason?: string; message?: string }) => e,
      )
    expect(err).toMatchObject({ retriable: true, reason: 'kafka-error' })
    expect(err?.message).toContain('exit code 3')
    const second = (await client.topicExists('t')) as unknown as number
    expect(second).not.toBe(first) // another thread
    const logged = lines.map((l) => JSON.parse(l) as { msg: string; code?: number })
    expect(logged.filter((l) => l.msg.startsWith('kafka client worker thread stopped'))).toEqual([
      expect.objectContaining({ code: 3 }),
    ])
    await client.close()
    await expect(client.ping()).rejects.toMatchObject({ reason: 'closed' })
  })
})
