/**
 * One record on its way to the sinks. `payload` holds the exact bytes the vendor sent (never re-serialised:
 * emnify ids are 64-bit and would lose digits in a JS number). The only change ever made is that line
 * breaks between JSON tokens of a pretty-printed record become spaces, so NDJSON outputs stay one record
 * per line; JSON forbids raw line breaks inside strings, so no value changes.
 */
export interface SinkRecord {
  readonly stream: string
  readonly payload: Buffer
  /** The record id as text (emnify `id`, or the stream's dedupe key), when known. */
  readonly id?: string
  /** When streamgate accepted the record (ms since the epoch). */
  readonly receivedAtMs: number
  /** Parsed fields of a non-JSON record (Azion text templates), for templates and filters. */
  readonly fields?: Readonly<Record<string, string>>
}
