import { describe, expect, it } from 'vitest'
import { addressKey, LoginThrottle } from './login-throttle.js'

function clock(start = 1_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start
  return { now: () => t, advance: (ms) => (t += ms) }
}

describe('LoginThrottle', () => {
  it('refuses an address after maxFailures within the window, until the oldest failure leaves it', () => {
    const c = clock()
    const throttle = new LoginThrottle({ maxFailures: 3, windowMs: 60_000 }, { now: c.now })
    expect(throttle.fail('10.0.0.1')).toEqual({ failures: 1, throttled: false })
    c.advance(10_000)
    expect(throttle.fail('10.0.0.1')).toEqual({ failures: 2, throttled: false })
    expect(throttle.retryAfterSeconds('10.0.0.1')).toBe(0)
    c.advance(10_000)
    expect(throttle.fail('10.0.0.1')).toEqual({ failures: 3, throttled: true })
    // The first failure was 20 s ago: it leaves the 60 s window in 40 s.
    expect(throttle.retryAfterSeconds('10.0.0.1')).toBe(40)
    // Other addresses are not affected.
    expect(throttle.retryAfterSeconds('10.0.0.2')).toBe(0)
    c.advance(39_500)
    expect(throttle.retryAfterSeconds('10.0.0.1')).toBe(1)
    c.advance(500)
    expect(throttle.retryAfterSeconds('10.0.0.1')).toBe(0)
    // One more failure: the two others (at 10 s and 20 s) are still in the window, so three again; the
    // one at 10 s leaves it in 10 s.
    expect(throttle.fail('10.0.0.1')).toEqual({ failures: 3, throttled: true })
    expect(throttle.retryAfterSeconds('10.0.0.1')).toBe(10)
  })

  it('failures older than the window do not count', () => {
    const c = clock()
    const throttle = new LoginThrottle({ maxFailures: 2, windowMs: 1_000 }, { now: c.now })
    throttle.fail('a')
    c.advance(1_000)
    expect(throttle.fail('a')).toEqual({ failures: 1, throttled: false })
    expect(throttle.retryAfterSeconds('a')).toBe(0)
  })

  it('maxFailures 0 turns it off', () => {
    const throttle = new LoginThrottle({ maxFailures: 0, windowMs: 60_000 })
    for (let i = 0; i < 100; i++) throttle.fail('a')
    expect(throttle.retryAfterSeconds('a')).toBe(0)
    expect(throttle.size).toBe(0)
  })

  it('tracks at most maxAddresses, forgetting the address whose last failure is the oldest', () => {
    const c = clock()
    const throttle = new LoginThrottle({ maxFailures: 2, windowMs: 60_000 }, { now: c.now, maxAddresses: 3 })
    throttle.fail('a')
    throttle.fail('a') // a is throttled
    c.advance(1)
    throttle.fail('b')
    c.advance(1)
    throttle.fail('c')
    c.advance(1)
    throttle.fail('a') // a is touched again: now b is the oldest
    throttle.fail('d') // full: b goes
    expect(throttle.size).toBe(3)
    expect(throttle.retryAfterSeconds('a')).toBeGreaterThan(0)
    // b was forgotten: a second failure is its first again.
    expect(throttle.fail('b')).toEqual({ failures: 1, throttled: false })
    expect(throttle.size).toBe(3)
    for (let i = 0; i < 10_000; i++) throttle.fail(`10.1.${i >> 8}.${i & 255}`)
    expect(throttle.size).toBe(3)
  })
})

describe('addressKey', () => {
  it('IPv4 as is, IPv4-mapped IPv6 as IPv4, IPv6 by its /64', () => {
    expect(addressKey('192.0.2.7')).toBe('192.0.2.7')
    expect(addressKey('::ffff:192.0.2.7')).toBe('192.0.2.7')
    expect(addressKey('2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:2::/64')
    expect(addressKey('2001:0db8:0001:0002:ffff:0:0:9')).toBe('2001:db8:1:2::/64')
    expect(addressKey('2001:db8::1')).toBe('2001:db8:0:0::/64')
    expect(addressKey('::1')).toBe('0:0:0:0::/64')
    expect(addressKey('fe80::1%eth0')).toBe('fe80:0:0:0::/64')
    expect(addressKey('2001:db8:1:2::192.0.2.1')).toBe('2001:db8:1:2::/64')
    expect(addressKey(undefined)).toBe('unknown')
  })
})
