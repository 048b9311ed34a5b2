// TypeScript view of schemas/config.schema.json. The schema is the source of truth (it is what validates
// files and management-API writes); these types mirror it after defaults are applied.

import type { KafkaSinkConfig, SinkConfig, SinkType } from './sink-types.generated.js'

// The sink types (SinkType, <Type>SinkConfig, SinkConfig) are generated from the sink descriptors
// (src/sinks/<type>/index.ts) by `npm run gen`; the rest of this file is written by hand.
export type * from './sink-types.generated.js'

export type SourceType = 'emnify' | 'azion' | 'ndjson' | 'json' | 'lines'
export type ValidationPolicy = 'dead-letter' | 'reject' | 'drop' | 'off'
export type IngestMethod = 'POST' | 'PUT' | 'PATCH'
export type StreamStatusId = 1 | 2 | 3 | 4

export interface ServerConfig {
  host: string
  /** Start on a non-loopback host despite streams without auth or placeholder secrets (src/config/exposure.ts). */
  allowInsecure: boolean
  port: number
  maxBodyBytes: number
  requestTimeoutMs: number
  /** Headers complete within this time from the request's first byte (408 otherwise). */
  headersTimeoutMs: number
  /** Longest pause between two pieces of an ingest body (408 otherwise). */
  bodyTimeoutMs: number
  /** Open client connections at most; more are closed at once. */
  maxConnections: number
  keepAliveTimeoutMs: number
  shutdownTimeoutMs: number
  /** Processes serving the ingest port, each with its own spool shard (src/cluster/); 1 = no cluster. */
  workers: number | 'auto'
  maxInFlightRequests: number
  /** Base URL vendors reach the gateway at, for the API's inletUrl; '' = from the request's headers. */
  publicUrl: string
  tls?: { certFile: string; keyFile: string }
}

/** An extra listener (admin.listen, metrics.listen). */
export interface ListenConfig {
  host: string
  port: number
  tls?: { certFile: string; keyFile: string }
}

export interface SpoolConfig {
  dir: string
  maxBytes: number
  fsync: 'always' | number
  segmentBytes: number
  /** In-memory tail of each stream log for caught-up lanes (schema default 16 MiB; 0 = off). */
  tailCacheBytes?: number

  /** Admission control (src/pipeline/admission.ts): refuse new requests above this; default 90 % of maxBytes. */
  highWaterBytes?: number
  /** …until the spool is back at or below this; default 75 % of maxBytes (never above highWaterBytes). */
  lowWaterBytes?: number
  /** A lane's lag budget in seconds of its recent delivery rate; 0 turns it off. The loader fills in 5. */
  maxLagSeconds?: number
  /** How long a request of a `backpressure: pause` stream waits to be admitted before it is refused; loader: 10000. */
  maxPauseMs?: number
}

export type FilterConfig =
  | { field: string; value: unknown; op?: 'eq' | 'ne' | 'exists' | 'prefix' | 'regex' }
  | { or: FilterConfig[] }
  | { and: FilterConfig[] }
  | { not: FilterConfig }

export interface DedupeConfig {
  key: string
  windowRecords: number
  windowMs: number
}

export interface HmacConfig {
  header: string
  secret: string
  algorithm: 'sha256' | 'sha1' | 'sha512'
  encoding: 'hex' | 'base64'
  prefix: string
}

export interface StreamConfig {
  source: SourceType
  recordType: 'event' | 'usage'
  method: IngestMethod | IngestMethod[]
  auth: {
    headers?: Record<string, string> | string[]
    hmac?: HmacConfig
    allowCidrs?: string[]
  }
  maxBodyBytes?: number
  /** Schema default 256 (src/ingest/framing.ts DEFAULT_MAX_JSON_DEPTH also applies to configs built in code). */
  maxJsonDepth?: number
  contentTypes?: string[]
  template?: number
  templateModel?: string
  /** azion, for `streamgate connect azion`: Azion's data_source (default: the template's, else http). */
  dataSource?: 'http' | 'waf' | 'cells_console' | 'rtm_activity'
  /** azion, for `streamgate connect azion`: Azion's domain_ids. */
  domainIds?: number[]
  payloadFormat: string
  logLineSeparator: string
  schema?: string
  /**
   * Fields the templateModel/schema does not declare: counted as drift, or (reject) the record is invalid.
   * The loader always sets it (default drift); optional here so that hand-built configs (tests) may omit it.
   */
  unknownFields?: 'drift' | 'reject'
  validation: ValidationPolicy
  filters: FilterConfig[]
  /** Left out: on for emnify (key id), off otherwise; `false` off, `true` on with the defaults (streamDedupe, the source's defaults). */
  dedupe?: DedupeConfig | boolean
  rateLimit?: { recordsPerSecond: number; burstRecords?: number }
  durability: 'spool' | 'none'
  /** When admission control would refuse: refuse (503 at once, the default) or pause (hold the unread request). */
  backpressure?: 'refuse' | 'pause'
  status: StreamStatusId
  sinks: string[]
  deadLetter?: string
}

export interface RetryConfig {
  initialMs: number
  maxMs: number
  maxAttempts: number
}

/** The sink's circuit breaker (src/pipeline/circuit.ts); every key has a default there. */
export interface CircuitConfig {
  /** Consecutive failed attempts that open the circuit; 0 disables the breaker. */
  failureThreshold: number
  /** First cool-down; doubles with every reopening without a success in between. */
  openMs: number
  /** Longest cool-down. */
  maxOpenMs: number
}

/** Keys every sink accepts. Batch limits are optional: each sink type has its own defaults. */
export interface CommonSinkConfig {
  type: SinkType
  maxBatchRecords?: number
  maxBatchBytes?: number
  lingerMs?: number
  retry: RetryConfig
  circuit?: Partial<CircuitConfig>
}

export interface AwsCredentialsConfig {
  accessKeyId: string
  secretAccessKey: string
  sessionToken?: string
}

/** Domo dataset column types [DOMO-DS]. */
export type DomoColumnType = 'STRING' | 'DECIMAL' | 'LONG' | 'DOUBLE' | 'DATE' | 'DATETIME'

export type SinkConfigOf<T extends SinkType> = Extract<SinkConfig, { type: T }>

/** What a process does (SPEC section 9): everything, or one side of a Kafka log shared by many nodes. */
export type Role = 'all' | 'ingest' | 'deliver'

/** The connection to the Kafka cluster the roles share (the connection options of a kafka sink). */
export interface ClusterKafkaConfig {
  brokers: string[] | string
  clientId: string
  timeoutMs: number
  ssl?: KafkaSinkConfig['ssl']
  sasl?: KafkaSinkConfig['sasl']
}

export interface ClusterConfig {
  kafka: ClusterKafkaConfig
  /** Topics `<topicPrefix>-<stream>`, groups `<topicPrefix>-<sink>`. */
  topicPrefix: string
  partitions: number
  replicationFactor: number
  /** How long a silent deliver node keeps its partitions. */
  sessionTimeoutMs: number
}

export interface GatewayConfig {
  /** Every file sink's dir resolves inside this directory (relative to the working directory). */
  dataDir: string
  server: ServerConfig
  admin: {
    token?: string
    /** Its own listener for /api, /ui (and /metrics unless metrics.listen); absent: the server listener. */
    listen?: ListenConfig
    loginThrottle: { maxFailures: number; windowMs: number }
  }
  metrics: { listen?: ListenConfig; token?: string }
  spool: SpoolConfig
  log: { level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'; access: boolean }
  health: { lagWindowMs: number; sampleIntervalMs: number }
  /** Absent (configs built in code) means 'all'; the schema fills in 'all'. */
  role?: Role
  /** Needed by role ingest and deliver (the one config check refuses them without it). */
  cluster?: ClusterConfig
  sinks: Record<string, SinkConfig>
  streams: Record<string, StreamConfig>
}
