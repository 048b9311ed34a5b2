import { describe, expect, it } from 'vitest'
import { permanentError } from '../errors.js'
import { createLogger, redactConfig } from './logger.js'

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
