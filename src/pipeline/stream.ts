import { streamDedupe } from '../config/load.js'
import type { DedupeConfig, StreamConfig } from '../config/types.js'
import { problem, ProblemError, type ProblemFieldError } from '../errors.js'
import {
  templateKeys,
  templateRecordCheck,
  templateSchema,
  type CompiledTemplate,
  type TemplateContract,
} from '../ingest/azion-template.js'
import type { AzionTemplate } from '../ingest/azion-templates.js'
import {
  framedRecords,
  maxDepthOf,
  type FramedBody,
  type FramedRecord,
  type Framer,
  type RecordFramer,
} from '../ingest/framing.js'
import { sourceOf } from '../ingest/sources/registry.js'
import type { Source } from '../ingest/sources/source.js'
import { deadLetterRecord } from '../records/dead-letter.js'
import { rawField } from '../records/json-scan.js'
import type { SinkRecord } from '../records/record.js'
import type { BuiltinSchemaName, RecordError, RecordValidator, Validators } from '../validate/validators.js'
import type { IngestSlice } from './admission.js'
import { compileAuth, type CompiledAuth } from './auth.js'
import { DedupeWindow } from './dedupe.js'
import { DriftTracker, knownFromSchema, type DriftCounter, type KnownFields } from './drift.js'
import { compileFilters, type RecordPredicate } from './filters.js'
import { RecordRateLimiter } from './rate-limit.js'

/** At most this many per-record errors in a 422 answer (SPEC section 2). */
export const MAX_PROBLEM_ERRORS = 100

/**
 * GET and HEAD are availability probes: vendors check an endpoint before and while streaming (Azion probes
 * once a minute and discards data for an endpoint it finds unavailable [AZ-REF "Error treatment"]). A probe
 * runs the stream's auth as a POST would and stores nothing.
 */
export const PROBE_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD'])

/** At most this many distinct Content-Type values are remembered as accepted per stream. */
const ACCEPTED_CONTENT_TYPES_MAX = 32

export interface ProcessOutcome {
  /** Accepted records, for every sink of the stream. */
  records: SinkRecord[]
  /** Invalid records (policy dead-letter), already wrapped for the dead-letter sink. */
  deadLetters: SinkRecord[]
  received: number
  filtered: number
  duplicates: number
  rejected: Record<string, number>
  /** Dedupe keys to remember once the records are safely handed off. */
  dedupeKeys: string[]
}

export interface StreamRuntimeOptions {
  /** Counts the records found drifting (the Prometheus counter), once per request. */
  driftCounter?: DriftCounter
  now?: number
}

/** One configured stream, compiled: framer, validator, filters, dedupe window and drift tracker. */
export class StreamRuntime {
  readonly framer: Framer
  readonly template?: CompiledTemplate
  /** What arrives that the template or schema does not know, and what it knows that does not arrive. */
  drift: DriftTracker
  private readonly rejectUnknown: boolean
  private readonly validate?: RecordValidator
  private readonly filter?: RecordPredicate
  private dedupe?: DedupeWindow
  /** The dedupe this stream runs (config/load.ts streamDedupe; on by default where the source says so: emnify). */
  readonly dedupeConfig?: DedupeConfig
  private readonly dedupePath?: string[]
  private readonly idPath?: string[]
  readonly methods: ReadonlySet<string>
  /** The stream's source module (src/ingest/sources/). */
  readonly source: Source
  /** Its auth (headers, source addresses, HMAC), compiled once with the stream. */
  readonly auth: CompiledAuth
  /** Its `rateLimit`, a token bucket over records; a new one with each rebuilt runtime. */
  readonly limiter: RecordRateLimiter | undefined
  /** What it accepts as Content-Type (lower case); undefined: anything. */
  readonly contentTypes: readonly string[] | undefined
  /** The methods it answers, for an Allow header: its `method` plus the probes. */
  readonly allow: string
  /** Content-Type header values already found acceptable (clients send the same one every time). */
  private readonly acceptedContentTypes = new Set<string>()

  constructor(
    readonly id: string,
    readonly config: StreamConfig,
    validators: Validators,
    options: StreamRuntimeOptions = {},
  ) {
    this.source = sourceOf(config.source)
    // A preset describes its records (any flat object of strings is valid; differences are drift); a
    // templateModel the user wrote is a strict contract.
    const templates = this.source.templates?.(config)
    const preset: AzionTemplate | undefined = templates?.preset
    const contract: TemplateContract = preset ? 'describe' : 'strict'
    const variants: CompiledTemplate[] = templates?.variants ?? []
    this.template = variants[0]
    const builtin = this.source.builtinSchema?.(config)
    this.rejectUnknown =
      config.unknownFields === 'reject' && (config.schema !== undefined || config.templateModel !== undefined)
    if (config.validation !== 'off') {
      if (config.schema !== undefined) this.validate = validators.fromFile(config.schema)
      else if (builtin) this.validate = validators.builtin(builtin)
      else if (this.template)
        this.validate = validators.fromSchema(
          templateSchema(
            this.template,
            `https://streamgate.dev/schemas/azion/${encodeURIComponent(id)}/${hash(this.template.model)}-${contract}.json`,
            contract,
          ) as Record<string, unknown>,
        )
    }
    this.drift = new DriftTracker(
      knownFieldsOf(config, validators, variants, preset, builtin),
      options.now ?? Date.now(),
      options.driftCounter,
    )
    this.filter = compileFilters(config.filters)
    // Azion JSON records proven valid at byte level skip JSON.parse and ajv: only when the validator is the
    // template's own schema (or validation is off) and no filter needs the parsed value. Ids and dedupe keys
    // are read from the bytes (rawField) either way. The scan also tells drift: whether the keys differ.
    // The same for a source's built-in schema (emnify): records the schema's byte-level check proves
    // (src/validate/byte-schema.ts) skip JSON.parse and ajv; drift parses the ones it samples.
    const proven =
      this.template && config.schema === undefined && !this.filter
        ? templateRecordCheck(variants, {
            contract,
            countMissing: preset?.documented ?? true,
            unknownRejects: this.rejectUnknown,
          })
        : builtin && config.schema === undefined && !this.filter && !this.rejectUnknown
          ? validators.builtinByteCheck(builtin, maxDepthOf(config))
          : undefined
    this.framer = this.source.framer(config, {
      ...(this.template ? { template: this.template } : {}),
      ...(proven ? { proven } : {}),
    })
    this.dedupeConfig = streamDedupe(config, this.source.defaults?.dedupe)
    if (this.dedupeConfig) {
      this.dedupe = new DedupeWindow(this.dedupeConfig.windowRecords, this.dedupeConfig.windowMs)
      this.dedupePath = this.dedupeConfig.key.split('.')
    }
    // Records of a source with ids (emnify's `id`) carry them in idField; when that is also the dedupe key,
    // it is read once.
    const idField = this.source.idField
    this.idPath =
      idField !== undefined && this.dedupePath?.join('.') !== idField ? idField.split('.') : this.dedupePath
    this.methods = new Set(Array.isArray(config.method) ? config.method : [config.method])
    this.auth = compileAuth(config.auth)
    const rate = config.rateLimit
    this.limiter = rate ? new RecordRateLimiter(rate.recordsPerSecond, rate.burstRecords) : undefined
    // Without `contentTypes`, what the source accepts (src/ingest/sources/; vendor sources: any).
    this.contentTypes = (config.contentTypes ?? this.source.contentTypes)?.map((t) => t.toLowerCase())
    this.allow = [...new Set([...this.methods, ...PROBE_METHODS])].join(', ')
  }

  /**
   * Throws the 415 problem unless the Content-Type header (as sent) is one the stream accepts; a missing or
   * empty one passes. Values found acceptable are remembered, so the usual request costs one lookup.
   */
  checkContentType(header: string | undefined): void {
    if (this.contentTypes === undefined || header === undefined) return
    if (this.acceptedContentTypes.has(header)) return
    checkContentType(header, this.contentTypes)
    if (this.acceptedContentTypes.size < ACCEPTED_CONTENT_TYPES_MAX) this.acceptedContentTypes.add(header)
  }

  /** Frames, validates, filters and dedupes one request body. Throws ProblemError for 400 and 422. */
  process(body: Buffer, now: number): ProcessOutcome {
    return finish(this.evaluate(this.framer(body), now, true))
  }

  /**
   * `process` in slices: every SLICE_RECORDS records it asks `slice` whether its turn's time is spent, and if
   * so waits for a later turn of the event loop (src/pipeline/admission.ts, IngestTurns). A 2,000-record
   * body no longer holds one turn for its whole 3–16 ms; what else waits for the loop (delivery lanes, the
   * refusals of admission control, one-record requests) runs between its slices. Same outcome as `process`.
   */
  async processSliced(body: Buffer, now: number, slice: IngestSlice): Promise<ProcessOutcome> {
    const steps = this.evaluate(this.framer(body), now, true)
    for (;;) {
      const step = steps.next()
      if (step.done === true) return step.value
      if (slice.spent()) await slice.next()
    }
  }

  /**
   * Runs records given one by one (a dead-letter replay) through validation and filters again, without
   * dedupe (they were seen before on purpose) and without 422 (still-invalid ones are dead-lettered).
   */
  processRecords(raws: readonly Buffer[], now: number): ProcessOutcome {
    this.recordFramer ??= this.source.recordFramer(this.config, this.template)
    return finish(this.evaluate(framedRecords(raws.map(this.recordFramer)), now, false))
  }

  private recordFramer?: RecordFramer

  /**
   * Records are framed (parsed), checked and dropped one at a time (see FramedBody); the outcome is the same
   * as framing the whole body first. Pauses (yields) after every SLICE_RECORDS records, where a sliced
   * caller may let the event loop turn (`processSliced`); `finish` runs it through.
   */
  private *evaluate(framed: FramedBody, now: number, live: boolean): Generator<void, ProcessOutcome> {
    const outcome: ProcessOutcome = {
      records: [],
      deadLetters: [],
      received: framed.length,
      filtered: 0,
      duplicates: 0,
      rejected: {},
      dedupeKeys: [],
    }
    // Under `off` only records over a limit (nesting depth) and replayed records that no longer frame
    // (FramedRecord.unframed) are invalid: they are dead-lettered, not lost.
    const policy =
      (!live && this.config.validation === 'reject') || this.config.validation === 'off'
        ? 'dead-letter'
        : this.config.validation
    let problems: ProblemFieldError[] | undefined
    let invalidCount = 0
    const batchKeys = this.dedupe && live ? new Set<string>() : undefined
    let i = 0
    try {
      for (; i < framed.length; i++) {
        if (i % SLICE_RECORDS === SLICE_RECORDS - 1) yield
        const record = framed.record(i)
        const unknown = this.observe(record, now, live)
        const errors = this.check(record) ?? unknown
        if (errors) {
          invalidCount++
          if (policy === 'reject') {
            problems ??= []
            for (const e of errors)
              if (problems.length < MAX_PROBLEM_ERRORS) problems.push({ index: i, ...e })
          } else if (policy === 'dead-letter') {
            outcome.deadLetters.push(
              deadLetterRecord(
                this.id,
                record.bytes,
                { reason: 'invalid', errors: errors.map((e) => ({ index: i, ...e })) },
                now,
                now,
              ),
            )
          }
          continue
        }
        if (this.filter && !this.filter(record.value)) {
          outcome.filtered++
          continue
        }
        const id = this.idPath ? this.field(record, this.idPath) : undefined
        if (this.dedupe && live) {
          const key = this.dedupePath === this.idPath ? id : this.field(record, this.dedupePath!)
          if (key !== undefined) {
            if (this.dedupe.has(key, now) || batchKeys!.has(key)) {
              outcome.duplicates++
              continue
            }
            batchKeys!.add(key)
            outcome.dedupeKeys.push(key)
          }
        }
        outcome.records.push(sinkRecord(this.id, record, now, id))
      }
    } catch (err) {
      // A record that cannot be framed (400) wins over anything else, wherever it sits in the body.
      if (!(err instanceof ProblemError)) framed.verifyFrom(i + 1)
      throw err
    } finally {
      this.drift.flush()
    }
    if (problems) {
      throw problem(
        'invalid-records',
        `${invalidCount} of ${framed.length} records are invalid; nothing was accepted (validation: reject)`,
        { errors: problems },
      )
    }
    if (invalidCount > 0) outcome.rejected[policy === 'drop' ? 'invalid-dropped' : 'invalid'] = invalidCount
    return outcome
  }

  /** Keeps the dedupe window of the runtime this one replaces (config changed, same key and window). */
  adoptDedupe(previous: StreamRuntime): void {
    const a = previous.dedupeConfig
    const b = this.dedupeConfig
    if (
      previous.dedupe &&
      a &&
      b &&
      a.key === b.key &&
      a.windowRecords === b.windowRecords &&
      a.windowMs === b.windowMs
    )
      this.dedupe = previous.dedupe
  }

  /** Keeps the drift report of the runtime this one replaces when what it compares with is the same. */
  adoptDrift(previous: StreamRuntime): void {
    this.drift.adopt(previous.drift)
  }

  /**
   * Compares the record's fields with what the stream knows (src/pipeline/drift.ts). Every record counts
   * while live; the fields of parsed records are walked on a sample once the tracker has learnt the stream,
   * and always with `unknownFields: reject`, whose errors this returns (replays only check, never count).
   */
  private observe(record: FramedRecord, now: number, live: boolean): RecordError[] | null {
    const drift = this.drift
    if (!drift.tracking) return null
    if (record.proven && this.template === undefined) {
      // Proven by the built-in schema's byte check: walked, on the usual sample, from a parse of its own.
      const weight = live ? drift.sample(false) : 0
      if (weight > 0) drift.value(JSON.parse(record.bytes.toString('utf8')), now, weight, undefined, live)
      return null
    }
    if (record.proven) {
      if (!live) return null
      if (record.driftBits === undefined) drift.exact()
      else drift.flat(record.bytes, record.driftBits, now, drift.sample(false))
      return null
    }
    if (record.value === undefined || record.fields !== undefined) return null
    const weight = live ? drift.sample(this.rejectUnknown) : this.rejectUnknown ? 1 : 0
    if (weight === 0) return null
    const errors: RecordError[] | undefined = this.rejectUnknown ? [] : undefined
    drift.value(record.value, now, weight, errors, live)
    return errors !== undefined && errors.length > 0 ? errors : null
  }

  /** The dedupe window (undefined without dedupe), for the gateway to save and restore across restarts. */
  get dedupeWindow(): DedupeWindow | undefined {
    return this.dedupe
  }

  /** The dedupe key of a spooled record, as `process` read it from the request. */
  dedupeKeyOf(record: SinkRecord): string | undefined {
    if (!this.dedupePath) return undefined
    if (this.dedupePath === this.idPath) return record.id
    if (record.fields) return record.fields[this.dedupePath.join('.')]
    return rawField(record.payload, this.dedupePath)
  }

  /**
   * Remembers the dedupe keys of records that were handed off (called only after success). Call it as soon
   * as Gateway.accept resolves, with no await in between: the gateway deletes delivered spool segments on
   * the premise that a record's key is remembered before any delivery lane can read it (pipeline/dedupe.ts).
   */
  commit(outcome: ProcessOutcome, now: number): void {
    if (this.dedupe && outcome.dedupeKeys.length > 0) this.dedupe.remember(outcome.dedupeKeys, now)
  }

  private check(record: FramedRecord): RecordError[] | null {
    if (record.unframed) return [{ pointer: '', message: record.mismatch ?? 'cannot be framed' }]
    if (record.overLimit !== undefined) return [{ pointer: '', message: record.overLimit }]
    if (this.config.validation === 'off') return null
    if (record.mismatch !== undefined) return [{ pointer: '', message: record.mismatch }]
    if (record.proven) return null
    if (!this.validate) return null
    return this.validate(record.value)
  }

  private field(record: FramedRecord, path: string[]): string | undefined {
    if (record.fields) return record.fields[path.join('.')]
    return rawField(record.bytes, path)
  }
}

/** Records evaluated between two looks at the clock of a sliced `process` (~30–100 µs of work). */
const SLICE_RECORDS = 64

/** Runs an evaluation through without pausing. */
function finish(steps: Generator<void, ProcessOutcome>): ProcessOutcome {
  for (;;) {
    const step = steps.next()
    if (step.done === true) return step.value
  }
}

/** One shape for every accepted record (optional keys only when set, as the spool decodes them). */
function sinkRecord(stream: string, record: FramedRecord, now: number, id: string | undefined): SinkRecord {
  if (record.fields) {
    if (id !== undefined)
      return { stream, payload: record.bytes, receivedAtMs: now, id, fields: record.fields }
    return { stream, payload: record.bytes, receivedAtMs: now, fields: record.fields }
  }
  if (id !== undefined) return { stream, payload: record.bytes, receivedAtMs: now, id }
  return { stream, payload: record.bytes, receivedAtMs: now }
}

/** What drift compares records with: the stream's schema, else its Azion template(s). */
function knownFieldsOf(
  config: StreamConfig,
  validators: Validators,
  variants: readonly CompiledTemplate[],
  preset: AzionTemplate | undefined,
  builtin: BuiltinSchemaName | undefined,
): KnownFields {
  const fromSchema = (schema: Record<string, unknown>, source: string): KnownFields => {
    const root = knownFromSchema(schema)
    return root
      ? { kind: 'schema', root, source }
      : { kind: 'none', source: `${source}: declares no properties to compare with` }
  }
  if (config.schema !== undefined)
    return fromSchema(validators.schemaFile(config.schema), `schema ${config.schema}`)
  if (builtin) return fromSchema(validators.builtinSchema(builtin), `built-in schema ${builtin}`)
  const template = variants[0]
  if (!template) return { kind: 'none', source: `source ${config.source}: no schema to compare with` }
  if (template.kind === 'text')
    return { kind: 'none', source: 'text templateModel: fields are positional, nothing can drift' }
  return {
    kind: 'template',
    variants: variants.map(templateKeys),
    countMissing: preset?.documented ?? true,
    source: preset
      ? `preset template ${preset.id} (${preset.name}; ${preset.documented ? `${variants.length} documented model${variants.length === 1 ? '' : 's'}` : 'reconstructed'})`
      : 'templateModel',
  }
}

function checkContentType(header: string, allowed: readonly string[]): void {
  if (header === '') return
  const media = header.split(';')[0]!.trim().toLowerCase()
  const [type, subtype] = media.split('/')
  const ok = allowed.some((a) => {
    if (a === media) return true
    if (a.endsWith('/*')) return a.slice(0, -2) === type
    if (a.startsWith(`${type}/*+`)) return subtype?.endsWith(a.slice(a.indexOf('+'))) ?? false
    return false
  })
  if (!ok)
    throw problem(
      'unsupported-media-type',
      `Content-Type "${media}" is not accepted; send JSON, NDJSON or text`,
      {
        extra: { accepted: allowed },
      },
    )
}

function hash(text: string): string {
  let h = 2166136261
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619)
  return (h >>> 0).toString(16)
}
