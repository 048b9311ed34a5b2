import { setFlagsFromString } from 'node:v8'

// How the gateway's process tunes V8's heap (bench/RESULTS.md, "S3 drain memory" and the ingest A/B beside
// it). Two settings, set in two ways because V8 takes them differently:
//
// - The young generation's size is fixed when the heap is set up, so only a node flag on the command line
//   (or NODE_OPTIONS) changes it: `npm start`, the Docker image and the benchmarks start the gateway with
//   NODE_FLAGS (test/runtime-flags.test.ts checks package.json and the Dockerfile). Node 24 lets each of
//   the two semi-spaces grow to 64 MiB; 16 measured the same ingest speed and keeps 96 MiB of it out of RSS.
// - Allocation-site pretenuring is read at every GC, so `serve` turns it off for itself (any launcher).
//   With it, V8 at times decided early in a backlog drain to allocate the records a lane decodes straight
//   into the old generation; they then waited for a major GC, and one drain in four peaked ~100 MB higher.

/** Node flags the gateway is started with (`npm start`, Dockerfile, benchmarks). */
export const NODE_FLAGS = ['--max-semi-space-size=16'] as const

/** V8 flags `streamgate serve` sets for its own process at start-up (workers included). */
export const RUNTIME_V8_FLAGS = ['--no-allocation-site-pretenuring'] as const

export function applyRuntimeFlags(): void {
  for (const flag of RUNTIME_V8_FLAGS) setFlagsFromString(flag)
}
