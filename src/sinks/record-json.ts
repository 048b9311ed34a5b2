import { JsonScanError, skipValue, skipWhitespace, valueAt } from '../records/json-scan.js'
import type { SinkRecord } from '../records/record.js'

// The exact JSON text of one field of a record, for sinks that build a document (Adobe's XDM entity) or
// a CSV row (Domo) from record fields. Unlike `rawField`, strings keep their quotes and escapes, so the
// caller can tell the string "123" from the number 123 and the string "null" from null; numbers stay as
// written, so 64-bit ids keep every digit.

const OPEN_BRACE = 0x7b

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
  try {
    const pos = valueAt(buf, path)
    return pos < 0 ? undefined : buf.toString('utf8', pos, skipValue(buf, pos, buf.length))
  } catch (err) {
    if (err instanceof JsonScanError || err instanceof SyntaxError) return undefined
    throw err
  }
}

/** True when the payload's first non-blank byte opens a JSON object. */
export function isJsonObject(buf: Buffer): boolean {
  return buf[skipWhitespace(buf, 0, buf.length)] === OPEN_BRACE
}
