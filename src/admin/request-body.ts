import type { Context } from 'hono'
import { problem, ProblemError } from '../errors.js'
import { isPlainObject } from './merge-patch.js'

/** Largest management-API request body: a stream or sink definition is a few KiB. */
export const MAX_API_BODY_BYTES = 1024 * 1024

/** A refused body is read to its end up to this size (see drain). */
const MAX_DRAINED_BYTES = 16 * 1024 * 1024

const JSON_TYPE = /^application\/(?:[\w.+-]+\+)?json$/

/** The request's JSON object body: 413 over the limit, 415 for a non-JSON Content-Type, 400 if not an object. */
export async function readJsonObject(c: Context): Promise<Record<string, unknown>> {
  const type = c.req.header('content-type')
  if (type !== undefined && type !== '') {
    const media = type.split(';')[0]!.trim().toLowerCase()
    if (!JSON_TYPE.test(media))
      throw problem(
        'unsupported-media-type',
        `Content-Type "${media}" is not accepted; send application/json (or application/merge-patch+json)`,
      )
  }
  const declared = c.req.header('content-length')
  if (declared !== undefined && Number(declared) > MAX_API_BODY_BYTES) {
    if (Number(declared) <= MAX_DRAINED_BYTES) await drain(c.req.raw.body?.getReader())
    throw tooLarge()
  }
  const bytes = await readLimited(c.req.raw.body)
  let text: string
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(bytes)
  } catch {
    throw badRequest('the body is not valid UTF-8')
  }
  if (text.trim() === '') throw badRequest('the body is empty; send a JSON object')
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (err) {
    throw badRequest(`the body is not JSON: ${(err as Error).message}`)
  }
  if (!isPlainObject(value)) throw badRequest('the body must be a JSON object')
  return value
}

async function readLimited(body: ReadableStream<Uint8Array> | null): Promise<Uint8Array> {
  if (!body) return new Uint8Array()
  const reader = body.getReader()
  const chunks: Uint8Array[] = []
  let total = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    total += value.byteLength
    if (total > MAX_API_BODY_BYTES) {
      await drain(reader)
      throw tooLarge()
    }
    chunks.push(value)
  }
  return Buffer.concat(chunks)
}

/**
 * Reads and drops the rest of a refused body (up to MAX_DRAINED_BYTES), so that the client, still sending,
 * gets the 413 instead of a connection reset; beyond that the connection is dropped.
 */
async function drain(reader: ReadableStreamDefaultReader<Uint8Array> | undefined): Promise<void> {
  if (!reader) return
  let total = 0
  try {
    for (;;) {
      const { done, value } = await reader.read()
      if (done) return
      total += value.byteLength
      if (total > MAX_DRAINED_BYTES) {
        await reader.cancel()
        return
      }
    }
  } catch {
    // The client went away: nothing to answer.
  }
}

function tooLarge(): ProblemError {
  return problem('payload-too-large', `management API bodies are limited to ${MAX_API_BODY_BYTES} bytes`)
}

export function badRequest(detail: string, errors?: { pointer: string; message: string }[]): ProblemError {
  return problem('bad-request', detail, errors ? { extra: { errors } } : {})
}
