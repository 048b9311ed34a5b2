import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import {
  configurationReference,
  generateAll,
  ROOT,
  SCHEMA_FILE,
  sinkTypes,
  spliceSinkDefinitions,
} from '../../scripts/gen-config.js'
import { defineSink, type JsonSchema, type SinkDescription } from './define.js'
import { SINKS } from './registry.js'

// The files derived from the sink descriptors (`npm run gen`) must be what the descriptors say now.

describe('generated files', () => {
  it('are up to date with the sink descriptors and the config schema', async () => {
    const stale: string[] = []
    for (const file of await generateAll()) {
      let onDisk = ''
      try {
        onDisk = readFileSync(join(ROOT, file.path), 'utf8')
      } catch {
        // missing: stale
      }
      if (onDisk !== file.content) stale.push(`${file.path} is stale: run \`npm run gen\``)
    }
    expect(stale).toEqual([])
  }, 60_000)

  it('follow a change of the descriptors (the check above can fail)', () => {
    const text = readFileSync(join(ROOT, SCHEMA_FILE), 'utf8')
    const extra: SinkDescription = {
      type: 'stdout',
      description: 'x',
      options: {
        type: 'object',
        additionalProperties: false,
        properties: { newKey: { type: 'string', description: 'A new key.' } },
      },
    }
    const withChange = [...SINKS.filter((d) => d.type !== 'stdout'), extra]
    const schema = JSON.parse(spliceSinkDefinitions(text, withChange)) as {
      definitions: Record<string, JsonSchema>
    }
    expect(schema.definitions.stdoutSink!.properties).toHaveProperty('newKey')
    expect(schema.definitions.kafkaSink).toBeDefined()
    expect(sinkTypes(withChange)).toContain('newKey?: string')
    expect(configurationReference(schema, withChange)).toContain('`sinks.<name>.newKey`')
    // A type left out of the registry loses its definition and its branch.
    const without = JSON.parse(spliceSinkDefinitions(text, SINKS.slice(1))) as {
      definitions: Record<string, JsonSchema>
    }
    expect(without.definitions.kafkaSink).toBeUndefined()
    expect(JSON.stringify(without.definitions.sink)).not.toContain('kafka')
  })
})

describe('sink descriptors', () => {
  const undescribed = (schema: JsonSchema, at: string): string[] => {
    const out: string[] = []
    for (const [key, prop] of Object.entries((schema.properties ?? {}) as Record<string, JsonSchema>)) {
      if (typeof prop.description !== 'string' && prop.$ref === undefined) out.push(`${at}.${key}`)
      out.push(...undescribed(prop, `${at}.${key}`))
    }
    for (const alt of ((schema.oneOf ?? schema.anyOf ?? []) as JsonSchema[]).concat(
      schema.items ? [schema.items as JsonSchema] : [],
    ))
      out.push(...undescribed(alt, at))
    return out
  }

  it('describe every key they take and allow no other', () => {
    for (const d of SINKS) {
      expect(d.options.additionalProperties, d.type).toBe(false)
      expect(d.description.length, d.type).toBeGreaterThan(0)
      expect(undescribed(d.options, `sinks.<${d.type}>`)).toEqual([])
    }
  })

  it('list each type once', () => {
    const types = SINKS.map((d) => d.type)
    expect(new Set(types).size).toBe(types.length)
  })

  it('may not redeclare a key every sink has', () => {
    expect(() =>
      defineSink({
        type: 'stdout',
        description: 'x',
        options: {
          type: 'object',
          additionalProperties: false,
          properties: { retry: { type: 'object', description: 'mine' } },
        },
        create: SINKS[7].create,
      }),
    ).toThrow(/"retry" is a key every sink has/)
  })
})
