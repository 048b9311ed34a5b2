import { randomInt } from 'node:crypto'
import type { KafkaSinkConfig } from '../../config/types.js'
import { RecordTemplate } from '../../records/template.js'
import type { SinkRecord } from '../sink.js'

// How a record becomes a Kafka message, the same for every client:
//   key       = the `key` template rendered (no key when there is no template or it renders empty)
//   value     = the record's payload bytes, exactly as the vendor sent them (a subarray of the spool frame,
//               never copied here)
//   headers   = stream, content-type, record-id (when the record has an id), then the configured `headers`
//               (templates; a configured name replaces a built-in one; one that renders empty is left out)
//   timestamp = when streamgate accepted the record, so a resent record carries the same time
//   route     = what picks the partition: murmur2 of the key for keyed messages (the partition is
//               toPositive(route) % partitions, as Java's default partitioner and kafkajs' do, so a key lands
//               in the same partition whichever client sends it), or one random slot per chunk for unkeyed
//               messages (sticky, as Java's producer does since KIP-480). A retry rebuilds the same batches.

/** Per-record bytes a record batch spends besides payload, key and headers (varint lengths, deltas). */
const RECORD_OVERHEAD_BYTES = 32
/** Per-header bytes besides name and value (two varint lengths). */
const HEADER_OVERHEAD_BYTES = 4
/** The names of the built-in headers (stream, content-type, record-id) with their overhead. */
const BUILTIN_HEADER_BYTES = 'streamcontent-typerecord-id'.length + 3 * HEADER_OVERHEAD_BYTES

const JSON_TYPE = 'application/json'
const TEXT = 'text/plain; charset=utf-8'
const JSON_TYPE_BYTES = Buffer.from(JSON_TYPE)
const TEXT_BYTES = Buffer.from(TEXT)

/**
 * One message as both clients take it: kafkajs reads key, value, headers and timestamp (and the `route`
 * through the sink's partitioner); the platformatic client packs the same fields for its worker.
 */
export interface OutgoingMessage {
  /** Text is sent as UTF-8 (both clients take it; no Buffer is made for it here). */
  key: string | null
  value: Buffer
  headers: Record<string, Buffer | string>
  /** Milliseconds since the epoch. */
  timestamp: number
  /** See the top of this file: partition = (route & 0x7fffffff) % partitions. */
  route: number
  /** Estimated bytes in a record batch (payload, key, headers, overhead), uncompressed. */
  bytes: number
  /** The record's index in the sink's write. */
  index: number
}

/**
 * Records are JSON for every vendor source (emnify, Azion JSON templates, json, ndjson). The exceptions are
 * Azion text templates (records with parsed `fields`) and `lines` streams: a payload that is not a JSON
 * object or array is labelled JSON only if it parses as a JSON value. Configure a `content-type` header to
 * set it for a stream yourself.
 */
export function contentTypeOf(record: SinkRecord): string {
  return contentTypeBytes(record) === JSON_TYPE_BYTES ? JSON_TYPE : TEXT
}

function contentTypeBytes(record: SinkRecord): Buffer {
  if (record.fields) return TEXT_BYTES
  const payload = record.payload
  let i = 0
  while (
    i < payload.length &&
    (payload[i] === 0x20 || payload[i] === 0x09 || payload[i] === 0x0d || payload[i] === 0x0a)
  )
    i++
  const first = payload[i]
  if (first === 0x7b /* { */ || first === 0x5b /* [ */) return JSON_TYPE_BYTES
  try {
    JSON.parse(payload.toString('utf8'))
    return JSON_TYPE_BYTES
  } catch {
    return TEXT_BYTES
  }
}

interface HeaderTemplate {
  name: string
  template: RecordTemplate
  /** Name bytes plus the header's overhead. */
  nameBytes: number
  constant?: Buffer
}

/** Builds the messages of one sink from its `key` and `headers` settings. */
export class MessageBuilder {
  private readonly key: RecordTemplate | undefined
  private readonly headers: HeaderTemplate[]
  /** Header values that repeat (stream names) are made once. */
  private readonly streamHeaders = new Map<string, Buffer>()
  private nextSlot = randomInt(0, 0x7fffffff)
  /** The key's UTF-8 bytes, for its hash (no Buffer per record). */
  private scratch = Buffer.allocUnsafe(256)

  constructor(config: Pick<KafkaSinkConfig, 'key' | 'headers'>) {
    this.key = config.key !== undefined && config.key !== '' ? new RecordTemplate(config.key) : undefined
    this.headers = Object.entries(config.headers ?? {}).map(([name, value]) => {
      const template = new RecordTemplate(value)
      const nameBytes = Buffer.byteLength(name) + HEADER_OVERHEAD_BYTES
      return template.constant
        ? { name, template, nameBytes, constant: Buffer.from(value) }
        : { name, template, nameBytes }
    })
  }

  /** A message for `record`; unkeyed messages get route 0 until `chunk` gives each chunk its slot. */
  build(index: number, record: SinkRecord): OutgoingMessage {
    let stream = this.streamHeaders.get(record.stream)
    if (!stream) this.streamHeaders.set(record.stream, (stream = Buffer.from(record.stream)))
    const type = contentTypeBytes(record)
    const headers: Record<string, Buffer | string> = { stream, 'content-type': type }
    let bytes =
      record.payload.length + RECORD_OVERHEAD_BYTES + BUILTIN_HEADER_BYTES + stream.length + type.length
    if (record.id !== undefined) {
      headers['record-id'] = record.id
      bytes += Buffer.byteLength(record.id)
    }
    for (const h of this.headers) {
      const value = h.constant ?? h.template.render(record)
      if (value.length === 0) continue
      headers[h.name] = value
      // A replaced built-in is counted twice: a harmless overestimate.
      bytes += h.nameBytes + (typeof value === 'string' ? Buffer.byteLength(value) : value.length)
    }
    const key = this.key?.render(record) || null
    let route = 0
    if (key !== null) {
      let length = this.scratch.write(key)
      if (length > this.scratch.length - 4) {
        // Possibly cut short: UTF-8 needs at most 3 bytes per UTF-16 unit.
        this.scratch = Buffer.allocUnsafe(key.length * 3 + 4)
        length = this.scratch.write(key)
      }
      route = murmur2(this.scratch, length)
      bytes += length
    }
    return { key, value: record.payload, headers, timestamp: record.receivedAtMs, route, bytes, index }
  }

  /**
   * Cuts one topic's messages into sends of at most `limitBytes` (estimated) each, one chunk per call of
   * the client. Every chunk's unkeyed messages share a new slot, so they go to one partition together.
   */
  chunk(messages: readonly OutgoingMessage[], limitBytes: number): OutgoingMessage[][] {
    const parts: OutgoingMessage[][] = []
    let current: OutgoingMessage[] = []
    let bytes = 0
    let slot = this.takeSlot()
    for (const m of messages) {
      if (current.length > 0 && bytes + m.bytes > limitBytes) {
        parts.push(current)
        current = []
        bytes = 0
        slot = this.takeSlot()
      }
      if (m.key === null) m.route = slot
      current.push(m)
      bytes += m.bytes
    }
    if (current.length > 0) parts.push(current)
    return parts
  }

  private takeSlot(): number {
    return (this.nextSlot = (this.nextSlot + 1) & 0x7fffffff)
  }
}

/** The partition of a message among `partitions`: Java's `toPositive(murmur2(key)) % partitions`. */
export function partitionOf(route: number, partitions: number): number {
  return (route & 0x7fffffff) % partitions
}

/**
 * Kafka's murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`), which picks the partition of a keyed
 * record in Java's default partitioner, kafkajs' DefaultPartitioner and librdkafka's murmur2_random.
 * kafkajs and @platformatic/kafka compute it with Long or BigInt objects per 4 bytes; this is the same
 * function on 32-bit integers (messages.test.ts checks it against both on random keys), over the first
 * `length` bytes of `data`.
 * https://github.com/apache/kafka/blob/3.9/clients/src/main/java/org/apache/kafka/common/utils/Utils.java
 */
export function murmur2(data: Uint8Array, length = data.length): number {
  const m = 0x5bd1e995
  let h = 0x9747b28c ^ length
  const whole = length & ~3
  for (let i = 0; i < whole; i += 4) {
    let k = data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24)
    k = Math.imul(k, m)
    k ^= k >>> 24
    k = Math.imul(k, m)
    h = Math.imul(h, m) ^ k
  }
  const rest = length & 3
  if (rest === 3) h ^= data[whole + 2]! << 16
  if (rest >= 2) h ^= data[whole + 1]! << 8
  if (rest >= 1) h = Math.imul(h ^ data[whole]!, m)
  h ^= h >>> 13
  h = Math.imul(h, m)
  h ^= h >>> 15
  return h | 0
}
