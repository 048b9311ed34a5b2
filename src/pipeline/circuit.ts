import type { CircuitConfig } from '../config/types.js'

// A circuit breaker per sink, shared by every lane (and `durability: none` delivery) that writes to it.
//
//   closed     every attempt goes through. `failureThreshold` consecutive transient failures open it.
//   open       no attempt goes through: callers of admit() wait. The cool-down is openMs·2^(trips-1),
//              capped at maxOpenMs, where `trips` counts openings since the last success.
//   half-open  the cool-down is over: exactly one attempt (the probe) goes through, the others keep waiting.
//              A success closes the circuit (and wakes them all); a failure opens it again, for longer.
//
// What counts: a write that delivered at least one record, or that the sink answered with a permanent
// error (retrying cannot help, so there is nothing to protect), is a success. A write that threw a
// retriable error, or delivered nothing and left records to retry, is a failure. An attempt cut short by
// shutdown is neither. The breaker never drops or reorders records: it only delays the next attempt, so the
// delivery layer's retry semantics (only failed entries again, permanent errors to the dead-letter sink)
// are unchanged; the breaker spares a dead sink the traffic and the logs of every lane hammering it.

export type CircuitState = 'closed' | 'open' | 'half-open'

export const DEFAULT_CIRCUIT: Readonly<CircuitConfig> = Object.freeze({
  failureThreshold: 5,
  openMs: 30_000,
  maxOpenMs: 120_000,
})

/** One attempt admitted by the breaker; exactly one of its methods is called when the attempt is over. */
export interface CircuitAttempt {
  succeeded(): void
  failed(): void
  /** The attempt ended without a verdict (aborted): a probe's slot goes to the next caller. */
  abandoned(): void
}

export interface CircuitEvents {
  /** Called on every state change the breaker itself makes (closed → open → half-open → closed …). */
  onChange?(state: CircuitState, info: { failures: number; openMs: number }): void
  /** Clock in ms (tests). */
  now?: () => number
}

export interface CircuitSnapshot {
  state: CircuitState
  /** Consecutive failed attempts. */
  failures: number
  /** When the current cool-down ends (ms since the epoch); only while open. */
  retryAt?: number
}

export class CircuitBreaker {
  private readonly policy: CircuitConfig
  private failures = 0
  private trips = 0
  /** 0 while closed; else when the cool-down ends. */
  private openUntil = 0
  private probing = false
  private readonly waiters = new Set<() => void>()
  private readonly now: () => number

  constructor(
    policy: Partial<CircuitConfig> = {},
    private readonly events: CircuitEvents = {},
  ) {
    this.policy = { ...DEFAULT_CIRCUIT, ...policy }
    this.now = events.now ?? ((): number => Date.now())
  }

  get state(): CircuitState {
    if (this.openUntil === 0) return 'closed'
    return this.probing || this.now() >= this.openUntil ? 'half-open' : 'open'
  }

  snapshot(): CircuitSnapshot {
    const state = this.state
    return state === 'open'
      ? { state, failures: this.failures, retryAt: this.openUntil }
      : { state, failures: this.failures }
  }

  /** Ms until the cool-down ends; 0 unless open. */
  get remainingMs(): number {
    return this.state === 'open' ? Math.max(0, this.openUntil - this.now()) : 0
  }

  /**
   * Resolves when an attempt may be made: at once while closed (or when the breaker is disabled), after
   * the cool-down while open, and for one caller at a time while half-open. Rejects when `signal` aborts.
   */
  async admit(signal?: AbortSignal): Promise<CircuitAttempt> {
    for (;;) {
      signal?.throwIfAborted()
      if (this.openUntil === 0) return this.attempt(false)
      const wait = this.openUntil - this.now()
      if (wait <= 0 && !this.probing) {
        this.probing = true
        this.events.onChange?.('half-open', { failures: this.failures, openMs: 0 })
        return this.attempt(true)
      }
      await this.waitForChange(wait > 0 ? wait : undefined, signal)
    }
  }

  private attempt(probe: boolean): CircuitAttempt {
    let done = false
    const once =
      (fn: () => void): (() => void) =>
      () => {
        if (done) return
        done = true
        fn()
      }
    return {
      succeeded: once(() => this.onSuccess()),
      failed: once(() => this.onFailure(probe)),
      abandoned: once(() => {
        if (!probe) return
        this.probing = false
        this.wake()
      }),
    }
  }

  private onSuccess(): void {
    const wasOpen = this.openUntil !== 0
    this.failures = 0
    this.trips = 0
    this.openUntil = 0
    this.probing = false
    if (wasOpen) {
      this.events.onChange?.('closed', { failures: 0, openMs: 0 })
      this.wake()
    }
  }

  private onFailure(probe: boolean): void {
    // Late verdicts of attempts that started before the circuit opened do not extend the cool-down.
    if (this.openUntil !== 0 && !probe) return
    this.failures++
    const threshold = this.policy.failureThreshold
    if (!probe && (threshold <= 0 || this.failures < threshold)) return
    this.trips++
    const openMs = Math.min(this.policy.maxOpenMs, this.policy.openMs * 2 ** Math.min(this.trips - 1, 30))
    this.openUntil = this.now() + openMs
    this.probing = false
    this.events.onChange?.('open', { failures: this.failures, openMs })
    this.wake() // waiters re-read the (new) cool-down
  }

  private wake(): void {
    const waiters = [...this.waiters]
    this.waiters.clear()
    for (const w of waiters) w()
  }

  /** Until the breaker changes, `ms` pass (when given) or `signal` aborts (rejects). */
  private waitForChange(ms: number | undefined, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined
      const cleanup = (): void => {
        if (timer) clearTimeout(timer)
        this.waiters.delete(finish)
        signal?.removeEventListener('abort', onAbort)
      }
      const finish = (): void => {
        cleanup()
        resolve()
      }
      const onAbort = (): void => {
        cleanup()
        reject(signal!.reason as Error)
      }
      this.waiters.add(finish)
      if (ms !== undefined) timer = setTimeout(finish, Math.max(1, Math.ceil(ms)))
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }
}
