import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { SINKS } from '../../src/sinks/registry.js'

// Every registered sink type runs the conformance suite in a project that needs no backend (http), over a
// loopback server, a faithful mock or an in-process fake (issue 12 item 4). The runs are found by their
// `sinkConformance('<type> …'` call: a new sink type without one fails here.

const TEST = join(import.meta.dirname, '..')
const DIRS = ['conformance', 'http']

function conformanceRuns(): string[] {
  return DIRS.flatMap((dir) =>
    readdirSync(join(TEST, dir))
      .filter((f) => f.endsWith('.test.ts'))
      .flatMap((f) =>
        [...readFileSync(join(TEST, dir, f), 'utf8').matchAll(/^sinkConformance\(\s*'([a-z0-9-]+)/gm)].map(
          (m) => m[1]!,
        ),
      ),
  )
}

describe('sink conformance coverage', () => {
  it('every sink type in the registry runs the suite without a backend', () => {
    const runs = new Set(conformanceRuns())
    expect(SINKS.map((d) => d.type).filter((type) => !runs.has(type))).toEqual([])
  })

  it('finds the runs the way they are written (the check above can fail)', () => {
    expect(conformanceRuns()).toEqual(expect.arrayContaining(['file', 'kafka', 'http']))
  })
})
