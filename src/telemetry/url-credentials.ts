// Credentials inside URLs: the userinfo (`https://user:pass@host`, or a bare token `https://tok@host`) and
// query or fragment parameters whose name says they carry a secret (`api_key`, `token`, `key`, `sig`,
// `signature`, `password`, `secret`, and names ending in them: `access_token`, `X-Amz-Signature`,
// `clientSecret`). The URLs are found inside any text (a config value, an error message from undici or the
// AWS SDK) and edited as text: nothing else in the string changes (no re-encoding, no normalisation), so a
// masked URL can be matched against its stored original (src/admin/secrets.ts).

/** What a masked secret reads as in logs and management-API answers (URL credentials and secret fields). */
export const SECRET_MASK = '***'

/** `scheme://` then everything up to white space or a quote/bracket that ends a URL inside prose or JSON. */
const URL_IN_TEXT = /\b[a-z][a-z0-9+.-]*:\/\/[^\s"'<>`]+/gi
/** Punctuation that ends a sentence rather than the URL ("failed: https://host/x?token=abc."). */
const TRAILING_PUNCTUATION = /[.,;:!?)\]}]+$/

const SECRET_PARAM =
  /(?:^|[-_.])(?:key|sig|auth|pwd)$|(?:api[-_]?key|token|signature|password|passwd|secret|credential)$/i

/** Whether a query/fragment parameter name names a secret (case-insensitive). */
export function isSecretParam(name: string): boolean {
  return SECRET_PARAM.test(name)
}

/** One credential inside a URL: `[start, end)` offsets into the URL text. */
export interface CredentialSlot {
  /** `password`, `userinfo` (a bare token before `@`), or `query:<name>` / `fragment:<name>`. */
  name: string
  start: number
  end: number
}

/** A URL found in a text, with its credentials. `origin` is scheme, user name and host: who gets the secret. */
export interface UrlInText {
  start: number
  end: number
  origin: string
  slots: CredentialSlot[]
}

/** Every URL in `text` (in order) with the positions of its credentials, if it has any. */
export function findUrls(text: string): UrlInText[] {
  if (!text.includes('://')) return []
  const out: UrlInText[] = []
  for (const match of text.matchAll(URL_IN_TEXT)) {
    const url = match[0].replace(TRAILING_PUNCTUATION, '')
    const start = match.index
    out.push({ start, end: start + url.length, ...credentialsOf(url) })
  }
  return out
}

function credentialsOf(url: string): { origin: string; slots: CredentialSlot[] } {
  const slots: CredentialSlot[] = []
  const authorityStart = url.indexOf('://') + 3
  const rest = url.slice(authorityStart)
  const authorityEnd = authorityStart + (rest.search(/[/?#]/) === -1 ? rest.length : rest.search(/[/?#]/))
  const authority = url.slice(authorityStart, authorityEnd)
  const at = authority.lastIndexOf('@')
  let user = ''
  if (at >= 0) {
    const userinfo = authority.slice(0, at)
    const colon = userinfo.indexOf(':')
    if (colon >= 0) {
      user = userinfo.slice(0, colon)
      if (colon + 1 < userinfo.length)
        slots.push({ name: 'password', start: authorityStart + colon + 1, end: authorityStart + at })
    } else if (userinfo !== '') {
      slots.push({ name: 'userinfo', start: authorityStart, end: authorityStart + at })
    }
  }
  const scheme = url.slice(0, authorityStart).toLowerCase()
  const origin = `${scheme}${user}@${authority.slice(at + 1).toLowerCase()}`
  const hash = url.indexOf('#', authorityEnd)
  const query = url.indexOf('?', authorityEnd)
  if (query >= 0 && (hash < 0 || query < hash))
    paramSlots(url, query + 1, hash < 0 ? url.length : hash, 'query', slots)
  if (hash >= 0) paramSlots(url, hash + 1, url.length, 'fragment', slots)
  return { origin, slots }
}

function paramSlots(url: string, from: number, to: number, part: string, slots: CredentialSlot[]): void {
  let pos = from
  while (pos < to) {
    let end = url.indexOf('&', pos)
    if (end < 0 || end > to) end = to
    const eq = url.indexOf('=', pos)
    if (eq >= 0 && eq < end && eq + 1 < end && isSecretParam(decodeName(url.slice(pos, eq))))
      slots.push({ name: `${part}:${decodeName(url.slice(pos, eq)).toLowerCase()}`, start: eq + 1, end })
    pos = end + 1
  }
}

function decodeName(name: string): string {
  try {
    return decodeURIComponent(name.replace(/\+/g, ' '))
  } catch {
    return name
  }
}

/** `text` with the credentials of every URL in it replaced by the mask; text without URLs is returned as is. */
export function maskUrlCredentials(text: string): string {
  const urls = findUrls(text)
  if (urls.length === 0) return text
  let out = ''
  let pos = 0
  for (const url of urls)
    for (const slot of url.slots) {
      out += text.slice(pos, url.start + slot.start) + SECRET_MASK
      pos = url.start + slot.end
    }
  return pos === 0 ? text : out + text.slice(pos)
}

/** The credential values in `text`'s URLs, e.g. to check them for placeholders. */
export function urlCredentials(text: string): string[] {
  return findUrls(text).flatMap((url) =>
    url.slots.map((slot) => text.slice(url.start + slot.start, url.start + slot.end)),
  )
}
