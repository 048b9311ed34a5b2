import { createHmac, timingSafeEqual } from 'node:crypto'
import { BlockList, isIPv4, isIPv6 } from 'node:net'
import type { HmacConfig, StreamConfig } from '../config/types.js'
import { problem, ProblemError } from '../errors.js'

// Push authentication as the vendors do it: custom headers with shared values (emnify webhook headers
// "name:value" [EM-OAS], Azion's up to 5 custom headers [AZ-HTTP]), an optional HMAC over the raw body, and
// an optional source address allow-list. Values are compared in constant time.

export interface CompiledAuth {
  /** Checks before the body is read: source address (403) and headers (401). */
  checkRequest(
    headers: Record<string, string | string[] | undefined>,
    remoteAddress: string | undefined,
  ): void
  /** Checks that need the raw body (HMAC). */
  checkBody(headers: Record<string, string | string[] | undefined>, rawBody: Buffer): void
  readonly needsBody: boolean
}

const unauthorized = (detail: string): ProblemError =>
  problem('unauthorized', detail, { headers: { 'www-authenticate': 'Header' } })

export function compileAuth(auth: StreamConfig['auth']): CompiledAuth {
  const expected = Object.entries((auth.headers ?? {}) as Record<string, string>).map(([name, value]) => ({
    name: name.toLowerCase(),
    displayName: name,
    value: Buffer.from(value),
  }))
  const blockList = auth.allowCidrs?.length ? toBlockList(auth.allowCidrs) : undefined
  const hmac = auth.hmac
  return {
    needsBody: hmac !== undefined,
    checkRequest(headers, remoteAddress) {
      if (blockList) {
        const address = normaliseAddress(remoteAddress)
        const allowed =
          address !== undefined &&
          (isIPv4(address)
            ? blockList.check(address, 'ipv4')
            : isIPv6(address) && blockList.check(address, 'ipv6'))
        if (!allowed)
          throw problem('forbidden-source', 'the source address is not in the allow-list of this stream')
      }
      // Check every header even after a mismatch, so timing does not tell which header was wrong.
      let ok = true
      let missing: string | undefined
      for (const h of expected) {
        const got = first(headers[h.name])
        if (got === undefined) {
          ok = false
          missing ??= h.displayName
          continue
        }
        if (!constantTimeEqual(Buffer.from(got), h.value)) ok = false
      }
      if (!ok)
        throw unauthorized(
          missing !== undefined
            ? `the header ${missing} is missing`
            : 'a required authentication header has the wrong value',
        )
    },
    checkBody(headers, rawBody) {
      if (!hmac) return
      const got = first(headers[hmac.header.toLowerCase()])
      if (got === undefined) throw unauthorized(`the signature header ${hmac.header} is missing`)
      if (!verifyHmac(hmac, got, rawBody))
        throw unauthorized(`the signature in ${hmac.header} does not match the body`)
    },
  }
}

function verifyHmac(config: HmacConfig, header: string, body: Buffer): boolean {
  let text = header.trim()
  if (config.prefix) {
    if (!text.startsWith(config.prefix)) return false
    text = text.slice(config.prefix.length)
  }
  const expected = createHmac(config.algorithm, config.secret).update(body).digest()
  const got = Buffer.from(text, config.encoding)
  return constantTimeEqual(got, expected)
}

/** Constant-time for equal lengths; a length mismatch still does a full-length comparison. */
export function constantTimeEqual(a: Buffer, b: Buffer): boolean {
  if (a.length !== b.length) {
    timingSafeEqual(b, b)
    return false
  }
  return timingSafeEqual(a, b)
}

function first(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value
}

function normaliseAddress(address: string | undefined): string | undefined {
  if (!address) return undefined
  // IPv4 clients on a dual-stack socket appear as ::ffff:1.2.3.4.
  return address.startsWith('::ffff:') && isIPv4(address.slice(7)) ? address.slice(7) : address
}

function toBlockList(cidrs: readonly string[]): BlockList {
  const list = new BlockList()
  for (const cidr of cidrs) {
    const [address, bits] = cidr.split('/') as [string, string | undefined]
    const type = isIPv4(address) ? 'ipv4' : 'ipv6'
    if (bits === undefined) list.addAddress(address, type)
    else list.addSubnet(address, Number(bits), type)
  }
  return list
}
