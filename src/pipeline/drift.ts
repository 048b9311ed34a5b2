import { DRIFT_MISSING, DRIFT_UNKNOWN } from '../ingest/azion-template.js'
import type { RecordError } from '../validate/validators.js'

// Schema drift: how the records a stream receives differ from what its template or schema knows. Vendors say
// their records grow fields over time (emnify: "further format options will be added in future", the schemas
// allow additional properties; Azion: presets are abbreviated and vary), and a downstream parser breaks when a
// field it relies on stops arriving. This is how an operator learns of either before that happens.
//
// Two kinds, per field pointer (RFC 6901, e.g. /endpoint/imei):
// - unknown: a field arrives that the template or schema does not declare. Azion templates: a top-level key
//   the template (or, for a preset with several documented models, the nearest of them) does not show. JSON
//   Schemas (emnify's built-in ones, a stream's own `schema`): a member not in `properties` (nor matching
//   `patternProperties`), at the top level and inside every object whose schema declares properties itself
//   (through $ref, allOf, anyOf and oneOf too). Arrays are not descended into, nor are unknown members.
// - missing: a field every record is expected to carry is absent. Azion templates: a key the template shows
//   (not for reconstructed presets: we do not know what the real one shows). JSON Schemas: a `required`
//   member, inside objects that are present (optional properties are allowed to be absent: an emnify user
//   event has no `endpoint`). Such a record is usually invalid too; drift counts it either way.
//
// Cost and bounds. Azion records proven at byte level carry their classification for free (the framer's scan,
// src/ingest/azion-template.ts); the rest are walked after JSON.parse. Every record is looked at while the
// tracker learns (the first LEARN_RECORDS after start, reset or a new pointer); then one record in
// SAMPLE_EVERY is, and counts it stands for SAMPLE_EVERY records (figures become estimates; the report says
// so). At most MAX_FIELDS pointers are tracked per stream (later ones are only counted), examples are cut to
// EXAMPLE_CHARS, and field names never become metric labels.

export type DriftKind = 'unknown' | 'missing'

/** Per-record answer bits: some field is unknown / missing (the framer's scans answer the same bits). */
export const UNKNOWN = DRIFT_UNKNOWN
export const MISSING = DRIFT_MISSING

export const MAX_FIELDS = 200
export const EXAMPLE_CHARS = 100
const MAX_POINTER_CHARS = 300
export const LEARN_RECORDS = 1000
export const SAMPLE_EVERY = 64
/** Nesting followed in a schema ($ref cycles stop here). */
const MAX_DEPTH = 8

/** What a schema declares for an object: its members and which are required. */
export interface KnownNode {
  /** Declared members → what is declared inside them (when they are objects with properties), else null. */
  readonly keys: ReadonlyMap<string, KnownNode | null>
  readonly required: readonly string[]
  readonly patterns: readonly RegExp[]
}

export type KnownFields =
  | {
      kind: 'template'
      /** Key sets of the models that describe the records; the nearest one is compared with each record. */
      variants: readonly (readonly string[])[]
      /** Report template keys a record lacks (false for reconstructed presets). */
      countMissing: boolean
      source: string
    }
  | { kind: 'schema'; root: KnownNode; source: string }
  | { kind: 'none'; source: string }

export interface DriftField {
  pointer: string
  kind: DriftKind
  /** Records seen with this drift (an estimate once the tracker samples). */
  records: number
  firstSeen: string
  lastSeen: string
  /** The value's JSON text, cut to EXAMPLE_CHARS (unknown fields only). */
  example?: string
}

export interface DriftReport {
  /** false when the stream has nothing to compare with (no template or schema, or a text template). */
  tracking: boolean
  known: { source: string; fields: string[] }
  since: string
  /** Records whose fields were compared (weighted once sampling). */
  observedRecords: number
  unknownRecords: number
  missingRecords: number
  sampling: { learning: boolean; oneIn: number }
  fields: DriftField[]
  /** Pointer sightings not tracked because MAX_FIELDS pointers are tracked already. */
  untrackedSightings: number
  maxFields: number
}

interface Entry {
  pointer: string
  kind: DriftKind
  records: number
  firstSeenMs: number
  lastSeenMs: number
  example?: string
}

/** Where an unknown field's example value comes from: the parsed object, or a flat record's members. */
type ExampleSource = Readonly<Record<string, unknown>> | ReadonlyMap<string, string>

/** Receives the records found drifting since the last flush (the Prometheus counter). */
export type DriftCounter = (unknownRecords: number, missingRecords: number) => void

export class DriftTracker {
  private entries = new Map<string, Entry>()
  private sinceMs: number
  private observed = 0
  private unknownRecords = 0
  private missingRecords = 0
  private untracked = 0
  /** Records left in the learning phase (every record is looked at). */
  private learnLeft = LEARN_RECORDS
  private tick = 0
  private pendingUnknown = 0
  private pendingMissing = 0
  private readonly variantSets: readonly ReadonlySet<string>[]
  private readonly knownPointers: string[]
  /** What this tracker compares with, as text: a report is kept across a config change only if it is equal. */
  private readonly signature: string

  // The record being looked at (set by the observe methods; saves a closure per record).
  private now = 0
  private weight = 0
  private errors: RecordError[] | undefined

  constructor(
    readonly known: KnownFields,
    now: number,
    private readonly counter?: DriftCounter,
  ) {
    this.sinceMs = now
    this.variantSets = known.kind === 'template' ? known.variants.map((v) => new Set(v)) : []
    this.knownPointers =
      known.kind === 'template'
        ? [...new Set(known.variants.flat())].map((k) => `/${escapePointer(k)}`)
        : known.kind === 'schema'
          ? pointersOf(known.root, '', 0)
          : []
    this.signature = JSON.stringify([
      known.kind,
      known.source,
      this.knownPointers,
      known.kind === 'template' ? [known.variants, known.countMissing] : null,
      known.kind === 'schema' ? requiredOf(known.root, 0) : null,
    ])
  }

  get tracking(): boolean {
    return this.known.kind !== 'none'
  }

  /**
   * The weight a record would be looked at with: 1 while learning (or when `always`), SAMPLE_EVERY for one
   * record in SAMPLE_EVERY afterwards, 0 for the others (skip it). Call once per record.
   */
  sample(always: boolean): number {
    if (always || this.learnLeft > 0) {
      if (this.learnLeft > 0) this.learnLeft--
      return 1
    }
    this.tick = this.tick + 1 === SAMPLE_EVERY ? 0 : this.tick + 1
    return this.tick === 0 ? SAMPLE_EVERY : 0
  }

  /** A record the framer proved exact (nothing drifts): counted, nothing else to do. */
  exact(): void {
    this.observed++
  }

  /**
   * A record the framer proved a flat object of strings whose keys differ (`bits` from its scan). With
   * `weight` 0 only the totals are counted; otherwise its keys are read from `bytes` and recorded.
   */
  flat(bytes: Buffer, bits: number, now: number, weight: number): void {
    this.count(bits, 1)
    if (weight === 0 || this.known.kind !== 'template') return
    this.begin(now, weight, undefined)
    const members = flatMembers(bytes)
    this.compareTemplate([...members.keys()], members)
  }

  /**
   * A parsed record, looked at with `weight` (from `sample`; 0 skips it). Returns UNKNOWN | MISSING bits.
   * `errors`, when given, receives one entry per unknown field (for `unknownFields: reject`). With `record`
   * false (a dead-letter replay) nothing is counted or recorded.
   */
  value(value: unknown, now: number, weight: number, errors?: RecordError[], record = true): number {
    if (weight === 0 || this.known.kind === 'none') return 0
    if (value === null || typeof value !== 'object' || Array.isArray(value)) return 0
    this.begin(now, record ? weight : 0, errors)
    const obj = value as Record<string, unknown>
    let bits: number
    if (this.known.kind === 'template') {
      bits = this.compareTemplate(Object.keys(obj), obj)
    } else bits = this.walk(obj, this.known.root, 0)
    if (record) this.count(bits, weight)
    return bits
  }

  /** Hands the records counted since the last flush to the counter (once per request). */
  flush(): void {
    if (this.pendingUnknown === 0 && this.pendingMissing === 0) return
    this.counter?.(this.pendingUnknown, this.pendingMissing)
    this.pendingUnknown = 0
    this.pendingMissing = 0
  }

  reset(now: number): void {
    this.entries = new Map()
    this.sinceMs = now
    this.observed = 0
    this.unknownRecords = 0
    this.missingRecords = 0
    this.untracked = 0
    this.learnLeft = LEARN_RECORDS
    this.tick = 0
  }

  report(): DriftReport {
    const fields = [...this.entries.values()]
      .sort((a, b) => b.lastSeenMs - a.lastSeenMs || a.pointer.localeCompare(b.pointer))
      .map((e) => {
        const field: DriftField = {
          pointer: e.pointer,
          kind: e.kind,
          records: e.records,
          firstSeen: new Date(e.firstSeenMs).toISOString(),
          lastSeen: new Date(e.lastSeenMs).toISOString(),
        }
        if (e.example !== undefined) field.example = e.example
        return field
      })
    return {
      tracking: this.tracking,
      known: { source: this.known.source, fields: [...this.knownPointers] },
      since: new Date(this.sinceMs).toISOString(),
      observedRecords: this.observed,
      unknownRecords: this.unknownRecords,
      missingRecords: this.missingRecords,
      sampling: { learning: this.learnLeft > 0, oneIn: this.learnLeft > 0 ? 1 : SAMPLE_EVERY },
      fields,
      untrackedSightings: this.untracked,
      maxFields: MAX_FIELDS,
    }
  }

  /** Entries and totals carry over to the runtime that replaces this one when what it knows is the same. */
  adopt(previous: DriftTracker): void {
    if (previous.signature !== this.signature) return
    this.entries = previous.entries
    this.sinceMs = previous.sinceMs
    this.observed = previous.observed
    this.unknownRecords = previous.unknownRecords
    this.missingRecords = previous.missingRecords
    this.untracked = previous.untracked
    this.learnLeft = previous.learnLeft
  }

  private count(bits: number, weight: number): void {
    this.observed += weight
    if (bits & UNKNOWN) {
      this.unknownRecords += weight
      this.pendingUnknown += weight
    }
    if (bits & MISSING) {
      this.missingRecords += weight
      this.pendingMissing += weight
    }
  }

  private begin(now: number, weight: number, errors: RecordError[] | undefined): void {
    this.now = now
    this.weight = weight
    this.errors = errors
  }

  /**
   * Compares a record's top-level keys (each once) with the nearest template variant (fewest missing keys,
   * then fewest unknown ones; the framer's scan uses the same rule) and records the differences.
   */
  private compareTemplate(keys: readonly string[], source: ExampleSource): number {
    const sets = this.variantSets
    let best = 0
    let bestMissing = Infinity
    let bestUnknown = Infinity
    for (let v = 0; v < sets.length; v++) {
      const set = sets[v]!
      let inSet = 0
      for (const k of keys) if (set.has(k)) inSet++
      const missing = set.size - inSet
      const unknown = keys.length - inSet
      if (missing === 0 && unknown === 0) return 0
      if (missing < bestMissing || (missing === bestMissing && unknown < bestUnknown)) {
        best = v
        bestMissing = missing
        bestUnknown = unknown
      }
    }
    const set = sets[best]!
    let bits = 0
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i]!
      if (set.has(key)) continue
      bits |= UNKNOWN
      this.unknownField(`/${escapePointer(key)}`, source, key)
    }
    if (bestMissing > 0 && this.known.kind === 'template' && this.known.countMissing) {
      const present = new Set(keys)
      for (const key of set)
        if (!present.has(key)) {
          bits |= MISSING
          this.sighting('missing', `/${escapePointer(key)}`)
        }
    }
    return bits
  }

  /** Members of the objects being walked, outermost first (pointers are built only for a sighting). */
  private readonly path: string[] = []

  private pointerTo(key: string): string {
    let pointer = ''
    for (const segment of this.path) pointer += `/${escapePointer(segment)}`
    return `${pointer}/${escapePointer(key)}`
  }

  private walk(obj: Record<string, unknown>, node: KnownNode, depth: number): number {
    let bits = 0
    for (const key in obj) {
      if (!Object.hasOwn(obj, key)) continue
      const child = node.keys.get(key)
      if (child === undefined) {
        if (node.patterns.length > 0 && node.patterns.some((p) => p.test(key))) continue
        bits |= UNKNOWN
        this.unknownField(this.pointerTo(key), obj, key)
        continue
      }
      if (child === null || depth >= MAX_DEPTH) continue
      const v = obj[key]
      if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
        this.path.push(key)
        bits |= this.walk(v as Record<string, unknown>, child, depth + 1)
        this.path.pop()
      }
    }
    for (const key of node.required)
      if (!Object.hasOwn(obj, key)) {
        bits |= MISSING
        this.sighting('missing', this.pointerTo(key))
      }
    return bits
  }

  private unknownField(pointer: string, source: ExampleSource, key: string): void {
    this.errors?.push({
      pointer,
      message: "is not a field of the stream's template or schema (unknownFields: reject)",
    })
    this.sighting('unknown', pointer, source, key)
  }

  /** `source[key]` (a parsed object, or a flat record's members as JSON text) is the example of a new entry. */
  private sighting(kind: DriftKind, rawPointer: string, source?: ExampleSource, key?: string): void {
    if (this.weight === 0) return
    const pointer =
      rawPointer.length > MAX_POINTER_CHARS ? `${rawPointer.slice(0, MAX_POINTER_CHARS)}…` : rawPointer
    const id = kind === 'unknown' ? `u${pointer}` : `m${pointer}`
    const entry = this.entries.get(id)
    if (entry) {
      entry.records += this.weight
      entry.lastSeenMs = this.now
      return
    }
    if (this.entries.size >= MAX_FIELDS) {
      this.untracked += this.weight
      return
    }
    const created: Entry = {
      pointer,
      kind,
      records: this.weight,
      firstSeenMs: this.now,
      lastSeenMs: this.now,
    }
    if (source !== undefined && key !== undefined) created.example = truncate(exampleIn(source, key))
    this.entries.set(id, created)
    this.learnLeft = LEARN_RECORDS // something new: look at every record again for a while
  }
}

/**
 * The members of a flat JSON object of strings (a record the framer proved: keys hold no escapes), as key →
 * the value's JSON text, cut to EXAMPLE_CHARS + 1. The record is decoded once and scanned as a string
 * (JSON's structural characters are ASCII): decoding each key and value from the buffer separately cost
 * ~2 µs a member.
 */
export function flatMembers(bytes: Buffer): Map<string, string> {
  const text = bytes.toString('utf8')
  const members = new Map<string, string>() // of a repeated key JSON.parse keeps the last value; so does this
  const end = text.length
  let pos = skipBlank(text, 0)
  if (text.charCodeAt(pos) !== 0x7b) return members
  pos = skipBlank(text, pos + 1)
  while (pos < end && text.charCodeAt(pos) === 0x22) {
    const keyEnd = text.indexOf('"', pos + 1)
    if (keyEnd < 0) break
    const key = text.slice(pos + 1, keyEnd)
    pos = skipBlank(text, skipBlank(text, keyEnd + 1) + 1) // past ':'
    const valueEnd = stringEndIn(text, pos)
    if (valueEnd < 0) break
    members.set(key, text.slice(pos, Math.min(valueEnd, pos + EXAMPLE_CHARS + 1)))
    pos = skipBlank(text, valueEnd)
    if (text.charCodeAt(pos) !== 0x2c) break
    pos = skipBlank(text, pos + 1)
  }
  return members
}

function skipBlank(text: string, pos: number): number {
  for (;;) {
    const c = text.charCodeAt(pos)
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return pos
    pos++
  }
}

/** `pos` at an opening quote: the index just past the closing one, or -1. */
function stringEndIn(text: string, pos: number): number {
  let i = pos + 1
  for (;;) {
    const q = text.indexOf('"', i)
    if (q < 0) return -1
    let backslashes = 0
    for (let k = q - 1; k > pos && text.charCodeAt(k) === 0x5c; k--) backslashes++
    if (backslashes % 2 === 0) return q + 1
    i = q + 1
  }
}

function exampleIn(source: ExampleSource, key: string): string {
  if (isMembers(source)) return source.get(key) ?? ''
  return exampleOf(source[key])
}

function isMembers(source: ExampleSource): source is ReadonlyMap<string, string> {
  return source instanceof Map
}

function exampleOf(value: unknown): string {
  return JSON.stringify(value) ?? 'undefined'
}

function truncate(text: string): string {
  return text.length > EXAMPLE_CHARS ? `${text.slice(0, EXAMPLE_CHARS)}…` : text
}

export function escapePointer(key: string): string {
  return key.includes('~') || key.includes('/') ? key.replace(/~/g, '~0').replace(/\//g, '~1') : key
}

function requiredOf(node: KnownNode, depth: number): unknown[] {
  return [
    node.required,
    node.patterns.map((p) => p.source),
    ...[...node.keys.values()].map((c) => (c && depth < MAX_DEPTH ? requiredOf(c, depth + 1) : null)),
  ]
}

function pointersOf(node: KnownNode, base: string, depth: number): string[] {
  const out: string[] = []
  for (const [key, child] of node.keys) {
    const pointer = `${base}/${escapePointer(key)}`
    out.push(pointer)
    if (child && depth < MAX_DEPTH) out.push(...pointersOf(child, pointer, depth + 1))
  }
  return out
}

// ---- What a JSON Schema declares ------------------------------------------------------------------------

type SchemaObject = Record<string, unknown>

/**
 * The members a JSON Schema declares for a record, or undefined when it declares none at the top level
 * (nothing to compare with). Local $refs (#/definitions/…, #/$defs/…) are followed; properties of allOf,
 * anyOf and oneOf branches are merged (a member any branch declares is known); `required` is taken from the
 * schema itself and its allOf branches (what every record must carry).
 */
export function knownFromSchema(schema: SchemaObject): KnownNode | undefined {
  return nodeOf(schema, schema, 0)
}

function nodeOf(root: SchemaObject, schema: SchemaObject, depth: number): KnownNode | undefined {
  const keys = new Map<string, KnownNode | null>()
  const required: string[] = []
  const patterns: RegExp[] = []
  let declares = false
  const visit = (s: unknown, mandatory: boolean, hops: number): void => {
    const resolved = resolveRef(root, s, hops)
    if (!resolved) return
    const props = resolved.properties
    if (isObject(props)) {
      declares = true
      for (const [key, sub] of Object.entries(props)) {
        const child = depth < MAX_DEPTH && isObject(sub) ? nodeOf(root, sub, depth + 1) : undefined
        const before = keys.get(key)
        keys.set(key, before ?? child ?? null)
      }
    }
    if (isObject(resolved.patternProperties)) {
      declares = true
      for (const source of Object.keys(resolved.patternProperties)) {
        try {
          patterns.push(new RegExp(source, 'u'))
        } catch {
          // ajv would have refused the schema; ignore it here.
        }
      }
    }
    if (mandatory && Array.isArray(resolved.required))
      for (const r of resolved.required) if (typeof r === 'string' && !required.includes(r)) required.push(r)
    if (Array.isArray(resolved.allOf)) for (const b of resolved.allOf) visit(b, mandatory, hops + 1)
    for (const k of ['anyOf', 'oneOf'] as const) {
      const branches = resolved[k]
      if (Array.isArray(branches)) for (const b of branches) visit(b, false, hops + 1)
    }
  }
  visit(schema, true, 0)
  if (!declares) return undefined
  return { keys, required, patterns }
}

function resolveRef(root: SchemaObject, schema: unknown, hops: number): SchemaObject | undefined {
  let s = schema
  for (let i = hops; i < MAX_DEPTH && isObject(s) && typeof s.$ref === 'string'; i++) {
    const ref = s.$ref
    if (!ref.startsWith('#')) return undefined
    let target: unknown = root
    for (const part of ref.slice(1).split('/').slice(1))
      target = isObject(target) ? target[part.replace(/~1/g, '/').replace(/~0/g, '~')] : undefined
    s = target
  }
  return isObject(s) ? s : undefined
}

function isObject(v: unknown): v is SchemaObject {
  return v !== null && typeof v === 'object' && !Array.isArray(v)
}
