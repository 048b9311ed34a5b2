import { readFileSync } from 'node:fs'
import { join } from 'node:path'

// emnify's documented maximum bulk: 10,000 records per POST (the webhook destination's `size`, 1–10000
// [EM-OAS]). Built from test/fixtures/emnify/event-create-pdp-full.json (the documented PDP event with every
// documented pdp_context key), each record with its own id and session id, joined the way emnify's samples
// are (a JSON array, one record after another).

export const EMNIFY_MAX_BULK = 10_000

const FIXTURE = join(import.meta.dirname, '..', 'fixtures', 'emnify', 'event-create-pdp-full.json')
const ID = '"id":1906081382592,'
const SESSION = '"session_id":"2a4ff039-fbb9-4eaa-b74c-2f0eaafaf624"'

/** The records of a bulk of `count` PDP events, as text; ids are 1906081382592 + i (distinct). */
export function pdpEvents(count = EMNIFY_MAX_BULK, firstId = 1906081382592): string[] {
  const sample = readFileSync(FIXTURE, 'utf8').trim()
  if (!sample.includes(ID) || !sample.includes(SESSION)) throw new Error('the PDP fixture changed')
  const [head, tail] = sample.split(ID) as [string, string]
  const [mid, rest] = tail.split(SESSION) as [string, string]
  return Array.from(
    { length: count },
    (_, i) =>
      `${head}"id":${firstId + i},${mid}"session_id":"2a4ff039-fbb9-4eaa-b74c-${i.toString(16).padStart(12, '0')}"${rest}`,
  )
}

/** A bulk body of `count` PDP events (10,000: ~15 MB). */
export function pdpBulk(count = EMNIFY_MAX_BULK, firstId?: number): Buffer {
  return Buffer.from(`[${pdpEvents(count, firstId).join(',')}]`)
}
