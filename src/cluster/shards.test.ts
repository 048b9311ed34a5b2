import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { existingShards, shardDir, shardsToDrain, workerConfig, workerCount } from './shards.js'
import { validateConfig } from '../config/load.js'

let dir: string | undefined
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true })
  dir = undefined
})

describe('worker shards', () => {
  it('auto is one worker per core; a number is itself', () => {
    expect(workerCount('auto', 2)).toBe(2)
    expect(workerCount('auto', 0)).toBe(1)
    expect(workerCount(3, 2)).toBe(3)
  })

  it('a shard sits beside spool.dir, so api-state.json and dead-letter/ resolve as for one process', () => {
    expect(shardDir('/data/spool', 1)).toBe('/data/spool-w1')
    expect(shardDir('/data/spool/', 0)).toBe('/data/spool-w0')
  })

  it('finds only <spool>-w<n> directories', async () => {
    dir = mkdtempSync(join(tmpdir(), 'streamgate-shards-'))
    for (const name of ['spool', 'spool-w0', 'spool-w10', 'spool-w2', 'spool-wx', 'spool-w1x', 'other-w1'])
      mkdirSync(join(dir, name))
    writeFileSync(join(dir, 'api-state.json'), '{}')
    expect(await existingShards(join(dir, 'spool'))).toEqual([
      { index: 0, dir: join(dir, 'spool-w0') },
      { index: 2, dir: join(dir, 'spool-w2') },
      { index: 10, dir: join(dir, 'spool-w10') },
    ])
    expect(await existingShards(join(dir, 'missing', 'spool'))).toEqual([])
  })

  it('every shard beyond the worker count is drained by exactly one worker; spool.dir by worker 0', () => {
    const existing = [0, 1, 2, 3, 4, 7].map((index) => ({ index, dir: `/d/spool-w${index}` }))
    const byWorker = [0, 1].map((index) => shardsToDrain('/d/spool', existing, { index, count: 2 }))
    expect(byWorker[0]).toEqual([
      { dir: '/d/spool', ownLock: false },
      { dir: '/d/spool-w2', ownLock: true },
      { dir: '/d/spool-w4', ownLock: true },
    ])
    expect(byWorker[1]).toEqual([
      { dir: '/d/spool-w3', ownLock: true },
      { dir: '/d/spool-w7', ownLock: true },
    ])
    // One process writes spool.dir itself and drains every shard.
    expect(shardsToDrain('/d/spool', existing, undefined).map((s) => s.dir)).toEqual(
      existing.map((s) => s.dir),
    )
  })

  it('a worker runs on its shard with its share of spool.maxBytes', () => {
    const { config } = validateConfig(
      {
        server: { host: '127.0.0.1', workers: 'auto' },
        spool: { dir: '/d/spool', maxBytes: 1000 },
        sinks: { out: { type: 'stdout' } },
        streams: { s: { source: 'ndjson', sinks: ['out'] } },
      },
      { env: {}, baseDir: '/' },
    )
    expect(config?.server.workers).toBe('auto')
    const own = workerConfig(config!, 1, 3)
    expect(own.spool).toMatchObject({ dir: '/d/spool-w1', maxBytes: 333 })
    expect(own.spool.highWaterBytes).toBeUndefined()
    expect(own.spool.lowWaterBytes).toBeUndefined()
    expect(own.streams).toBe(config!.streams)
  })

  it('a worker gets its share of explicit spool water marks, as of maxBytes', () => {
    const { config } = validateConfig(
      {
        server: { host: '127.0.0.1', workers: 2 },
        spool: { dir: '/d/spool', maxBytes: 1000, highWaterBytes: 900, lowWaterBytes: 601 },
        sinks: { out: { type: 'stdout' } },
        streams: { s: { source: 'ndjson', sinks: ['out'] } },
      },
      { env: {}, baseDir: '/' },
    )
    expect(config).toBeDefined()
    const own = workerConfig(config!, 0, 2)
    expect(own.spool).toMatchObject({ maxBytes: 500, highWaterBytes: 450, lowWaterBytes: 300 })
    // The whole gateway's figures stay as configured.
    expect(config!.spool).toMatchObject({ maxBytes: 1000, highWaterBytes: 900, lowWaterBytes: 601 })
  })

  it('server.workers accepts 1 to 64 or "auto"', () => {
    const check = (workers: unknown) =>
      validateConfig(
        {
          server: { host: '127.0.0.1', workers },
          sinks: { out: { type: 'stdout' } },
          streams: { s: { source: 'ndjson', sinks: ['out'] } },
        },
        { env: {}, baseDir: '/' },
      ).issues.length
    expect(check(1)).toBe(0)
    expect(check(64)).toBe(0)
    expect(check(0)).toBeGreaterThan(0)
    expect(check('all')).toBeGreaterThan(0)
    expect(check(1.5)).toBeGreaterThan(0)
  })
})
