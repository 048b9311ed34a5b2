import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { NODE_FLAGS } from './runtime-flags.js'

const repoFile = (path: string): string => readFileSync(new URL(`../${path}`, import.meta.url), 'utf8')

describe('the node flags the gateway ships with', () => {
  it('`npm start` runs the gateway with them', () => {
    const pkg = JSON.parse(repoFile('package.json')) as { scripts: Record<string, string> }
    expect(pkg.scripts.start).toContain(`node ${NODE_FLAGS.join(' ')} dist/cli.js serve`)
  })

  it('the Docker image runs the gateway with them', () => {
    const entrypoint = /^ENTRYPOINT (.+)$/m.exec(repoFile('Dockerfile'))?.[1]
    expect(JSON.parse(entrypoint ?? 'null')).toEqual(['node', ...NODE_FLAGS, 'dist/cli.js'])
  })
})
