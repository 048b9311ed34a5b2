import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { runInThisContext } from 'node:vm'
import fc from 'fast-check'
import type { Message } from 'kafkajs'
import { describe, expect, it, vi } from 'vitest'
import {
  groupMessagesPerPartition,
  kafkajs,
  KAFKAJS_GROUPING_MODULE,
  KAFKAJS_REQUEST_QUEUE_MODULE,
  type RequestQueueState,
} from './kafkajs-client.js'

// kafkajs' grouping of a send's messages by partition is replaced by a linear one (kafkajs-client.ts says
// why); it must compute exactly what kafkajs' own does.

const require = createRequire(import.meta.url)

type Grouping = typeof groupMessagesPerPartition

/** kafkajs' original function, evaluated from its file (the module cache holds the replacement). */
function kafkajsOriginal(): Grouping {
  const source = readFileSync(require.resolve(KAFKAJS_GROUPING_MODULE), 'utf8')
  const module = { exports: undefined as unknown }
  ;(runInThisContext(`(function (module) {${source}\n})`) as (m: typeof module) => void)(module)
  return module.exports as Grouping
}

describe('groupMessagesPerPartition (kafkajs producer)', () => {
  it("equals kafkajs' own grouping on any messages and partitioner", () => {
    const original = kafkajsOriginal()
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 8 }),
        fc.array(fc.nat(1000), { maxLength: 300 }),
        (partitions, routes) => {
          const partitionMetadata = Array.from({ length: partitions }, (_, i) => ({ partitionId: i }))
          const messages = routes.map((route, i) => ({ value: String(i), route }) as unknown as Message)
          const partitioner = ({ message }: { message: Message }): number =>
            (message as unknown as { route: number }).route % Math.max(1, partitions)
          const args = { topic: 't', partitionMetadata, messages, partitioner }
          const ours = groupMessagesPerPartition(args)
          const theirs = original(args)
          expect(Object.keys(ours)).toEqual(Object.keys(theirs))
          for (const key of Object.keys(theirs)) expect(ours[Number(key)]).toEqual(theirs[Number(key)]) // the same message objects, in order
        },
      ),
      { numRuns: 200 },
    )
  })

  it('is the function kafkajs requires once the sink loaded it, and takes linear time', () => {
    kafkajs()
    expect(require(KAFKAJS_GROUPING_MODULE)).toBe(groupMessagesPerPartition)
    // 40,000 messages to one partition: kafkajs' own version copies ~800 million array slots for them.
    const messages = Array.from({ length: 40_000 }, (_, i) => ({ value: String(i) }))
    const started = performance.now()
    const grouped = groupMessagesPerPartition({
      topic: 't',
      partitionMetadata: [{}],
      messages,
      partitioner: () => 0,
    })
    expect(performance.now() - started).toBeLessThan(500)
    expect(grouped[0]).toHaveLength(40_000)
  })
})

describe('RequestQueue.scheduleCheckPendingRequests (kafkajs)', () => {
  interface Queue extends RequestQueueState {
    scheduleCheckPendingRequests(): void
  }

  /** A queue made from kafkajs' own class once kafkajs() loaded it (only the fields the method uses). */
  function queue(state: Partial<RequestQueueState>): { q: Queue; checks: () => number } {
    kafkajs()
    const RequestQueue = require(KAFKAJS_REQUEST_QUEUE_MODULE) as { prototype: object }
    let checks = 0
    const q = Object.assign(Object.create(RequestQueue.prototype) as Queue, {
      throttledUntil: -1,
      throttleCheckTimeoutId: null,
      pending: [],
      checkPendingRequests: () => void checks++,
      ...state,
    })
    return { q, checks: () => checks }
  }

  /** The delays setTimeout was given while `run` ran. */
  function delays(run: () => void): number[] {
    const spy = vi.spyOn(globalThis, 'setTimeout')
    try {
      run()
      return spy.mock.calls.map((call) => Number(call[1]))
    } finally {
      spy.mockRestore()
    }
  }

  it('never gives setTimeout a negative delay (Node 24: TimeoutNegativeWarning), and keeps kafkajs’ others', async () => {
    // Never throttled, nothing pending: kafkajs 2.2.4 asked for -1 - Date.now() ms.
    const idle = queue({})
    expect(delays(() => idle.q.scheduleCheckPendingRequests())).toEqual([0])
    await new Promise((resolve) => setTimeout(resolve, 5))
    expect(idle.checks()).toBe(1)
    expect(idle.q.throttleCheckTimeoutId).toBeNull()
    // Pending but not throttled: the 10 ms check interval; throttled: until the throttle ends.
    const pending = queue({ pending: [{}] })
    expect(delays(() => pending.q.scheduleCheckPendingRequests())).toEqual([10])
    const throttled = queue({ pending: [{}], throttledUntil: Date.now() + 500 })
    const [delay] = delays(() => throttled.q.scheduleCheckPendingRequests())
    expect(delay).toBeGreaterThan(400)
    expect(delay).toBeLessThanOrEqual(500)
    // One timer at a time.
    expect(delays(() => throttled.q.scheduleCheckPendingRequests())).toEqual([])
    for (const { q } of [pending, throttled]) clearTimeout(q.throttleCheckTimeoutId!)
  })
})
