import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'

// Config sits at the bottom of the import graph: everything reads the config, the config reads nothing of
// theirs. Component checks reach it from above (ValidateOptions.componentIssues, src/pipeline/config-check.ts).
// telemetry/ is a leaf every layer uses (it imports nothing of streamgate's outside its own folder).

const CONFIG_DIR = new URL('.', import.meta.url).pathname
const SRC = join(CONFIG_DIR, '..')
const LEAVES = ['telemetry']

function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8')
  return [...text.matchAll(/^\s*(?:import|export)\b[^'"]*?from\s+'([^']+)'/gm)].map((m) => m[1]!)
}

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? tsFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  )
}

describe('src/config imports', () => {
  it('nothing under src/config imports a higher folder', () => {
    const upward = tsFiles(CONFIG_DIR)
      .filter((file) => !file.endsWith('.test.ts'))
      .flatMap((file) =>
        importsOf(file)
          .filter((spec) => spec.startsWith('../'))
          .filter((spec) => !LEAVES.some((leaf) => spec.startsWith(`../${leaf}/`)))
          .map((spec) => `${file.slice(SRC.length)} imports ${spec}`),
      )
    expect(upward).toEqual([])
  })

  it('the leaves config may use import nothing of streamgate outside their own folder', () => {
    const outward = LEAVES.flatMap((leaf) =>
      tsFiles(join(SRC, leaf))
        .filter((file) => !file.endsWith('.test.ts'))
        .flatMap((file) =>
          importsOf(file)
            .filter((spec) => spec.startsWith('../'))
            .map((spec) => `${file.slice(SRC.length)} imports ${spec}`),
        ),
    )
    expect(outward).toEqual([])
  })

  it('finds imports the way they are written in this code base', () => {
    // The check above must not pass because the pattern misses real imports.
    expect(importsOf(join(CONFIG_DIR, 'load.ts'))).toContain('./interpolate.js')
    expect(importsOf(join(SRC, 'pipeline', 'topology.ts'))).toContain('../config/load.js')
  })
})
