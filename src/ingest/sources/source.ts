import type { ConfigIssue } from '../../config/load.js'
import type { SourceType, StreamConfig } from '../../config/types.js'
import type { BuiltinSchemaName } from '../../validate/validators.js'
import type { AzionTemplate } from '../azion-templates.js'
import type { CompiledTemplate, RecordScan } from '../azion-template.js'
import type { Framer, RecordFramer } from '../framing.js'

// A source is what a vendor (or an application) POSTs and how streamgate reads it: the stream keys only it
// takes, the config problems a schema cannot see, the Content-Types it accepts, how a body is framed into
// records and which contract the records are checked against when the stream names no `schema`. One module
// per source, looked up by the stream's `source` in registry.ts (no switch); docs/extending.md says how to
// add one.

export interface Source<T extends SourceType = SourceType> {
  readonly type: T
  /**
   * Stream keys that only this source takes (config.schema.json declares them on every stream); another
   * source's stream that sets one is refused with "only applies to source <type>".
   */
  readonly ownKeys: readonly (keyof StreamConfig)[]
  /** What is wrong with a stream of this source beyond the schema, at paths under `at` (`streams.<id>`). */
  check(stream: StreamConfig, at: string): ConfigIssue[]
  /** Content-Types a stream that sets no `contentTypes` accepts; undefined: any. */
  readonly contentTypes: readonly string[] | undefined
  /** The field every record carries its id in (read together with the dedupe key), if the vendor has one. */
  readonly idField?: string
  /** The built-in schema records are validated against when the stream names no `schema`. */
  builtinSchema?(stream: StreamConfig): BuiltinSchemaName
  /** The record templates of a stream (Azion): the first is the stream's own, the rest variants of it. */
  templates?(stream: StreamConfig): SourceTemplates
  /** Frames a request body into records. */
  framer(stream: StreamConfig, framing: SourceFraming): Framer
  /** Frames one record given alone (a dead-letter replay). */
  recordFramer(stream: StreamConfig, template: CompiledTemplate | undefined): RecordFramer
  /** What a stream of this source gets for keys it leaves out, where that differs from other streams. */
  readonly defaults?: SourceDefaults
}

export interface SourceDefaults {
  /** The body limit is at least this without the stream's own `maxBodyBytes` (config/load.ts streamBodyLimit). */
  minBodyBytes?: number
  /** Without a `dedupe` key the stream dedupes on `id` with the default window (config/load.ts streamDedupe). */
  dedupe?: boolean
}

export interface SourceTemplates {
  variants: CompiledTemplate[]
  /** Set when the templates are a built-in preset's: they describe records, they do not gate them. */
  preset?: AzionTemplate
}

export interface SourceFraming {
  template?: CompiledTemplate
  /** A byte-level check proving records valid without parsing them (see framing.ts azionFramer). */
  proven?: RecordScan
}

/**
 * What application sources accept without `contentTypes`. Vendor sources frame by their own rules (SPEC
 * section 3) and neither emnify nor Azion documents the Content-Type it sends (vendor-formats.md §5), so
 * their streams accept any.
 */
export const APPLICATION_CONTENT_TYPES: readonly string[] = [
  'application/json',
  'application/x-ndjson',
  'application/ndjson',
  'application/jsonl',
  'application/jsonlines',
  'application/x-jsonlines',
  'application/octet-stream',
  'application/*+json',
  'text/*',
]
