import { describe, expect, it } from 'vitest'
// The sinks' own checks (each descriptor's `check`: src/sinks/adobe/check.ts, src/sinks/domo/check.ts), run by
// the one config check as check-config, serve and the management API do.
import { validateWithComponents } from '../pipeline/config-check.js'

const issuesOf = (sink: Record<string, unknown>): { path: string; message: string }[] =>
  validateWithComponents({ sinks: { s: sink }, streams: {} }, { env: {} }).issues

const domo = { type: 'domo', columns: ['id', 'n'] }
const publicDomo = { ...domo, clientId: 'c', clientSecret: 'x', streamId: 42 }
const instanceDomo = {
  ...domo,
  api: 'instance',
  instanceUrl: 'https://acme.domo.com',
  developerToken: 't',
  streamId: 42,
}

describe('domo sink keys', () => {
  it('accepts the public API (the default) and the instance API with their own credentials', () => {
    expect(issuesOf(publicDomo)).toEqual([])
    expect(issuesOf(instanceDomo)).toEqual([])
    const { config } = validateWithComponents({ sinks: { s: publicDomo }, streams: {} }, { env: {} })
    expect(config!.sinks.s).toMatchObject({ api: 'public', updateMethod: 'APPEND' })
  })

  it('each API needs its credentials and refuses the other’s', () => {
    expect(issuesOf({ ...domo, streamId: 1 })).toEqual([
      { path: 'sinks.s.clientId', message: 'is required with api "public"' },
      { path: 'sinks.s.clientSecret', message: 'is required with api "public"' },
    ])
    expect(issuesOf({ ...instanceDomo, developerToken: undefined, clientId: 'c' })).toEqual([
      { path: 'sinks.s.developerToken', message: 'is required with api "instance"' },
      { path: 'sinks.s.clientId', message: 'only applies to api "public"' },
    ])
  })

  it('streamId and create are alternatives; create.columns matches columns', () => {
    const create = { name: 'Leonhard Euler Party', columns: ['Friend', { name: 'Attending', type: 'LONG' }] }
    expect(issuesOf({ ...publicDomo, streamId: undefined, create })).toEqual([])
    expect(issuesOf({ ...publicDomo, create })).toEqual([
      { path: 'sinks.s', message: 'set either "streamId" or "create", not both' },
    ])
    // Neither: a sink waiting for `streamgate connect domo` (it reports itself as not connected).
    expect(issuesOf({ ...publicDomo, streamId: undefined })).toEqual([])
    expect(
      issuesOf({ ...publicDomo, streamId: undefined, create: { name: 'x', columns: ['only one'] } }),
    ).toEqual([
      { path: 'sinks.s.create.columns', message: 'has 1 columns but "columns" maps 2 record fields' },
    ])
    expect(
      issuesOf({
        ...publicDomo,
        streamId: undefined,
        create: { name: 'x', columns: ['a', { name: 'b', type: 'BLOB' }] },
      }).length,
    ).toBeGreaterThan(0)
  })

  it('updateMethod is APPEND or REPLACE', () => {
    expect(issuesOf({ ...publicDomo, updateMethod: 'REPLACE' })).toEqual([])
    expect(issuesOf({ ...publicDomo, updateMethod: 'UPSERT' })).toEqual([
      { path: 'sinks.s.updateMethod', message: 'must be one of "APPEND", "REPLACE"' },
    ])
  })
})

describe('adobe sink keys', () => {
  const adobe = {
    type: 'adobe',
    inletUrl: 'https://dcs.adobedc.net/collection/abc',
    schemaRef: 'https://ns.adobe.com/t/schemas/s',
  }

  it('syncValidation with the batch endpoint (the default mode) is a config error naming the key', () => {
    const expected = [
      {
        path: 'sinks.s.syncValidation',
        message:
          'the batch endpoint does not support synchronous validation; use mode "single" or set it to false',
      },
    ]
    expect(issuesOf({ ...adobe, syncValidation: true })).toEqual(expected)
    expect(issuesOf({ ...adobe, mode: 'batch', syncValidation: true })).toEqual(expected)
    expect(issuesOf({ ...adobe, mode: 'single', syncValidation: true })).toEqual([])
    expect(issuesOf({ ...adobe, mode: 'batch', syncValidation: false })).toEqual([])
  })

  it('inletUrl may be unset: the sink waits for `streamgate connect adobe`', () => {
    const { inletUrl: _inletUrl, ...unconnected } = adobe
    expect(issuesOf(unconnected)).toEqual([])
  })
})
