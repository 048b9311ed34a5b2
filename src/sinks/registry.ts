import type { ConfigIssue } from '../config/load.js'
import type { GatewayConfig, SinkConfig, SinkType } from '../config/types.js'
import { adobeSink } from './adobe/index.js'
import type { AnySinkDescriptor } from './define.js'
import { domoSink } from './domo/index.js'
import { fileSink } from './file/index.js'
import { httpSink } from './http/index.js'
import { kafkaSink } from './kafka/index.js'
import { kinesisSink } from './kinesis/index.js'
import { s3Sink } from './s3/index.js'
import type { Sink, SinkContext, SinkFactory } from './sink.js'
import { stdoutSink } from './stdout/index.js'

/**
 * Every sink type, one line each, in the order the config schema, the API lookup and the docs list them.
 * A new type: its folder, one line here, then `npm run gen` (the schema, src/config/sink-types.generated.ts
 * and docs/configuration.md follow; src/sinks/generated.test.ts fails until they do).
 */
export const SINKS = [
  kafkaSink,
  kinesisSink,
  s3Sink,
  adobeSink,
  domoSink,
  httpSink,
  fileSink,
  stdoutSink,
] as const satisfies readonly AnySinkDescriptor[]

// Every SinkType has a descriptor: the build fails here otherwise.
type Missing = Exclude<SinkType, (typeof SINKS)[number]['type']>
const _everyTypeListed: [Missing] extends [never] ? true : Missing = true

const BY_TYPE = new Map<string, AnySinkDescriptor>(SINKS.map((d) => [d.type, d]))

export function sinkDescriptor(type: SinkType): AnySinkDescriptor {
  const descriptor = BY_TYPE.get(type)
  if (!descriptor) throw new Error(`unknown sink type "${type}"`)
  return descriptor
}

export function createSink(name: string, config: SinkConfig, context: SinkContext): Sink {
  const factory = sinkDescriptor(config.type).create as SinkFactory
  return factory(name, config, context)
}

/** Every sink's own checks (its descriptor's `check`), at `sinks.<name>` paths. */
export function sinkIssues(config: GatewayConfig): ConfigIssue[] {
  const issues: ConfigIssue[] = []
  for (const [name, sink] of Object.entries(config.sinks)) {
    const check = sinkDescriptor(sink.type).check as
      ((config: SinkConfig, at: string) => ConfigIssue[]) | undefined
    if (check) issues.push(...check(sink, `sinks.${name}`))
  }
  return issues
}
