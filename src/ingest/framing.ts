import { ProblemError } from '../errors.js'
import { JsonScanError, splitOn, splitTopLevel, type Span } from '../records/json-scan.js'
import type { StreamConfig } from '../config/types.js'
import { isTemplateMismatch, type CompiledTemplate } from './azion-template.js'

// Framing turns a decoded body into records, per the stream's `source` (SPEC section 3):
//   emnify  a JSON array (bulk mode, up to 10,000) or a single object [EM-DS-INTEG, EM-LEGACY, 1NCE-HTTP]
//   json    a JSON array or a single value
//   ndjson  one JSON value per line ("\n" or "\r\n"); empty lines skipped
//   lines   text split on logLineSeparator; each piece a string record
//   azion   payload_format around $dataset, records joined by log_line_separator [AZ-REF "Payload"]:
//           JSON templates are split at top level only (a "," inside a record never splits it); text
//           templates (Activity History's tab-separated line) are split on the separator and parsed back
//           into named fields with the template.
// A body that is not what the source requires is a 400 naming the offset; records keep their exact bytes.

export interface FramedRecord {
  /** The record's bytes as the vendor sent them (line breaks between JSON tokens become spaces). */
  bytes: Buffer
  /** Parsed value: JSON value, the string of a `lines` record, or the fields of an Azion text record. */
  value: unknown
  /** Parsed fields of a text-template record. */
  fields?: Record<string, string>
  /** Why a text record does not match its template (validation reports it; framing does not fail). */
  mismatch?: string
}

export type Framer = (body: Buffer) => FramedRecord[]

const NEWLINE = 0x0a
const CARRIAGE_RETURN = 0x0d

/** Separators in config may be written with escapes ("\\n", "\\t") when the file quoting kept them literal. */
export function unescapeSeparator(text: string): string {
  return text.replace(/\\([ntr\\])/g, (_, c: string) =>
    c === 'n' ? '\n' : c === 't' ? '\t' : c === 'r' ? '\r' : '\\',
  )
}

export function createFramer(stream: StreamConfig, template?: CompiledTemplate): Framer {
  switch (stream.source) {
    case 'emnify':
      return (body) =>
        frameJsonDocument(
          body,
          'an emnify body must be a JSON array of records or a single record object',
          true,
        )
    case 'json':
      return (body) => frameJsonDocument(body, 'the body must be a JSON array or a JSON value', false)
    case 'ndjson':
      return (body) => parseJsonSpans(body, splitOn(body, 0, body.length, Buffer.from('\n')), 'line')
    case 'lines': {
      const separator = Buffer.from(unescapeSeparator(stream.logLineSeparator))
      return (body) =>
        splitOn(body, 0, body.length, separator).map((s) => {
          const bytes = body.subarray(s.start, s.end)
          return { bytes, value: bytes.toString('utf8') }
        })
    }
    case 'azion':
      if (!template) throw new Error('an azion stream needs a compiled template')
      return azionFramer(stream, template)
  }
}

/**
 * Frames one record given alone (replaying a dead letter): JSON sources parse it, `lines` keeps the text,
 * Azion text templates parse it back into fields. A record that no longer parses comes back with a
 * `mismatch`, so validation dead-letters it again rather than failing the whole replay.
 */
export function createRecordFramer(
  stream: StreamConfig,
  template?: CompiledTemplate,
): (raw: Buffer) => FramedRecord {
  if (stream.source === 'lines') return (raw) => ({ bytes: raw, value: raw.toString('utf8') })
  if (stream.source === 'azion' && template?.kind === 'text')
    return (raw) => {
      const parsed = template.parse(raw.toString('utf8'))
      if (isTemplateMismatch(parsed)) return { bytes: raw, value: undefined, mismatch: parsed.mismatch }
      return { bytes: raw, value: parsed, fields: parsed }
    }
  return (raw) => {
    try {
      return { bytes: oneLine(raw), value: JSON.parse(raw.toString('utf8')) as unknown }
    } catch (err) {
      return { bytes: raw, value: undefined, mismatch: `not valid JSON: ${(err as Error).message}` }
    }
  }
}

function frameJsonDocument(body: Buffer, expectation: string, objectsOnly: boolean): FramedRecord[] {
  let start = 0
  let end = body.length
  while (start < end && isWs(body[start]!)) start++
  while (end > start && isWs(body[end - 1]!)) end--
  if (start === end) throw badBody('the body is empty', expectation)
  const first = body[start]
  if (first === 0x5b /* [ */) {
    if (body[end - 1] !== 0x5d /* ] */) throw badBody('the JSON array is not closed', expectation)
    const spans = scan(() => splitTopLevel(body, start + 1, end - 1, COMMA), start + 1, expectation)
    const records = parseJsonSpans(body, spans, 'element')
    if (objectsOnly) assertObjects(records, expectation)
    return records
  }
  if (objectsOnly && first !== 0x7b /* { */)
    throw badBody('the body is not a JSON array or object', expectation)
  const records = parseJsonSpans(body, [{ start, end }], 'body')
  return records
}

const COMMA = Buffer.from(',')

function assertObjects(records: FramedRecord[], expectation: string): void {
  for (let i = 0; i < records.length; i++) {
    const v = records[i]!.value
    if (v === null || typeof v !== 'object' || Array.isArray(v))
      throw new ProblemError(
        400,
        'invalid-body',
        'Body cannot be framed',
        `element ${i} is not a JSON object; ${expectation}`,
        {
          errors: [{ index: i, pointer: '', message: 'must be an object' }],
        },
      )
  }
}

function parseJsonSpans(
  body: Buffer,
  spans: Span[],
  unit: 'line' | 'element' | 'body' | 'record',
): FramedRecord[] {
  const records: FramedRecord[] = new Array<FramedRecord>(spans.length)
  for (let i = 0; i < spans.length; i++) {
    const { start, end } = spans[i]!
    let value: unknown
    try {
      value = JSON.parse(body.toString('utf8', start, end))
    } catch (err) {
      const where = unit === 'body' ? 'the body' : `${unit} ${i}`
      throw new ProblemError(
        400,
        'invalid-json',
        'Body cannot be framed',
        `${where} is not valid JSON: ${(err as Error).message}`,
        {
          errors: [{ index: unit === 'body' ? 0 : i, pointer: '', message: 'not valid JSON' }],
        },
      )
    }
    records[i] = { bytes: oneLine(body.subarray(start, end)), value }
  }
  return records
}

/** Pretty-printed JSON records become one line: raw line breaks can only sit between tokens. */
function oneLine(bytes: Buffer): Buffer {
  if (bytes.indexOf(NEWLINE) < 0 && bytes.indexOf(CARRIAGE_RETURN) < 0) return bytes
  const copy = Buffer.from(bytes)
  for (let i = 0; i < copy.length; i++) if (copy[i] === NEWLINE || copy[i] === CARRIAGE_RETURN) copy[i] = 0x20
  return copy
}

function azionFramer(stream: StreamConfig, template: CompiledTemplate): Framer {
  const format = unescapeSeparator(stream.payloadFormat)
  const at = format.indexOf('$dataset')
  const prefix = Buffer.from(format.slice(0, at).trim())
  const suffix = Buffer.from(format.slice(at + '$dataset'.length).trim())
  const separatorText = unescapeSeparator(stream.logLineSeparator)
  const separator = Buffer.from(separatorText)
  // JSON never holds a raw line break or tab inside a string, so a whitespace separator can be split on
  // directly (fast); any other separator needs the top-level scan.
  const whitespaceSeparator = /^[\s]+$/.test(separatorText)
  const expectation = `an Azion body is payload_format ${JSON.stringify(format)} around records joined by ${JSON.stringify(separatorText)}`
  return (body) => {
    let start = 0
    let end = body.length
    while (start < end && isWs(body[start]!)) start++
    while (end > start && isWs(body[end - 1]!)) end--
    if (start === end) return [] // an empty push frames to zero records
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
        : scan(() => splitTopLevel(body, start, end, separator), start, expectation)
      return parseJsonSpans(body, spans, 'record')
    }
    return splitOn(body, start, end, separator).map((s) => {
      const bytes = body.subarray(s.start, s.end)
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
  return new ProblemError(400, 'invalid-body', 'Body cannot be framed', `${what}; ${expectation}`)
}

function isWs(b: number): boolean {
  return b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09
}
