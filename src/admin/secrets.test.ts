import { describe, expect, it } from 'vitest'
import { masked, restoreSecrets } from './secrets.js'

describe('secrets', () => {
  const stored = {
    type: 'kafka',
    topic: 't',
    sasl: { mechanism: 'plain', username: 'u', password: 'p4ss' },
    headers: { 'x-a': 'one' },
    auth: { clientId: 'id', clientSecret: 's3cret', tokenUrl: 'https://ims/token' },
  }

  it('masks passwords, client secrets, tokens and headers, not token URLs or ids', () => {
    expect(masked(stored)).toEqual({
      type: 'kafka',
      topic: 't',
      sasl: { mechanism: 'plain', username: 'u', password: '***' },
      headers: { 'x-a': '***' },
      auth: { clientId: 'id', clientSecret: '***', tokenUrl: 'https://ims/token' },
    })
    expect(masked({ credentials: { accessKeyId: 'AK', secretAccessKey: 'SK', sessionToken: 'ST' } })).toEqual(
      {
        credentials: { accessKeyId: '***', secretAccessKey: '***', sessionToken: '***' },
      },
    )
  })

  it('the mask sent back restores the stored secret at the same place', () => {
    const { value, issues } = restoreSecrets(masked(stored), stored)
    expect(issues).toEqual([])
    expect(value).toEqual(stored)
  })

  it('the mask outside a secret is an ordinary value', () => {
    expect(restoreSecrets({ topic: '***' }, { topic: 'x' }).value).toEqual({ topic: '***' })
  })

  it('a mask with nothing stored behind it is an issue with its pointer', () => {
    const { issues } = restoreSecrets(
      { headers: { 'x-a': '***', 'x/b': '***' } },
      { headers: { 'x-a': 'one' } },
    )
    expect(issues).toEqual([expect.objectContaining({ pointer: '/headers/x~1b' })])
  })

  it("emnify's header list form refers to stored headers by name", () => {
    const { value, issues } = restoreSecrets(
      { auth: { headers: ['X-Token:***', 'X-New:v'] } },
      { auth: { headers: { 'X-Token': 'tok' } } },
    )
    expect(issues).toEqual([])
    expect(value).toEqual({ auth: { headers: ['X-Token:tok', 'X-New:v'] } })
  })

  describe('credentials inside URLs', () => {
    const sink = { type: 'http', url: 'https://relay:pw0rd@relay.example/in?api_key=K1&x=1&token=T2' }

    it('are masked in answers', () => {
      expect(masked(sink)).toEqual({
        type: 'http',
        url: 'https://relay:***@relay.example/in?api_key=***&x=1&token=***',
      })
    })

    it('sent back masked and unchanged, keep the stored URL', () => {
      const { value, issues } = restoreSecrets(masked(sink), sink)
      expect(issues).toEqual([])
      expect(value).toEqual(sink)
    })

    it('sent back masked with another path or parameter, keep the stored credentials for the same host', () => {
      const { value, issues } = restoreSecrets(
        { url: 'https://relay:***@relay.example/v2?x=2&api_key=***&token=***' },
        sink,
      )
      expect(issues).toEqual([])
      expect(value).toEqual({ url: 'https://relay:pw0rd@relay.example/v2?x=2&api_key=K1&token=T2' })
    })

    it('a changed URL with its own credentials replaces the stored one', () => {
      const url = 'https://relay:n3w@other.example/in?api_key=K9'
      expect(restoreSecrets({ url }, sink)).toEqual({ value: { url }, issues: [] })
    })

    it('a mask towards another host, another user or with nothing stored is an issue, never stored', () => {
      for (const url of [
        'https://relay:***@evil.example/in?api_key=***',
        'https://admin:***@relay.example/in',
        'https://relay.example/in?signature=***',
      ]) {
        const { issues } = restoreSecrets({ url }, sink)
        expect(issues.length).toBeGreaterThan(0)
        expect(issues.map((i) => i.pointer)).toEqual(issues.map(() => '/url'))
      }
      expect(restoreSecrets({ url: 'https://u:***@h/' }, undefined).issues).toHaveLength(1)
    })
  })
})
