// TypeScript view of schemas/config.schema.json. The schema is the source of truth (it is what validates
// files and management-API writes); these types mirror it after defaults are applied.

export type SourceType = 'emnify' | 'azion' | 'ndjson' | 'json' | 'lines'
export type SinkType = 'kafka' | 'kinesis' | 's3' | 'adobe' | 'domo' | 'http' | 'file' | 'stdout'
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
  /** Left out: on for emnify (key id), off otherwise; `false` off, `true` on with the defaults (streamDedupe). */
  dedupe?: DedupeConfig | boolean
  rateLimit?: { recordsPerSecond: number; burstRecords?: number }
  durability: 'spool' | 'none'
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

export interface KafkaSinkConfig extends CommonSinkConfig {
  type: 'kafka'
  brokers: string[] | string
  topic: string
  key?: string
  headers?: Record<string, string>
  acks: -1 | 0 | 1
  idempotent: boolean
  compression: 'none' | 'gzip' | 'snappy' | 'lz4' | 'zstd'
  client: 'kafkajs' | 'platformatic'
  producers: number
  clientId: string
  timeoutMs: number
  ssl?: boolean | { caFile?: string; certFile?: string; keyFile?: string; rejectUnauthorized?: boolean }
  sasl?: { mechanism: 'plain' | 'scram-sha-256' | 'scram-sha-512'; username: string; password: string }
}

export interface KinesisSinkConfig extends CommonSinkConfig {
  type: 'kinesis'
  streamName?: string
  streamArn?: string
  region?: string
  endpoint?: string
  partitionKey?: string
  credentials?: AwsCredentialsConfig
  timeoutMs: number
  maxParallelCalls: number
}

export interface S3SinkConfig extends CommonSinkConfig {
  type: 's3'
  bucket: string
  region: string
  endpoint?: string
  forcePathStyle: boolean
  key: string
  compression: 'gzip' | 'none'
  maxObjectBytes: number
  maxObjectRecords: number
  maxObjectAgeMs: number
  partBytes: number
  credentials?: AwsCredentialsConfig
  timeoutMs: number
}

export interface AdobeSinkConfig extends CommonSinkConfig {
  type: 'adobe'
  /** Unset: not connected (records are held) until `streamgate connect adobe` writes it. */
  inletUrl?: string
  mode: 'batch' | 'single' | 'raw'
  syncValidation: boolean
  schemaRef?: string
  schemaContentType: string
  imsOrgId?: string
  datasetId?: string
  flowId?: string
  sourceName?: string
  mapping?: Record<string, string>
  // tokenUrl is optional: ajv does not apply defaults inside oneOf, so the sink falls back to Adobe IMS itself.
  auth?: { token: string } | { clientId: string; clientSecret: string; tokenUrl?: string; scopes?: string[] }
  apiKey?: string
  sandboxName?: string
  requestsPerSecond: number
  messagesPerSecond: number
}

/** Domo dataset column types [DOMO-DS]. */
export type DomoColumnType = 'STRING' | 'DECIMAL' | 'LONG' | 'DOUBLE' | 'DATE' | 'DATETIME'

export interface DomoSinkConfig extends CommonSinkConfig {
  type: 'domo'
  /** public: api.domo.com with OAuth client credentials; instance: <instanceUrl>/api/data/v1 with a developer token. */
  api: 'public' | 'instance'
  clientId?: string
  clientSecret?: string
  instanceUrl?: string
  developerToken?: string
  /** The stream to write to; or `create` finds (by dataset name) or creates it. */
  streamId?: number | string
  create?: {
    name: string
    description?: string
    /** Dataset schema, one per `columns` entry: a name (STRING) or {name, type}; default: the field paths as STRING. */
    columns?: (string | { name: string; type?: DomoColumnType })[]
  }
  columns: string[]
  updateMethod: 'APPEND' | 'REPLACE'
  apiBase: string
  tokenUrl: string
  partBytes: number
  compression: 'gzip' | 'none'
  parallelParts: number
}

export interface HttpSinkConfig extends CommonSinkConfig {
  type: 'http'
  url: string
  method: 'POST' | 'PUT' | 'PATCH'
  headers?: Record<string, string>
  format: 'ndjson' | 'json-array'
  compression: 'none' | 'gzip'
  timeoutMs: number
}

export interface FileSinkConfig extends CommonSinkConfig {
  type: 'file'
  dir: string
  prefix: string
  maxFileBytes: number
  maxFileAgeMs: number
  fsync: boolean
}

export interface StdoutSinkConfig extends CommonSinkConfig {
  type: 'stdout'
}

export type SinkConfig =
  | KafkaSinkConfig
  | KinesisSinkConfig
  | S3SinkConfig
  | AdobeSinkConfig
  | DomoSinkConfig
  | HttpSinkConfig
  | FileSinkConfig
  | StdoutSinkConfig

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
