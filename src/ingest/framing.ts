import { problem, ProblemError } from '../errors.js'
import { JsonScanError, nestsDeeper, splitOn, splitTopLevel, type Span } from '../records/json-scan.js'
import type { StreamConfig } from '../config/types.js'
import {
  isTemplateMismatch,
  textRecordSpans,
  type CompiledTemplate,
  type RecordScan,
} from './azion-template.js'

// Framing turns a decoded body into records, per the stream's `source` (SPEC section 3):
//   emnify  a JSON array (bulk mode, up to 10,000) or a single object [EM-DS-INTEG, EM-LEGACY, 1NCE-HTTP]
//   json    a JSON array or a single value
//   ndjson  one JSON value per line ("\n" or "\r\n"); empty lines skipped
//   lines   text split on logLineSeparator; each piece a string record
//   azion   payload_format around $dataset, records joined by log_line_separator [AZ-REF "Payload"]:
//           JSON templates are split at top level only (a "," inside a record never splits it); text
//           templates (Activity History's tab-separated line) are split on the separator and parsed back
//           into named fields with the template.
// A body that is not what the source requires is a 400 naming the line, element or byte (counted from 1);
// records keep their exact bytes. A JSON record nested deeper than `maxJsonDepth` frames, but is invalid.

/** Nesting depth of containers a JSON record may have unless its stream sets `maxJsonDepth`. */
export const DEFAULT_MAX_JSON_DEPTH = 256

export interface FramedRecord {
  /** The record's bytes as the vendor sent them (line breaks between JSON tokens become spaces). */
  bytes: Buffer
  /**
   * Parsed value: JSON value, the string of a `lines` record, or the fields of an Azion text record.
   * Undefined (not parsed) when `proven` is set.
   */
  value: unknown
  /** The framer's `proven` check showed the record is valid JSON that the stream's validator accepts. */
  proven?: true
  /** With `proven`: how the record's keys differ from the template's (drift bits of the framer's scan). */
  driftBits?: number
  /** Parsed fields of a text-template record. */
  fields?: Record<string, string>
  /** Why a text record does not match its template (validation reports it; framing does not fail). */
  mismatch?: string
  /**
   * Why the record breaks a limit that holds whatever the validation policy (nesting deeper than
   * `maxJsonDepth`). Such a record is invalid: it is never parsed into `value`, filtered or delivered.
   */
  overLimit?: string
  /**
   * A record given alone (a replay) that the source's framing refuses: not JSON, or not an object for emnify.
   * Live, such a record is a 400; replayed, it is invalid whatever the validation policy (`mismatch` says why).
   */
  unframed?: true
}

/**
 * A framed body: its records' boundaries are known, each record is parsed only when asked for. The pipeline
 * parses, validates and filters one record at a time and then drops the parsed value, so a 3,000-record
 * body never holds 3,000 parsed objects at once (they would survive young-generation GCs and be copied and
 * promoted; measured in bench/RESULTS.md). The answers stay those of framing everything first: a record
 * that does not frame is a 400 whatever came before it, which `verifyFrom` checks for the rest of the body
 * whenever the caller stops early.
 */
export interface FramedBody {
  readonly length: number
  /** Record `i`; throws the 400 ProblemError of the first record (at or after `i`) that cannot be framed. */
  record(i: number): FramedRecord
  /** Frames records `from`… only to throw the 400 of the first one that cannot be framed, if any. */
  verifyFrom(from: number): void
}

export type Framer = (body: Buffer) => FramedBody

const NEWLINE = 0x0a
const CARRIAGE_RETURN = 0x0d

/** Separators in config may be written with escapes ("\\n", "\\t") when the file quoting kept them literal. */
export function unescapeSeparator(text: string): string {
  return text.replace(/\\([ntr\\])/g, (_, c: string) =>
    c === 'n' ? '\n' : c === 't' ? '\t' : c === 'r' ? '\r' : '\\',
  )
}

/** Frames one record given alone (a dead-letter replay). */
export type RecordFramer = (raw: Buffer) => FramedRecord

// The building blocks each source (src/ingest/sources/) frames with. A source picks the rule its vendor
// documents; the rules themselves (exact bytes, 400s naming the line, element or byte) live here.

/**
 * A JSON document: an array of records or a single one. `objectsOnly` (emnify): every record must be an
 * object, and the 400's detail ends with `expectation`.
 */
export function jsonDocumentFramer(
  expectation: string,
  objectsOnly: boolean,
  maxDepth: number,
  proven?: RecordScan,
): Framer {
  return (body) => frameJsonDocument(body, expectation, objectsOnly, maxDepth, proven)
}

/** One JSON value per line ("\n" or "\r\n"); empty lines skipped. */
export function ndjsonFramer(maxDepth: number): Framer {
  return (body) =>
    new JsonSpans(body, splitOn(body, 0, body.length, NEWLINE_BYTES), 'line', {
      splitOnNewline: true,
      maxDepth,
      depthScanned: false,
    })
}

/** Text split on the separator (config escapes such as "\\n" allowed); each piece a string record. */
export function linesFramer(separatorText: string): Framer {
  const separator = Buffer.from(unescapeSeparator(separatorText))
  return (body) =>
    new TextSpans(body, splitOn(body, 0, body.length, separator), (bytes) => ({
      bytes,
      value: bytes.toString('utf8'),
    }))
}

/** A text record replayed alone keeps its text. */
export const textRecordFramer: RecordFramer = (raw) => ({ bytes: raw, value: raw.toString('utf8') })

/** An Azion text-template record replayed alone is parsed back into its fields. */
export function templateRecordFramer(template: Extract<CompiledTemplate, { kind: 'text' }>): RecordFramer {
  return (raw) => {
    const parsed = template.parse(raw.toString('utf8'))
    if (isTemplateMismatch(parsed)) return { bytes: raw, value: undefined, mismatch: parsed.mismatch }
    return { bytes: raw, value: parsed, fields: parsed }
  }
}

/**
 * A JSON record replayed alone. One that no longer parses comes back with a `mismatch`, so validation
 * dead-letters it again rather than failing the whole replay.
 */
export function jsonRecordFramer(maxDepth: number, objectsOnly: boolean): RecordFramer {
  return (raw) => {
    const text = raw.toString('utf8')
    let value: unknown
    try {
      value = JSON.parse(text)
    } catch (err) {
      return {
        bytes: raw,
        value: undefined,
        mismatch: `not valid JSON: ${(err as Error).message}`,
        unframed: true,
      }
    }
    if (nestsDeeper(text, maxDepth))
      return { bytes: raw, value: undefined, overLimit: depthMessage(maxDepth) }
    if (objectsOnly && (value === null || typeof value !== 'object' || Array.isArray(value)))
      return { bytes: raw, value: undefined, mismatch: 'must be an object', unframed: true }
    return { bytes: oneLine(raw), value }
  }
}

/** The nesting depth a stream's JSON records may have. */
export function maxDepthOf(stream: StreamConfig): number {
  return stream.maxJsonDepth ?? DEFAULT_MAX_JSON_DEPTH
}

function depthMessage(maxDepth: number): string {
  return `nesting depth exceeds ${maxDepth}`
}

function frameJsonDocument(
  body: Buffer,
  expectation: string,
  objectsOnly: boolean,
  maxDepth: number,
  proven: RecordScan | undefined,
): FramedBody {
  let start = 0
  let end = body.length
  while (start < end && isWs(body[start]!)) start++
  while (end > start && isWs(body[end - 1]!)) end--
  if (start === end) throw badBody('the body is empty', expectation)
  const first = body[start]
  if (first === 0x5b /* [ */) {
    if (body[end - 1] !== 0x5d /* ] */) throw badBody('the JSON array is not closed', expectation)
    const spans = scan(
      () => splitTopLevel(body, start + 1, end - 1, COMMA, maxDepth, proven?.valueEnd),
      start + 1,
      expectation,
    )
    return new JsonSpans(body, spans, 'element', {
      splitOnNewline: false,
      maxDepth,
      depthScanned: true,
      ...(objectsOnly ? { objectsExpectation: expectation } : {}),
      ...(proven ? { proven } : {}),
    })
  }
  if (objectsOnly && first !== 0x7b /* { */)
    throw badBody('the body is not a JSON array or object', expectation)
  return new JsonSpans(body, [{ start, end }], 'body', {
    splitOnNewline: false,
    maxDepth,
    depthScanned: false,
    ...(proven ? { proven } : {}),
  })
}

interface JsonSpansOptions {
  /** The spans were split on "\n", so none holds one. */
  splitOnNewline: boolean
  /** Nesting depth a record may have (deeper: `overLimit`). */
  maxDepth: number
  /** The spans come from `splitTopLevel` with `maxDepth`: too-deep ones are marked `deep` already. */
  depthScanned: boolean
  /** Set for emnify: every element must be an object (this text ends the 400's detail). */
  objectsExpectation?: string
  /** Records this check proves valid are not parsed (see azionFramer). */
  proven?: RecordScan
}

const COMMA = Buffer.from(',')
const NEWLINE_BYTES = Buffer.from('\n')

/**
 * JSON records at known byte spans of the body. Record `i` is `JSON.parse`d when asked for; the errors are
 * exactly those of parsing every span first and then checking (emnify) that every element is an object:
 * the first span that is not JSON wins over the first element that is not an object.
 */
class JsonSpans implements FramedBody {
  readonly length: number
  /** False when the body holds no CR/LF inside any span: no record needs `oneLine`. */
  private readonly mayBreak: boolean
  private readonly objectsExpectation?: string
  private readonly proven?: RecordScan
  private readonly maxDepth: number
  private readonly depthScanned: boolean

  constructor(
    private readonly body: Buffer,
    private readonly spans: readonly Span[],
    private readonly unit: 'line' | 'element' | 'body' | 'record',
    options: JsonSpansOptions,
  ) {
    const splitOnNewline = options.splitOnNewline
    this.objectsExpectation = options.objectsExpectation
    this.proven = options.proven
    this.maxDepth = options.maxDepth
    this.depthScanned = options.depthScanned
    this.length = spans.length
    const from = spans.length > 0 ? spans[0]!.start : 0
    const to = spans.length > 0 ? spans[spans.length - 1]!.end : 0
    // A line break between spans (NDJSON's own "\n") does not count; one inside a span does.
    this.mayBreak = splitOnNewline
      ? hasByte(body, CARRIAGE_RETURN, from, to)
      : hasByte(body, NEWLINE, from, to) || hasByte(body, CARRIAGE_RETURN, from, to)
  }

  record(i: number): FramedRecord {
    const span = this.spans[i]!
    const { start, end } = span
    // A proven record is no deeper than maxDepth (a flat object of strings for Azion; the schema check
    // counts depth itself).
    const scanned = span.proven
      ? (span.driftBits ?? 0)
      : this.proven
        ? this.proven(this.body, start, end)
        : -1
    if (scanned >= 0) {
      const bytes = this.body.subarray(start, end)
      const record: FramedRecord = {
        bytes: this.mayBreak ? oneLine(bytes) : bytes,
        value: undefined,
        proven: true,
      }
      if (scanned > 0) record.driftBits = scanned
      return record
    }
    const text = this.body.toString('utf8', start, end)
    const value = this.parse(text, i)
    if (
      this.objectsExpectation !== undefined &&
      (value === null || typeof value !== 'object' || Array.isArray(value))
    ) {
      this.verifyFrom(i + 1)
      throw problem('invalid-body', `element ${i + 1} is not a JSON object; ${this.objectsExpectation}`, {
        errors: [{ index: i, pointer: '', message: 'must be an object' }],
      })
    }
    const bytes = this.body.subarray(start, end)
    // JSON.parse itself copes with any depth; the limit keeps deep records from recursive code downstream.
    if (this.depthScanned ? span.deep === true : nestsDeeper(text, this.maxDepth))
      return { bytes, value: undefined, overLimit: depthMessage(this.maxDepth) }
    return { bytes: this.mayBreak ? oneLine(bytes) : bytes, value }
  }

  verifyFrom(from: number): void {
    for (let i = from; i < this.length; i++) {
      const { start, end, proven } = this.spans[i]!
      if (proven) continue
      if (!this.proven || this.proven(this.body, start, end) < 0)
        this.parse(this.body.toString('utf8', start, end), i)
    }
  }

  private parse(text: string, i: number): unknown {
    try {
      return JSON.parse(text)
    } catch (err) {
      const where = this.unit === 'body' ? 'the body' : `${this.unit} ${this.position(i)}`
      throw problem('invalid-json', `${where} is not valid JSON: ${(err as Error).message}`, {
        errors: [{ index: this.unit === 'body' ? 0 : i, pointer: '', message: 'not valid JSON' }],
      })
    }
  }

  /**
   * Record `i` as a person counts it, from 1: for NDJSON the line number in the body (empty lines are
   * skipped as records but count as lines); otherwise the element's or record's position.
   */
  private position(i: number): number {
    if (this.unit !== 'line') return i + 1
    let line = 1
    const start = this.spans[i]!.start
    for (let at = this.body.indexOf(NEWLINE); at >= 0 && at < start; at = this.body.indexOf(NEWLINE, at + 1))
      line++
    return line
  }
}

/** Text records (`lines`, Azion text templates): framing never fails, each record is read when asked for. */
class TextSpans implements FramedBody {
  readonly length: number

  constructor(
    private readonly body: Buffer,
    private readonly spans: readonly Span[],
    private readonly read: (bytes: Buffer) => FramedRecord,
  ) {
    this.length = spans.length
  }

  record(i: number): FramedRecord {
    const { start, end } = this.spans[i]!
    return this.read(this.body.subarray(start, end))
  }

  verifyFrom(): void {
    // Text records always frame.
  }
}

/** Records given one by one (a dead-letter replay), already framed. */
export function framedRecords(records: readonly FramedRecord[]): FramedBody {
  return {
    length: records.length,
    record: (i) => records[i]!,
    verifyFrom: () => undefined,
  }
}

function hasByte(body: Buffer, byte: number, start: number, end: number): boolean {
  const at = body.indexOf(byte, start)
  return at >= 0 && at < end
}

/** Pretty-printed JSON records become one line: raw line breaks can only sit between tokens. */
function oneLine(bytes: Buffer): Buffer {
  if (bytes.indexOf(NEWLINE) < 0 && bytes.indexOf(CARRIAGE_RETURN) < 0) return bytes
  const copy = Buffer.from(bytes)
  for (let i = 0; i < copy.length; i++) if (copy[i] === NEWLINE || copy[i] === CARRIAGE_RETURN) copy[i] = 0x20
  return copy
}

/**
 * Azion: payload_format around $dataset, records joined by log_line_separator [AZ-REF "Payload"]. `proven`
 * (JSON templates only): a byte-level check that proves a record valid JSON *and* valid for the stream's
 * validator. A record it proves is not parsed (`proven: true`, no `value`), so the caller must pass it only
 * when nothing else needs the parsed value (no filters). Records it does not prove are parsed as usual,
 * which raises the usual 400.
 */
export function azionFramer(
  stream: StreamConfig,
  template: CompiledTemplate,
  maxDepth: number,
  proven?: RecordScan,
): Framer {
  const format = unescapeSeparator(stream.payloadFormat)
  const at = format.indexOf('$dataset')
  const prefix = Buffer.from(format.slice(0, at).trim())
  const suffix = Buffer.from(format.slice(at + '$dataset'.length).trim())
  const separatorText = unescapeSeparator(stream.logLineSeparator)
  const separator = Buffer.from(separatorText)
  // JSON never holds a raw line break or tab inside a string, so a separator made of JSON whitespace with at
  // least one of them can be split on directly (fast). Any other separator needs the top-level scan, which
  // never splits inside a value: " " and " | " occur inside strings.
  const whitespaceSeparator = /^[ \t\r\n]+$/.test(separatorText) && /[\t\r\n]/.test(separatorText)
  const expectation = `an Azion body is payload_format ${JSON.stringify(format)} around records joined by ${JSON.stringify(separatorText)}`
  return (body) => {
    let start = 0
    let end = body.length
    while (start < end && isWs(body[start]!)) start++
    while (end > start && isWs(body[end - 1]!)) end--
    if (start === end) return framedRecords([]) // an empty push frames to zero records
    // Where the dataset itself reaches an edge of the body (no prefix or suffix there), that whitespace may
    // belong to a record or a separator: a text record's last field can end in a tab or space (an empty
    // $author_email), and a trailing " | " separator ends in a space. Trimming it changed a field or left a
    // stray "|". So at such an edge JSON records keep every byte (the splitters skip whitespace between JSON
    // values themselves) and text records lose only line breaks (a final newline is not a field).
    if (prefix.length === 0) {
      start = 0
      if (template.kind === 'text') while (start < end && isLineBreak(body[start]!)) start++
    }
    if (suffix.length === 0) {
      end = body.length
      if (template.kind === 'text') while (end > start && isLineBreak(body[end - 1]!)) end--
    }
    if (prefix.length > 0) {
      if (
        end - start < prefix.length ||
        body.compare(prefix, 0, prefix.length, start, start + prefix.length) !== 0
      )
        throw badBody(`the body does not start with ${JSON.stringify(prefix.toString())}`, expectation)
      start += prefix.length
    }
    if (suffix.length > 0) {
      if (
        end - start < suffix.length ||
        body.compare(suffix, 0, suffix.length, end - suffix.length, end) !== 0
      )
        throw badBody(`the body does not end with ${JSON.stringify(suffix.toString())}`, expectation)
      end -= suffix.length
    }
    if (template.kind === 'json') {
      const spans = whitespaceSeparator
        ? trimSpans(body, splitOn(body, start, end, separator))
        : scan(
            () => splitTopLevel(body, start, end, separator, maxDepth, proven?.valueEnd),
            start,
            expectation,
          )
      return new JsonSpans(body, spans, 'record', {
        splitOnNewline: separatorText === '\n',
        maxDepth,
        depthScanned: !whitespaceSeparator,
        ...(proven ? { proven } : {}),
      })
    }
    return new TextSpans(body, textRecordSpans(template, body, start, end, separator), (bytes) => {
      const parsed = template.parse(bytes.toString('utf8'))
      if (isTemplateMismatch(parsed)) return { bytes, value: undefined, mismatch: parsed.mismatch }
      return { bytes, value: parsed, fields: parsed }
    })
  }
}

function trimSpans(body: Buffer, spans: Span[]): Span[] {
  const out: Span[] = []
  for (const s of spans) {
    let { start, end } = s
    while (start < end && isWs(body[start]!)) start++
    while (end > start && isWs(body[end - 1]!)) end--
    if (end > start) out.push({ start, end })
  }
  return out
}

function scan(fn: () => Span[], offsetBase: number, expectation: string): Span[] {
  try {
    return fn()
  } catch (err) {
    if (err instanceof JsonScanError)
      throw badBody(`${err.message} at byte ${err.offset - offsetBase + 1} of the records`, expectation)
    throw err
  }
}

function badBody(what: string, expectation: string): ProblemError {
  return problem('invalid-body', `${what}; ${expectation}`)
}

function isWs(b: number): boolean {
  return b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09
}

function isLineBreak(b: number): boolean {
  return b === NEWLINE || b === CARRIAGE_RETURN
}
