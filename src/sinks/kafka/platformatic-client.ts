import { Worker } from 'node:worker_threads'
import { transientError } from '../../errors.js'
import type { Logger } from '../../telemetry/logger.js'
import {
  CONNECTION_TIMEOUT_MS,
  REQUEST_TIMEOUT_MARGIN_MS,
  type KafkaClient,
  type KafkaClientSettings,
} from './client.js'
import { PlatformaticError } from './errors.js'
import type { OutgoingMessage } from './messages.js'
import {
  packMessages,
  WORKER_MARK,
  type WorkerReply,
  type WorkerRequest,
  type WorkerSettings,
} from './platformatic-worker.js'

// @platformatic/kafka 1.35 behind the KafkaClient interface (`client: platformatic`). The library itself runs
// in a worker thread per sink (platformatic-worker.ts, which says why); this side starts the thread on
// first use, packs each send into one transferred buffer and turns the thread's answers back into promises.
// Its errors come back as WireErrors (errors.ts maps them); if the thread dies, every call it had fails
// transiently and the next call starts a new thread.
//
// What this client needed beyond "use the library" (bench/RESULTS.md, 2026-12-02):
//  - compression off the event loop: the worker thread;
//  - bounded retries: none inside the client (`retries: false`; any number below 2 means "forever" for its
//    idempotent producer), the lane owns retries;
//  - idempotence: an idempotent producer (acks -1 forced) whose send failed is replaced by a new one, as
//    with kafkajs (kafkajs-client.ts explains why), and each producer sends one batch at a time: the worker
//    takes a partition's sequence number when it encodes the batch and advances it only on the broker's ok;
//  - CPU: the library's per-record batch building was most of the worker's time; the worker encodes the
//    batches and Produce requests itself (record-batch.ts, bench/RESULTS.md 2026-12-04);
//  - partitions: its default partitioner hashes keys to other partitions than Java and kafkajs
//    (murmur2 >>> 0 instead of & 0x7fffffff), so every message carries its partition from messages.ts.

/** How long close() waits for the worker to close its connections before stopping the thread. */
const CLOSE_GRACE_MS = 5_000
/**
 * The worker's young generation, MB. Left to V8, a worker on a machine with much memory may grow it to
 * 192 MB (its default maxYoungGenerationSizeMb with 23 GiB); the client's garbage is short-lived (record
 * batches, compression buffers), so the young generation filled to that size before each scavenge and
 * made most of the ~150 MB more RSS than kafkajs that the platformatic client measured (bench/RESULTS.md,
 * "Kafka lane on a quieter box"). Capped, scavenges come sooner; the CPU they cost was measured too.
 */
const WORKER_YOUNG_GENERATION_MB = 32

const WORKER_FILE = new URL(
  import.meta.url.endsWith('.ts') ? './platformatic-worker.ts' : './platformatic-worker.js',
  import.meta.url,
)

/** `workerFile`: tests run a stand-in worker; the sink never passes one. */
export function createPlatformaticClient(
  settings: KafkaClientSettings,
  workerFile: URL = WORKER_FILE,
): KafkaClient {
  return new PlatformaticClient(settings, workerFile)
}

type Pending = { resolve(value: unknown): void; reject(err: unknown): void }

type Op = WorkerRequest extends infer R ? (R extends { op: infer O } ? O : never) : never
type Body<O extends Op> = Omit<Extract<WorkerRequest, { op: O }>, 'id' | 'op'>

class PlatformaticClient implements KafkaClient {
  readonly producers: number
  private readonly logger: Logger
  private readonly workerSettings: WorkerSettings
  private thread: { worker: Worker; pending: Map<number, Pending> } | undefined
  private nextId = 1
  private closed = false

  constructor(
    settings: KafkaClientSettings,
    private readonly workerFile: URL,
  ) {
    this.logger = settings.logger
    this.producers = settings.producers
    this.workerSettings = {
      clientId: settings.clientId,
      bootstrapBrokers: settings.brokers,
      timeout: settings.timeoutMs,
      requestTimeout: settings.timeoutMs + REQUEST_TIMEOUT_MARGIN_MS,
      connectTimeout: CONNECTION_TIMEOUT_MS,
      idempotent: settings.idempotent,
      acks: settings.acks,
      compression: settings.compression,
      producers: settings.producers,
    }
    if (settings.tls) this.workerSettings.tls = settings.tls
    if (settings.sasl)
      this.workerSettings.sasl = {
        mechanism: settings.sasl.mechanism.toUpperCase() as 'PLAIN' | 'SCRAM-SHA-256' | 'SCRAM-SHA-512',
        username: settings.sasl.username,
        password: settings.sasl.password,
      }
    if (settings.redirectBrokers) this.workerSettings.redirect = settings.redirectBrokers
    // Loading the library takes a while (0.3 s on a quiet core, seconds on a busy one): the thread starts
    // soon after the sink is built, so the first write does not wait for it. A sink that is closed at once
    // (a config check builds and closes every sink) never starts one.
    setImmediate(() => {
      if (!this.closed) this.thread ??= this.start()
    }).unref()
  }

  async send(producer: number, topic: string, messages: readonly OutgoingMessage[]): Promise<void> {
    const buffer = packMessages(messages)
    await this.call('send', { producer, topic, buffer }, [buffer])
  }

  async topicExists(topic: string): Promise<boolean> {
    return (await this.call('topicExists', { topic })) as boolean
  }

  async topicMaxMessageBytes(topic: string): Promise<number | undefined> {
    return (await this.call('maxMessageBytes', { topic })) as number | undefined
  }

  async ping(): Promise<void> {
    await this.call('ping', {})
  }

  async close(): Promise<void> {
    this.closed = true
    const worker = this.thread?.worker
    if (!worker) return
    // The worker finishes its queued sends and closes its connections; then the thread is stopped. A
    // close that hangs (a broker gone without a word) does not hold up shutdown beyond the grace.
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      this.call('close', {}).catch(() => undefined),
      new Promise((resolve) => (timer = setTimeout(resolve, CLOSE_GRACE_MS))),
    ])
    clearTimeout(timer)
    await worker.terminate()
  }

  private call<O extends Op>(op: O, body: Body<O>, transfer: ArrayBuffer[] = []): Promise<unknown> {
    if (this.closed && op !== 'close') return Promise.reject(transientError('kafka sink is closed', 'closed'))
    const { worker, pending } = (this.thread ??= this.start())
    const id = this.nextId++
    return new Promise((resolve, reject) => {
      // An idle thread does not keep the process alive; one with calls in flight does.
      if (pending.size === 0) worker.ref()
      pending.set(id, { resolve, reject })
      worker.postMessage({ id, op, ...body }, transfer)
    })
  }

  private start(): { worker: Worker; pending: Map<number, Pending> } {
    const worker = new Worker(this.workerFile, {
      workerData: { mark: WORKER_MARK, settings: this.workerSettings },
      resourceLimits: { maxYoungGenerationSizeMb: WORKER_YOUNG_GENERATION_MB },
    })
    worker.unref()
    const thread = { worker, pending: new Map<number, Pending>() }
    worker.on('message', (reply: WorkerReply) => {
      const call = thread.pending.get(reply.id)
      if (!call) return
      thread.pending.delete(reply.id)
      if (thread.pending.size === 0) worker.unref()
      if (reply.ok) call.resolve(reply.value)
      else call.reject(new PlatformaticError(reply.error))
    })
    const fail = (why: string): void => {
      if (this.thread === thread) this.thread = undefined
      const error = transientError(`kafka: the client's worker thread stopped (${why})`, 'kafka-error')
      for (const call of thread.pending.values()) call.reject(error)
      thread.pending.clear()
    }
    let reported = false
    const report = (fields: object): void => {
      if (reported || this.closed) return
      reported = true
      this.logger.error(fields, 'kafka client worker thread stopped; the next call starts a new one')
    }
    worker.on('error', (err: Error) => {
      report({ err: err.message })
      fail(err.message)
    })
    worker.on('exit', (code) => {
      report({ code })
      fail(`exit code ${code}`)
    })
    return thread
  }
}
