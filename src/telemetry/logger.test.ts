import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { permanentError } from '../errors.js'
import { createLogger, redactConfig, RefusalLog, requestIdOf } from './logger.js'

function capture(): {
  lines: () => Record<string, unknown>[]
  text: () => string
  logger: ReturnType<typeof createLogger>
} {
  let out = ''
  const logger = createLogger('debug', { write: (chunk: string) => void (out += chunk) })
  return {
    logger,
    text: () => out,
    lines: () =>
      out
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  }
}

describe('logs mask URL credentials', () => {
  it('in the message, in fields and in nested fields', () => {
    const { logger, text, lines } = capture()
    logger.warn(
      { url: 'https://u:hunter2@relay.example/in?api_key=K3Y', nested: { list: ['https://tok123@h/'] } },
      'posting to %s failed',
      'https://h.example/?token=T0K',
    )
    expect(text()).not.toMatch(/hunter2|K3Y|tok123|T0K/)
    expect(lines()[0]).toMatchObject({
      url: 'https://u:***@relay.example/in?api_key=***',
      nested: { list: ['https://***@h/'] },
      msg: 'posting to https://h.example/?token=*** failed',
    })
  })

  it('in errors: message, stack and cause, keeping the error type for the err serializer', () => {
    const { logger, text, lines } = capture()
    const cause = new TypeError('fetch failed for https://user:s3cr3t@api.example/v1?sig=ABC')
    const err = new Error('request to https://user:s3cr3t@api.example/v1?sig=ABC failed', { cause })
    logger.error({ err }, 'sink down')
    expect(text()).not.toMatch(/s3cr3t|ABC/)
    const line = lines()[0] as { err: { type: string; message: string; stack: string } }
    expect(line.err.type).toBe('Error')
    // pino's err serializer appends the cause's message: masked too.
    expect(line.err.message).toBe(
      'request to https://user:***@api.example/v1?sig=*** failed: fetch failed for https://user:***@api.example/v1?sig=***',
    )
    expect(line.err.stack).toContain('https://user:***@api.example/v1?sig=***')
    // The logged error is a copy: the original keeps its message for the code that handles it.
    expect(err.message).toContain('s3cr3t')
  })

  it('leaves values without URLs as they are', () => {
    const { logger, lines } = capture()
    logger.info({ n: 1, ok: true, at: 'x', list: [1, 'a'] }, 'plain')
    expect(lines()[0]).toMatchObject({ n: 1, ok: true, at: 'x', list: [1, 'a'], msg: 'plain' })
  })
})

describe('sink errors', () => {
  it('carry masked URLs wherever their message goes (API lastError, /ui, dead-letter envelopes)', () => {
    expect(permanentError('403 from https://u:pw@h/p?key=k', 'auth').message).toBe(
      '403 from https://u:***@h/p?key=***',
    )
  })
})

describe('redactConfig', () => {
  it('masks URL credentials in every string, besides secret keys wholesale', () => {
    expect(
      redactConfig({
        type: 'http',
        url: 'https://user:pw@relay.example/in?api_key=k&x=1',
        headers: { authorization: 'Bearer t' },
      }),
    ).toEqual({
      type: 'http',
      url: 'https://user:***@relay.example/in?api_key=***&x=1',
      headers: { authorization: '***' },
    })
  })
})

function captureRefusals(): { log: RefusalLog; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = []
  const logger = createLogger('info', {
    write: (line: string) => {
      lines.push(JSON.parse(line) as Record<string, unknown>)
    },
  })
  return { log: new RefusalLog(logger, 3, 10_000), lines }
}

describe('RefusalLog', () => {
  beforeEach(() => {
    vi.useFakeTimers()
  })
  afterEach(() => {
    vi.useRealTimers()
  })

  it('logs each refusal until the window is full, then one summary when the window ends', () => {
    const { log, lines } = captureRefusals()
    for (let i = 0; i < 10; i++) log.refused({ stream: 's', status: 401, reason: 'unauthorized' })
    expect(lines.map((l) => l.msg)).toEqual(['request refused', 'request refused', 'request refused'])
    expect(lines[0]).toMatchObject({ level: 30, stream: 's', status: 401, reason: 'unauthorized' })
    vi.advanceTimersByTime(9_999)
    expect(lines).toHaveLength(3)
    vi.advanceTimersByTime(1)
    expect(lines[3]).toMatchObject({ level: 40, suppressed: 7, msg: 'suppressed 7 refused-request lines' })
    // A new window logs again.
    log.refused({ status: 503, reason: 'spool-full' })
    expect(lines[4]).toMatchObject({ level: 40, status: 503, msg: 'request refused' })
    expect(lines).toHaveLength(5)
  })

  it('writes no summary when nothing was left out, and summarises at close', () => {
    const { log, lines } = captureRefusals()
    log.refused({ status: 404, reason: 'unknown-stream' })
    vi.advanceTimersByTime(60_000)
    expect(lines).toHaveLength(1)
    for (let i = 0; i < 5; i++) log.refused({ status: 404, reason: 'unknown-stream' })
    log.close()
    expect(lines.at(-1)).toMatchObject({ suppressed: 2 })
    vi.advanceTimersByTime(60_000)
    expect(lines.filter((l) => l.suppressed !== undefined)).toHaveLength(1)
  })

  it('cuts long stream ids; a dropped connection (no status) is a warning', () => {
    const { log, lines } = captureRefusals()
    log.refused({ stream: 'x'.repeat(500), status: 404, reason: 'unknown-stream' })
    log.refused({ reason: 'max-connections', remoteAddress: '10.0.0.1' })
    expect(lines[0]!.stream).toBe(`${'x'.repeat(128)}…`)
    expect(lines[1]).toMatchObject({ level: 40, reason: 'max-connections', remoteAddress: '10.0.0.1' })
  })
})

describe('requestIdOf', () => {
  it('keeps plain ids only', () => {
    expect(requestIdOf({ 'x-request-id': 'abc-123_x:y.z' })).toBe('abc-123_x:y.z')
    expect(requestIdOf({ 'x-request-id': 'has space' })).toBeUndefined()
    expect(requestIdOf({ 'x-request-id': 'a'.repeat(129) })).toBeUndefined()
    expect(requestIdOf({ 'x-request-id': ['a', 'b'] })).toBeUndefined()
    expect(requestIdOf({})).toBeUndefined()
  })
})
