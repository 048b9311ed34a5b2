import { isMainThread, parentPort, workerData } from 'node:worker_threads'
import type { Admin, Connection, MessageToProduce, Producer } from '@platformatic/kafka'
import type { WireError } from './errors.js'
import type { OutgoingMessage } from './messages.js'

// The @platformatic/kafka client of a kafka sink runs in this worker thread (one per sink, started by
// platformatic-client.ts on first use). A send's record batches are encoded here straight from the packed
// buffer (record-batch.ts: one buffer per partition, byte for byte what the library would build, at a
// fraction of its CPU), compressed synchronously (gzip, zstd, lz4, snappy) and CRC'd, and go out as one
// Produce request per leader broker; the library's producer supplies metadata, connections and the
// idempotent producer id. This thread is not the one serving ingest, so a large gzip batch never delays an
// HTTP answer, and the lane's reading of the spool runs on the other core at the same time.
//
// This file is loaded both as the worker's entry and, on the sink's side, for `packMessages` and the
// message types. It imports nothing of streamgate at run time (type imports are erased), so Node runs it as
// it is, compiled or, in tests, as TypeScript with its types stripped.
//
// Messages cross the thread boundary packed into one transferred ArrayBuffer per send (no copy on the
// way, no per-message structured clone). Layout, little-endian, per send:
//   u32 count
//   u8 names, then per header name: u16 length, name bytes (UTF-8)
//   per message:
//     u32 valueLength, value bytes
//     i32 keyLength (-1: no key), key bytes
//     f64 timestamp (ms since the epoch)
//     i32 route (the partition is (route & 0x7fffffff) % partitions, see messages.ts)
//     u8 headers, per header: u8 name (index into the names above), u32 valueLength, value bytes
// In the worker the encoder copies each key, value and header from that buffer into its partition's batch
// (`unpackMessages`, views of it as library messages, serves brokers older than Produce v9).

export const WORKER_MARK = 'streamgate-kafka-platformatic'

export interface WorkerSettings {
  clientId: string
  bootstrapBrokers: string[]
  /** The broker's produce timeout (acks), ms. */
  timeout: number
  /** How long the client waits for any answer, ms. */
  requestTimeout: number
  connectTimeout: number
  idempotent: boolean
  acks: -1 | 0 | 1
  compression: 'none' | 'gzip' | 'snappy' | 'lz4' | 'zstd'
  producers: number
  tls?: { ca?: string; cert?: string; key?: string; rejectUnauthorized?: boolean }
  sasl?: { mechanism: 'PLAIN' | 'SCRAM-SHA-256' | 'SCRAM-SHA-512'; username: string; password: string }
  /** Connections to a key address ("host:port") go to the value address instead (tests: a faulty proxy). */
  redirect?: Record<string, string>
}

export type WorkerRequest = { id: number } & (
  | { op: 'send'; producer: number; topic: string; buffer: ArrayBuffer }
  | { op: 'topicExists'; topic: string }
  | { op: 'maxMessageBytes'; topic: string }
  | { op: 'ping' }
  | { op: 'close' }
)

export type WorkerReply =
  { id: number; ok: true; value?: unknown } | { id: number; ok: false; error: WireError }

/** Packs one send's messages (layout above) into a buffer of its own, to be transferred. */
export function packMessages(messages: readonly OutgoingMessage[]): ArrayBuffer {
  const names = new Map<string, number>()
  const nameBytes: Buffer[] = []
  // Text (keys, some header values) is reserved at 3 bytes per UTF-16 unit, UTF-8's most, and written once.
  let size = 4 + 1
  for (const m of messages) {
    size += 4 + m.value.length + 4 + (m.key === null ? 0 : m.key.length * 3) + 8 + 4 + 1
    const headers = m.headers
    for (const name in headers) {
      const value = headers[name]!
      size += 1 + 4 + (typeof value === 'string' ? value.length * 3 : value.length)
      if (!names.has(name)) {
        if (names.size === 255) throw new RangeError('more than 255 distinct header names in one send')
        names.set(name, names.size)
        const bytes = Buffer.from(name)
        nameBytes.push(bytes)
        size += 2 + bytes.length
      }
    }
  }
  const buf = Buffer.allocUnsafeSlow(size)
  const view = new DataView(buf.buffer)
  view.setUint32(0, messages.length, true)
  buf[4] = nameBytes.length
  let o = 5
  for (const bytes of nameBytes) {
    view.setUint16(o, bytes.length, true)
    buf.set(bytes, o + 2)
    o += 2 + bytes.length
  }
  for (const m of messages) {
    view.setUint32(o, m.value.length, true)
    buf.set(m.value, o + 4)
    o += 4 + m.value.length
    if (m.key === null) view.setInt32(o, -1, true)
    else view.setInt32(o, buf.write(m.key, o + 4), true)
    o += 4 + Math.max(0, view.getInt32(o, true))
    view.setFloat64(o, m.timestamp, true)
    view.setInt32(o + 8, m.route, true)
    const countAt = o + 12
    o += 13
    let count = 0
    const headers = m.headers
    for (const name in headers) {
      const value = headers[name]!
      buf[o] = names.get(name)!
      const length =
        typeof value === 'string' ? buf.write(value, o + 5) : (buf.set(value, o + 5), value.length)
      view.setUint32(o + 1, length, true)
      o += 5 + length
      count++
    }
    buf[countAt] = count
  }
  return buf.buffer
}

type PlatformaticMessage = MessageToProduce<Buffer, Buffer, Buffer, Buffer>

/** The inverse of `packMessages`, for one topic; every byte range is a view of `buffer`. */
export function unpackMessages(buffer: ArrayBuffer, topic: string): PlatformaticMessage[] {
  const buf = Buffer.from(buffer)
  const view = new DataView(buffer)
  const count = view.getUint32(0, true)
  const names: Buffer[] = []
  let o = 5
  for (let n = buf[4]!; n > 0; n--) {
    const length = view.getUint16(o, true)
    names.push(buf.subarray(o + 2, (o += 2 + length)))
  }
  const messages: PlatformaticMessage[] = new Array<PlatformaticMessage>(count)
  for (let i = 0; i < count; i++) {
    const valueLength = view.getUint32(o, true)
    const value = buf.subarray(o + 4, (o += 4 + valueLength))
    const keyLength = view.getInt32(o, true)
    o += 4
    const key = keyLength < 0 ? undefined : buf.subarray(o, (o += keyLength))
    const timestamp = BigInt(view.getFloat64(o, true))
    const route = view.getInt32(o + 8, true)
    const headerCount = buf[o + 12]!
    o += 13
    const headers = new Map<Buffer, Buffer>()
    for (let h = 0; h < headerCount; h++) {
      const name = names[buf[o]!]!
      const length = view.getUint32(o + 1, true)
      headers.set(name, buf.subarray(o + 5, (o += 5 + length)))
    }
    // The client takes the partition modulo the topic's partition count.
    const message: PlatformaticMessage = { topic, value, headers, timestamp, partition: route & 0x7fffffff }
    if (key) message.key = key
    messages[i] = message
  }
  return messages
}

/** What the sink's side needs of a client error (errors.ts classifies it), cloneable. */
export function toWireError(err: unknown, depth = 0): WireError {
  if (err === null || typeof err !== 'object') return { name: 'Error', message: String(err) }
  const e = err as {
    constructor?: { name?: string }
    name?: unknown
    message?: unknown
    code?: unknown
    apiId?: unknown
    canRetry?: unknown
    errors?: unknown
    cause?: unknown
  }
  // platformatic's classes leave `name` as "Error"; the class name tells them apart.
  const className = e.constructor?.name
  const wire: WireError = {
    name: className && className !== 'Object' ? className : typeof e.name === 'string' ? e.name : 'Error',
    message: typeof e.message === 'string' ? e.message : 'unknown error',
  }
  if (typeof e.code === 'string') wire.code = e.code
  if (typeof e.apiId === 'string') wire.apiId = e.apiId
  // The client turns the broker's UNKNOWN_TOPIC_OR_PARTITION in a metadata answer into a UserError that
  // keeps only the topic's name (dist/clients/base/base.js, #performMetadata); it is the broker's answer.
  else if (wire.name === 'UserError' && wire.message.startsWith('Unknown topic '))
    wire.apiId = 'UNKNOWN_TOPIC_OR_PARTITION'
  if (typeof e.canRetry === 'boolean') wire.canRetry = e.canRetry
  if (depth < 6) {
    if (Array.isArray(e.errors) && e.errors.length > 0)
      wire.errors = e.errors.slice(0, 16).map((x: unknown) => toWireError(x, depth + 1))
    if (e.cause !== undefined) wire.cause = toWireError(e.cause, depth + 1)
  }
  return wire
}

// ---- the worker ---------------------------------------------------------------------------------------------

/** A client used by one call at a time per slot; replaced after a failure that leaves it suspect. */
interface Slot<C> {
  client: C | undefined
  /** The last operation queued on this slot (operations run one after another, in order). */
  tail: Promise<unknown>
}

async function runWorker(settings: WorkerSettings): Promise<void> {
  const port = parentPort!
  const kafka = await import('@platformatic/kafka')
  if (settings.redirect) redirectConnections(kafka.Connection, settings.redirect)

  const base = {
    clientId: settings.clientId,
    bootstrapBrokers: settings.bootstrapBrokers,
    timeout: settings.timeout,
    requestTimeout: settings.requestTimeout,
    connectTimeout: settings.connectTimeout,
    // The lane owns retries (backoff, circuit breaker, dead letters). `false` is 0 retries: a number of
    // 1 or less would make the idempotent producer retry forever.
    retries: false,
    ...(settings.tls ? { tls: settings.tls } : {}),
    ...(settings.sasl ? { sasl: settings.sasl } : {}),
  }
  const makeProducer = (): Producer<Buffer, Buffer, Buffer, Buffer> =>
    new kafka.Producer({
      ...base,
      idempotent: settings.idempotent,
      acks: settings.acks,
      compression: settings.compression,
      // Metadata requests may create a missing topic; the broker decides (auto.create.topics.enable).
      autocreateTopics: true,
    })
  const makeAdmin = (): Admin => new kafka.Admin(base)

  const producers: Slot<Producer<Buffer, Buffer, Buffer, Buffer>>[] = Array.from(
    { length: settings.producers },
    () => ({ client: undefined, tail: Promise.resolve() }),
  )
  const admin: Slot<Admin> = { client: undefined, tail: Promise.resolve() }
  const retire = (slot: Slot<{ close(force: boolean): Promise<void> }>): void => {
    const client = slot.client
    slot.client = undefined
    client?.close(true).catch(() => undefined)
  }

  /** Runs `fn` on the slot's client after the slot's earlier operations. */
  const queue = <C extends { close(force: boolean): Promise<void> }, R>(
    slot: Slot<C>,
    make: () => C,
    fn: (client: C) => Promise<R>,
    retireOn: (err: unknown) => boolean,
  ): Promise<R> => {
    const run = slot.tail.then(async () => {
      const client = (slot.client ??= make())
      try {
        return await fn(client)
      } catch (err) {
        if (retireOn(err) && slot.client === client) retire(slot)
        throw err
      }
    })
    slot.tail = run.catch(() => undefined)
    return run
  }

  // An idempotent producer whose send failed is replaced: the broker may have stored part of it, and the
  // same sequence numbers on different records would be taken for duplicates (see sink.ts).
  const always = (): boolean => true
  // An admin client that got an answer from the broker (even "no such topic") is healthy; keep it.
  const unlessAnswered = (err: unknown): boolean => toWireErrorHasApiId(toWireError(err))

  // Sends encode their record batches here (record-batch.ts) and go out as one Produce request per leader
  // broker; the producer gives metadata, connections and the idempotent producer id. Loaded by URL like
  // this file: TypeScript in tests, JavaScript once built.
  const encoder = (await import(
    new URL(import.meta.url.endsWith('.ts') ? './record-batch.ts' : './record-batch.js', import.meta.url).href
  )) as typeof import('./record-batch.js')
  const acks = settings.idempotent ? -1 : settings.acks
  /** Per producer: the next sequence number by "topic\0partition", advanced when the broker took a batch. */
  const sequences = new WeakMap<Producer<Buffer, Buffer, Buffer, Buffer>, Map<string, number>>()
  /** The Produce request's version (9 to 11 share a layout): the broker's highest, found once. */
  let produceApi: ReturnType<typeof kafka.createAPI> | null | undefined

  const produce = async (
    p: Producer<Buffer, Buffer, Buffer, Buffer>,
    topic: string,
    buffer: ArrayBuffer,
  ): Promise<void> => {
    const packed = encoder.readPacked(buffer)
    if (packed.count === 0) return
    if (produceApi === undefined) {
      const version = Math.min(11, (await p.listApis()).find((a) => a.apiKey === 0)?.maxVersion ?? -1)
      produceApi =
        version >= 9
          ? kafka.createAPI(0, version, encoder.createProduceRequest, kafka.produceV11.parseResponse)
          : null
    }
    // A broker older than Kafka 2.4: the library builds the batches.
    if (produceApi === null) {
      await p.send({ messages: unpackMessages(buffer, topic) })
      return
    }
    let producerId = -1n
    let producerEpoch = 0
    if (settings.idempotent) {
      if (p.producerId === undefined) await p.initIdempotentProducer({})
      producerId = p.producerId!
      producerEpoch = p.producerEpoch!
    }
    let next = sequences.get(p)
    if (!next) sequences.set(p, (next = new Map<string, number>()))
    // The library's metadata cache (refreshed after metadataMaxAge; a producer whose send failed is
    // replaced, and with it the cache, so a stale leader costs one failed attempt).
    const info = (await p.metadata({ topics: [topic], autocreateTopics: true })).topics.get(topic)!
    const groups = encoder.byPartition(packed, info.partitionsCount)
    type Sent = { partition: number; batch: Buffer; records: number }
    const byLeader = new Map<number, Sent[]>()
    for (const partition of [...groups.keys()].sort((a, b) => a - b)) {
      const indices = groups.get(partition)!
      const batch = encoder.encodeRecordBatch(packed, indices, {
        compression: settings.compression,
        producerId,
        producerEpoch,
        firstSequence: settings.idempotent ? (next.get(`${topic}\0${partition}`) ?? 0) : 0,
      })
      const leader = info.partitions[partition]?.leader ?? -1
      let sent = byLeader.get(leader)
      if (!sent) byLeader.set(leader, (sent = []))
      sent.push({ partition, batch, records: indices.length })
    }
    const connections = await p.connectToBrokers([...byLeader.keys()])
    // A partition without a leader (-1 during an election) or with one the metadata does not list: the
    // broker's own word for it, so errors.ts retries it (the producer is replaced, with fresh metadata).
    for (const leader of byLeader.keys())
      if (!connections.has(leader)) throw new kafka.ProtocolError('LEADER_NOT_AVAILABLE')
    const api = produceApi
    const results = await Promise.allSettled(
      [...byLeader].map(
        ([leader, batches]) =>
          new Promise<Sent[]>((resolve, reject) =>
            api(
              connections.get(leader)!,
              acks,
              settings.timeout,
              [{ topic, batches }],
              (err: Error | null) => (err ? reject(err) : resolve(batches)),
            ),
          ),
      ),
    )
    const failed: unknown[] = []
    for (const result of results) {
      if (result.status === 'rejected') failed.push(result.reason)
      else
        for (const { partition, records } of result.value) {
          const key = `${topic}\0${partition}`
          next.set(key, encoder.nextSequence(next.get(key) ?? 0, records))
        }
    }
    if (failed.length === 1) throw failed[0]
    if (failed.length > 1) throw new kafka.MultipleErrors('Producing messages failed.', failed as Error[])
  }

  const handle = async (req: WorkerRequest): Promise<unknown> => {
    switch (req.op) {
      case 'send': {
        const slot = producers[req.producer]!
        await queue(slot, makeProducer, (p) => produce(p, req.topic, req.buffer), always)
        return undefined
      }
      case 'topicExists':
        return queue(
          admin,
          makeAdmin,
          async (a) => {
            try {
              await a.metadata({ topics: [req.topic], forceUpdate: true })
              return true
            } catch (err) {
              if (findApiId(toWireError(err), 'UNKNOWN_TOPIC_OR_PARTITION')) return false
              throw err
            }
          },
          unlessAnswered,
        )
      case 'maxMessageBytes':
        return queue(
          admin,
          makeAdmin,
          async (a) => {
            const [resource] = await a.describeConfigs({
              resources: [
                {
                  resourceType: 2 /* TOPIC */,
                  resourceName: req.topic,
                  configurationKeys: ['max.message.bytes'],
                },
              ],
            })
            const n = Number(resource?.configs.find((c) => c.name === 'max.message.bytes')?.value)
            return Number.isSafeInteger(n) && n > 0 ? n : undefined
          },
          unlessAnswered,
        )
      case 'ping':
        await queue(admin, makeAdmin, (a) => a.metadata({ topics: [], forceUpdate: true }), unlessAnswered)
        return undefined
      case 'close': {
        const slots: Slot<{ close(force: boolean): Promise<void> }>[] = [...producers, admin]
        await Promise.all(slots.map((s) => s.tail))
        await Promise.all(slots.map(async (s) => s.client?.close(true).catch(() => undefined)))
        return undefined
      }
    }
  }

  port.on('message', (req: WorkerRequest) => {
    handle(req).then(
      (value) => port.postMessage({ id: req.id, ok: true, value } satisfies WorkerReply),
      (err: unknown) =>
        port.postMessage({ id: req.id, ok: false, error: toWireError(err) } satisfies WorkerReply),
    )
  })
}

function toWireErrorHasApiId(wire: WireError): boolean {
  return (
    typeof wire.apiId === 'string' ||
    (wire.errors ?? []).some(toWireErrorHasApiId) ||
    (wire.cause ? toWireErrorHasApiId(wire.cause) : false)
  )
}

function findApiId(wire: WireError, apiId: string): boolean {
  return (
    wire.apiId === apiId ||
    (wire.errors ?? []).some((e) => findApiId(e, apiId)) ||
    (wire.cause ? findApiId(wire.cause, apiId) : false)
  )
}

/** Test hook: every connection to a redirected address goes to its replacement instead. */
function redirectConnections(connection: typeof Connection, redirect: Record<string, string>): void {
  const connect = Reflect.get(connection.prototype, 'connect') as (...args: unknown[]) => unknown
  connection.prototype.connect = function (this: Connection, host: string, port: number, ...rest: unknown[]) {
    const to = redirect[`${host}:${port}`]
    if (to !== undefined) {
      const colon = to.lastIndexOf(':')
      host = to.slice(0, colon)
      port = Number(to.slice(colon + 1))
    }
    return connect.call(this, host, port, ...rest)
  } as Connection['connect']
}

if (!isMainThread && (workerData as { mark?: unknown } | null)?.mark === WORKER_MARK) {
  const { settings } = workerData as { settings: WorkerSettings }
  runWorker(settings).catch((err: unknown) => {
    // Nothing can be sent without the client: the sink's side sees the thread exit and fails the calls.
    process.stderr.write(`streamgate kafka worker: ${String(err)}\n`)
    process.exit(1)
  })
}
