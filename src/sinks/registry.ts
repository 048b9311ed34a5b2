import type { SinkConfig, SinkType } from '../config/types.js'
import { createAdobeSink } from './adobe.js'
import { createDomoSink } from './domo.js'
import { createFileSink } from './file.js'
import { createHttpSink } from './http.js'
import { createKafkaSink } from './kafka/sink.js'
import { createKinesisSink } from './kinesis.js'
import { createS3Sink } from './s3.js'
import type { Sink, SinkContext, SinkFactory } from './sink.js'
import { createStdoutSink } from './stdout.js'

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
