// A one-pass, byte-level proof that a JSON record is valid for a JSON Schema, compiled from the schema (the
// built-in emnify schemas): a record it proves is neither `JSON.parse`d nor run through ajv. The proof only
// ever says "valid" or "not proven", never "invalid": whatever it does not prove is parsed and validated as
// before, so answers, errors and dead letters are those of JSON.parse + ajv (src/validate/byte-schema.test.ts
// checks that equivalence over generated and damaged records).
//
// What it proves: the bytes are one JSON value (RFC 8259 grammar: strings without raw control bytes and with
// valid escapes, numbers, literals, containers), nested no deeper than `maxDepth`, and that value satisfies
// the schema as ajv reads it (draft-07, `unicodeRegExp`). Where the bytes alone cannot settle what ajv would
// see, it answers "not proven":
//   - a key holding a backslash (it may spell a known key), a `__proto__` key, a known key given twice
//     (JSON.parse keeps the last; ajv would judge that one only);
//   - a number checked for `integer` with a fraction or exponent, or for `number` with an exponent or more
//     than 300 integer digits (JSON.parse may round it to a non-integer or to Infinity);
//   - a string checked against a `pattern` that holds a backslash (the regex must see the decoded text).
// The body was checked as valid UTF-8 before framing, so bytes >= 0x80 inside strings are taken as they are.
//
// Supported keywords: type, properties, required, additionalProperties (true only), items (one schema),
// pattern, anyOf (of object branches made of properties/required, or of branches without them), and the
// annotations ($schema, $id, $comment, title, description, examples, default). A schema with anything else
// compiles to no check at all (undefined): every record is then parsed and validated.

import { isHexDigit, isSimpleEscape } from '../records/json-scan.js'
import { bytePatternOf, type BytePattern } from './byte-pattern.js'

const QUOTE = 0x22
const BACKSLASH = 0x5c
const OPEN_BRACE = 0x7b
const CLOSE_BRACE = 0x7d
const OPEN_BRACKET = 0x5b
const CLOSE_BRACKET = 0x5d
const COMMA = 0x2c
const COLON = 0x3a
const MINUS = 0x2d
const DOT = 0x2e
const ZERO = 0x30
const NINE = 0x39

const T_STRING = 1
const T_NULL = 2
const T_INTEGER = 4
const T_NUMBER = 8
const T_OBJECT = 16
const T_BOOLEAN = 32
const T_ARRAY = 64
const T_ANY = 127

const TYPE_BITS: Readonly<Record<string, number>> = {
  string: T_STRING,
  null: T_NULL,
  integer: T_INTEGER,
  number: T_NUMBER | T_INTEGER,
  object: T_OBJECT,
  boolean: T_BOOLEAN,
  array: T_ARRAY,
}

/** Deepest nesting this check follows (recursion); deeper records are left to JSON.parse. */
const MAX_PROVEN_DEPTH = 512
/** Keys per object whose values the schema looks at (bits of a mask). */
const MAX_WATCHED = 31
/** Integer digits of a number that JSON.parse surely reads as a finite number. */
const MAX_NUMBER_DIGITS = 300

const ANNOTATIONS: ReadonlySet<string> = new Set([
  '$schema',
  '$id',
  '$comment',
  'title',
  'description',
  'examples',
  'default',
])

interface ObjectBranch {
  /** Indices into the node's watched keys that the branch requires. */
  required: number[]
  /** Per watched key: the branch's schema for it, if it has one. */
  props: (Node | undefined)[]
}

interface Node {
  /** Allowed JSON types (T_*); a number matches T_INTEGER only when proven an integer. */
  types: number
  /** `pattern`, tested on the string's bytes (byte-pattern.ts). */
  pattern: BytePattern | undefined
  /** Object keywords: keys whose values matter (properties, required, anyOf branches'). */
  watched: Buffer[] | undefined
  /** Per watched key: the node's own schema for it (properties), if any. */
  props: (Node | undefined)[] | undefined
  /** Indices into `watched` that are required. */
  required: number[] | undefined
  /** anyOf of object branches, judged on the spans of the watched keys. */
  objectAnyOf: ObjectBranch[] | undefined
  /** anyOf of value branches, each tried on the value. */
  valueAnyOf: Node[] | undefined
  items: Node | undefined
  /** Watched keys by byte length, for the lookup. */
  byLength: number[][] | undefined
  /** Spans of the watched keys' values in the object scanned last ([start, end] per key; -1: absent). */
  spans: Int32Array | undefined
  /**
   * Key order prediction: `predict[k + 1]` is the watched key that followed key k (slot 0: the first key)
   * in the last record; records of one sender keep one order, so the first comparison nearly always hits.
   */
  predict: Int8Array | undefined
}

class Unsupported extends Error {}

/**
 * A byte-level check compiled from `schema`: `check(buf, start, end)` answers 0 when `buf[start, end)` is
 * surely a JSON value (nested at most `maxDepth` deep) that ajv accepts under `schema`, and -1 when that is
 * not proven. Undefined when the schema uses a keyword this check does not implement.
 */
export function byteSchemaCheck(schema: unknown, maxDepth: number): ByteSchemaCheck | undefined {
  let root: Node
  try {
    root = compile(schema)
  } catch (err) {
    if (err instanceof Unsupported) return undefined
    throw err
  }
  const depthLimit = Math.min(maxDepth, MAX_PROVEN_DEPTH)
  const check: ByteSchemaCheck = (buf, start, end) => {
    const scanner = new Scanner(buf, end, depthLimit)
    const pos = scanner.value(root, scanner.ws(start), 1)
    return pos >= 0 && scanner.ws(pos) === end ? 0 : -1
  }
  check.valueEnd = (buf, pos, end) => new Scanner(buf, end, depthLimit).value(root, pos, 1)
  return check
}

/**
 * `(buf, start, end)`: 0 when `buf[start, end)` (whitespace around allowed) is proven, else -1.
 * `valueEnd(buf, pos, end)`: the same proof for the value at `pos`, answering the index just past it (or -1):
 * what an array's top-level split uses to prove and split in one pass (json-scan.ts splitTopLevel).
 */
export interface ByteSchemaCheck {
  (buf: Buffer, start: number, end: number): number
  valueEnd?: (buf: Buffer, pos: number, end: number) => number
}

function compile(schema: unknown): Node {
  if (schema === true || (isObject(schema) && Object.keys(schema).every((k) => ANNOTATIONS.has(k))))
    return newNode(T_ANY)
  if (!isObject(schema)) throw new Unsupported()
  let types = T_ANY
  const node = newNode(types)
  const ownProps = new Map<string, Node>()
  const requiredNames: string[] = []
  let anyOf: unknown[] | undefined
  for (const [key, value] of Object.entries(schema)) {
    if (ANNOTATIONS.has(key)) continue
    switch (key) {
      case 'type': {
        const list = Array.isArray(value) ? value : [value]
        types = 0
        for (const t of list) {
          const bits = typeof t === 'string' ? TYPE_BITS[t] : undefined
          if (bits === undefined) throw new Unsupported()
          types |= bits
        }
        break
      }
      case 'properties':
        if (!isObject(value)) throw new Unsupported()
        for (const [name, sub] of Object.entries(value)) ownProps.set(checkName(name), compile(sub))
        break
      case 'required':
        if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) throw new Unsupported()
        requiredNames.push(...value.map(checkName))
        break
      case 'additionalProperties':
        if (value !== true) throw new Unsupported()
        break
      case 'items':
        if (Array.isArray(value)) throw new Unsupported()
        node.items = compile(value)
        break
      case 'pattern':
        if (typeof value !== 'string') throw new Unsupported()
        node.pattern = bytePatternOf(value)
        break
      case 'anyOf':
        if (!Array.isArray(value) || value.length === 0) throw new Unsupported()
        anyOf = value
        break
      default:
        throw new Unsupported()
    }
  }
  node.types = types
  const watchedNames: string[] = [...new Set([...ownProps.keys(), ...requiredNames])]
  const watch = (name: string): number => {
    let i = watchedNames.indexOf(name)
    if (i < 0) i = watchedNames.push(name) - 1
    return i
  }
  if (anyOf) {
    const objectBranches = anyOf.every(
      (b) =>
        isObject(b) &&
        Object.keys(b).every((k) => k === 'properties' || k === 'required' || ANNOTATIONS.has(k)),
    )
    if (objectBranches) {
      node.objectAnyOf = (anyOf as Record<string, unknown>[]).map((b) => {
        const required = b.required ?? []
        const props = b.properties ?? {}
        if (!Array.isArray(required) || !required.every((v) => typeof v === 'string') || !isObject(props))
          throw new Unsupported()
        const branch: ObjectBranch = {
          required: required.map((n) => watch(checkName(n))),
          props: [],
        }
        for (const [name, sub] of Object.entries(props)) branch.props[watch(checkName(name))] = compile(sub)
        return branch
      })
    } else {
      const branches = anyOf.map(compile)
      if (branches.some((b) => b.watched !== undefined)) throw new Unsupported()
      node.valueAnyOf = branches
    }
  }
  // Which watched keys a record holds is a bit mask (one number, nothing to clear per record).
  if (watchedNames.length > MAX_WATCHED) throw new Unsupported()
  if (watchedNames.length > 0) {
    node.watched = watchedNames.map((n) => Buffer.from(n, 'utf8'))
    node.props = watchedNames.map((n) => ownProps.get(n))
    node.required = requiredNames.map((n) => watchedNames.indexOf(n))
    node.byLength = []
    for (const [i, key] of node.watched.entries()) (node.byLength[key.length] ??= []).push(i)
    node.spans = new Int32Array(watchedNames.length * 2)
    node.predict = new Int8Array(watchedNames.length + 1).fill(-1)
    if (node.objectAnyOf) for (const b of node.objectAnyOf) b.props.length = watchedNames.length // holes: no schema
  }
  return node
}

/**
 * ajv reads a property as `data[name]`: a name that an object inherits (`constructor`, `toString`,
 * `__proto__`) would be found on every record, so such schemas are left to ajv.
 */
function checkName(name: string): string {
  if (name in Object.prototype) throw new Unsupported()
  return name
}

/** Every node has every field, in one order: one hidden class, so the scanner's reads of them stay fast. */
function newNode(types: number): Node {
  return {
    types,
    pattern: undefined,
    watched: undefined,
    props: undefined,
    required: undefined,
    objectAnyOf: undefined,
    valueAnyOf: undefined,
    items: undefined,
    byLength: undefined,
    spans: undefined,
    predict: undefined,
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

const PROTO = Buffer.from('__proto__')

/** One record's scan. Every method answers the index just past what it read, or -1: not proven. */
class Scanner {
  constructor(
    private readonly buf: Buffer,
    private readonly end: number,
    private readonly maxDepth: number,
  ) {}

  ws(pos: number): number {
    const buf = this.buf
    const end = this.end
    while (pos < end) {
      const c = buf[pos]!
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break
      pos++
    }
    return pos
  }

  /** The value at `pos` (not whitespace), checked against `node`; `depth` is its nesting if a container. */
  value(node: Node, pos: number, depth: number): number {
    if (pos >= this.end) return -1
    let end: number
    if (node.valueAnyOf) {
      end = -1
      for (const branch of node.valueAnyOf) {
        end = this.value(branch, pos, depth)
        if (end >= 0) break
      }
      if (end < 0) return -1
      if (node.types === T_ANY && node.pattern === undefined && node.watched === undefined && !node.items)
        return end
    }
    const c = this.buf[pos]!
    const types = node.types
    if (c === QUOTE) {
      if ((types & T_STRING) === 0) return -1
      return this.string(pos, node.pattern)
    }
    if (c === OPEN_BRACE) {
      if ((types & T_OBJECT) === 0 || depth > this.maxDepth) return -1
      return this.object(node, pos, depth)
    }
    if (c === OPEN_BRACKET) {
      if ((types & T_ARRAY) === 0 || depth > this.maxDepth) return -1
      return this.array(node.items, pos, depth)
    }
    if (c === MINUS || (c >= ZERO && c <= NINE)) return this.number(pos, types)
    if (c === 0x6e /* n */) return (types & T_NULL) !== 0 ? this.literal(pos, NULL_BYTES) : -1
    if (c === 0x74 /* t */) return (types & T_BOOLEAN) !== 0 ? this.literal(pos, TRUE_BYTES) : -1
    if (c === 0x66 /* f */) return (types & T_BOOLEAN) !== 0 ? this.literal(pos, FALSE_BYTES) : -1
    return -1
  }

  private literal(pos: number, bytes: Buffer): number {
    if (pos + bytes.length > this.end) return -1
    for (let i = 0; i < bytes.length; i++) if (this.buf[pos + i] !== bytes[i]) return -1
    return pos + bytes.length
  }

  /**
   * A JSON number. Proven for T_INTEGER: digits only (no fraction, no exponent), at most 300 of them; for
   * T_NUMBER: no exponent and at most 300 integer digits; for any type (no `type`): every JSON number.
   */
  private number(pos: number, types: number): number {
    const buf = this.buf
    const end = this.end
    let i = pos
    if (buf[i] === MINUS) i++
    const intStart = i
    if (i >= end) return -1
    if (buf[i] === ZERO) i++
    else if (buf[i]! > ZERO && buf[i]! <= NINE) while (i < end && buf[i]! >= ZERO && buf[i]! <= NINE) i++
    else return -1
    const intDigits = i - intStart
    let fraction = false
    let exponent = false
    if (i < end && buf[i] === DOT) {
      i++
      const from = i
      while (i < end && buf[i]! >= ZERO && buf[i]! <= NINE) i++
      if (i === from) return -1
      fraction = true
    }
    if (i < end && (buf[i] === 0x65 || buf[i] === 0x45)) {
      i++
      if (i < end && (buf[i] === 0x2b || buf[i] === MINUS)) i++
      const from = i
      while (i < end && buf[i]! >= ZERO && buf[i]! <= NINE) i++
      if (i === from) return -1
      exponent = true
    }
    if (types === T_ANY) return i
    if (exponent || intDigits > MAX_NUMBER_DIGITS) return -1
    if (fraction) return (types & T_NUMBER) !== 0 ? i : -1
    return (types & T_INTEGER) !== 0 ? i : -1
  }

  /** A JSON string at `pos` (its opening quote); with `pattern`, its text must match (no escapes then). */
  private string(pos: number, pattern: BytePattern | undefined): number {
    const buf = this.buf
    const end = this.end
    let i = pos + 1
    let escaped = false
    for (;;) {
      // The run of plain bytes first: one tight loop with a single exit (as json-scan.ts stringEnd).
      let c = 0
      while (i < end) {
        c = buf[i]!
        if (c === QUOTE || c === BACKSLASH || c < 0x20) break
        i++
      }
      if (i >= end || c !== BACKSLASH) break
      escaped = true
      if (i + 1 >= end) return -1
      const e = buf[i + 1]!
      if (e === 0x75 /* u */) {
        if (i + 6 > end) return -1
        for (let h = i + 2; h < i + 6; h++) if (!isHexDigit(buf[h]!)) return -1
        i += 6
        continue
      }
      if (!isSimpleEscape(e)) return -1
      i += 2
    }
    if (i >= end || buf[i] !== QUOTE) return -1
    if (pattern !== undefined && (escaped || !pattern(buf, pos + 1, i))) return -1
    return i + 1
  }

  private array(items: Node | undefined, pos: number, depth: number): number {
    const node = items ?? ANY
    pos = this.ws(pos + 1)
    if (pos < this.end && this.buf[pos] === CLOSE_BRACKET) return pos + 1
    for (;;) {
      pos = this.value(node, pos, depth + 1)
      if (pos < 0) return -1
      pos = this.ws(pos)
      if (pos >= this.end) return -1
      const c = this.buf[pos]
      if (c === CLOSE_BRACKET) return pos + 1
      if (c !== COMMA) return -1
      pos = this.ws(pos + 1)
    }
  }

  private object(node: Node, pos: number, depth: number): number {
    const buf = this.buf
    const end = this.end
    const watched = node.watched
    const spans = node.spans
    let seen = 0 // bit k: watched key k occurred (its value's span is in spans[2k, 2k + 1])
    let prev = 0 // predict slot: after the last watched key met
    pos = this.ws(pos + 1)
    if (pos < end && buf[pos] === CLOSE_BRACE) pos++
    else {
      for (;;) {
        if (pos >= end || buf[pos] !== QUOTE) return -1
        let k = -1
        let keyEnd: number
        if (watched === undefined) {
          // No key matters here (no properties, required or anyOf): any valid JSON string will do.
          keyEnd = this.string(pos, undefined) - 1
          if (keyEnd < 0) return -1
        } else {
          // A key that matters is compared as raw bytes: one holding a backslash may spell a watched key.
          const keyStart = pos + 1
          keyEnd = keyStart
          while (keyEnd < end) {
            const c = buf[keyEnd]!
            if (c === QUOTE || c === BACKSLASH || c < 0x20) break
            keyEnd++
          }
          if (keyEnd >= end || buf[keyEnd] !== QUOTE) return -1
          k = this.findKey(node, prev, keyStart, keyEnd)
          if (
            k < 0 &&
            keyEnd - keyStart === PROTO.length &&
            buf.compare(PROTO, 0, PROTO.length, keyStart, keyEnd) === 0
          )
            return -1
        }
        pos = this.ws(keyEnd + 1)
        if (pos >= end || buf[pos] !== COLON) return -1
        pos = this.ws(pos + 1)
        const valueStart = pos
        if (k >= 0) {
          if ((seen & (1 << k)) !== 0) return -1 // a known key twice: JSON.parse keeps the last
          seen |= 1 << k
          node.predict![prev] = k
          prev = k + 1
          pos = this.value(node.props![k] ?? ANY, pos, depth + 1)
          if (pos < 0) return -1
          spans![2 * k] = valueStart
          spans![2 * k + 1] = pos
        } else {
          pos = this.value(ANY, pos, depth + 1)
          if (pos < 0) return -1
        }
        pos = this.ws(pos)
        if (pos >= end) return -1
        const c = buf[pos]
        if (c === CLOSE_BRACE) {
          pos++
          break
        }
        if (c !== COMMA) return -1
        pos = this.ws(pos + 1)
      }
    }
    if (node.required) for (const k of node.required) if ((seen & (1 << k)) === 0) return -1
    if (node.objectAnyOf) {
      // The branches' own property schemas re-read just their values (by the spans); no schema here has a
      // $ref, so no node is nested in itself and the spans stay this object's while they are read.
      let any = false
      for (const branch of node.objectAnyOf) {
        if (this.branchHolds(branch, spans!, seen, depth)) {
          any = true
          break
        }
      }
      if (!any) return -1
    }
    return pos
  }

  private branchHolds(branch: ObjectBranch, spans: Int32Array, seen: number, depth: number): boolean {
    for (const k of branch.required) if ((seen & (1 << k)) === 0) return false
    for (let k = 0; k < branch.props.length; k++) {
      const sub = branch.props[k]
      if (sub === undefined || (seen & (1 << k)) === 0) continue
      if (this.value(sub, spans[2 * k]!, depth + 1) !== spans[2 * k + 1]) return false
    }
    return true
  }

  /** The watched key equal to `buf[start, end)` (the predicted one tried first), or -1. */
  private findKey(node: Node, prev: number, start: number, end: number): number {
    const buf = this.buf
    const watched = node.watched!
    const guess = node.predict![prev]!
    if (guess >= 0 && sameBytes(buf, start, end, watched[guess]!)) return guess
    const candidates = node.byLength![end - start]
    if (candidates === undefined) return -1
    for (const k of candidates) if (k !== guess && sameBytes(buf, start, end, watched[k]!)) return k
    return -1
  }
}

function sameBytes(buf: Buffer, start: number, end: number, key: Buffer): boolean {
  if (end - start !== key.length) return false
  for (let i = 0; i < key.length; i++) if (buf[start + i] !== key[i]) return false
  return true
}

const ANY: Node = newNode(T_ANY)
const NULL_BYTES = Buffer.from('null')
const TRUE_BYTES = Buffer.from('true')
const FALSE_BYTES = Buffer.from('false')
