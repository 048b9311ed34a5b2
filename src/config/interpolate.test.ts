import { describe, expect, it } from 'vitest'
import { interpolate, type InterpolationError } from './interpolate.js'

describe('interpolate', () => {
  it('substitutes variables and defaults, and leaves Azion $variables alone', () => {
    const errors: InterpolationError[] = []
    const out = interpolate(
      { a: '${TOKEN}', b: ['x-${MISSING:-fallback}'], c: '$dataset', d: '$${LITERAL}', n: 3 },
      { TOKEN: 's3cr3t' },
      errors,
    )
    expect(errors).toEqual([])
    expect(out).toEqual({ a: 's3cr3t', b: ['x-fallback'], c: '$dataset', d: '${LITERAL}', n: 3 })
  })

  it('reports unset variables with their path', () => {
    const errors: InterpolationError[] = []
    interpolate({ streams: { s: { auth: { headers: { X: '${NOPE}' } } } } }, {}, errors)
    expect(errors).toEqual([
      { path: 'streams.s.auth.headers.X', message: expect.stringContaining('NOPE is not set') as string },
    ])
  })

  it('keeps a __proto__ key as data', () => {
    const out = interpolate(JSON.parse('{"__proto__": {"polluted": true}}'), {}, []) as Record<
      string,
      unknown
    >
    expect(Object.keys(out)).toEqual(['__proto__'])
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
  })
})
