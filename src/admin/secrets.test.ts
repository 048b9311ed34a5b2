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
})
