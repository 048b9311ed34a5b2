import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { runInThisContext } from 'node:vm'
import fc from 'fast-check'
import type { Message } from 'kafkajs'
import { describe, expect, it } from 'vitest'
import { groupMessagesPerPartition, kafkajs, KAFKAJS_GROUPING_MODULE } from './kafkajs-client.js'

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
