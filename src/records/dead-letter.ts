import type { SinkRecord } from './record.js'

// A dead-lettered record travels as one JSON line that carries the reason and the original record text:
//   {"deadLetter":1,"stream":"s","reason":"invalid","sink":"kafka-out","at":"2026-…Z",
//    "errors":[{"index":3,"pointer":"/id","message":"is required"}],"raw":"<the record's exact text>"}
// `raw` is a JSON string of the original bytes (valid UTF-8, so the round trip is exact); `replay-dead-letter`
// sends exactly those bytes again.

export interface DeadLetterError {
  index?: number
  pointer?: string
  message: string
}

export interface DeadLetterInfo {
  reason: string
  sink?: string
  errors?: DeadLetterError[]
}

export interface DeadLetterEnvelope extends DeadLetterInfo {
  deadLetter: 1
  stream: string
  at: string
  raw: string
}

export function deadLetterRecord(
  stream: string,
  raw: Buffer,
  info: DeadLetterInfo,
  receivedAtMs: number,
  now = Date.now(),
): SinkRecord {
  const envelope: DeadLetterEnvelope = {
    deadLetter: 1,
    stream,
    reason: info.reason,
    ...(info.sink !== undefined ? { sink: info.sink } : {}),
    at: new Date(now).toISOString(),
    ...(info.errors !== undefined ? { errors: info.errors } : {}),
    raw: raw.toString('utf8'),
  }
  return { stream, payload: Buffer.from(JSON.stringify(envelope)), receivedAtMs }
}

export function parseDeadLetter(line: string): DeadLetterEnvelope | undefined {
  try {
    const value = JSON.parse(line) as Partial<DeadLetterEnvelope>
    if (value.deadLetter === 1 && typeof value.raw === 'string' && typeof value.stream === 'string')
      return value as DeadLetterEnvelope
  } catch {
    // not a dead-letter line
  }
  return undefined
}
