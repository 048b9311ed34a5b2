import { JsonScanError, skipString, skipValue, skipWhitespace } from '../records/json-scan.js'
import type { SinkRecord } from '../records/record.js'

// The exact JSON text of one field of a record, for sinks that build a document (Adobe's XDM entity) or
// a CSV row (Domo) from record fields. Unlike `rawField`, strings keep their quotes and escapes, so the
// caller can tell the string "123" from the number 123 and the string "null" from null; numbers stay as
// written, so 64-bit ids keep every digit.

const QUOTE = 0x22
const BACKSLASH = 0x5c
const OPEN_BRACE = 0x7b
const CLOSE_BRACE = 0x7d
const OPEN_BRACKET = 0x5b
const CLOSE_BRACKET = 0x5d
const COMMA = 0x2c
const COLON = 0x3a

/**
 * The JSON text of the value at `path` (object keys; numeric segments index arrays), or undefined when the
 * record has no such field. Azion text records (parsed `fields`) give their string values JSON-quoted.
 */
export function fieldJson(
  record: SinkRecord,
  path: readonly string[],
  dotted = path.join('.'),
): string | undefined {
  if (record.fields)
    return Object.hasOwn(record.fields, dotted) ? JSON.stringify(record.fields[dotted]) : undefined
  return rawJsonAt(record.payload, path)
}

export function rawJsonAt(buf: Buffer, path: readonly string[]): string | undefined {
  const end = buf.length
  let pos = skipWhitespace(buf, 0, end)
  try {
    for (const segment of path) {
      const c = buf[pos]
      if (c === OPEN_BRACE) pos = member(buf, pos, end, segment)
      else if (c === OPEN_BRACKET && /^\d+$/.test(segment)) pos = element(buf, pos, end, Number(segment))
      else return undefined
      if (pos < 0) return undefined
    }
    if (pos >= end) return undefined
    return buf.toString('utf8', pos, skipValue(buf, pos, end))
  } catch (err) {
    if (err instanceof JsonScanError || err instanceof SyntaxError) return undefined
    throw err
  }
}

/** True when the payload's first non-blank byte opens a JSON object. */
export function isJsonObject(buf: Buffer): boolean {
  return buf[skipWhitespace(buf, 0, buf.length)] === OPEN_BRACE
}

function member(buf: Buffer, objStart: number, end: number, key: string): number {
  const keyBytes = Buffer.from(key, 'utf8')
  let pos = skipWhitespace(buf, objStart + 1, end)
  while (pos < end && buf[pos] !== CLOSE_BRACE) {
    if (buf[pos] !== QUOTE) return -1
    const keyEnd = skipString(buf, pos, end)
    const raw = buf.subarray(pos + 1, keyEnd - 1)
    const matches = raw.includes(BACKSLASH)
      ? (JSON.parse(buf.toString('utf8', pos, keyEnd)) as string) === key
      : raw.equals(keyBytes)
    pos = skipWhitespace(buf, keyEnd, end)
    if (buf[pos] !== COLON) return -1
    pos = skipWhitespace(buf, pos + 1, end)
    if (matches) return pos
    pos = skipWhitespace(buf, skipValue(buf, pos, end), end)
    if (buf[pos] === COMMA) pos = skipWhitespace(buf, pos + 1, end)
  }
  return -1
}

function element(buf: Buffer, arrStart: number, end: number, index: number): number {
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
