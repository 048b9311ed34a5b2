import { describe, expect, it } from 'vitest'
import { validateConfig } from '../config/load.js'
import type { GatewayConfig } from '../config/types.js'
import { validateLiteralConfig } from './candidate.js'

// Management-API writes are checked as whole candidate configs by the same validation as config files:
// what serve and check-config refuse, the API refuses too.

function running(host: string): GatewayConfig {
  const { config, issues } = validateConfig(
    {
      server: { host },
      dataDir: '/srv/sg',
      sinks: { out: { type: 'file', dir: '/srv/sg/out' } },
      streams: { s: { source: 'ndjson', auth: { headers: { 'X-Key': 'k-5e1' } }, sinks: ['out'] } },
    },
    { env: {} },
  )
  expect(issues).toEqual([])
  return config!
}

describe('validateLiteralConfig (API candidates)', () => {
  it('refuses a stream without auth or with a placeholder secret on a public listener', () => {
    const config = running('0.0.0.0')
    const candidate = {
      ...config,
      streams: {
        ...config.streams,
        open: { ...config.streams.s!, auth: {} },
        weak: { ...config.streams.s!, auth: { headers: { 'X-Key': 'change-me' } } },
      },
    }
    expect(validateLiteralConfig(candidate).issues.map((i) => i.path)).toEqual([
      'streams.open.auth',
      'streams.weak.auth.headers.X-Key',
    ])
    // The same candidate on a loopback listener is fine.
    expect(validateLiteralConfig({ ...candidate, server: running('127.0.0.1').server }).issues).toEqual([])
  })

  it('refuses a file sink outside dataDir', () => {
    const config = running('127.0.0.1')
    const candidate = { ...config, sinks: { ...config.sinks, evil: { ...config.sinks.out!, dir: '/etc' } } }
    expect(validateLiteralConfig(candidate).issues).toEqual([
      { path: 'sinks.evil.dir', message: 'must be inside dataDir "/srv/sg" (resolves to "/etc")' },
    ])
  })
})
