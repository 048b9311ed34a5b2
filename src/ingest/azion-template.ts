// Azion Data Stream templates: compile a `template_model` into what the framer and the validator need.
//
// Vendor format (docs: ../../../shared/vendor-formats.md §2.2, sources AZ-OAS3, AZ-CUSTOM, AZ-REF):
// - A template_model is a string. Usually it is a JSON object template whose values are "$variable"
//   placeholders, e.g. {"time":"$time","status":"$status"}; each rendered record is that object with the
//   values substituted, and every value is emitted as a *string* ('-' stands for "no value").
// - It can also be plain text: AZ-REF prescribes `v1\t$time_iso8601\t$clientid\t…` for Activity History on a
//   Standard POST endpoint, so a record is then a tab-separated line, not JSON.
//
// Choices made here where the vendor docs are silent:
// - A variable is `$` followed by [A-Za-z_][A-Za-z0-9_]* (longest match: `$time_iso8601`, `$requestPath`).
//   A `$` not followed by a name character is literal text.
// - JSON detection: the model is a JSON template when JSON.parse succeeds and yields an object. Every value
//   must then be a string; variables in keys, arrays and nested objects are refused (TemplateError), because
//   nothing documents how Azion renders them. Any other model is a text template.
// - In a text template the two-character escape `\t` (backslash, t) means a tab: users copy the documented
//   model out of YAML/JSON strings and may end up with either form. JSON models need no such rule (JSON.parse
//   decodes `\t` itself). There is no way to write a literal backslash-t in a text template.
// - Text parsing is "first occurrence": a variable's value extends to the first occurrence of the literal
//   that follows it, so values must never contain that literal (nor, for a literal like "||", end with a
//   prefix of it). Azion's examples separate fields by tabs and records by newlines, which values don't hold.
//   The last variable takes the rest of the line, minus a trailing literal if the template has one. Two
//   variables with no literal between them cannot be split and are refused.
// - Rendering substitutes into the model text itself (keeping its whitespace and key order) because AZ-REF's
//   two sample bodies show different spacing for the same fields, which suggests output follows the template text.
//   Values are JSON-escaped in JSON templates (JSON.stringify rules; non-ASCII is left as UTF-8, since whether
//   Azion escapes it is undocumented) and inserted raw in text templates. A missing value renders as '-'.

import { splitOn, stringObjectScanner, type Span, type ValueProof } from '../records/json-scan.js'

/** `$name`, global: used for scanning and for rendering. */
const VARIABLE_RE = /\$([A-Za-z_][A-Za-z0-9_]*)/g

export class TemplateError extends Error {
  readonly retriable = false
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'TemplateError'
  }
}

/** Why a text line does not fit its template (human-readable, with 1-based columns). */
export interface TemplateMismatch {
  mismatch: string
}

/** One piece of a template string: literal text or a variable (name without `$`). */
export type TemplatePart = { literal: string } | { variable: string }

export interface JsonTemplateField {
  key: string
  /** The variable when the value is exactly "$var"; otherwise null. */
  variable: string | null
  /** The value when it holds no variable at all (a constant emitted as is). */
  literal?: string
  /** The value split into pieces when it mixes text and variables, e.g. "$scheme://$host". */
  parts?: TemplatePart[]
}

export type CompiledTemplate =
  | { kind: 'json'; model: string; variables: string[]; fields: JsonTemplateField[] }
  | {
      kind: 'text'
      model: string
      variables: string[]
      /** The model split into literals and variables (no two variables adjacent). */
      parts: readonly TemplatePart[]
      parse(line: string): Record<string, string> | TemplateMismatch
    }

class Mismatch implements TemplateMismatch {
  constructor(readonly mismatch: string) {}
}

/**
 * True for the result of a failed `parse`. Use it rather than `'mismatch' in r`: a template may well have a
 * variable called `$mismatch`. Parsed records have a null prototype, mismatches do not.
 */
export function isTemplateMismatch(r: Record<string, string> | TemplateMismatch): r is TemplateMismatch {
  return r instanceof Mismatch
}

export function compileTemplate(model: string): CompiledTemplate {
  if (typeof model !== 'string' || model.trim() === '') {
    throw new TemplateError('Azion template_model is empty')
  }
  const json = tryParseJson(model)
  if (json !== undefined && typeof json === 'object' && json !== null) {
    return compileJson(model, json)
  }
  return compileText(model.replaceAll('\\t', '\t'))
}

function tryParseJson(model: string): unknown {
  try {
    return JSON.parse(model) as unknown
  } catch {
    return undefined
  }
}

function compileJson(model: string, parsed: object): CompiledTemplate {
  if (Array.isArray(parsed)) {
    throw new TemplateError(
      'Azion JSON template_model must be an object of "key": "$variable" pairs, not an array',
    )
  }
  const fields: JsonTemplateField[] = []
  const fromValues: string[] = []
  // JSON.parse defines `__proto__` as an own data property, so Object.entries sees it like any other key.
  for (const [key, value] of Object.entries(parsed)) {
    if (typeof value !== 'string') {
      throw new TemplateError(
        `Azion JSON template_model: the value of ${JSON.stringify(key)} must be a string ("$variable" or text), got ${value === null ? 'null' : typeof value}`,
      )
    }
    if (variablesIn(key).length > 0) {
      throw new TemplateError(
        `Azion JSON template_model: key ${JSON.stringify(key)} contains a $variable; only values may hold variables`,
      )
    }
    const parts = splitParts(value)
    const vars = parts.flatMap((p) => ('variable' in p ? [p.variable] : []))
    fromValues.push(...vars)
    const only = parts.length === 1 ? parts[0] : undefined
    if (only !== undefined && 'variable' in only) {
      fields.push({ key, variable: only.variable })
    } else if (vars.length === 0) {
      fields.push({ key, variable: null, literal: value })
    } else {
      fields.push({ key, variable: null, parts })
    }
  }
  if (fields.length === 0) throw new TemplateError('Azion JSON template_model has no keys')
  // Rendering substitutes into the raw text; that is only faithful if the text holds exactly the variables the
  // decoded values hold. They differ when a `$` is written as a JSON escape (\u0024) or a key is repeated
  // (JSON.parse keeps the last one). Compared as multisets: integer-like keys reorder Object.entries.
  const fromText = variablesIn(model)
  if ([...fromText].sort().join('\0') !== [...fromValues].sort().join('\0')) {
    throw new TemplateError(
      `Azion JSON template_model: the $variables in its text (${fromText.join(', ')}) differ from those in its decoded values (${fromValues.join(', ')}); write each $variable literally (not as a \\u escape) and use each key once`,
    )
  }
  if (fromValues.length === 0) throw new TemplateError('Azion JSON template_model has no $variables')
  return { kind: 'json', model, variables: unique(fromText), fields }
}

function compileText(model: string): CompiledTemplate {
  const parts = splitParts(model)
  const variables = parts.flatMap((p) => ('variable' in p ? [p.variable] : []))
  if (variables.length === 0) {
    throw new TemplateError(`Azion template_model ${JSON.stringify(model)} has no $variables`)
  }
  for (let i = 1; i < parts.length; i++) {
    const prev = parts[i - 1]
    const cur = parts[i]
    if (prev !== undefined && cur !== undefined && 'variable' in prev && 'variable' in cur) {
      throw new TemplateError(
        `Azion template_model: $${prev.variable} and $${cur.variable} are adjacent; a text template needs a separator between variables to be parsed back`,
      )
    }
  }
  return { kind: 'text', model, variables: unique(variables), parts, parse: textParser(parts) }
}

/**
 * Parser for a text template. `parts` alternate literal/variable, with no two variables adjacent.
 * The line is one record without its `log_line_separator`.
 */
function textParser(
  parts: readonly TemplatePart[],
): (line: string) => Record<string, string> | TemplateMismatch {
  return (line) => {
    const out: Record<string, string> = Object.create(null) as Record<string, string>
    let pos = 0
    let lastVariable: string | undefined
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]
      if (part === undefined) break
      if ('literal' in part) {
        if (!line.startsWith(part.literal, pos)) {
          const where = lastVariable === undefined ? '' : ` after $${lastVariable}`
          return new Mismatch(`expected ${JSON.stringify(part.literal)}${where} at column ${pos + 1}`)
        }
        pos += part.literal.length
        continue
      }
      const next = parts[i + 1]
      let end: number
      if (next === undefined) {
        end = line.length // the last variable takes the rest
      } else if (!('literal' in next)) {
        throw new Error('unreachable: adjacent variables are refused at compile time')
      } else if (i + 1 === parts.length - 1) {
        // Trailing literal: the value is everything up to it.
        end = line.endsWith(next.literal) ? line.length - next.literal.length : -1
        if (end < pos) {
          return new Mismatch(
            `expected the line to end with ${JSON.stringify(next.literal)} after $${part.variable} (value starting at column ${pos + 1})`,
          )
        }
      } else {
        end = line.indexOf(next.literal, pos)
        if (end === -1) {
          return new Mismatch(
            `expected ${JSON.stringify(next.literal)} after $${part.variable} (value starting at column ${pos + 1}), found the end of the line`,
          )
        }
      }
      const value = line.slice(pos, end)
      const seen = out[part.variable]
      if (seen !== undefined && seen !== value) {
        return new Mismatch(
          `$${part.variable} appears twice with different values (${JSON.stringify(seen)}, ${JSON.stringify(value)}) at column ${pos + 1}`,
        )
      }
      out[part.variable] = value
      pos = end
      lastVariable = part.variable
    }
    if (pos !== line.length) {
      return new Mismatch(`unexpected text at column ${pos + 1} after the end of the template`)
    }
    return out
  }
}

/**
 * What a template means for validation:
 * - `strict` — a `templateModel` the user wrote: a contract. Every template key is a required string;
 *   other keys are allowed by the schema (they are drift, or refused by the stream's `unknownFields: reject`,
 *   which the drift tracker checks — src/pipeline/drift.ts).
 * - `describe` — a built-in preset: it describes, it does not gate. A record is valid when it is what Azion
 *   renders, a flat JSON object whose values are strings; keys the preset shows are listed for reference, none
 *   is required, and keys it does not show are allowed (as strings). Differences are drift, not errors.
 */
export type TemplateContract = 'strict' | 'describe'

/**
 * JSON Schema (draft-07) for one rendered record. For JSON templates: the rendered object; for text templates:
 * the object `parse` returns (a text line either parses or is a mismatch, so both contracts are the same there).
 *
 * strict: additionalProperties is `true` on purpose: a template edited in the Azion console before the stream
 * config is updated would otherwise send every record to the dead-letter sink. Missing keys and non-string
 * values are rejected, which is what makes a record unusable.
 */
export function templateSchema(
  t: CompiledTemplate,
  id: string,
  contract: TemplateContract = 'strict',
): object {
  // Keys come from the (untrusted) template; defineProperty keeps a `__proto__` key an ordinary property.
  const properties: Record<string, object> = {}
  const required: string[] = []
  const extra: Record<string, unknown> = {}
  const describe = contract === 'describe' && t.kind === 'json'
  const define = (key: string, description: string): void => {
    const schema = { type: 'string', description }
    if (key === '__proto__') {
      // (describe: additionalProperties below checks it like any other key.)
      if (describe) return
      // ajv skips a `__proto__` entry in `properties`, and its `required` check reads data.__proto__, which
      // is Object.prototype on an ordinary object. patternProperties and propertyNames iterate the record's
      // own keys instead, so they see a `__proto__` key that JSON.parse created.
      extra.patternProperties = { '^__proto__$': schema }
      extra.not = { propertyNames: { not: { const: '__proto__' } } } // i.e. some key is "__proto__"
      return
    }
    Object.defineProperty(properties, key, {
      value: schema,
      enumerable: true,
      writable: true,
      configurable: true,
    })
    if (!describe) required.push(key)
  }
  if (t.kind === 'json') {
    for (const f of t.fields) {
      const description =
        f.variable !== null
          ? `Azion variable $${f.variable}`
          : f.literal !== undefined
            ? `Constant text ${JSON.stringify(f.literal)} from the template`
            : `Text with variables: ${JSON.stringify(joinParts(f.parts ?? []))}`
      define(f.key, description)
    }
  } else {
    for (const v of t.variables) define(v, `Azion variable $${v}, parsed from the text line`)
  }
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    $id: id,
    title: `Azion record (${t.kind} template${describe ? ', preset: describes, does not gate' : ''})`,
    description: `One record rendered by the Azion template_model ${JSON.stringify(t.model)}`,
    type: 'object',
    additionalProperties: describe
      ? { type: 'string', description: 'A key the preset does not show: drift, not an error' }
      : true,
    required,
    properties,
    ...extra,
  }
}

/**
 * A byte-level scan of one record's span: -1 when it proves nothing (the record is then parsed and validated
 * as usual); otherwise it proves the record valid JSON and valid for the template's schema, and answers how
 * its keys differ from the template's: 0 not at all, else DRIFT_UNKNOWN | DRIFT_MISSING (the drift tracker
 * then looks at them).
 */
export interface RecordScan {
  (buf: Buffer, start: number, end: number): number
  /**
   * The same proof for the value at `pos` (no drift bits), answering the index just past it or -1: lets a
   * JSON array's top-level split prove records as it finds them (json-scan.ts splitTopLevel `prove`).
   */
  valueEnd?: ValueProof
}

/** Bits of a RecordScan answer (the same as src/pipeline/drift.ts's UNKNOWN and MISSING). */
export const DRIFT_UNKNOWN = 1
export const DRIFT_MISSING = 2

/** The keys of a JSON template, in template order. */
export function templateKeys(t: CompiledTemplate): string[] {
  return t.kind === 'json' ? t.fields.map((f) => f.key) : [...t.variables]
}

/**
 * For JSON templates: a `RecordScan` built on stringObjectScanner (a flat object of string members), without
 * `JSON.parse` and ajv. `variants` are the models that describe the records, the first being the stream's
 * own. `strict` (a user's templateModel, exactly one variant): a record is proven only when every template key
 * is present, and with `unknownRejects` (unknownFields: reject) only when it has no other key. `describe` (a
 * preset; 86 has two documented models): any flat object of strings is proven, and its drift is measured
 * against the nearest variant; `countMissing` false (a reconstructed preset) never reports missing keys.
 * None for text templates, and none when a key is `__proto__`: the schema treats that key specially (above).
 */
export function templateRecordCheck(
  variants: readonly CompiledTemplate[],
  options: { contract?: TemplateContract; countMissing?: boolean; unknownRejects?: boolean } = {},
): RecordScan | undefined {
  const { contract = 'strict', countMissing = true, unknownRejects = false } = options
  if (variants.length === 0 || variants.some((t) => t.kind !== 'json')) return undefined
  const union = [...new Set(variants.flatMap(templateKeys))]
  if (union.includes('__proto__')) return undefined
  const scanner = stringObjectScanner(union)
  const check = (bitsOf: (r: number) => number): RecordScan => {
    // The whole span; or, for a JSON array's top-level split, the object at `pos` (its drift bits kept for
    // lastBits), proven and split in one pass.
    const whole: RecordScan = (buf, start, end) => bitsOf(scanner.scan(buf, start, end))
    let last = 0
    const valueEnd: ValueProof = (buf, pos, end) => {
      const after = scanner.scanValue(buf, pos, end)
      if (after < 0) return -1
      last = bitsOf(scanner.result())
      return last < 0 ? -1 : after
    }
    valueEnd.lastBits = () => last
    whole.valueEnd = valueEnd
    return whole
  }
  if (contract === 'strict') {
    const count = union.length
    return check((r) => {
      if (r < count * 2) return -1 // not flat, or a template key is missing: ajv says which
      if ((r & 1) === 1) return unknownRejects ? -1 : DRIFT_UNKNOWN
      return 0
    })
  }
  const sets = variants.map((t) => [...new Set(templateKeys(t))].map((k) => union.indexOf(k)))
  // A record holding exactly a variant's keys (the usual case) is found by one mask compare per variant.
  const masks = union.length <= 31 ? sets.map((set) => set.reduce((m, k) => m | (1 << k), 0)) : []
  return check((r) => {
    if (r < 0) return -1
    const other = r & 1
    if (other === 0 && masks.length > 0) {
      const mask = scanner.mask()
      for (const m of masks) if (mask === m) return 0
    }
    const found = r >> 1
    // The nearest variant: fewest missing keys, then fewest unknown ones (drift.ts compares the same way).
    let bestMissing = Infinity
    let bestUnknown = Infinity
    for (const set of sets) {
      let inSet = 0
      for (const k of set) if (scanner.has(k)) inSet++
      const missing = set.length - inSet
      const unknown = other + found - inSet
      if (missing === 0 && unknown === 0) return 0
      if (missing < bestMissing || (missing === bestMissing && unknown < bestUnknown)) {
        bestMissing = missing
        bestUnknown = unknown
      }
    }
    return (bestUnknown > 0 ? DRIFT_UNKNOWN : 0) | (countMissing && bestMissing > 0 ? DRIFT_MISSING : 0)
  })
}

/**
 * Record boundaries of a text-template body in `buf[start, end)`, for `log_line_separator` `separator`.
 * Rules, where Azion documents nothing:
 * - When the model starts with literal text (Activity History's `v1\t`) and the separator is not a line break,
 *   a separator splits only between records, never inside a value (" | " in a URL or a title, "; " in a user
 *   agent): a record ends only at a separator followed by that leading text, or at the end of the body. A
 *   value may hold the separator (even end with it), never the separator followed by that leading text. A
 *   piece that does not start with the leading text therefore stays with the record before it.
 * - Otherwise every separator splits: with a line-break separator a record is a line (a text value cannot
 *   hold one), and a model that starts with a $variable gives nothing to tell a record's start from a value
 *   that holds the separator, so no value may hold it there.
 * - Empty pieces are skipped, and with separator "\n" a "\r" before it is not part of the record.
 */
export function textRecordSpans(
  t: Extract<CompiledTemplate, { kind: 'text' }>,
  buf: Buffer,
  start: number,
  end: number,
  separator: Buffer,
): Span[] {
  const first = t.parts[0]
  const lead = first !== undefined && 'literal' in first ? Buffer.from(first.literal) : undefined
  if (!lead || /^[\r\n]+$/.test(separator.toString('latin1'))) return splitOn(buf, start, end, separator)
  const sepLen = separator.length
  const at = (i: number): boolean =>
    i + sepLen <= end && buf.compare(separator, 0, sepLen, i, i + sepLen) === 0
  const skipEmpty = (i: number): number => {
    while (at(i)) i += sepLen
    return i
  }
  const nextSeparator = (from: number): number => {
    const i = buf.indexOf(separator, from)
    return i < 0 || i > end - sepLen ? end : i
  }
  const spans: Span[] = []
  let pos = skipEmpty(start)
  while (pos < end) {
    // The first separator followed (after empty pieces) by the leading literal, or the end. Of a run of
    // separators before the leading literal, the last one ends the record: Azion joins records with one
    // separator, so the others belong to the value before (a value may end with the separator's text).
    let boundary = nextSeparator(pos)
    while (boundary < end) {
      const after = skipEmpty(boundary)
      if (after >= end) break
      if (after + lead.length <= end && buf.compare(lead, 0, lead.length, after, after + lead.length) === 0) {
        boundary = after - sepLen
        break
      }
      boundary = nextSeparator(boundary + 1) // occurrences may overlap ("|||" holds "||" twice)
    }
    if (boundary > pos) spans.push({ start: pos, end: boundary })
    pos = boundary >= end ? end : skipEmpty(boundary + sepLen)
  }
  return spans
}

/**
 * One record as Azion renders it: the model text with each `$var` replaced by its value, JSON-escaped inside
 * JSON templates and raw in text templates. A variable missing from `values` renders as '-'.
 * (For tests and benchmarks that need Azion-shaped bodies.)
 */
export function renderTemplate(t: CompiledTemplate, values: Record<string, string>): string {
  const escape = t.kind === 'json' ? (v: string) => JSON.stringify(v).slice(1, -1) : (v: string) => v
  return t.model.replace(VARIABLE_RE, (_match, name: string) =>
    escape(Object.hasOwn(values, name) ? String(values[name]) : '-'),
  )
}

function splitParts(text: string): TemplatePart[] {
  const parts: TemplatePart[] = []
  let last = 0
  for (const m of text.matchAll(VARIABLE_RE)) {
    const name = m[1]
    if (name === undefined) continue
    if (m.index > last) parts.push({ literal: text.slice(last, m.index) })
    parts.push({ variable: name })
    last = m.index + m[0].length
  }
  if (last < text.length) parts.push({ literal: text.slice(last) })
  return parts
}

function joinParts(parts: readonly TemplatePart[]): string {
  return parts.map((p) => ('variable' in p ? `$${p.variable}` : p.literal)).join('')
}

function variablesIn(text: string): string[] {
  return Array.from(text.matchAll(VARIABLE_RE), (m) => m[1] ?? '')
}

function unique(names: readonly string[]): string[] {
  return [...new Set(names)]
}
