// Byte-level JSON scanning for framing and field extraction without re-serialising records.
// JSON's structural characters are ASCII and UTF-8 continuation bytes are >= 0x80, so scanning the raw
// bytes is safe for any valid UTF-8 text. These functions find boundaries; JSON.parse still judges validity.

const QUOTE = 0x22
const BACKSLASH = 0x5c
const OPEN_BRACE = 0x7b
const CLOSE_BRACE = 0x7d
const OPEN_BRACKET = 0x5b
const CLOSE_BRACKET = 0x5d
const COMMA = 0x2c
const COLON = 0x3a

export class JsonScanError extends Error {
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(message)
    this.name = 'JsonScanError'
  }
}

export function isJsonWhitespace(byte: number): boolean {
  return byte === 0x20 || byte === 0x0a || byte === 0x0d || byte === 0x09
}

export function skipWhitespace(buf: Uint8Array, pos: number, end: number): number {
  while (pos < end && isJsonWhitespace(buf[pos]!)) pos++
  return pos
}

/** Bytes of a string `skipString` scans in a loop before it hands the rest to indexOf. */
const SHORT_STRING_BYTES = 64

/** `pos` is at an opening quote; returns the index just past the closing quote. */
export function skipString(buf: Buffer, pos: number, end: number): number {
  let i = pos + 1
  // Short strings (keys, most values) in a loop: a native indexOf per string cost more than the bytes it
  // skipped (17 % of the gateway's CPU on Azion JSON arrays). A long one goes on with indexOf.
  const near = Math.min(end, i + SHORT_STRING_BYTES)
  while (i < near) {
    const c = buf[i]!
    if (c === QUOTE) return i + 1
    i += c === BACKSLASH ? 2 : 1
  }
  if (i >= end) throw new JsonScanError('unterminated string', pos)
  for (;;) {
    const q = buf.indexOf(QUOTE, i)
    if (q < 0 || q >= end) throw new JsonScanError('unterminated string', pos)
    let backslashes = 0
    for (let k = q - 1; k > pos && buf[k] === BACKSLASH; k--) backslashes++
    if (backslashes % 2 === 0) return q + 1
    i = q + 1
  }
}

/** Filled by `skipValue`: the deepest nesting of containers met (0 for a scalar, 1 for `{}` or `[1]`). */
export interface DepthProbe {
  max: number
}

/**
 * Returns the index just past the JSON value starting at `pos` (which must not be whitespace). Containers
 * are matched by depth, iteratively, so a 10,000-deep array cannot overflow the stack. With `probe`, the
 * deepest nesting met is written to `probe.max`.
 */
export function skipValue(buf: Buffer, pos: number, end: number, probe?: DepthProbe): number {
  const first = buf[pos]
  if (probe !== undefined) probe.max = 0
  if (first === QUOTE) return skipString(buf, pos, end)
  if (first === OPEN_BRACE || first === OPEN_BRACKET) {
    let depth = 0
    let max = 0
    let i = pos
    while (i < end) {
      const c = buf[i]!
      if (c === QUOTE) {
        i = skipString(buf, i, end)
        continue
      }
      if (c === OPEN_BRACE || c === OPEN_BRACKET) {
        if (++depth > max) max = depth
      } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
        depth--
        if (depth === 0) {
          if (probe !== undefined) probe.max = max
          return i + 1
        }
      }
      i++
    }
    throw new JsonScanError('unterminated object or array', pos)
  }
  // A scalar: number, true, false, null (or garbage, which JSON.parse rejects later).
  let i = pos
  while (i < end) {
    const c = buf[i]!
    if (c === COMMA || c === CLOSE_BRACE || c === CLOSE_BRACKET || isJsonWhitespace(c)) break
    i++
  }
  if (i === pos) throw new JsonScanError(`unexpected character "${String.fromCharCode(first ?? 0)}"`, pos)
  return i
}

export interface Span {
  start: number
  end: number
  /** Set by `splitTopLevel` on a value that nests containers deeper than its `maxDepth`. */
  deep?: true
  /** Set by `splitTopLevel` on a value its `prove` proved (valid, and no deeper than `maxDepth`). */
  proven?: true
  /** With `proven`: the proof's drift bits when not 0 (ValueProof.lastBits). */
  driftBits?: number
}

/**
 * Reads the JSON value at `pos` (not whitespace) and answers the index just past it if it proves the value
 * valid (JSON, and whatever else the proof stands for), else -1, never reading at or past `end`.
 */
export interface ValueProof {
  (buf: Buffer, pos: number, end: number): number
  /** After a proof: the drift bits of the value it proved last (Azion templates; 0 when none). */
  lastBits?: () => number
}

/**
 * Splits `buf[start, end)` into top-level JSON values separated by `separator` (any byte string, e.g. ","
 * or "\n" or "||"). A separator inside a value never splits it. Empty pieces (two separators in a row, a
 * trailing separator) are skipped, and whitespace around values is ignored. A value nested deeper than
 * `maxDepth` is marked `deep` (the scan walks every container byte anyway, so this costs nothing). With
 * `prove`, a container it proves is marked `proven` (its proof also found its end).
 */
export function splitTopLevel(
  buf: Buffer,
  start: number,
  end: number,
  separator: Buffer,
  maxDepth = Infinity,
  prove?: ValueProof,
): Span[] {
  const spans: Span[] = []
  const probe: DepthProbe = { max: 0 }
  const sep0 = separator[0]!
  const sepLen = separator.length
  const atSeparator = (i: number): boolean =>
    buf[i] === sep0 &&
    i + sepLen <= end &&
    (sepLen === 1 || buf.compare(separator, 0, sepLen, i, i + sepLen) === 0)
  let pos = start
  while (pos < end) {
    // Skip whitespace and empty pieces; a separator may itself be whitespace ("\n").
    for (;;) {
      if (pos < end && atSeparator(pos)) pos += sepLen
      else if (pos < end && isJsonWhitespace(buf[pos]!)) pos++
      else break
    }
    if (pos >= end) break
    const c = buf[pos]
    let valueEnd: number
    // A container `prove` proves is split where the proof ended (the same place skipValue finds in valid
    // JSON): one pass over its bytes instead of a split and then a check.
    const provenEnd = prove && (c === OPEN_BRACE || c === OPEN_BRACKET) ? prove(buf, pos, end) : -1
    if (provenEnd >= 0) {
      valueEnd = provenEnd
      const bits = prove!.lastBits?.() ?? 0
      if (bits === 0) spans.push({ start: pos, end: valueEnd, proven: true })
      else spans.push({ start: pos, end: valueEnd, proven: true, driftBits: bits })
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      valueEnd = skipValue(buf, pos, end, probe)
      if (probe.max > maxDepth) spans.push({ start: pos, end: valueEnd, deep: true })
      else spans.push({ start: pos, end: valueEnd })
    } else {
      if (c === QUOTE) valueEnd = skipValue(buf, pos, end)
      else {
        // A bare scalar ends at the separator too ("false||true").
        valueEnd = pos
        while (valueEnd < end && !atSeparator(valueEnd) && !isJsonWhitespace(buf[valueEnd]!)) valueEnd++
      }
      spans.push({ start: pos, end: valueEnd })
    }
    pos = valueEnd
    // After a value: optional whitespace, then a separator or the end.
    let p = pos
    while (p < end && !atSeparator(p) && isJsonWhitespace(buf[p]!)) p++
    if (p < end && !atSeparator(p))
      throw new JsonScanError(`expected separator ${JSON.stringify(separator.toString())} after a record`, p)
    pos = p
  }
  return spans
}

/**
 * Whether the JSON text `text` (valid JSON: JSON.parse accepted it) nests containers deeper than `limit`,
 * for records whose bytes no scan has walked (NDJSON lines, a single-object body). Cheap for ordinary
 * records: depth never exceeds the number of `{` and `[` characters, which `String.prototype.indexOf`
 * counts (about 3 % of the JSON.parse of the same text, measured on an emnify event); only a text with more
 * than `limit` of them is scanned token by token.
 */
export function nestsDeeper(text: string, limit: number): boolean {
  // The shortest text nested deeper than the limit is `[[…]]`: two characters per level.
  if (text.length < 2 * (limit + 1)) return false
  let n = 0
  for (let i = text.indexOf('{'); i >= 0 && n <= limit; i = text.indexOf('{', i + 1)) n++
  for (let i = text.indexOf('['); i >= 0 && n <= limit; i = text.indexOf('[', i + 1)) n++
  if (n <= limit) return false
  let depth = 0
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === QUOTE) {
      // Skip the string: to the next quote not escaped (a backslash always escapes the next character).
      for (i++; i < text.length; i++) {
        const d = text.charCodeAt(i)
        if (d === BACKSLASH) i++
        else if (d === QUOTE) break
      }
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (++depth > limit) return true
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) depth--
  }
  return false
}

/** Splits `buf[start, end)` on every occurrence of `separator` (for text records and whitespace separators). */
export function splitOn(buf: Buffer, start: number, end: number, separator: Buffer): Span[] {
  const spans: Span[] = []
  // A one-byte separator ("\n") is looked for as a number: memchr without the needle-buffer search's setup,
  // ~2× faster a line (bench/RESULTS.md, 2026-12-04 sixth session).
  const needle = separator.length === 1 ? separator[0]! : separator
  let pos = start
  while (pos <= end) {
    let next = buf.indexOf(needle, pos)
    if (next < 0 || next > end - separator.length) next = end
    let pieceEnd = next
    // "\r\n" line endings when splitting on "\n".
    if (separator.length === 1 && separator[0] === 0x0a && pieceEnd > pos && buf[pieceEnd - 1] === 0x0d)
      pieceEnd--
    if (pieceEnd > pos) spans.push({ start: pos, end: pieceEnd })
    if (next >= end) break
    pos = next + separator.length
  }
  return spans
}

/**
 * Finds the raw text of the value at `path` inside the JSON object in `buf[start, end)`, without parsing the
 * rest. Strings come back unescaped; numbers exactly as written (64-bit ids keep every digit); objects and
 * arrays as their JSON text. Array elements are addressed by numeric segments.
 */
export function rawField(
  buf: Buffer,
  path: readonly string[],
  start = 0,
  end = buf.length,
): string | undefined {
  try {
    const pos = valueAt(buf, path, start, end)
    if (pos < 0) return undefined
    const valueEnd = skipValue(buf, pos, end)
    if (buf[pos] === QUOTE) {
      return hasByte(buf, BACKSLASH, pos + 1, valueEnd - 1)
        ? (JSON.parse(buf.toString('utf8', pos, valueEnd)) as string)
        : buf.toString('utf8', pos + 1, valueEnd - 1)
    }
    return buf.toString('utf8', pos, valueEnd)
  } catch (err) {
    if (err instanceof JsonScanError || err instanceof SyntaxError) return undefined
    throw err
  }
}

/**
 * Where the value at `path` starts inside the JSON text in `buf[start, end)` (object keys; numeric segments
 * index arrays), or -1 when there is no such value. Throws JsonScanError (or SyntaxError, for a broken
 * escaped key) on malformed JSON met on the way.
 */
export function valueAt(buf: Buffer, path: readonly string[], start = 0, end = buf.length): number {
  let pos = skipWhitespace(buf, start, end)
  for (const segment of path) {
    const c = buf[pos]
    if (c === OPEN_BRACE) pos = findMember(buf, pos, end, segment)
    else if (c === OPEN_BRACKET && /^\d+$/.test(segment)) pos = findElement(buf, pos, end, Number(segment))
    else return -1
    if (pos < 0) return -1
  }
  return pos < end ? pos : -1
}

function findMember(buf: Buffer, objStart: number, end: number, key: string): number {
  const keyBytes = keyBytesOf(key)
  let pos = skipWhitespace(buf, objStart + 1, end)
  while (pos < end && buf[pos] !== CLOSE_BRACE) {
    if (buf[pos] !== QUOTE) return -1
    const keyEnd = skipString(buf, pos, end)
    let matches: boolean
    if (hasByte(buf, BACKSLASH, pos + 1, keyEnd - 1))
      matches = (JSON.parse(buf.toString('utf8', pos, keyEnd)) as string) === key
    else matches = bytesAt(buf, pos + 1, keyEnd - 1, keyBytes)
    pos = skipWhitespace(buf, keyEnd, end)
    if (buf[pos] !== COLON) return -1
    pos = skipWhitespace(buf, pos + 1, end)
    if (matches) return pos
    pos = skipWhitespace(buf, skipValue(buf, pos, end), end)
    if (buf[pos] === COMMA) pos = skipWhitespace(buf, pos + 1, end)
  }
  return -1
}

/** Member names looked up by `rawField` are few (config paths): their UTF-8 bytes are kept. */
const keyBytesCache = new Map<string, Buffer>()
const KEY_BYTES_CACHE_MAX = 1024

function keyBytesOf(key: string): Buffer {
  let bytes = keyBytesCache.get(key)
  if (bytes === undefined) {
    bytes = Buffer.from(key, 'utf8')
    if (keyBytesCache.size < KEY_BYTES_CACHE_MAX) keyBytesCache.set(key, bytes)
  }
  return bytes
}

/** Whether `buf[start, end)` holds `byte` (short ranges: a loop beats a native call). */
function hasByte(buf: Buffer, byte: number, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (buf[i] === byte) return true
  return false
}

/** Whether `buf[start, end)` equals `bytes`. */
function bytesAt(buf: Buffer, start: number, end: number, bytes: Buffer): boolean {
  if (end - start !== bytes.length) return false
  for (let i = 0; i < bytes.length; i++) if (buf[start + i] !== bytes[i]) return false
  return true
}

function findElement(buf: Buffer, arrStart: number, end: number, index: number): number {
  let pos = skipWhitespace(buf, arrStart + 1, end)
  let i = 0
  while (pos < end && buf[pos] !== CLOSE_BRACKET) {
    if (i === index) return pos
    pos = skipWhitespace(buf, skipValue(buf, pos, end), end)
    if (buf[pos] === COMMA) pos = skipWhitespace(buf, pos + 1, end)
    i++
  }
  return -1
}

/** A byte-level test of one record's span; `false` means "not proven", never "invalid". */
export type SpanCheck = (buf: Buffer, start: number, end: number) => boolean

/**
 * A check that proves, without parsing, that a record is a JSON object whose members are all strings and
 * among whose keys every one of `required` occurs (see `stringObjectScanner`).
 */
export function stringObjectCheck(required: readonly string[]): SpanCheck {
  const scanner = stringObjectScanner(required)
  return (buf, start, end) => scanner.scan(buf, start, end) >= required.length * 2
}

/**
 * `scan` answers -1 unless `buf[start, end)` is a flat object of string members; otherwise
 * `found * 2 + (other ? 1 : 0)`: how many distinct `keys` occur, and whether any other key does. `has(k)`
 * then tells whether `keys[k]` occurred in the record scanned last.
 */
export interface StringObjectScanner {
  scan(buf: Buffer, start: number, end: number): number
  /**
   * The same scan of the object at `pos` (no whitespace before it), which may be followed by anything:
   * answers the index just past its `}`, or -1; `result()` then answers what `scan` would have.
   */
  scanValue(buf: Buffer, pos: number, end: number): number
  result(): number
  has(k: number): boolean
  /** Bit k set: `keys[k]` occurred in the record scanned last (the first 31 keys only). */
  mask(): number
}

/**
 * Scans, without parsing, whether a record is a JSON object whose members are all strings, and which of
 * `keys` it holds. It accepts only: whitespace, `{`, zero or more `"key": "value"` members separated by `,`,
 * `}`, whitespace. Strings must be valid JSON strings (no raw byte below 0x20; escapes \" \\ \/ \b \f \n \r
 * \t \uXXXX); a key holding any backslash is not decoded but refused, so keys are compared as raw bytes. For
 * such a text `JSON.parse` succeeds and yields an object with an own string property for each key (of
 * repeated keys it keeps the last, also a string). Anything else (numbers, null, nesting, escaped keys,
 * truncated or stray bytes) answers -1: the caller parses and validates as usual, which also produces the
 * usual errors. Bytes >= 0x80 are taken as they are: the body was checked as valid UTF-8 before framing.
 */
export function stringObjectScanner(keyNames: readonly string[]): StringObjectScanner {
  const keys = keyNames.map((k) => Buffer.from(k, 'utf8'))
  const count = keys.length
  // seen[k] === generation: key k occurred in the current record (no clearing per record).
  const seen = new Uint32Array(count)
  let generation = 0
  let mask = 0
  let result = -1
  const scanValue = (buf: Buffer, start: number, end: number): number => {
    result = -1
    generation = (generation + 1) >>> 0
    if (generation === 0) {
      seen.fill(0)
      generation = 1
    }
    let found = 0
    let other = 0
    mask = 0
    let next = 0 // records usually follow the template's key order: try that key first
    let pos = skipWhitespace(buf, start, end)
    if (pos >= end || buf[pos] !== OPEN_BRACE) return -1
    pos = skipWhitespace(buf, pos + 1, end)
    if (pos < end && buf[pos] === CLOSE_BRACE) pos++
    else {
      for (;;) {
        if (pos >= end || buf[pos] !== QUOTE) return -1
        const keyStart = pos + 1
        const keyEnd = stringEnd(buf, keyStart, end, false)
        if (keyEnd < 0) return -1
        const k = findKey(keys, next, buf, keyStart, keyEnd - 1)
        if (k >= 0) {
          if (seen[k] !== generation) {
            seen[k] = generation
            found++
            if (k < 31) mask |= 1 << k
          }
          next = k + 1 === count ? 0 : k + 1
        } else other = 1
        pos = skipWhitespace(buf, keyEnd, end)
        if (pos >= end || buf[pos] !== COLON) return -1
        pos = skipWhitespace(buf, pos + 1, end)
        if (pos >= end || buf[pos] !== QUOTE) return -1
        pos = stringEnd(buf, pos + 1, end, true)
        if (pos < 0) return -1
        pos = skipWhitespace(buf, pos, end)
        if (pos >= end) return -1
        const c = buf[pos]
        if (c === CLOSE_BRACE) {
          pos++
          break
        }
        if (c !== COMMA) return -1
        pos = skipWhitespace(buf, pos + 1, end)
      }
    }
    result = found * 2 + other
    return pos
  }
  const scan = (buf: Buffer, start: number, end: number): number => {
    const pos = scanValue(buf, start, end)
    return pos >= 0 && skipWhitespace(buf, pos, end) === end ? result : -1
  }
  return { scan, scanValue, result: () => result, has: (k) => seen[k] === generation, mask: () => mask }
}

/** Index of the required key equal to `buf[start, end)`, trying `first` before the others; -1 if none. */
function findKey(keys: readonly Buffer[], first: number, buf: Buffer, start: number, end: number): number {
  if (first < keys.length && bytesAt(buf, start, end, keys[first]!)) return first
  for (let k = 0; k < keys.length; k++) if (k !== first && bytesAt(buf, start, end, keys[k]!)) return k
  return -1
}

/**
 * `i` is just past an opening quote; returns the index just past the closing quote if `buf[i, end)` starts
 * with the rest of a valid JSON string, else -1. With `escapes` false any backslash answers -1.
 */
function stringEnd(buf: Buffer, i: number, end: number, escapes: boolean): number {
  for (;;) {
    // The run of plain bytes up to the next quote, backslash or control byte: one tight loop with a single
    // exit (measured 0.73× of one loop that branches on each kind of byte; bench/RESULTS.md, third round).
    let c = 0
    while (i < end) {
      c = buf[i]!
      if (c === QUOTE || c === BACKSLASH || c < 0x20) break
      i++
    }
    if (i >= end) return -1
    if (c === QUOTE) return i + 1
    if (c !== BACKSLASH || !escapes || i + 1 >= end) return -1
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
}

export function isHexDigit(b: number): boolean {
  return (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66)
}

/** " \ / b f n r t */
export function isSimpleEscape(b: number): boolean {
  return (
    b === QUOTE ||
    b === BACKSLASH ||
    b === 0x2f ||
    b === 0x62 ||
    b === 0x66 ||
    b === 0x6e ||
    b === 0x72 ||
    b === 0x74
  )
}
