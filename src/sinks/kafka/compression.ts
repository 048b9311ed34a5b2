import * as zlib from 'node:zlib'
import type * as KafkaJs from 'kafkajs'
import type { CompressionTypes } from 'kafkajs'
import type { KafkaSinkConfig } from '../../config/types.js'

// Record-batch compression per client. What it costs per record decides whether a lane keeps up (measured in
// bench/RESULTS.md, "Kafka lane"): gzip at its default level is the dearest; with zstd the lane delivered
// 1.25-1.45x the records per gateway CPU-second of gzip, and with platformatic zstd, lz4, snappy and none were
// within the noise of each other (the rest of the lane, not the codec, is then what costs).
//
// kafkajs: gzip is bundled and runs on libuv's thread pool (async zlib). zstd comes from node:zlib, also
// async, registered here. snappy and lz4 need a codec package that the embedding application registers in
// kafkajs' CompressionCodecs (none is a dependency of streamgate); without one the sink refuses to start.
//
// @platformatic/kafka: all five codecs are built in (gzip and zstd from node:zlib, lz4 and snappy in
// WebAssembly); they run synchronously, which is why that client runs in its own worker thread
// (platformatic-worker.ts): the ingest event loop never waits for a compression.

export type CompressionName = KafkaSinkConfig['compression']

/** kafkajs' compression type for `name`, registering a codec where Node has one built in. */
export function kafkajsCompression(
  kafkajs: typeof KafkaJs,
  name: CompressionName,
  where: string,
): CompressionTypes {
  const { CompressionTypes } = kafkajs
  switch (name) {
    case 'none':
      return CompressionTypes.None
    case 'gzip':
      return CompressionTypes.GZIP
    case 'zstd':
      registerNodeZstd(kafkajs)
      return requireCodec(kafkajs, CompressionTypes.ZSTD, name, where)
    case 'snappy':
      return requireCodec(kafkajs, CompressionTypes.Snappy, name, where)
    case 'lz4':
      return requireCodec(kafkajs, CompressionTypes.LZ4, name, where)
  }
}

function requireCodec(
  kafkajs: typeof KafkaJs,
  type: CompressionTypes,
  name: string,
  where: string,
): CompressionTypes {
  let available: boolean
  try {
    const lookup = (kafkajs.CompressionCodecs as Record<number, (() => unknown) | undefined>)[type]
    available = typeof lookup === 'function' && lookup() != null
  } catch {
    available = false // kafkajs' placeholder codecs throw "… compression not implemented"
  }
  if (!available)
    throw new Error(
      `${where}.compression: "${name}" needs a codec that kafkajs does not bundle and none is installed` +
        (name === 'zstd' ? ' (Node 22.15+ has zstd built in)' : '') +
        '; use "gzip", "zstd" or "none", or client: platformatic (all codecs built in)',
    )
  return type
}

type ZstdZlib = {
  zstdCompress?: (buf: Buffer, cb: (err: Error | null, out: Buffer) => void) => void
  zstdDecompress?: (buf: Buffer, cb: (err: Error | null, out: Buffer) => void) => void
}

function registerNodeZstd(kafkajs: typeof KafkaJs): void {
  const z = zlib as unknown as ZstdZlib
  const compress = z.zstdCompress
  const decompress = z.zstdDecompress
  if (!compress || !decompress) return
  const run = (fn: NonNullable<ZstdZlib['zstdCompress']>, buf: Buffer): Promise<Buffer> =>
    new Promise((resolve, reject) => fn(buf, (err, out) => (err ? reject(err) : resolve(out))))
  const codec = {
    compress: (encoder: { buffer: Buffer }) => run(compress, encoder.buffer),
    decompress: (buffer: Buffer) => run(decompress, buffer),
  }
  ;(kafkajs.CompressionCodecs as Record<number, () => unknown>)[kafkajs.CompressionTypes.ZSTD] = () => codec
}
