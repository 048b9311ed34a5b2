// `npm run gen`: writes what is derived from the sink descriptors (src/sinks/<type>/index.ts, listed in
// src/sinks/registry.ts) and from the config schema as a whole:
//   - schemas/config.schema.json: only `definitions.sink` (type enum, if/then branches) and every
//     `definitions.<type>Sink`, spliced into the file's text; every other part stays hand-written;
//   - src/config/sink-types.generated.ts: SinkType, the <Type>SinkConfig interfaces and SinkConfig (plain
//     types: src/config imports nothing above it);
//   - docs/configuration.md: the reference of every config key (type, default, description).
// src/sinks/generated.test.ts regenerates them in memory and fails naming any stale file.

import { readFileSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import * as prettier from 'prettier'
import {
  type JsonSchema,
  type SinkDescription,
  sinkDefinition,
  sinkDefinitionName,
  sinkUnionDefinition,
} from '../src/sinks/define.js'
import { SINKS } from '../src/sinks/registry.js'

export const ROOT = resolve(import.meta.dirname, '..')
export const SCHEMA_FILE = 'schemas/config.schema.json'
export const TYPES_FILE = 'src/config/sink-types.generated.ts'
export const DOCS_FILE = 'docs/configuration.md'

export interface GeneratedFile {
  /** Relative to the repository root. */
  path: string
  content: string
}

/** Every generated file as it should be now (prettier-formatted), given the files on disk. */
export async function generateAll(root = ROOT): Promise<GeneratedFile[]> {
  const descriptors: readonly SinkDescription[] = SINKS
  const schemaText = spliceSinkDefinitions(readFileSync(join(root, SCHEMA_FILE), 'utf8'), descriptors)
  const schema = JSON.parse(schemaText) as JsonSchema
  return [
    { path: SCHEMA_FILE, content: await format(root, SCHEMA_FILE, schemaText) },
    { path: TYPES_FILE, content: await format(root, TYPES_FILE, sinkTypes(descriptors)) },
    { path: DOCS_FILE, content: await format(root, DOCS_FILE, configurationReference(schema, descriptors)) },
  ]
}

async function format(root: string, path: string, text: string): Promise<string> {
  const filepath = join(root, path)
  const options = (await prettier.resolveConfig(filepath)) ?? {}
  return prettier.format(text, { ...options, filepath })
}

// ---------------------------------------------------------------------------------------------------------
// schemas/config.schema.json: replace the generated definitions in the text, leave the rest byte for byte.

/** The members of the object `definitions` of the schema text: name and the [start, end) of its value. */
function definitionSpans(text: string): { name: string; start: number; end: number }[] {
  const spans: { name: string; start: number; end: number }[] = []
  let depth = 0
  let inDefinitions = false
  let pendingKey: string | undefined
  let valueStart = -1
  let member: string | undefined
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!
    if (c === '"') {
      let j = i + 1
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1
      const str = JSON.parse(text.slice(i, j + 1)) as string
      const after = text.slice(j + 1).match(/^\s*:/)
      if (after) {
        if (depth === 1 && str === 'definitions') pendingKey = 'definitions'
        else if (inDefinitions && depth === 2) {
          member = str
          valueStart = j + 1 + after[0].length
          while (/\s/.test(text[valueStart]!)) valueStart++
        }
      }
      i = j
    } else if (c === '{' || c === '[') {
      depth++
      if (depth === 2 && pendingKey === 'definitions') inDefinitions = true
      pendingKey = undefined
    } else if (c === '}' || c === ']') {
      if (inDefinitions && depth === 3 && member !== undefined) {
        spans.push({ name: member, start: valueStart, end: i + 1 })
        member = undefined
      }
      if (depth === 2 && inDefinitions) inDefinitions = false
      depth--
    }
  }
  return spans
}

function indentJson(value: unknown, indent: string): string {
  return JSON.stringify(value, null, 2).replace(/\n/g, `\n${indent}`)
}

export function spliceSinkDefinitions(text: string, descriptors: readonly SinkDescription[]): string {
  const spans = definitionSpans(text)
  const sinkSpan = spans.find((s) => s.name === 'sink')
  if (!sinkSpan) throw new Error(`${SCHEMA_FILE}: definitions.sink not found`)
  const wanted = new Map(descriptors.map((d) => [sinkDefinitionName(d.type), d]))
  // Old sink definitions: the ones whose value is an object with properties.type.const (any sink type).
  const isSinkDef = (s: { start: number; end: number }): boolean => {
    const value = JSON.parse(text.slice(s.start, s.end)) as JsonSchema
    const props = value.properties as Record<string, JsonSchema> | undefined
    return typeof props?.type?.const === 'string'
  }
  const old = spans.filter((s) => s.name !== 'sink' && isSinkDef(s))
  const indent = '    '
  // Remove old sink definitions (with their preceding comma), then write the new ones after definitions.sink.
  let out = text
  for (const span of [...old].reverse()) {
    const comma = out.lastIndexOf(',', span.start)
    const keyStart = out.lastIndexOf(`"${span.name}"`, span.start)
    out = out.slice(0, comma) + out.slice(span.end)
    if (keyStart < comma) throw new Error(`${SCHEMA_FILE}: cannot splice definitions.${span.name}`)
  }
  const sinkNow = definitionSpans(out).find((s) => s.name === 'sink')!
  const generated = [...wanted].map(
    ([name, d]) => `,\n${indent}${JSON.stringify(name)}: ${indentJson(sinkDefinition(d), indent)}`,
  )
  return (
    out.slice(0, sinkNow.start) +
    indentJson(sinkUnionDefinition(descriptors), indent) +
    generated.join('') +
    out.slice(sinkNow.end)
  )
}

// ---------------------------------------------------------------------------------------------------------
// src/config/sink-types.generated.ts

const REF_TYPES: Record<string, string> = { '#/definitions/credentials': 'AwsCredentialsConfig' }

export function typeName(type: string): string {
  return `${type[0]!.toUpperCase()}${type.slice(1)}SinkConfig`
}

function docComment(description: unknown, indent: string): string {
  if (typeof description !== 'string') return ''
  return `${indent}/** ${description.replace(/\*\//g, '*\\/')} */\n`
}

const union = (types: string[]): string => [...new Set(types)].join(' | ')

function tsType(schema: JsonSchema, indent: string): string {
  if (typeof schema.$ref === 'string') {
    const named = REF_TYPES[schema.$ref]
    if (!named) throw new Error(`no TypeScript type for ${schema.$ref} (scripts/gen-config.ts REF_TYPES)`)
    return named
  }
  if ('const' in schema) return JSON.stringify(schema.const)
  if (Array.isArray(schema.enum)) return union(schema.enum.map((v) => JSON.stringify(v)))
  const alternatives = (schema.oneOf ?? schema.anyOf) as JsonSchema[] | undefined
  if (alternatives) return union(alternatives.map((a) => tsType(a, indent)))
  if (Array.isArray(schema.type)) return union(schema.type.map((t: string) => tsType({ type: t }, indent)))
  switch (schema.type) {
    case 'string':
      return 'string'
    case 'integer':
    case 'number':
      return 'number'
    case 'boolean':
      return 'boolean'
    case 'array': {
      const item = tsType((schema.items ?? {}) as JsonSchema, indent)
      return item.includes('|') ? `(${item})[]` : `${item}[]`
    }
    case 'object':
      if (schema.properties) return objectType(schema, indent, false)
      if (schema.additionalProperties && typeof schema.additionalProperties === 'object')
        return `Record<string, ${tsType(schema.additionalProperties as JsonSchema, indent)}>`
      return 'Record<string, unknown>'
    default:
      return 'unknown'
  }
}

/** Keys are optional unless required; at a sink's top level, a key with a default is always set (loader). */
function members(schema: JsonSchema, indent: string, defaultsApply: boolean): string {
  const required = new Set((schema.required as string[] | undefined) ?? [])
  return Object.entries(schema.properties as Record<string, JsonSchema>)
    .map(([key, prop]) => {
      const optional = !required.has(key) && !(defaultsApply && 'default' in prop)
      return `${docComment(prop.description, indent)}${indent}${key}${optional ? '?' : ''}: ${tsType(prop, `${indent}  `)}\n`
    })
    .join('')
}

function objectType(schema: JsonSchema, indent: string, defaultsApply: boolean): string {
  return `{\n${members(schema, `${indent}  `, defaultsApply)}${indent}}`
}

export function sinkTypes(descriptors: readonly SinkDescription[]): string {
  const interfaces = descriptors.map(
    (d) =>
      `${docComment(d.description, '')}export interface ${typeName(d.type)} extends CommonSinkConfig {\n` +
      `  type: '${d.type}'\n${members(d.options, '  ', true)}}\n`,
  )
  return [
    '// Generated by `npm run gen` (scripts/gen-config.ts) from the sink descriptors (src/sinks/<type>/index.ts,',
    '// src/sinks/registry.ts): do not edit. The TypeScript view of each sink type after the defaults are applied.',
    '',
    "import type { AwsCredentialsConfig, CommonSinkConfig } from './types.js'",
    '',
    `export type SinkType = ${union(descriptors.map((d) => `'${d.type}'`))}`,
    '',
    ...interfaces,
    `export type SinkConfig = ${descriptors.map((d) => typeName(d.type)).join(' | ')}`,
    '',
  ].join('\n')
}

// ---------------------------------------------------------------------------------------------------------
// docs/configuration.md

interface Row {
  path: string
  type: string
  default: string
  description: string
}

function resolveRef(root: JsonSchema, schema: JsonSchema): JsonSchema {
  if (typeof schema.$ref !== 'string') return schema
  const name = schema.$ref.replace('#/definitions/', '')
  const target = (root.definitions as Record<string, JsonSchema>)[name]
  if (!target) throw new Error(`${SCHEMA_FILE}: unresolved ${schema.$ref}`)
  // Keys beside the $ref (a default, a description) win over the definition's.
  const { $ref: _ref, ...beside } = schema
  return { ...resolveRef(root, target), ...beside }
}

function docType(root: JsonSchema, raw: JsonSchema): string {
  const schema = resolveRef(root, raw)
  if ('const' in schema) return JSON.stringify(schema.const)
  if (Array.isArray(schema.enum)) return schema.enum.map((v) => JSON.stringify(v)).join(' | ')
  const alternatives = (schema.oneOf ?? schema.anyOf) as JsonSchema[] | undefined
  if (alternatives) return [...new Set(alternatives.map((a) => docType(root, a)))].join(' | ')
  if (Array.isArray(schema.type)) return schema.type.join(' | ')
  if (schema.type === 'array') return `${docType(root, (schema.items ?? {}) as JsonSchema)}[]`
  if (schema.type === 'object' && !schema.properties && typeof schema.additionalProperties === 'object')
    return `map of ${docType(root, schema.additionalProperties as JsonSchema)}`
  return typeof schema.type === 'string' ? schema.type : 'any'
}

/** Prose from the schema for Markdown: `<name>` outside code spans would be read as an HTML tag. */
const text = (value: unknown): string =>
  typeof value === 'string'
    ? value
        .split('`')
        .map((part, i) => (i % 2 === 0 ? part.replace(/[<>]/g, (c) => `\\${c}`) : part))
        .join('`')
    : ''

const cell = (value: string): string => value.replace(/\|/g, '\\|').replace(/\n/g, ' ')

function limits(schema: JsonSchema): string {
  const parts: string[] = []
  if (schema.minimum !== undefined) parts.push(`≥ ${JSON.stringify(schema.minimum)}`)
  if (schema.exclusiveMinimum !== undefined) parts.push(`> ${JSON.stringify(schema.exclusiveMinimum)}`)
  if (schema.maximum !== undefined) parts.push(`≤ ${JSON.stringify(schema.maximum)}`)
  if (schema.minLength !== undefined) parts.push(`length ≥ ${JSON.stringify(schema.minLength)}`)
  if (schema.minItems !== undefined) parts.push(`items ≥ ${JSON.stringify(schema.minItems)}`)
  if (typeof schema.pattern === 'string') parts.push(`pattern \`${schema.pattern}\``)
  return parts.length ? ` (${parts.join(', ')})` : ''
}

/** Rows for every key under `schema` (an object), depth first; refs already on the path are not reentered. */
function rows(
  root: JsonSchema,
  raw: JsonSchema,
  prefix: string,
  seen: ReadonlySet<string> = new Set(),
): Row[] {
  const schema = resolveRef(root, raw)
  const out: Row[] = []
  const required = new Set((schema.required as string[] | undefined) ?? [])
  const objects = [schema, ...(((schema.oneOf ?? schema.anyOf) as JsonSchema[] | undefined) ?? [])]
  const done = new Set<string>()
  for (const object of objects) {
    const props = resolveRef(root, object).properties as Record<string, JsonSchema> | undefined
    for (const [key, prop] of Object.entries(props ?? {})) {
      const path = `${prefix}${key}`
      if (done.has(path)) continue
      done.add(path)
      const ref = typeof prop.$ref === 'string' ? prop.$ref : undefined
      const resolved = resolveRef(root, prop)
      const defaultText =
        'default' in resolved
          ? `\`${JSON.stringify(resolved.default)}\``
          : required.has(key)
            ? '**required**'
            : (resolveRef(root, object).required as string[] | undefined)?.includes(key)
              ? 'required in its form (oneOf)' // one alternative of a oneOf/anyOf needs it; the others do not
              : '—'
      out.push({
        path: `\`${path}\``,
        type: cell(docType(root, prop) + limits(resolved)),
        default: cell(defaultText),
        description: cell(text(resolved.description)),
      })
      if (ref && seen.has(ref)) continue
      const nested = new Set(seen)
      if (ref) nested.add(ref)
      const hasObject =
        resolved.properties ||
        ((resolved.oneOf ?? resolved.anyOf) as JsonSchema[] | undefined)?.some(
          (a) => resolveRef(root, a).properties,
        )
      if (hasObject) out.push(...rows(root, prop, `${path}.`, nested))
      else if (resolved.type === 'object' && typeof resolved.additionalProperties === 'object') {
        const values = resolveRef(root, resolved.additionalProperties as JsonSchema)
        if (values.properties) out.push(...rows(root, values, `${path}.<name>.`, nested))
      }
    }
  }
  return out
}

function table(list: Row[]): string {
  return [
    '| key | type | default | description |',
    '| --- | --- | --- | --- |',
    ...list.map((r) => `| ${r.path} | ${r.type} | ${r.default} | ${r.description} |`),
    '',
  ].join('\n')
}

export function configurationReference(schema: JsonSchema, descriptors: readonly SinkDescription[]): string {
  const defs = schema.definitions as Record<string, JsonSchema>
  const props = schema.properties as Record<string, JsonSchema>
  const topLevel = Object.keys(props).filter((k) => k !== 'sinks' && k !== 'streams')
  const out: string[] = [
    '# Configuration reference',
    '',
    '<!-- Generated by `npm run gen` (scripts/gen-config.ts) from schemas/config.schema.json and the sink descriptors (src/sinks/<type>/index.ts): do not edit. -->',
    '',
    text(schema.description),
    'Every key of the config file, with its type, default and meaning. A key whose default is `—` is optional',
    'without a default (its description says what its absence means); "required in its form" marks a key that one',
    "of its object's alternative shapes needs and the others do not have. The management API accepts the same",
    'keys (GET /api/v1/openapi.json).',
    '',
    '## Top level',
    '',
    table(
      Object.entries(props).map(([key, prop]) => {
        const resolved = resolveRef(schema, prop)
        return {
          path: `\`${key}\``,
          type: cell(docType(schema, prop)),
          default:
            'default' in resolved
              ? cell(`\`${JSON.stringify(resolved.default)}\``)
              : (schema.required as string[]).includes(key)
                ? '**required**'
                : '—',
          description: cell(text(resolved.description)),
        }
      }),
    ),
  ]
  for (const key of topLevel) {
    const resolved = resolveRef(schema, props[key]!)
    if (!resolved.properties) continue
    out.push(`## ${key}`, '', text(resolved.description), '', table(rows(schema, props[key]!, `${key}.`)))
  }
  out.push(
    '## streams',
    '',
    text(props.streams!.description),
    'Each stream is `streams.<id>`.',
    '',
    table(rows(schema, { $ref: '#/definitions/stream' }, 'streams.<id>.')),
  )
  out.push(
    '## sinks',
    '',
    text(props.sinks!.description),
    'Each sink is `sinks.<name>` with a `type`; these keys apply to every type:',
    '',
    table(rows(schema, { properties: commonSinkProperties(defs) }, 'sinks.<name>.')),
  )
  for (const d of descriptors) {
    out.push(
      `### Sink type \`${d.type}\``,
      '',
      `${text(d.description)}.`,
      '',
      table(rows(schema, { ...d.options, type: 'object' }, 'sinks.<name>.')),
    )
  }
  return out.join('\n')
}

function commonSinkProperties(defs: Record<string, JsonSchema>): Record<string, JsonSchema> {
  const sink = defs.sink!
  const first = defs[sinkDefinitionName((sink.properties as { type: { enum: string[] } }).type.enum[0]!)]!
  const { type: _type, ...common } = first.properties as Record<string, JsonSchema>
  return { type: (sink.properties as { type: JsonSchema }).type, ...common }
}

async function main(): Promise<void> {
  for (const file of await generateAll()) {
    const path = join(ROOT, file.path)
    let before = ''
    try {
      before = readFileSync(path, 'utf8')
    } catch {
      // a new file
    }
    if (before === file.content) continue
    writeFileSync(path, file.content)
    console.log(`wrote ${file.path}`)
  }
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename)) await main()
