import type { ConfigIssue } from '../config/load.js'
import type { SinkConfig, SinkType } from '../config/types.js'
import type { SinkFactory } from './sink.js'

// A sink type describes itself in one module (src/sinks/<type>/index.ts): its name, what it is, the JSON
// Schema of its own config keys and its factory. Everything else is derived from these descriptors
// (src/sinks/registry.ts lists them): the config schema's sink branches, the SinkConfig types and the
// configuration reference (`npm run gen`, scripts/gen-config.ts), the management API's sink type lookup and
// its OpenAPI document. After Redpanda Connect's ConfigSpec: one spec is the docs, the validation and the
// lint of a component.

/** A JSON Schema (draft-07) node, as the config schema writes them. */
export type JsonSchema = { [keyword: string]: unknown }

/** The schema of a sink type's own keys: an object that allows no other key. */
export interface SinkOptionsSchema {
  type: 'object'
  additionalProperties: false
  required?: string[]
  /** Every key with a `description`, and its `default` when it has one (the loader applies it). */
  properties: Record<string, JsonSchema>
  [keyword: string]: unknown
}

/** What a sink type says about itself, without its factory. */
export interface SinkDescription<T extends SinkType = SinkType> {
  type: T
  /** One line: what the destination is (the management API's sink type lookup, the reference docs). */
  description: string
  options: SinkOptionsSchema
}

export interface SinkDescriptor<T extends SinkType = SinkType> extends SinkDescription<T> {
  create: SinkFactory<T>
  /**
   * Rules about its keys that a JSON Schema cannot say clearly (which keys go together), as issues at paths
   * under `at` (`sinks.<name>`). The one config check (src/pipeline/config-check.ts) runs them with the
   * schema, so check-config, serve and the management API refuse the same configs with the same paths.
   */
  check?: (config: Extract<SinkConfig, { type: T }>, at: string) => ConfigIssue[]
}

/** A descriptor of any one sink type (its factory takes that type's config). */
export type AnySinkDescriptor = { [T in SinkType]: SinkDescriptor<T> }[SinkType]

/**
 * The keys every sink type takes besides its own (batch limits, retry, circuit); their schemas are
 * definitions of the hand-written part of schemas/config.schema.json.
 */
export const COMMON_SINK_PROPERTIES: Readonly<Record<string, JsonSchema>> = {
  maxBatchRecords: { $ref: '#/definitions/maxBatchRecords' },
  maxBatchBytes: { $ref: '#/definitions/maxBatchBytes' },
  lingerMs: { $ref: '#/definitions/lingerMs' },
  retry: { $ref: '#/definitions/retry', default: {} },
  circuit: { $ref: '#/definitions/circuit' },
}

export function defineSink<T extends SinkType>(descriptor: SinkDescriptor<T>): SinkDescriptor<T> {
  for (const key of ['type', ...Object.keys(COMMON_SINK_PROPERTIES)])
    if (key in descriptor.options.properties)
      throw new Error(`sink type ${descriptor.type}: "${key}" is a key every sink has; do not declare it`)
  return descriptor
}

/** The config schema's `definitions.<type>Sink`: the type's own keys after the common ones. */
export function sinkDefinitionName(type: string): string {
  return `${type}Sink`
}

export function sinkDefinition(descriptor: SinkDescription): JsonSchema {
  const { options } = descriptor
  return {
    ...options,
    properties: {
      type: { const: descriptor.type, description: 'Sink type.' },
      ...COMMON_SINK_PROPERTIES,
      ...options.properties,
    },
  }
}

/** The config schema's `definitions.sink`: the type enum and one if/then branch per type. */
export function sinkUnionDefinition(descriptors: readonly SinkDescription[]): JsonSchema {
  return {
    type: 'object',
    description: 'A destination. Keys depend on type.',
    required: ['type'],
    properties: {
      type: { enum: descriptors.map((d) => d.type), description: 'Sink type.' },
    },
    allOf: descriptors.map((d) => ({
      if: { properties: { type: { const: d.type } } },
      then: { $ref: `#/definitions/${sinkDefinitionName(d.type)}` },
    })),
  }
}
