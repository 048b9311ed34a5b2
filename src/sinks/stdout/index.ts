import { defineSink } from '../define.js'
import { createStdoutSink } from './sink.js'

export const stdoutSink = defineSink({
  type: 'stdout',
  description: 'NDJSON on standard output',
  options: {
    type: 'object',
    additionalProperties: false,
    properties: {},
  },
  create: createStdoutSink,
})
