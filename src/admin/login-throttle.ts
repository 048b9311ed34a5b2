import { isIPv6 } from 'node:net'

// Failed logins per source address, so that a bearer token cannot be guessed at network speed. An address
// that sent `maxFailures` wrong tokens within `windowMs` (a sliding window) is refused with 429 until its
// oldest failure leaves the window; it cannot extend its own wait, because refused requests are not
// checked and so not counted. IPv6 addresses are grouped by /64 (one host usually owns the whole prefix),
// IPv4-mapped IPv6 addresses count as their IPv4 address.
//
// Memory is bounded: at most `maxAddresses` addresses are tracked, each with at most `maxFailures`
// timestamps. When full, the address whose last failure is the oldest is forgotten first (a Map keeps
// insertion order, and every failure re-inserts its address at the end).

export interface ThrottlePolicy {
  /** Wrong tokens an address may send within the window; 0 turns the throttle off. */
  maxFailures: number
  windowMs: number
}

export interface ThrottleOptions {
  /** Addresses tracked at most (default 10,000). */
  maxAddresses?: number
  /** Clock in ms (tests). */
  now?: () => number
}

export const DEFAULT_MAX_ADDRESSES = 10_000

export class LoginThrottle {
  private readonly failures = new Map<string, number[]>()
  private readonly maxAddresses: number
  private readonly now: () => number

  constructor(
    private readonly policy: ThrottlePolicy,
    options: ThrottleOptions = {},
  ) {
    this.maxAddresses = options.maxAddresses ?? DEFAULT_MAX_ADDRESSES
    this.now = options.now ?? ((): number => Date.now())
  }

  /** Addresses tracked right now (bounded by `maxAddresses`). */
  get size(): number {
    return this.failures.size
  }

  /** Seconds the address has to wait before its next attempt is checked; 0 when it may try now. */
  retryAfterSeconds(address: string | undefined): number {
    const { maxFailures, windowMs } = this.policy
    if (maxFailures <= 0) return 0
    const times = this.failures.get(addressKey(address))
    if (!times || times.length < maxFailures) return 0
    const waitMs = times[0]! + windowMs - this.now()
    return waitMs > 0 ? Math.ceil(waitMs / 1000) : 0
  }

  /**
   * Counts a wrong token from the address. Returns the failures within the window, and whether this one
   * used up the allowance (the address is refused from now on until the window moves on).
   */
  fail(address: string | undefined): { failures: number; throttled: boolean } {
    const { maxFailures, windowMs } = this.policy
    if (maxFailures <= 0) return { failures: 0, throttled: false }
    const key = addressKey(address)
    const now = this.now()
    const times = (this.failures.get(key) ?? []).filter((t) => t > now - windowMs)
    times.push(now)
    if (times.length > maxFailures) times.splice(0, times.length - maxFailures)
    this.failures.delete(key)
    if (this.failures.size >= this.maxAddresses) {
      const oldest = this.failures.keys().next()
      if (!oldest.done) this.failures.delete(oldest.value)
    }
    this.failures.set(key, times)
    return { failures: times.length, throttled: times.length >= maxFailures }
  }
}

/** The unit an address is counted as: IPv4 as is, IPv4-mapped IPv6 as IPv4, other IPv6 by its /64. */
export function addressKey(address: string | undefined): string {
  if (!address) return 'unknown'
  const bare = address.replace(/%.*$/, '') // zone id (fe80::1%eth0)
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(bare)
  if (mapped) return mapped[1]!
  if (!isIPv6(bare)) return bare
  const [left = '', right] = bare.split('::')
  const groups = (part: string): string[] => (part === '' ? [] : part.split(':'))
  const head = groups(left)
  const tail = right === undefined ? [] : groups(right)
  // An embedded IPv4 address (::1.2.3.4) takes two groups.
  const tailSize = tail.length + (tail.at(-1)?.includes('.') ? 1 : 0)
  const all = [...head, ...Array<string>(Math.max(0, 8 - head.length - tailSize)).fill('0'), ...tail]
  return `${all
    .slice(0, 4)
    .map((g) => parseInt(g, 16).toString(16))
    .join(':')}::/64`
}
