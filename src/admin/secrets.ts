import { isSecretKey, redactConfig, SECRET_MASK } from '../telemetry/logger.js'
import { findUrls } from '../telemetry/url-credentials.js'
import { isPlainObject } from './merge-patch.js'

// Secrets are write-only: answers mask them (redactConfig), and a write that sends the mask back where a
// secret is stored keeps the stored secret. A UI can then GET an object, change one field and send it all
// back without knowing (or wiping) its credentials. The same holds for credentials inside URLs
// (`https://user:***@host/p?api_key=***`): each masked credential is taken from the stored URL, but only
// while the URL still goes to the same scheme, user and host — a mask sent with a new host would hand the
// stored secret to that host, so it is an issue (send the credential itself).

export { SECRET_MASK }

export interface MaskIssue {
  /** JSON pointer inside the written object. */
  pointer: string
  message: string
}

/** A config object as answers show it: every secret masked. */
export function masked<T>(value: T): T {
  return redactConfig(value) as T
}

/**
 * Replaces the mask in secret positions of `next` by the value `stored` has at the same place. A mask with
 * nothing stored behind it (a new object, a new header name) is an issue: the mask is never stored as a
 * secret. emnify's header list form ("name:***") is matched by header name.
 */
export function restoreSecrets(next: unknown, stored: unknown): { value: unknown; issues: MaskIssue[] } {
  const issues: MaskIssue[] = []
  const value = walk(next, stored, '', false, issues)
  return { value, issues }
}

function walk(
  next: unknown,
  stored: unknown,
  pointer: string,
  secret: boolean,
  issues: MaskIssue[],
): unknown {
  if (typeof next === 'string') {
    if (!secret) return restoreUrlCredentials(next, stored, pointer, issues)
    if (next !== SECRET_MASK) return next
    if (typeof stored === 'string') return stored
    issues.push({
      pointer,
      message: `is the mask "${SECRET_MASK}" but no secret is stored here; send the secret`,
    })
    return next
  }
  if (Array.isArray(next)) {
    const storedMap = isPlainObject(stored) ? stored : undefined
    return next.map((item, i) => {
      const at = `${pointer}/${i}`
      // emnify's form of auth headers: ["X-Token:***"] refers to the stored header X-Token.
      if (secret && storedMap && typeof item === 'string') {
        const colon = item.indexOf(':')
        if (colon > 0 && item.slice(colon + 1).trim() === SECRET_MASK) {
          const name = item.slice(0, colon).trim()
          const old = Object.hasOwn(storedMap, name) ? storedMap[name] : undefined
          if (typeof old === 'string') return `${name}:${old}`
          issues.push({
            pointer: at,
            message: `is the mask "${SECRET_MASK}" but no secret is stored for ${name}`,
          })
          return item
        }
      }
      return walk(item, Array.isArray(stored) ? stored[i] : undefined, at, secret, issues)
    })
  }
  if (isPlainObject(next)) {
    const out: Record<string, unknown> = {}
    for (const [key, item] of Object.entries(next)) {
      const old = isPlainObject(stored) && Object.hasOwn(stored, key) ? stored[key] : undefined
      const value = walk(item, old, `${pointer}/${escapePointer(key)}`, secret || isSecretKey(key), issues)
      Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true })
    }
    return out
  }
  return next
}

/** `next` with every masked URL credential replaced by the stored URL's credential in the same place. */
function restoreUrlCredentials(next: string, stored: unknown, pointer: string, issues: MaskIssue[]): string {
  const urls = findUrls(next)
  const isMask = (start: number, end: number): boolean => next.slice(start, end) === SECRET_MASK
  if (!urls.some((url) => url.slots.some((s) => isMask(url.start + s.start, url.start + s.end)))) return next
  const storedText = typeof stored === 'string' ? stored : ''
  const storedUrls = findUrls(storedText)
  let out = ''
  let pos = 0
  urls.forEach((url, i) => {
    const old = storedUrls[i]?.origin === url.origin ? storedUrls[i] : undefined
    const seen = new Map<string, number>()
    for (const slot of url.slots) {
      // The n-th credential of that name (a query may repeat a parameter) in the stored URL.
      const nth = seen.get(slot.name) ?? 0
      seen.set(slot.name, nth + 1)
      if (!isMask(url.start + slot.start, url.start + slot.end)) continue
      const source = old?.slots.filter((s) => s.name === slot.name)[nth]
      if (!old || !source) {
        issues.push({
          pointer,
          message: `the URL's ${slot.name} is the mask "${SECRET_MASK}" but no credential is stored for this URL (same scheme, user and host); send the credential`,
        })
        continue
      }
      out += next.slice(pos, url.start + slot.start)
      out += storedText.slice(old.start + source.start, old.start + source.end)
      pos = url.start + slot.end
    }
  })
  return out + next.slice(pos)
}

export function escapePointer(key: string): string {
  return key.replace(/~/g, '~0').replace(/\//g, '~1')
}
