import { authError, isProgrammingError, permanentError, SinkError, transientError } from '../../errors.js'

// Kafka failures in our error model (src/errors.ts): retriable or permanent, with a short stable reason.
// Both clients report the broker's answer by its Kafka error name (kafkajs as `type`, @platformatic/kafka as
// `apiId`), so one table serves both; each client's own errors (connections, timeouts) are mapped apart.
//   - Refused credentials (SASL, cluster authorization) are no record's fault: `authError` holds the lane
//     until they work again, as for the other sinks.
//   - A missing topic, a topic the principal may not write, a record over the topic's size limit, an
//     invalid record: permanent, the records go to the dead-letter sink. `unknown-topic` and `too-large`
//     are only provisional here: the sink takes a second look (admin metadata, the topic's config).
//   - Everything about the network, leaders, replicas, timeouts and producer state: retriable.

/** What a failed client call means for the records it carried. */
export interface KafkaFailure {
  /** `unknown-topic` and `too-large` need a second look (metadata, topic config) before they are final. */
  kind: 'unknown-topic' | 'too-large' | 'other'
  error: SinkError
}

type Verdict = { retriable: boolean; reason: string } | 'auth'

const BY_KAFKA_ERROR: Readonly<Record<string, Verdict>> = {
  SASL_AUTHENTICATION_FAILED: 'auth',
  UNSUPPORTED_SASL_MECHANISM: 'auth',
  ILLEGAL_SASL_STATE: 'auth',
  CLUSTER_AUTHORIZATION_FAILED: 'auth',
  TRANSACTIONAL_ID_AUTHORIZATION_FAILED: 'auth',
  TOPIC_AUTHORIZATION_FAILED: { retriable: false, reason: 'unauthorized' },
  INVALID_TOPIC_EXCEPTION: { retriable: false, reason: 'invalid-topic' },
  // e.g. a compacted topic refuses a message without a key
  INVALID_RECORD: { retriable: false, reason: 'invalid-record' },
  UNSUPPORTED_COMPRESSION_TYPE: { retriable: false, reason: 'unsupported-compression' },
  UNSUPPORTED_VERSION: { retriable: false, reason: 'unsupported-broker' },
  NOT_ENOUGH_REPLICAS: { retriable: true, reason: 'not-enough-replicas' },
  NOT_ENOUGH_REPLICAS_AFTER_APPEND: { retriable: true, reason: 'not-enough-replicas' },
  LEADER_NOT_AVAILABLE: { retriable: true, reason: 'leader-not-available' },
  NOT_LEADER_FOR_PARTITION: { retriable: true, reason: 'leader-not-available' },
  NOT_LEADER_OR_FOLLOWER: { retriable: true, reason: 'leader-not-available' },
  PREFERRED_LEADER_NOT_AVAILABLE: { retriable: true, reason: 'leader-not-available' },
  BROKER_NOT_AVAILABLE: { retriable: true, reason: 'unreachable' },
  NETWORK_EXCEPTION: { retriable: true, reason: 'unreachable' },
  REQUEST_TIMED_OUT: { retriable: true, reason: 'timeout' },
  KAFKA_STORAGE_ERROR: { retriable: true, reason: 'kafka-error' },
  // Producer-state errors: a new producer id (the next write's producer) clears them.
  OUT_OF_ORDER_SEQUENCE_NUMBER: { retriable: true, reason: 'producer-state' },
  DUPLICATE_SEQUENCE_NUMBER: { retriable: true, reason: 'producer-state' },
  INVALID_PRODUCER_EPOCH: { retriable: true, reason: 'producer-state' },
  UNKNOWN_PRODUCER_ID: { retriable: true, reason: 'producer-state' },
  INVALID_PRODUCER_ID_MAPPING: { retriable: true, reason: 'producer-state' },
  PRODUCER_FENCED: { retriable: true, reason: 'producer-state' },
}

const TOO_LARGE = new Set(['MESSAGE_TOO_LARGE', 'RECORD_LIST_TOO_LARGE'])

/** A Kafka error name with the client's own retriable flag (`undefined` when it has none). */
function byKafkaError(
  name: string,
  message: string,
  clientRetriable: boolean | undefined,
  cause: unknown,
): KafkaFailure {
  const text = `kafka: ${name}: ${message}`.trim()
  if (name === 'UNKNOWN_TOPIC_OR_PARTITION')
    return { kind: 'unknown-topic', error: transientError(text, 'unknown-topic', cause) }
  if (TOO_LARGE.has(name))
    return { kind: 'too-large', error: permanentError(text, 'record-too-large', cause) }
  const known = BY_KAFKA_ERROR[name]
  if (known) return { kind: 'other', error: fromVerdict(text, known, cause) }
  return {
    kind: 'other',
    error:
      clientRetriable === false
        ? permanentError(text, 'kafka-rejected', cause)
        : transientError(text, 'kafka-error', cause),
  }
}

function fromVerdict(message: string, verdict: Verdict, cause: unknown): SinkError {
  if (verdict === 'auth') return authError(message, cause)
  return verdict.retriable
    ? transientError(message, verdict.reason, cause)
    : permanentError(message, verdict.reason, cause)
}

function settled(err: unknown): KafkaFailure | undefined {
  if (err instanceof SinkError) return { kind: 'other', error: err }
  if (isProgrammingError(err))
    return {
      kind: 'other',
      error: permanentError(`internal error: ${(err as Error).message}`, 'internal', err),
    }
  return undefined
}

// ---- kafkajs ----------------------------------------------------------------------------------------------

const KAFKAJS_ERRORS: Readonly<Record<string, Verdict>> = {
  KafkaJSSASLAuthenticationError: 'auth',
  KafkaJSConnectionError: { retriable: true, reason: 'unreachable' },
  KafkaJSConnectionClosedError: { retriable: true, reason: 'unreachable' },
  KafkaJSNoBrokerAvailableError: { retriable: true, reason: 'unreachable' },
  KafkaJSBrokerNotFound: { retriable: true, reason: 'unreachable' },
  KafkaJSRequestTimeoutError: { retriable: true, reason: 'timeout' },
  KafkaJSTimeout: { retriable: true, reason: 'timeout' },
  KafkaJSLockTimeout: { retriable: true, reason: 'timeout' },
  KafkaJSMetadataNotLoaded: { retriable: true, reason: 'metadata' },
  KafkaJSTopicMetadataNotLoaded: { retriable: true, reason: 'metadata' },
  KafkaJSStaleTopicMetadataAssignment: { retriable: true, reason: 'metadata' },
  KafkaJSServerDoesNotSupportApiKey: { retriable: false, reason: 'unsupported-broker' },
}

interface ChainLink {
  name?: unknown
  type?: unknown
  message?: unknown
  retriable?: unknown
  cause?: unknown
}

/** Maps an error of either client (or of the sink itself) to a SinkError. */
export function classifyKafkaError(err: unknown): KafkaFailure {
  const done = settled(err)
  if (done) return done
  if (err instanceof PlatformaticError) return classifyPlatformaticError(err)
  return classifyKafkajsError(err)
}

/**
 * Maps a kafkajs error. kafkajs wraps the broker's answer (KafkaJSProtocolError with its `type`) in
 * KafkaJSNumberOfRetriesExceeded / KafkaJSNonRetriableError; the cause chain is searched for it.
 */
function classifyKafkajsError(err: unknown): KafkaFailure {
  const chain: ChainLink[] = []
  for (let e: unknown = err; e !== null && typeof e === 'object' && chain.length < 8;) {
    const current = e as ChainLink
    chain.push(current)
    e = current.cause
  }
  const root = chain.at(-1)
  const rootMessage = typeof root?.message === 'string' ? root.message : String(err)
  const protocol = chain.find((e) => typeof e.type === 'string')
  if (protocol) {
    const message = typeof protocol.message === 'string' ? protocol.message : ''
    const retriable = protocol.retriable === false ? false : undefined
    return byKafkaError(protocol.type as string, message, retriable, err)
  }
  for (const e of chain) {
    const known = typeof e.name === 'string' ? KAFKAJS_ERRORS[e.name] : undefined
    if (known) return { kind: 'other', error: fromVerdict(`kafka: ${rootMessage}`, known, err) }
  }
  // Anything else (a KafkaJSNonRetriableError such as "producer is disconnecting", a socket error): a new
  // producer on the next attempt may well succeed.
  return { kind: 'other', error: transientError(`kafka: ${rootMessage}`, 'kafka-error', err) }
}

/** Whether an error carries the broker's answer (the broker was reached and answered), either client. */
export function brokerAnswered(err: unknown): boolean {
  if (err instanceof PlatformaticError) return flatten(err.wire).some((e) => typeof e.apiId === 'string')
  for (let e: unknown = err, n = 0; e !== null && typeof e === 'object' && n < 8; n++) {
    if (typeof (e as ChainLink).type === 'string') return true
    e = (e as ChainLink).cause
  }
  return false
}

// ---- @platformatic/kafka ----------------------------------------------------------------------------------

/**
 * A @platformatic/kafka error as its worker thread sends it back (platformatic-worker.ts `toWireError`):
 * the fields that say what happened, for the error and everything it wraps.
 */
export interface WireError {
  /** The error's class: ProtocolError, ResponseError, MultipleErrors, NetworkError, TimeoutError, … */
  name: string
  message: string
  /** PLT_KFK_* */
  code?: string
  /** The Kafka error name of a ProtocolError (UNKNOWN_TOPIC_OR_PARTITION, MESSAGE_TOO_LARGE, …). */
  apiId?: string
  canRetry?: boolean
  errors?: WireError[]
  cause?: WireError
}

/** A failure that happened in the platformatic worker, as an Error of this thread. */
export class PlatformaticError extends Error {
  constructor(readonly wire: WireError) {
    super(wire.message)
    this.name = 'PlatformaticError'
  }
}

const PLATFORMATIC_ERRORS: Readonly<Record<string, Verdict>> = {
  AuthenticationError: 'auth',
  NetworkError: { retriable: true, reason: 'unreachable' },
  // platformatic marks timeouts not retriable (canRetry: false) and gives them NetworkError's code.
  TimeoutError: { retriable: true, reason: 'timeout' },
  UnsupportedCompressionError: { retriable: false, reason: 'unsupported-compression' },
  UnsupportedApiError: { retriable: false, reason: 'unsupported-broker' },
  UnsupportedError: { retriable: false, reason: 'unsupported-broker' },
  // Options or messages the client refused: our bug, never worth a retry.
  UserError: { retriable: false, reason: 'internal' },
}

function flatten(wire: WireError, into: WireError[] = [], depth = 0): WireError[] {
  if (depth > 8) return into
  into.push(wire)
  for (const e of wire.errors ?? []) flatten(e, into, depth + 1)
  if (wire.cause) flatten(wire.cause, into, depth + 1)
  return into
}

/**
 * Maps a @platformatic/kafka error. A produce answer with errors is a ResponseError holding one ProtocolError
 * per failed partition (`apiId` = the Kafka error name), often inside MultipleErrors ("… failed N times");
 * the whole tree is searched, the broker's answer first.
 */
function classifyPlatformaticError(err: PlatformaticError): KafkaFailure {
  const all = flatten(err.wire)
  const protocol = all.filter((e) => typeof e.apiId === 'string')
  const decisive =
    protocol.find((e) => e.apiId === 'UNKNOWN_TOPIC_OR_PARTITION') ??
    protocol.find((e) => TOO_LARGE.has(e.apiId!)) ??
    protocol.find((e) => e.canRetry === false) ??
    protocol[0]
  if (decisive) return byKafkaError(decisive.apiId!, decisive.message, decisive.canRetry, err)
  // The first error that wraps nothing says what went wrong ("connect ECONNREFUSED …").
  const rootMessage = all.find((e) => !e.errors?.length && !e.cause)?.message ?? err.message
  for (const e of all) {
    const known = PLATFORMATIC_ERRORS[e.name]
    if (known) return { kind: 'other', error: fromVerdict(`kafka: ${rootMessage}`, known, err) }
  }
  return { kind: 'other', error: transientError(`kafka: ${rootMessage}`, 'kafka-error', err) }
}
