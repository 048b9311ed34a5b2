import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { isSecretParam, maskUrlCredentials, urlCredentials } from './url-credentials.js'

describe('maskUrlCredentials', () => {
  it('masks the password of the userinfo and keeps the user name', () => {
    expect(maskUrlCredentials('https://user:p%40ss@relay.example:8443/in')).toBe(
      'https://user:***@relay.example:8443/in',
    )
  })

  it('masks a bare token in the userinfo', () => {
    expect(maskUrlCredentials('https://ghp_abc123@git.example/repo')).toBe('https://***@git.example/repo')
  })

  it.each(['api_key', 'token', 'key', 'sig', 'signature', 'password', 'secret'])(
    'masks the query parameter %s, whatever its case',
    (name) => {
      for (const spelled of [name, name.toUpperCase(), name[0]!.toUpperCase() + name.slice(1)])
        expect(maskUrlCredentials(`https://h/p?a=1&${spelled}=v4lue&b=2`)).toBe(
          `https://h/p?a=1&${spelled}=***&b=2`,
        )
    },
  )

  it('masks parameters whose names end in a secret word, not ones that merely contain it', () => {
    expect(
      maskUrlCredentials(
        'https://b.s3.example/o?X-Amz-Credential=AK%2F1&X-Amz-Signature=abc&X-Amz-Security-Token=t&access_token=x&clientSecret=y&apiKey=z',
      ),
    ).toBe(
      'https://b.s3.example/o?X-Amz-Credential=***&X-Amz-Signature=***&X-Amz-Security-Token=***&access_token=***&clientSecret=***&apiKey=***',
    )
    expect(maskUrlCredentials('https://h/p?monkey=1&keyboard=2&tokenUrl=3&page=4')).toBe(
      'https://h/p?monkey=1&keyboard=2&tokenUrl=3&page=4',
    )
    expect(isSecretParam('partition_key')).toBe(true) // a false positive only costs a masked value
    expect(isSecretParam('monkey')).toBe(false)
  })

  it('masks secrets in the fragment (OAuth implicit flow) and a percent-encoded parameter name', () => {
    expect(maskUrlCredentials('https://app/cb#state=1&access_token=abc')).toBe(
      'https://app/cb#state=1&access_token=***',
    )
    expect(maskUrlCredentials('https://h/?api%5Fkey=abc')).toBe('https://h/?api%5Fkey=***')
  })

  it('finds URLs inside longer text (error messages) and leaves the rest of the text alone', () => {
    expect(
      maskUrlCredentials(
        'request to https://u:pw@a.example/x?token=abc failed, reason: connect ECONNREFUSED; retry https://b.example/?sig=zz.',
      ),
    ).toBe(
      'request to https://u:***@a.example/x?token=*** failed, reason: connect ECONNREFUSED; retry https://b.example/?sig=***.',
    )
    expect(maskUrlCredentials('{"url":"kafka://k:s3cret@broker:9092"}')).toBe(
      '{"url":"kafka://k:***@broker:9092"}',
    )
  })

  it('leaves URLs without credentials, empty values and non-URLs unchanged', () => {
    for (const text of [
      'https://host.example/path?x=1#frag',
      'https://user:@host/',
      'https://h/?token=&key',
      'user:pass@host:9092',
      'token=abc',
      '',
    ])
      expect(maskUrlCredentials(text)).toBe(text)
  })

  it('lists the credential values (for the placeholder check)', () => {
    expect(urlCredentials('https://u:pw@h/?api_key=k1&x=2 and https://t@h2/')).toEqual(['pw', 'k1', 't'])
  })

  it('never leaves a generated credential in the masked text', () => {
    const secret = fc.stringMatching(/^[A-Za-z0-9]{12,24}$/)
    fc.assert(
      fc.property(
        secret,
        secret,
        fc.constantFrom('api_key', 'TOKEN', 'Signature', 'x-amz-security-token'),
        fc.string(),
        (password, value, param, prose) => {
          const text = `${prose} https://user:${password}@h.example/p?a=1&${param}=${value} ${prose}`
          const out = maskUrlCredentials(text)
          expect(out).not.toContain(password)
          expect(out).not.toContain(value)
          expect(out).toContain('https://user:***@h.example/p?a=1&')
        },
      ),
    )
  })
})
