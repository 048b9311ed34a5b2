import { defineSink } from '../define.js'
import { createFileSink } from './sink.js'

export const fileSink = defineSink({
  type: 'file',
  description: 'NDJSON files in a local directory, rotated by size and age',
  options: {
    type: 'object',
    additionalProperties: false,
    required: ['dir'],
    properties: {
      dir: {
        type: 'string',
        description: 'Directory of the NDJSON files; must resolve inside dataDir.',
      },
      prefix: {
        type: 'string',
        description:
          'File name prefix: a plain name without path separators (files are written directly in dir).',
        default: 'records',
      },
      maxFileBytes: {
        type: 'integer',
        minimum: 1,
        description: 'Rotate after this many bytes.',
        default: 104857600,
      },
      maxFileAgeMs: {
        type: 'integer',
        minimum: 1,
        description: 'Rotate after the file has been open this long.',
        default: 3600000,
      },
      fsync: {
        type: 'boolean',
        description: 'fsync after every batch.',
        default: true,
      },
    },
  },
  create: createFileSink,
})
