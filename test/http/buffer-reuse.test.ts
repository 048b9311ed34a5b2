import { describe, expect, it } from 'vitest'
import { bodyPool } from '../../src/buffer-pool.js'
import { spoolBufferStats } from '../../src/spool/stream-log.js'
import { readNdjsonLines, startGateway, waitFor } from '../support/gateway.js'
import { send } from '../support/http.js'

// Request bodies, spool frames and lane read buffers are reused (src/buffer-pool.ts). Here many distinct
// bodies of varied sizes go in 16 at a time through a real listener, a small tail cache and two file lanes
// batching differently: every record must come out of both sinks byte for byte, once each, while the pools
// are in use (checked, or the test would prove nothing). A body given back before its records were spooled
// shows here as other requests' bytes (or a 400); the finer rules of frame pins are property-tested in
// src/spool/stream-log.test.ts, those of the lanes' recycle() in src/pipeline/lane.test.ts.

/** Record i of body b: deterministic, ~150-200 bytes, different for every (b, i). */
function line(b: number, i: number): string {
  let x = (b * 1_000_003 + i * 7919) >>> 0
  let pad = ''
  for (let k = 0; k < 40 + (i % 50); k++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0
    pad += String.fromCharCode(97 + ((x >>> 16) % 26))
  }
  return JSON.stringify({ b, i, pad, more: pad.toUpperCase() })
}

const BODIES = 48
const linesOf = (b: number): number => 1500 + ((b * 37) % 1000)

describe('buffer reuse under concurrent distinct bodies', () => {
  it('every record reaches both sinks exactly as sent while bodies, frames and read buffers go round', async () => {
    const gw = await startGateway({
      spool: { tailCacheBytes: 3 * 1024 * 1024 },
      sinks: {
        out: { type: 'file', dir: '{dir}/out' },
        out2: { type: 'file', dir: '{dir}/out2', maxBatchRecords: 3000 },
      },
      streams: { s: { source: 'ndjson', sinks: ['out', 'out2'] } },
    })
    try {
      const before = { ...spoolBufferStats(), bodies: bodyPool.stats }
      const expected: string[] = []
      for (let b = 0; b < BODIES; b++) for (let i = 0; i < linesOf(b); i++) expected.push(line(b, i))
      let next = 0
      await Promise.all(
        Array.from({ length: 16 }, async () => {
          while (next < BODIES) {
            const b = next++
            const body = Array.from({ length: linesOf(b) }, (_, i) => line(b, i)).join('\n')
            const res = await send(`${gw.url}/ingest/s`, { body })
            expect(res.status).toBe(200)
          }
        }),
      )
      for (const sink of ['out', 'out2'])
        await waitFor(
          () => readNdjsonLines(`${gw.dir}/${sink}`).length >= expected.length,
          30_000,
          `delivery to ${sink}`,
        )
      const sorted = [...expected].sort()
      for (const sink of ['out', 'out2']) expect(readNdjsonLines(`${gw.dir}/${sink}`).sort()).toEqual(sorted)
      const after = { ...spoolBufferStats(), bodies: bodyPool.stats }
      expect(after.bodies.reuses - before.bodies.reuses).toBeGreaterThan(0)
      expect(after.frames.reuses - before.frames.reuses).toBeGreaterThan(0)
    } finally {
      await gw.close()
    }
  }, 60_000)
})
