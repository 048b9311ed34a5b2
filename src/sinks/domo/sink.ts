import { abortable } from '../abortable.js'
import type { DomoColumnType, DomoSinkConfig } from '../../config/types.js'
import { AUTH_FAILED, authError, permanentError, transientError, type SinkError } from '../../errors.js'
import {
  ALL_WRITTEN,
  batchLimits,
  type Sink,
  type SinkContext,
  type SinkRecord,
  type WriteResult,
} from '../sink.js'
import {
  answerDetail,
  answerJson,
  describe,
  gzip,
  HttpClient,
  mapLimit,
  NEVER,
  statusError,
  writeOutcome,
  type HttpAnswer,
  type HttpMethod,
  type IndexedFailure,
} from '../http-client.js'
import { notConnectedSink } from '../not-connected.js'
import { ClientCredentialsToken } from '../oauth.js'
import { fieldJson } from '../record-json.js'

// Domo Streams (vendor-formats.md §4; vendor-docs/002 for the instance API). Two APIs, chosen by `api`:
//
//   public    <apiBase>/v1/streams, `Authorization: bearer <token>` from OAuth client credentials: HTTP Basic
//             client_id:client_secret to `tokenUrl` ?grant_type=client_credentials&scope=data [DOMO-AUTH];
//             the token is cached until shortly before `expires_in`, and a 401 renews it and resends once,
//             as the Node SDK does (DOMO-NODE Transport.ts `retryRequest`).
//   instance  <instanceUrl>/api/data/v1/streams [002], `X-DOMO-Developer-Token: <developerToken>` (the
//             header Domo's API reference gives for these endpoints, e.g.
//             https://www.domo.com/docs/api-reference/datasets-api/stream-get; 002 does not name it).
//
// Every write is one stream execution (executions of one sink never overlap: "do not create multiple
// executions on a single stream" [DOMO-PY]; concurrent writes wait for each other):
//                 public                                         instance [002]
//   create        POST …/{id}/executions                         POST …/{id}/executions
//                 body {"updateMethod": <updateMethod>} on both: the stream's own method (APPEND or REPLACE)
//                 applies otherwise [002, DOMO-PY], and a REPLACE stream would lose its rows to every batch
//   part n        PUT  …/{id}/executions/{exec}/part/{n}          PUT  …/{id}/data/{exec}/parts/{n}
//   finalize      PUT  …/{id}/executions/{exec}/commit            PUT  …/{id}/data/{exec}/commit
//   abort         PUT  …/{id}/executions/{exec}/abort             DELETE …/{id}/executions/{exec}
//   retrieve      GET  …/{id}/executions/{exec}                   GET  …/{id}/executions/{exec}
// The execution's id is the answer's `id` (or `executionId`); on the instance API the part and finalize
// paths take its `dataId` when the answer has one, else that id. 002 leaves the finalize `{action}` word
// unnamed: `commit`, the public API's word for it. Parts are gzip'd header-less CSV, at most
// `parallelParts` in flight [DOMO-PAR]. Any failure aborts the execution (best effort) and the write
// rejects: transient for 408/429/5xx and network errors, permanent for other 4xx (an unknown stream).
// Commit is not atomic [DOMO-PY]: a commit whose answer was lost is retried as a new execution, so rows can
// arrive twice (at-least-once).
//
// Rows Domo refuses: a part answered 400 (or 413) holds at least one row the dataset will not take. The part
// is not stored and the execution stays usable ("retry failed parts" [DOMO-PAR]), so its rows are split in
// halves re-sent as new parts of the same execution, down to single rows, which are reported failed
// (dead-lettered) with Domo's message; everything else is committed in that one execution — one commit per
// write, so a REPLACE write still replaces with every good row. Depth ≤ log2(rows of the part); at most
// DOMO_MAX_BISECT_UPLOADS extra parts per write, after which the rows not yet isolated are reported with the
// part's error. If instead the execution ended with the refusal (retrieve shows it is no longer ACTIVE, or
// the commit is refused), the sink switches to probing: each suspect group in an execution of its own that
// is then aborted (halved while refused), and one final execution with every good row, committed. Probing
// also settles a write whose every row was refused while retrieve could not show the execution ACTIVE. No
// execution with zero rows is ever committed (a REPLACE would empty the dataset).
//
// Auth failures (401/403 on any call, or the token endpoint refusing the client): errors.ts `authError` —
// the records stay in the spool and are retried with backoff, never dead-lettered for it.
//
// `create: {name, description, columns}` instead of `streamId`: the stream is looked up by dataset name
// (GET …/search?q=dataSource.name:<name> [002], exact name match among the results, which use wildcards)
// and created when there is none: public POST /v1/streams {"dataSet":{name, description, "schema":
// {"columns":[{"type","name"}]}}, "updateMethod"} [DOMO-QS]; instance POST /api/data/v1/streams with the
// 002 example's shape {"transport":{"type":"API"},"dataSource":{name, description}}, then PUT …/{id}
// {"schemaDefinition":{"columns":[…]}} (schemaDefinition is one of the four fields 002 lets PUT set). The id
// is remembered for the sink's life. At start (healthcheck) the stream is read, and a warning names both
// methods when its own updateMethod differs from `updateMethod`.
//
// Part encoding: the SDKs disagree (vendor-formats.md §4). We send `Content-Type: text/csv` +
// `Content-Encoding: gzip`, the Python SDK's form [DOMO-PY]: the part is CSV (the type both SDKs and the
// reference use for uncompressed parts) and gzip is its HTTP content coding (RFC 9110 §8.4), rather than
// the Node SDK's opaque `application/gzip` [DOMO-NODE StreamClient.ts `uploadCompressedPart`].
//
// CSV (RFC 4180 as Domo extends it [DOMO-CSV]): LF row ends (the last row too, as recommended), fields
// quoted with `"` when they hold `"`, `,`, CR or LF, embedded quotes doubled. `columns` are record field
// paths: a missing field or null is an empty field (Domo reads it as null), an empty string is `""`,
// numbers and booleans are written exactly as in the record (64-bit ids keep every digit), objects and
// arrays as their JSON text, quoted.
//
// Standard and Standard-Trial instances may push through the API at most once per hour [DOMO-IMPORT]:
// there, set lingerMs to 3600000 so each batch (= execution) waits that long.

/** Token scope for the Streams API [DOMO-AUTH]. */
const DOMO_SCOPE = 'data'
/** Parts are ~50 MB [DOMO-PY, DOMO-PAR]; give an upload time. */
const DOMO_TIMEOUT_MS = 120_000
/** How long an abort may take after a failure (it must not hold up the retry for long). */
const DOMO_ABORT_TIMEOUT_MS = 10_000
/** The instance API's credential header. */
export const DOMO_DEVELOPER_TOKEN_HEADER = 'X-DOMO-Developer-Token'
/** Extra part uploads (or probe executions) one write may spend isolating the rows Domo refuses. */
export const DOMO_MAX_BISECT_UPLOADS = 2000
/** Transport of a stream created on the instance API: any type but CONNECTOR takes uploaded parts [002]. */
const DOMO_INSTANCE_TRANSPORT = 'API'

const DOMO_DEFAULTS = {
  maxBatchRecords: 100_000,
  maxBatchBytes: 64 * 1024 * 1024,
  lingerMs: 60_000,
  maxRecordBytes: 16 * 1024 * 1024,
}

export function createDomoSink(name: string, config: DomoSinkConfig, context: SinkContext): Sink {
  if (config.streamId === undefined && config.create === undefined) {
    // Neither: the sink waits for `streamgate connect domo` (src/connect/domo.ts), holding its records.
    domoStreamsUrl(config, `sinks.${name}`) // a bad URL is still a config error
    return notConnectedSink(name, config)
  }
  return new DomoSink(name, config, context)
}

// The Streams API as a sink config reaches it (collection URL, routes, credentials, search and create
// bodies): the sink's own calls and `streamgate connect domo` (src/connect/domo.ts) share these.

/** The streams collection URL of the sink's API, no trailing slash; throws `<at>.<key>: not a URL`. */
export function domoStreamsUrl(config: DomoSinkConfig, at: string): string {
  const instance = config.api === 'instance'
  const baseKey = instance ? 'instanceUrl' : 'apiBase'
  const baseText = instance ? config.instanceUrl : config.apiBase
  let base: URL
  try {
    base = new URL(baseText ?? '')
  } catch {
    throw new Error(`${at}.${baseKey}: not a URL`)
  }
  const prefix = instance ? '/api/data/v1/streams' : '/v1/streams'
  return `${base.origin}${base.pathname.replace(/\/+$/, '')}${prefix}`
}

/** The routes of the sink's API. */
export function domoApiOf(config: DomoSinkConfig): DomoApi {
  return config.api === 'instance' ? INSTANCE_API : PUBLIC_API
}

/** The OAuth token source of a public-API sink (undefined for the instance API); throws when incomplete. */
export function domoOAuth(
  config: DomoSinkConfig,
  at: string,
  http: HttpClient,
  timeoutMs = DOMO_TIMEOUT_MS,
): ClientCredentialsToken | undefined {
  if (config.api === 'instance') {
    if (!config.developerToken) throw new Error(`${at}.developerToken: required with api "instance"`)
    return undefined
  }
  if (!config.clientId || !config.clientSecret)
    throw new Error(`${at}.clientId: clientId and clientSecret are required with api "public"`)
  return new ClientCredentialsToken(
    {
      tokenUrl: config.tokenUrl,
      clientId: config.clientId,
      clientSecret: config.clientSecret,
      scopes: [DOMO_SCOPE],
      style: 'basic',
    },
    http,
    timeoutMs,
  )
}

/** The dataset schema a created stream gets: `create.columns`, else every `columns` path as STRING. */
export function domoSchemaColumns(config: DomoSinkConfig): SchemaColumn[] {
  const declared = config.create?.columns
  if (!declared) return config.columns.map((name) => ({ type: 'STRING', name }))
  return declared.map((c) =>
    typeof c === 'string' ? { type: 'STRING', name: c } : { type: c.type ?? 'STRING', name: c.name },
  )
}

/** The streams of a search answer whose dataset is named exactly `name` (search names use wildcards). */
export function domoSearchMatches(
  api: DomoApi,
  doc: unknown,
  name: string,
): { id: string; doc: StreamDoc }[] {
  // The documented answer is a list of streams; a wrapper object ({"streams": […]}) is read as its list.
  const wrapped = doc !== null && typeof doc === 'object' ? Object.values(doc).find(Array.isArray) : undefined
  const list = (Array.isArray(doc) ? doc : (wrapped ?? [])) as StreamDoc[]
  const out: { id: string; doc: StreamDoc }[] = []
  for (const s of list) {
    const id = s ? idOf(s.id) : undefined
    if (id !== undefined && api.datasetName(s) === name) out.push({ id, doc: s })
  }
  return out
}

export interface Route {
  method: HttpMethod
  /** Relative to the streams collection URL. */
  path: string
}

interface Execution {
  /** The execution id (abort, retrieve). */
  id: string
  /** The id the part and finalize paths take. */
  data: string
}

export type SchemaColumn = { type: DomoColumnType; name: string }

/** What differs between the two APIs, as paths under the streams collection. */
export interface DomoApi {
  executions(stream: string): Route
  execution(stream: string, exec: Execution): Route
  part(stream: string, exec: Execution, part: number): Route
  commit(stream: string, exec: Execution): Route
  abort(stream: string, exec: Execution): Route
  search(name: string): Route
  /** The create request(s): the stream itself, then (instance) its dataset schema. */
  create(
    create: NonNullable<DomoSinkConfig['create']>,
    columns: SchemaColumn[],
    updateMethod: string,
  ): unknown
  schema?(stream: string, columns: SchemaColumn[]): { route: Route; body: unknown }
  /** The dataset name in a stream document. */
  datasetName(doc: StreamDoc): unknown
}

export interface StreamDoc {
  id?: unknown
  updateMethod?: unknown
  dataSet?: { name?: unknown }
  dataSource?: { name?: unknown }
}

const enc = encodeURIComponent

const PUBLIC_API: DomoApi = {
  executions: (s) => ({ method: 'POST', path: `/${enc(s)}/executions` }),
  execution: (s, e) => ({ method: 'GET', path: `/${enc(s)}/executions/${enc(e.id)}` }),
  part: (s, e, n) => ({ method: 'PUT', path: `/${enc(s)}/executions/${enc(e.id)}/part/${n}` }),
  commit: (s, e) => ({ method: 'PUT', path: `/${enc(s)}/executions/${enc(e.id)}/commit` }),
  abort: (s, e) => ({ method: 'PUT', path: `/${enc(s)}/executions/${enc(e.id)}/abort` }),
  search: (name) => ({
    method: 'GET',
    path: `/search?${new URLSearchParams({ q: `dataSource.name:${name}`, fields: 'all' }).toString()}`,
  }),
  create: (create, columns, updateMethod) => ({
    dataSet: { name: create.name, description: create.description ?? '', schema: { columns } },
    updateMethod,
  }),
  datasetName: (doc) => doc.dataSet?.name ?? doc.dataSource?.name,
}

const INSTANCE_API: DomoApi = {
  executions: (s) => ({ method: 'POST', path: `/${enc(s)}/executions` }),
  execution: (s, e) => ({ method: 'GET', path: `/${enc(s)}/executions/${enc(e.id)}` }),
  part: (s, e, n) => ({ method: 'PUT', path: `/${enc(s)}/data/${enc(e.data)}/parts/${n}` }),
  commit: (s, e) => ({ method: 'PUT', path: `/${enc(s)}/data/${enc(e.data)}/commit` }),
  abort: (s, e) => ({ method: 'DELETE', path: `/${enc(s)}/executions/${enc(e.id)}` }),
  search: (name) => ({
    method: 'GET',
    path: `/search?${new URLSearchParams({ q: `dataSource.name:${name}` }).toString()}`,
  }),
  create: (create) => ({
    transport: { type: DOMO_INSTANCE_TRANSPORT },
    dataSource: { name: create.name, description: create.description ?? '' },
  }),
  schema: (s, columns) => ({
    route: { method: 'PUT', path: `/${enc(s)}` },
    body: { schemaDefinition: { columns } },
  }),
  datasetName: (doc) => doc.dataSource?.name ?? doc.dataSet?.name,
}

/** The verdicts on a write's rows (indexes into the batch). */
interface Verdicts {
  /** Rows Domo took. */
  good: number[]
  /** Groups holding at least one row Domo refused, not isolated yet. */
  suspect: number[][]
  /** Single rows Domo refused. */
  bad: IndexedFailure[]
}

const JSON_HEADERS = { 'content-type': 'application/json' }
const PART_HEADERS = { 'content-type': 'text/csv', 'content-encoding': 'gzip' }
const PLAIN_PART_HEADERS = { 'content-type': 'text/csv' }

class DomoSink implements Sink {
  readonly type = 'domo' as const
  readonly limits
  private readonly columns: { path: string[]; dotted: string }[]
  private readonly api: DomoApi
  /** The streams collection URL, no trailing slash. */
  private readonly streamsUrl: string
  private readonly http: HttpClient
  private readonly oauth: ClientCredentialsToken | undefined
  private streamId: string | undefined
  private resolving: Promise<string> | undefined
  /** A stream created on the instance API whose schema could not be set yet. */
  private schemaPending: string | undefined
  /** Set once Domo has shown that a refused part ends its execution: isolate rows by probing. */
  private refusalEndsExecution = false
  /** Settles when the execution in progress (if any) is over. */
  private queue: Promise<void> = Promise.resolve()
  private closed = false
  private authFailing = false
  private warnedMethod: string | undefined

  constructor(
    readonly name: string,
    private readonly config: DomoSinkConfig,
    private readonly context: SinkContext,
  ) {
    const at = `sinks.${name}`
    this.limits = batchLimits(config, DOMO_DEFAULTS)
    this.columns = config.columns.map((c) => ({ path: c.split('.'), dotted: c }))
    this.api = domoApiOf(config)
    this.streamsUrl = domoStreamsUrl(config, at)
    if (config.streamId !== undefined) this.streamId = String(config.streamId)
    else if (!config.create) throw new Error(`${at}: needs "streamId" or "create"`)
    this.http = new HttpClient({ timeoutMs: DOMO_TIMEOUT_MS, connections: Math.max(4, config.parallelParts) })
    this.oauth = domoOAuth(config, at, this.http)
  }

  async write(batch: readonly SinkRecord[], signal: AbortSignal): Promise<WriteResult> {
    if (this.closed) throw transientError('domo sink is closed', 'closed')
    if (batch.length === 0) return ALL_WRITTEN
    const rows = batch.map((record) => csvRow(record, this.columns))
    let failed: IndexedFailure[] = []
    await this.exclusive(signal, async () => {
      const stream = await this.stream(signal)
      failed = await this.deliverRows(stream, rows, signal)
    })
    return failed.length === 0 ? ALL_WRITTEN : writeOutcome(failed, batch.length)
  }

  /** Runs `fn` when no other execution of this sink is in progress. */
  private async exclusive(signal: AbortSignal, fn: () => Promise<void>): Promise<void> {
    const previous = this.queue
    let release!: () => void
    this.queue = new Promise<void>((resolve) => (release = resolve))
    try {
      await abortable(previous, signal)
      await fn()
    } finally {
      // Released only after the previous execution is over, even when this caller gave up waiting.
      void previous.then(release)
    }
  }

  /** Delivers the rows; returns the rows Domo refused, each with its error. */
  private async deliverRows(
    stream: string,
    rows: readonly string[],
    signal: AbortSignal,
  ): Promise<IndexedFailure[]> {
    const budget = { left: DOMO_MAX_BISECT_UPLOADS }
    const outcome = await this.oneExecution(stream, rows, budget, signal)
    if (Array.isArray(outcome)) return outcome
    return this.probeEach(stream, rows, outcome, budget, signal)
  }

  /**
   * Uploads every row in one execution, isolating refused rows inside it, and commits. Returns the refused
   * rows; or, when the execution turned out to end with a refused part, the verdicts that still hold (the
   * execution is aborted then, nothing committed).
   */
  private async oneExecution(
    stream: string,
    rows: readonly string[],
    budget: { left: number },
    signal: AbortSignal,
  ): Promise<IndexedFailure[] | Verdicts> {
    const exec = await this.createExecution(stream, signal)
    const verdicts: Verdicts = { good: [], suspect: [], bad: [] }
    let refused = false
    /** Some refusal came when Domo could not say whether the execution was still ACTIVE. */
    let unproven = false
    let partNumber = 0
    try {
      let pending = cutParts(
        rows.map((_, i) => i),
        rows,
        this.config.partBytes,
      )
      while (pending.length > 0) {
        const refusals = await mapLimit(pending, this.config.parallelParts, (group) =>
          this.uploadPart(stream, exec, ++partNumber, group, rows, signal),
        )
        const next: number[][] = []
        pending.forEach((group, i) => {
          const refusal = refusals[i]
          if (!refusal) verdicts.good.push(...group)
          else if (this.refusalEndsExecution) verdicts.suspect.push(group)
          else isolate(group, refusal, next, verdicts, budget)
        })
        if (refusals.some(Boolean)) {
          refused = true
          const state = this.refusalEndsExecution ? 'ended' : await this.executionState(stream, exec, signal)
          if (state === 'ended') {
            await this.abortExecution(stream, exec)
            return this.unreliable(verdicts, next, true)
          }
          if (state === 'unknown') unproven = true
        }
        pending = next
      }
      if (verdicts.good.length === 0) {
        // Nothing to commit: an empty execution would empty a REPLACE dataset.
        await this.abortExecution(stream, exec)
        // Neither the execution's state nor a commit shows the refusals were the rows' own: probe them.
        if (unproven && verdicts.bad.length > 1) return this.unreliable(verdicts, [], false)
        return verdicts.bad
      }
      const answer = await this.send(this.api.commit(stream, exec), signal)
      if (answer.status >= 200 && answer.status <= 299) return verdicts.bad
      const error = statusError(answer, 'domo', `Domo ${this.what(this.api.commit(stream, exec))}`)
      if (!refused || error.retriable) throw error
      // A commit refused after refused parts: the refusal ended the execution after all.
      await this.abortExecution(stream, exec)
      return this.unreliable(verdicts, [], true)
    } catch (err) {
      await this.abortExecution(stream, exec)
      throw err
    }
  }

  /**
   * The execution ended with a refused part (`proven`), or may have: answers after the first refusal prove
   * nothing about their rows. Accepted rows stay good; every refused row is a suspect again.
   */
  private unreliable(verdicts: Verdicts, next: number[][], proven: boolean): Verdicts {
    if (proven && !this.refusalEndsExecution) {
      this.context.logger.warn(
        { sink: this.name },
        'Domo ended the stream execution when it refused a part; isolating refused rows with one execution per probe',
      )
      this.refusalEndsExecution = true
    }
    return {
      good: verdicts.good,
      suspect: [...verdicts.suspect, ...next, ...verdicts.bad.map((b) => [b.index])],
      bad: [],
    }
  }

  /**
   * Isolates refused rows with one execution per probe (each aborted afterwards), then commits every good
   * row in one final execution.
   */
  private async probeEach(
    stream: string,
    rows: readonly string[],
    verdicts: Verdicts,
    budget: { left: number },
    signal: AbortSignal,
  ): Promise<IndexedFailure[]> {
    const good = [...verdicts.good]
    const bad = [...verdicts.bad]
    const queue = [...verdicts.suspect]
    let lastRefusal: SinkError | undefined
    while (queue.length > 0) {
      const group = queue.shift()!
      if (budget.left <= 0) {
        const error = lastRefusal ?? permanentError('Domo refused a part of these rows', 'domo-400')
        bad.push(...group.map((index) => ({ index, error: notIsolated(error, group.length) })))
        continue
      }
      budget.left--
      const refusal = await this.probe(stream, group, rows, signal)
      if (!refusal) good.push(...group)
      else {
        lastRefusal = refusal
        const next: number[][] = []
        const found: Verdicts = { good: [], suspect: [], bad: [] }
        // Here the budget counts probes (checked above), not splits.
        isolate(group, refusal, next, found, { left: Number.POSITIVE_INFINITY })
        bad.push(...found.bad)
        queue.push(...next)
      }
    }
    if (good.length > 0)
      await this.commitRows(
        stream,
        good.sort((a, b) => a - b),
        rows,
        signal,
      )
    return bad
  }

  /** Uploads `group` in an execution of its own, then aborts it. Returns Domo's refusal, if any. */
  private async probe(
    stream: string,
    group: number[],
    rows: readonly string[],
    signal: AbortSignal,
  ): Promise<SinkError | undefined> {
    const exec = await this.createExecution(stream, signal)
    try {
      const parts = cutParts(group, rows, this.config.partBytes)
      // One part at a time: after a refusal the execution's answers prove nothing.
      for (let i = 0; i < parts.length; i++) {
        const refusal = await this.uploadPart(stream, exec, i + 1, parts[i]!, rows, signal)
        if (refusal) return refusal
      }
      return undefined
    } finally {
      await this.abortExecution(stream, exec)
    }
  }

  /** One execution with exactly these rows, committed; any refusal now is an error for the whole write. */
  private async commitRows(
    stream: string,
    group: number[],
    rows: readonly string[],
    signal: AbortSignal,
  ): Promise<void> {
    const exec = await this.createExecution(stream, signal)
    try {
      const parts = cutParts(group, rows, this.config.partBytes)
      await mapLimit(parts, this.config.parallelParts, async (part, i) => {
        const refusal = await this.uploadPart(stream, exec, i + 1, part, rows, signal)
        if (refusal) throw refusal
      })
      await this.call(this.api.commit(stream, exec), signal)
    } catch (err) {
      await this.abortExecution(stream, exec)
      throw err
    }
  }

  private async createExecution(stream: string, signal: AbortSignal): Promise<Execution> {
    const route = this.api.executions(stream)
    const body = JSON.stringify({ updateMethod: this.config.updateMethod })
    const answer = await this.call(route, signal, Buffer.from(body), JSON_HEADERS)
    const doc = answerJson<{ id?: unknown; executionId?: unknown; dataId?: unknown }>(answer)
    const id = idOf(doc?.id) ?? idOf(doc?.executionId)
    if (id === undefined) throw transientError('Domo created an execution without an id', 'domo-bad-answer')
    return { id, data: idOf(doc?.dataId) ?? id }
  }

  /** Uploads one part; returns Domo's refusal of its rows (400/413), throws on any other failure. */
  private async uploadPart(
    stream: string,
    exec: Execution,
    part: number,
    group: readonly number[],
    rows: readonly string[],
    signal: AbortSignal,
  ): Promise<SinkError | undefined> {
    const route = this.api.part(stream, exec, part)
    const csv = group.map((i) => rows[i]!).join('')
    const plain = this.config.compression === 'none'
    const body = plain ? Buffer.from(csv) : await gzip(csv)
    const answer = await this.send(route, signal, body, plain ? PLAIN_PART_HEADERS : PART_HEADERS)
    if (answer.status >= 200 && answer.status <= 299) return undefined
    if (answer.status === 400 || answer.status === 413) {
      const detail = answerDetail(answer.body)
      return permanentError(
        `Domo refused the row${group.length === 1 ? '' : 's'} (${answer.status})${detail ? `: ${detail}` : ''}`,
        `domo-${answer.status}`,
      )
    }
    throw statusError(answer, 'domo', `Domo ${this.what(route)}`)
  }

  /** Whether the execution is still ACTIVE, as Domo's retrieve call says (`unknown` when it cannot tell). */
  private async executionState(
    stream: string,
    exec: Execution,
    signal: AbortSignal,
  ): Promise<'active' | 'ended' | 'unknown'> {
    let answer: HttpAnswer
    try {
      answer = await this.send(this.api.execution(stream, exec), signal)
    } catch (err) {
      if (signal.aborted || (err as SinkError).reason === AUTH_FAILED) throw err
      return 'unknown'
    }
    if (answer.status < 200 || answer.status > 299) return 'unknown'
    const state = answerJson<{ currentState?: unknown }>(answer)?.currentState
    if (typeof state !== 'string') return 'unknown'
    return state.toUpperCase() === 'ACTIVE' ? 'active' : 'ended'
  }

  private async abortExecution(stream: string, exec: Execution): Promise<void> {
    const route = this.api.abort(stream, exec)
    try {
      await this.call(route, NEVER, undefined, {}, DOMO_ABORT_TIMEOUT_MS)
    } catch (err) {
      // Not fatal: the write is retried as a new execution, and the uncommitted one holds no rows.
      this.context.logger.warn(
        { sink: this.name, execution: exec.id, err: (err as Error).message },
        'could not abort the Domo stream execution',
      )
    }
  }

  /** The stream id: configured, or found by name / created (`create`) once and remembered. */
  private stream(signal: AbortSignal): Promise<string> {
    if (this.streamId !== undefined) return Promise.resolve(this.streamId)
    // One shared lookup, not tied to any caller's signal.
    this.resolving ??= this.findOrCreate().finally(() => {
      this.resolving = undefined
    })
    return abortable(this.resolving, signal)
  }

  private async findOrCreate(): Promise<string> {
    const create = this.config.create!
    if (this.schemaPending === undefined) {
      const found = await this.search(create.name)
      if (found !== undefined) {
        this.context.logger.info(
          { sink: this.name, streamId: found, dataset: create.name },
          'using the existing Domo stream of the dataset',
        )
        return (this.streamId = found)
      }
      const columns = this.schemaColumns()
      const answer = await this.call(
        { method: 'POST', path: '' },
        NEVER,
        Buffer.from(JSON.stringify(this.api.create(create, columns, this.config.updateMethod))),
        JSON_HEADERS,
      )
      const doc = answerJson<StreamDoc>(answer)
      const id = idOf(doc?.id)
      if (id === undefined) throw transientError('Domo created a stream without an id', 'domo-bad-answer')
      this.context.logger.info(
        { sink: this.name, streamId: id, dataset: create.name },
        'created the Domo stream and its dataset',
      )
      if (!this.api.schema) return (this.streamId = id)
      this.schemaPending = id
    }
    const id = this.schemaPending
    const { route, body } = this.api.schema!(id, this.schemaColumns())
    await this.call(route, NEVER, Buffer.from(JSON.stringify(body)), JSON_HEADERS)
    this.schemaPending = undefined
    return (this.streamId = id)
  }

  /** The id of the stream whose dataset is named exactly `name`, if any. */
  private async search(name: string): Promise<string | undefined> {
    const route = this.api.search(name)
    const answer = await this.send(route, NEVER)
    if (answer.status === 404) return undefined
    if (answer.status < 200 || answer.status > 299)
      throw statusError(answer, 'domo', `Domo ${this.what(route)}`)
    const matches = domoSearchMatches(this.api, answerJson<unknown>(answer), name)
    if (matches.length > 1)
      // Which one is meant is a question for a person: hold the records (retriable) and say so.
      throw transientError(
        `${matches.length} Domo streams have a dataset named "${name}" (ids ${matches.map((m) => m.id).join(', ')}); set streamId`,
        'domo-ambiguous-stream',
      )
    const [match] = matches
    if (!match) return undefined
    this.checkUpdateMethod(match.id, match.doc)
    return match.id
  }

  private schemaColumns(): SchemaColumn[] {
    return domoSchemaColumns(this.config)
  }

  /** Warns (once per value) when the stream's own update method is not the one every execution sends. */
  private checkUpdateMethod(stream: string, doc: StreamDoc | undefined): void {
    const own = doc?.updateMethod
    if (typeof own !== 'string' || own === this.config.updateMethod || own === this.warnedMethod) return
    this.warnedMethod = own
    this.context.logger.warn(
      { sink: this.name, streamId: stream, streamUpdateMethod: own, updateMethod: this.config.updateMethod },
      `the Domo stream's own update method is ${own}; every execution sends updateMethod ${this.config.updateMethod}, which overrides it`,
    )
  }

  /**
   * One API call with the sink's credentials; returns any answer but 401/403, which throw an auth failure
   * (with OAuth, after renewing the token and resending once).
   */
  private async send(
    route: Route,
    signal: AbortSignal,
    body?: Buffer,
    headers: Record<string, string> = {},
    timeoutMs = DOMO_TIMEOUT_MS,
  ): Promise<HttpAnswer> {
    const url = new URL(this.streamsUrl + route.path)
    const request = (auth: Record<string, string>): Promise<HttpAnswer> =>
      this.http.request({
        url,
        method: route.method,
        headers: { accept: 'application/json', ...headers, ...auth },
        ...(body ? { body } : {}),
        signal,
        timeoutMs,
      })
    let answer: HttpAnswer
    try {
      if (this.oauth) {
        let token = await this.oauth.token(signal)
        answer = await request({ authorization: `bearer ${token}` })
        if (answer.status === 401) {
          this.oauth.invalidate(token)
          token = await this.oauth.token(signal)
          answer = await request({ authorization: `bearer ${token}` })
        }
      } else answer = await request({ [DOMO_DEVELOPER_TOKEN_HEADER]: this.config.developerToken! })
    } catch (err) {
      // The token endpoint refused the client credentials (oauth.ts).
      if ((err as SinkError).reason === AUTH_FAILED) this.reportAuthFailure((err as SinkError).message)
      throw err
    }
    if (answer.status === 401 || answer.status === 403) {
      const detail = answerDetail(answer.body)
      const error = authError(
        `Domo ${this.what(route)} answered ${answer.status}${detail ? `: ${detail}` : ''}`,
      )
      this.reportAuthFailure(error.message)
      throw error
    }
    if (this.authFailing) {
      this.authFailing = false
      this.context.logger.info({ sink: this.name }, 'Domo accepts the credentials again')
    }
    return answer
  }

  /** `send`, and any answer but 2xx throws (statusError: 408/429/5xx transient, other 4xx permanent). */
  private async call(
    route: Route,
    signal: AbortSignal,
    body?: Buffer,
    headers: Record<string, string> = {},
    timeoutMs = DOMO_TIMEOUT_MS,
  ): Promise<HttpAnswer> {
    const answer = await this.send(route, signal, body, headers, timeoutMs)
    if (answer.status >= 200 && answer.status <= 299) return answer
    throw statusError(answer, 'domo', `Domo ${this.what(route)}`)
  }

  private what(route: Route): string {
    return describe({ method: route.method, url: new URL(this.streamsUrl + route.path) })
  }

  /** Once per outage, as an error (never the token or secret). */
  private reportAuthFailure(message: string): void {
    if (this.authFailing) return
    this.authFailing = true
    this.context.logger.error(
      { sink: this.name, err: message },
      'Domo refused the credentials; records stay in the spool and are retried until the credentials work',
    )
  }

  /** Reads the stream (found or created first, with `create`): checks the credentials and the stream. */
  async healthcheck(signal: AbortSignal): Promise<void> {
    const stream = await this.stream(signal)
    const answer = await this.call({ method: 'GET', path: `/${enc(stream)}` }, signal)
    this.checkUpdateMethod(stream, answerJson<StreamDoc>(answer))
  }

  async close(): Promise<void> {
    this.closed = true
    await this.queue
    await this.http.close()
  }
}

/**
 * A refused group: a single row is a verdict; a larger group is split in halves for the next round, while
 * the budget lasts (then its rows are reported with the group's error).
 */
function isolate(
  group: number[],
  refusal: SinkError,
  next: number[][],
  verdicts: Verdicts,
  budget: { left: number },
): void {
  if (group.length === 1) {
    verdicts.bad.push({ index: group[0]!, error: refusal })
    return
  }
  if (budget.left < 2) {
    const error = notIsolated(refusal, group.length)
    for (const index of group) verdicts.bad.push({ index, error })
    return
  }
  budget.left -= 2
  const half = Math.ceil(group.length / 2)
  next.push(group.slice(0, half), group.slice(half))
}

function notIsolated(refusal: SinkError, rows: number): SinkError {
  return permanentError(
    `${refusal.message} (one of ${rows} rows; not isolated: the write spent its ${DOMO_MAX_BISECT_UPLOADS} bisection uploads)`,
    refusal.reason,
  )
}

export function idOf(value: unknown): string | undefined {
  if (typeof value === 'number' && Number.isFinite(value)) return String(value)
  if (typeof value === 'string' && value !== '') return value
  return undefined
}

/** Header-less CSV rows of the batch, cut into parts of at most `partBytes` (a part holds at least one row). */
export function csvParts(
  batch: readonly SinkRecord[],
  columns: readonly { path: string[]; dotted: string }[],
  partBytes: number,
): Buffer[] {
  const rows = batch.map((record) => csvRow(record, columns))
  return cutParts(
    rows.map((_, i) => i),
    rows,
    partBytes,
  ).map((group) => Buffer.from(group.map((i) => rows[i]!).join('')))
}

/** Groups of row indexes whose rows add up to at most `partBytes` (a group holds at least one row). */
export function cutParts(indexes: readonly number[], rows: readonly string[], partBytes: number): number[][] {
  const parts: number[][] = []
  let current: number[] = []
  let size = 0
  for (const i of indexes) {
    const rowBytes = Buffer.byteLength(rows[i]!)
    if (current.length > 0 && size + rowBytes > partBytes) {
      parts.push(current)
      current = []
      size = 0
    }
    current.push(i)
    size += rowBytes
  }
  if (current.length > 0) parts.push(current)
  return parts
}

/** One LF-terminated CSV row of the record's `columns`. */
export function csvRow(record: SinkRecord, columns: readonly { path: string[]; dotted: string }[]): string {
  let row = ''
  for (let c = 0; c < columns.length; c++) {
    if (c > 0) row += ','
    row += csvField(fieldJson(record, columns[c]!.path, columns[c]!.dotted))
  }
  return `${row}\n`
}

/** One CSV field from a value's JSON text (undefined = the field is missing). */
export function csvField(json: string | undefined): string {
  if (json === undefined || json === 'null') return ''
  const first = json.charCodeAt(0)
  if (first === 0x22 /* " */) {
    const text = json.includes('\\') ? (JSON.parse(json) as string) : json.slice(1, -1)
    if (text === '') return '""'
    return /[",\r\n]/.test(text) ? quote(text) : text
  }
  if (first === 0x7b /* { */ || first === 0x5b /* [ */) return quote(json)
  return json
}

function quote(text: string): string {
  return `"${text.replaceAll('"', '""')}"`
}
