import type { SinkConfig, SinkType } from '../config/types.js'
import { createAdobeSink } from './adobe/sink.js'
import { createDomoSink } from './domo/sink.js'
import { createFileSink } from './file/sink.js'
import { createHttpSink } from './http/sink.js'
import { createKafkaSink } from './kafka/sink.js'
import { createKinesisSink } from './kinesis/sink.js'
import { createS3Sink } from './s3/sink.js'
import type { Sink, SinkContext, SinkFactory } from './sink.js'
import { createStdoutSink } from './stdout/sink.js'

/** Every sink type maps to its factory; a missing type fails the build (`satisfies`). */
export const SINK_FACTORIES = {
  file: createFileSink,
  stdout: createStdoutSink,
  kafka: createKafkaSink,
  kinesis: createKinesisSink,
  s3: createS3Sink,
  adobe: createAdobeSink,
  domo: createDomoSink,
  http: createHttpSink,
} satisfies { [T in SinkType]: SinkFactory<T> }

export function createSink(name: string, config: SinkConfig, context: SinkContext): Sink {
  const factory = SINK_FACTORIES[config.type] as SinkFactory
  return factory(name, config, context)
}
