import { compressionsAlgorithms, crc32c, Writer } from '@platformatic/kafka'

// Kafka record batches (magic v2) and Produce requests, encoded by the platformatic worker itself straight
// from a send's packed buffer (platformatic-worker.ts describes the layout). @platformatic/kafka builds each
// record as a Writer of small Buffers, concatenates them and writes varints one by one, with a header Map
// and a BigInt timestamp per message: most of the worker's CPU (bench/RESULTS.md). Here a send is read once
// into typed arrays, grouped by partition, sized, and each partition's records are written into one
// preallocated Buffer. The bytes are exactly those of the library's createRecordsBatch for the same
// messages (record-batch.test.ts compares them), so the broker sees no difference.
//
// Loaded only by the worker thread (dynamically, so the sink's side never loads the library) and by tests;
// like the worker it imports nothing of streamgate and uses no TypeScript-only syntax that Node's type
// stripping would refuse.

/** A send's packed buffer, read once: per message, where its parts are. */
export interface PackedSend {
  buf: Buffer
  count: number
  /** Header names, by the index the messages use. */
  names: Buffer[]
  valueAt: Int32Array
  valueLength: Int32Array
  keyAt: Int32Array
  /** -1: no key. */
  keyLength: Int32Array
  timestamp: Float64Array
  route: Int32Array
  /** Where the message's headers start (u8 name, u32 valueLength, value). */
  headersAt: Int32Array
  headerCount: Uint8Array
}

/** Reads the layout `packMessages` writes (platformatic-worker.ts). */
export function readPacked(buffer: ArrayBuffer): PackedSend {
  const buf = Buffer.from(buffer)
  const view = new DataView(buffer)
  const count = view.getUint32(0, true)
  const names: Buffer[] = []
  let o = 5
  for (let n = buf[4]!; n > 0; n--) {
    const length = view.getUint16(o, true)
    names.push(buf.subarray(o + 2, (o += 2 + length)))
  }
  const packed: PackedSend = {
    buf,
    count,
    names,
    valueAt: new Int32Array(count),
    valueLength: new Int32Array(count),
    keyAt: new Int32Array(count),
    keyLength: new Int32Array(count),
    timestamp: new Float64Array(count),
    route: new Int32Array(count),
    headersAt: new Int32Array(count),
    headerCount: new Uint8Array(count),
  }
  for (let i = 0; i < count; i++) {
    const valueLength = view.getUint32(o, true)
    packed.valueAt[i] = o + 4
    packed.valueLength[i] = valueLength
    o += 4 + valueLength
    const keyLength = view.getInt32(o, true)
    packed.keyAt[i] = o + 4
    packed.keyLength[i] = keyLength
    o += 4 + Math.max(0, keyLength)
    packed.timestamp[i] = view.getFloat64(o, true)
    packed.route[i] = view.getInt32(o + 8, true)
    const headerCount = buf[o + 12]!
    packed.headerCount[i] = headerCount
    o += 13
    packed.headersAt[i] = o
    for (let h = 0; h < headerCount; h++) o += 5 + view.getUint32(o + 1, true)
  }
  return packed
}

/** The send's message indices per partition, in send order (partition = (route & 0x7fffffff) % count). */
export function byPartition(packed: PackedSend, partitions: number): Map<number, number[]> {
  const groups = new Map<number, number[]>()
  for (let i = 0; i < packed.count; i++) {
    const partition = (packed.route[i]! & 0x7fffffff) % partitions
    let group = groups.get(partition)
    if (!group) groups.set(partition, (group = []))
    group.push(i)
  }
  return groups
}

export type Codec = 'none' | 'gzip' | 'snappy' | 'lz4' | 'zstd'

export interface BatchOptions {
  compression: Codec
  /** -1n: not idempotent. */
  producerId: bigint
  producerEpoch: number
  firstSequence: number
}

/** Bytes of the batch before its records: baseOffset .. record count. */
const BATCH_HEADER = 61
/** Where the CRC'd part starts: attributes. */
const CRC_FROM = 21

/** Zig-zag varint size of a 32-bit signed value. */
function varIntSize(value: number): number {
  let v = ((value << 1) ^ (value >> 31)) >>> 0
  let size = 1
  while (v >= 0x80) {
    v >>>= 7
    size++
  }
  return size
}

/** Zig-zag encoding of a safe integer (a timestamp delta), as a non-negative number. */
function zigZag64(value: number): number {
  return value >= 0 ? value * 2 : -value * 2 - 1
}

function unsignedSize64(v: number): number {
  let size = 1
  while (v >= 0x80) {
    v = Math.floor(v / 128)
    size++
  }
  return size
}

function writeVarInt(buf: Buffer, o: number, value: number): number {
  let v = ((value << 1) ^ (value >> 31)) >>> 0
  while (v >= 0x80) {
    buf[o++] = (v & 0x7f) | 0x80
    v >>>= 7
  }
  buf[o++] = v
  return o
}

function writeUnsigned64(buf: Buffer, o: number, v: number): number {
  while (v >= 0x80) {
    buf[o++] = (v % 128) | 0x80
    v = Math.floor(v / 128)
  }
  buf[o++] = v
  return o
}

/**
 * One partition's record batch: the messages `indices` of `packed`, in that order. Byte for byte what
 * @platformatic/kafka's createRecordsBatch produces for the same messages and options.
 */
export function encodeRecordBatch(
  packed: PackedSend,
  indices: readonly number[],
  options: BatchOptions,
): Buffer {
  const { buf, names, valueLength, keyLength, timestamp, headersAt, headerCount } = packed
  const count = indices.length
  const firstTimestamp = timestamp[indices[0]!]!
  let maxTimestamp = firstTimestamp
  // Pass 1: each record's body length (after its own length varint), kept for pass 2.
  const bodies = new Int32Array(count)
  let recordsSize = 0
  for (let r = 0; r < count; r++) {
    const i = indices[r]!
    const ts = timestamp[i]!
    if (ts > maxTimestamp) maxTimestamp = ts
    const key = keyLength[i]!
    const value = valueLength[i]!
    let body =
      1 +
      unsignedSize64(zigZag64(ts - firstTimestamp)) +
      varIntSize(r) +
      varIntSize(key) +
      Math.max(0, key) +
      varIntSize(value) +
      value +
      varIntSize(headerCount[i]!)
    let h = headersAt[i]!
    for (let n = headerCount[i]!; n > 0; n--) {
      const nameLength = names[buf[h]!]!.length
      const length = buf.readUInt32LE(h + 1)
      body += varIntSize(nameLength) + nameLength + varIntSize(length) + length
      h += 5 + length
    }
    bodies[r] = body
    recordsSize += varIntSize(body) + body
  }

  const compressed = options.compression !== 'none'
  // Uncompressed, the records go straight after the header; compressed, into a buffer of their own.
  let out = Buffer.allocUnsafe(compressed ? recordsSize : BATCH_HEADER + recordsSize)
  let o = compressed ? 0 : BATCH_HEADER
  for (let r = 0; r < count; r++) {
    const i = indices[r]!
    o = writeVarInt(out, o, bodies[r]!)
    out[o++] = 0 // attributes
    o = writeUnsigned64(out, o, zigZag64(timestamp[i]! - firstTimestamp))
    o = writeVarInt(out, o, r)
    const key = keyLength[i]!
    o = writeVarInt(out, o, key)
    if (key > 0) o += buf.copy(out, o, packed.keyAt[i], packed.keyAt[i]! + key)
    const value = valueLength[i]!
    o = writeVarInt(out, o, value)
    if (value > 0) o += buf.copy(out, o, packed.valueAt[i], packed.valueAt[i]! + value)
    o = writeVarInt(out, o, headerCount[i]!)
    let h = headersAt[i]!
    for (let n = headerCount[i]!; n > 0; n--) {
      const name = names[buf[h]!]!
      o = writeVarInt(out, o, name.length)
      o += name.copy(out, o)
      const length = buf.readUInt32LE(h + 1)
      o = writeVarInt(out, o, length)
      if (length > 0) o += buf.copy(out, o, h + 5, h + 5 + length)
      h += 5 + length
    }
  }

  let attributes = 0
  if (compressed) {
    const algorithm = compressionsAlgorithms[options.compression]
    attributes = algorithm.bitmask
    const data = algorithm.compressSync(out)
    out = Buffer.allocUnsafe(BATCH_HEADER + data.length)
    data.copy(out, BATCH_HEADER)
  }
  out.writeBigInt64BE(0n, 0) // baseOffset
  out.writeInt32BE(out.length - 12, 8) // length: from partitionLeaderEpoch to the end
  out.writeInt32BE(0, 12) // partitionLeaderEpoch, as the library writes it (the broker sets its own)
  out.writeInt8(2, 16) // magic
  out.writeInt16BE(attributes, CRC_FROM)
  out.writeInt32BE(count - 1, 23) // lastOffsetDelta
  out.writeBigInt64BE(BigInt(firstTimestamp), 27)
  out.writeBigInt64BE(BigInt(maxTimestamp), 35)
  out.writeBigInt64BE(options.producerId, 43)
  out.writeInt16BE(options.producerEpoch, 51)
  out.writeInt32BE(options.firstSequence, 53)
  out.writeInt32BE(count, 57)
  out.writeUInt32BE(crc32c(out.subarray(CRC_FROM)), 17)
  return out
}

/** One topic's pre-encoded batches, by partition, for a Produce request. */
export interface ProduceData {
  topic: string
  batches: { partition: number; batch: Buffer }[]
}

/**
 * A Produce request (versions 9 to 11 share this layout) carrying batches already encoded: what
 * produce-v11.js's createRequest writes, without building the batches from messages.
 */
export function createProduceRequest(acks: number, timeout: number, data: readonly ProduceData[]): Writer {
  const writer = Writer.create()
    .appendString(null) // transactional_id
    .appendInt16(acks)
    .appendInt32(timeout)
    .appendUnsignedVarInt(data.length + 1)
  for (const { topic, batches } of data) {
    writer.appendString(topic).appendUnsignedVarInt(batches.length + 1)
    for (const { partition, batch } of batches) {
      writer
        .appendInt32(partition)
        .appendUnsignedVarInt(batch.length + 1)
        .append(batch)
        .appendTaggedFields()
    }
    writer.appendTaggedFields()
  }
  writer.appendTaggedFields()
  // acks 0: the broker does not answer.
  if (acks === 0) writer.context.noResponse = true
  return writer
}

/** Kafka sequence numbers wrap to 0 after 2^31 - 1. */
export function nextSequence(sequence: number, records: number): number {
  return (sequence + records) % 2 ** 31
}
