// Byte-level matchers for the `pattern`s of the built-in emnify schemas: the byte-level schema check
// (byte-schema.ts) tests a string's bytes in place instead of building a string and running the regex on it
// (which was ~18 % of the check on usage records). Only pattern sources listed here get a byte matcher,
// each written for exactly that regex; any other pattern keeps the regex (see `bytePatternOf`). A matcher
// answers exactly what `new RegExp(source, 'u').test(text)` answers for the text the bytes spell (checked
// by byte-pattern.test.ts); with the `u` flag `\d` is ASCII 0-9 only, so any byte >= 0x80 fails every one.

/** `buf[start, end)` holds a string's raw bytes (between its quotes, no escapes): whether the pattern matches. */
export type BytePattern = (buf: Buffer, start: number, end: number) => boolean

/** The emnify schemas' timestamp (ISO 8601 date and time, optional seconds, fraction and zone). */
export const TIMESTAMP_PATTERN =
  '^\\d{4}-\\d{2}-\\d{2}[T ]\\d{2}:\\d{2}(:\\d{2}(\\.\\d+)?)?(Z|[+-]\\d{2}(:?\\d{2})?)?$'
/** An integer written as a string (emnify's byte counters in events). */
export const INTEGER_STRING_PATTERN = '^-?\\d+$'

const ZERO = 0x30
const NINE = 0x39
const MINUS = 0x2d
const PLUS = 0x2b
const COLON = 0x3a
const DOT = 0x2e

function digits(buf: Buffer, at: number, count: number): boolean {
  for (let i = at; i < at + count; i++) {
    const c = buf[i]!
    if (c < ZERO || c > NINE) return false
  }
  return true
}

/**
 * TIMESTAMP_PATTERN. Its optional parts begin with distinct bytes (":" seconds, "." fraction, "Z"/"+"/"-"
 * zone) and nothing follows a run of fraction digits but the zone or the end, so one greedy pass decides
 * what the backtracking regex decides.
 */
function timestamp(buf: Buffer, start: number, end: number): boolean {
  if (end - start < 16) return false
  // \d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}
  if (!digits(buf, start, 4) || buf[start + 4] !== MINUS || !digits(buf, start + 5, 2)) return false
  if (buf[start + 7] !== MINUS || !digits(buf, start + 8, 2)) return false
  const sep = buf[start + 10]
  if (sep !== 0x54 /* T */ && sep !== 0x20) return false
  if (!digits(buf, start + 11, 2) || buf[start + 13] !== COLON || !digits(buf, start + 14, 2)) return false
  let i = start + 16
  // (:\d{2}(\.\d+)?)?
  if (i < end && buf[i] === COLON) {
    if (i + 3 > end || !digits(buf, i + 1, 2)) return false
    i += 3
    if (i < end && buf[i] === DOT) {
      const from = ++i
      while (i < end && buf[i]! >= ZERO && buf[i]! <= NINE) i++
      if (i === from) return false
    }
  }
  if (i === end) return true
  // (Z|[+-]\d{2}(:?\d{2})?)?$
  const c = buf[i]
  if (c === 0x5a /* Z */) return i + 1 === end
  if (c !== PLUS && c !== MINUS) return false
  if (i + 3 > end || !digits(buf, i + 1, 2)) return false
  i += 3
  if (i === end) return true
  if (buf[i] === COLON) i++
  return i + 2 === end && digits(buf, i, 2)
}

/** INTEGER_STRING_PATTERN. */
function integerString(buf: Buffer, start: number, end: number): boolean {
  let i = start
  if (i < end && buf[i] === MINUS) i++
  return i < end && digits(buf, i, end - i)
}

const BYTE_PATTERNS: ReadonlyMap<string, BytePattern> = new Map([
  [TIMESTAMP_PATTERN, timestamp],
  [INTEGER_STRING_PATTERN, integerString],
])

/**
 * The matcher for `source` (a `pattern` keyword, compiled with the `u` flag as ajv does): the byte matcher
 * written for it when there is one, else the regex run on the decoded text.
 */
export function bytePatternOf(source: string): BytePattern {
  const known = BYTE_PATTERNS.get(source)
  if (known) return known
  const regex = new RegExp(source, 'u')
  return (buf, start, end) => {
    let ascii = true
    for (let i = start; i < end; i++)
      if (buf[i]! >= 0x80) {
        ascii = false
        break
      }
    return regex.test(buf.toString(ascii ? 'latin1' : 'utf8', start, end))
  }
}
