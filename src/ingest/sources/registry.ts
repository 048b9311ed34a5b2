import type { ConfigIssue } from '../../config/load.js'
import type { GatewayConfig, SourceType, StreamConfig } from '../../config/types.js'
import type { CompiledTemplate } from '../azion-template.js'
import type { Framer, RecordFramer } from '../framing.js'
import { azionSource } from './azion.js'
import { emnifySource } from './emnify.js'
import { jsonSource } from './json.js'
import { linesSource } from './lines.js'
import { ndjsonSource } from './ndjson.js'
import type { Source, SourceFraming } from './source.js'

/** Every source type maps to its module; a missing type fails the build (`satisfies`). */
export const SOURCES = {
  emnify: emnifySource,
  azion: azionSource,
  ndjson: ndjsonSource,
  json: jsonSource,
  lines: linesSource,
} as const satisfies { [T in SourceType]: Source<T> }

export function sourceOf(type: SourceType): Source {
  return SOURCES[type]
}

/** A stream's body framer (the one its source frames with). */
export function createFramer(stream: StreamConfig, framing: SourceFraming = {}): Framer {
  return sourceOf(stream.source).framer(stream, framing)
}

/** A stream's framer of records given alone (dead-letter replays). */
export function createRecordFramer(stream: StreamConfig, template?: CompiledTemplate): RecordFramer {
  return sourceOf(stream.source).recordFramer(stream, template)
}

/** A stream's source problems: keys of another source, then what its own source finds. */
export function streamSourceIssues(stream: StreamConfig, at: string): ConfigIssue[] {
  const source = sourceOf(stream.source)
  const issues: ConfigIssue[] = []
  for (const other of Object.values(SOURCES) as Source[]) {
    if (other === source) continue
    for (const key of other.ownKeys)
      if (stream[key] !== undefined && !source.ownKeys.includes(key))
        issues.push({ path: `${at}.${key}`, message: `only applies to source ${other.type}` })
  }
  issues.push(...source.check(stream, at))
  return issues
}

/** Every stream's source problems (the component check config/load.ts's validateConfig takes). */
export function sourceIssues(config: GatewayConfig): ConfigIssue[] {
  return Object.entries(config.streams).flatMap(([id, stream]) => streamSourceIssues(stream, `streams.${id}`))
}
