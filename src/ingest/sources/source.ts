import type { ConfigIssue } from '../../config/load.js'
import type { SourceType, StreamConfig } from '../../config/types.js'

// A source is what a vendor (or an application) POSTs and how streamgate reads it: the stream keys only it
// takes, the config problems a schema cannot see, how a body is framed into records and which contract the
// records are checked against when the stream names no `schema`. One module per source, looked up by the
// stream's `source` in registry.ts. docs/extending.md says how to add one.

export interface Source<T extends SourceType = SourceType> {
  readonly type: T
  /**
   * Stream keys that only this source takes (config.schema.json declares them on every stream); another
   * source's stream that sets one is refused with "only applies to source <type>".
   */
  readonly ownKeys: readonly (keyof StreamConfig)[]
  /** What is wrong with a stream of this source beyond the schema, at paths under `at` (`streams.<id>`). */
  check(stream: StreamConfig, at: string): ConfigIssue[]
}
