import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { FrameKind } from './format.js'
import { FrameIndex } from './frame-index.js'

describe('FrameIndex', () => {
  it('answers the records before any kept seq, the first kept one included, across drops', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.record({
              op: fc.constant('push' as const),
              dl: fc.boolean(),
              count: fc.nat(50),
              gap: fc.nat(2),
            }),
            fc.record({ op: fc.constant('drop' as const), ahead: fc.nat(6) }),
          ),
          { maxLength: 60 },
        ),
        (ops) => {
          const index = new FrameIndex()
          // The model: every frame ever pushed, by seq.
          const frames = new Map<number, { kind: FrameKind; count: number }>()
          let next = 1
          let kept = 1
          for (const o of ops) {
            if (o.op === 'push') {
              next += o.gap // a skipped (corrupt) frame leaves a gap
              const kind = o.dl ? FrameKind.DeadLetters : FrameKind.Records
              index.push(next, kind, o.count)
              frames.set(next, { kind, count: o.count })
              next++
            } else {
              const seq = Math.min(kept + o.ahead, next)
              index.dropBefore(seq)
              kept = Math.max(kept, seq)
            }
            for (const kind of [FrameKind.Records, FrameKind.DeadLetters])
              for (let seq = kept; seq <= next; seq++) {
                let want = 0
                for (const [s, f] of frames) if (s < seq && f.kind === kind) want += f.count
                expect(index.before(kind, seq)).toBe(want)
                // A lane at `seq` lags by what follows it.
                expect(index.total(kind) - index.before(kind, seq)).toBe(
                  [...frames].reduce((n, [s, f]) => n + (s >= seq && f.kind === kind ? f.count : 0), 0),
                )
              }
          }
        },
      ),
      { numRuns: 300 },
    )
  })
})
