import type { SinkConfig, SinkType } from '../config/types.js'
import { createFileSink } from './file.js'
import type { Sink, SinkContext, SinkFactory } from './sink.js'
import { createStdoutSink } from './stdout.js'

/** Every sink type maps to its factory; a missing type fails the build (`satisfies`). */
export const SINK_FACTORIES = {
  file: createFileSink,
  stdout: createStdoutSink,
  kafka: notYetAvailable('kafka'),
  kinesis: notYetAvailable('kinesis'),
  s3: notYetAvailable('s3'),
  adobe: notYetAvailable('adobe'),
  domo: notYetAvailable('domo'),
  http: notYetAvailable('http'),
} satisfies { [T in SinkType]: SinkFactory<T> }

function notYetAvailable<T extends SinkType>(type: T): SinkFactory<T> {
  return (name) => {
    throw new Error(`sinks.${name}: sink type "${type}" is not available in this build yet`)
  }
}

export function createSink(name: string, config: SinkConfig, context: SinkContext): Sink {
  const factory = SINK_FACTORIES[config.type] as SinkFactory
  return factory(name, config, context)
}
