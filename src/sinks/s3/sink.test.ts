import { randomBytes } from 'node:crypto'
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gunzipSync } from 'node:zlib'
import { afterAll, describe, expect, it } from 'vitest'
import type { S3SinkConfig } from '../../config/types.js'
import type { SinkRecord } from '../../records/record.js'
import { createLogger } from '../../telemetry/logger.js'
import { MemoryS3, s3ServiceError as serviceError } from '../../../test/support/fakes/s3.js'
import { S3_DEFAULT_KEY, S3_MIN_PART_BYTES, S3_PART_BYTES, S3Sink, classifyS3Error } from './sink.js'

const logger = createLogger('silent')

const config = (extra: Partial<S3SinkConfig> = {}): S3SinkConfig => ({
  type: 's3',
  bucket: 'unit',
  region: 'us-east-1',
  forcePathStyle: true,
  key: S3_DEFAULT_KEY,
  compression: 'gzip',
  maxObjectBytes: 64 * 1024 * 1024,
  maxObjectRecords: 1_000_000,
  maxObjectAgeMs: 300_000,
  partBytes: S3_PART_BYTES,
  timeoutMs: 1_000,
  retry: { initialMs: 1, maxMs: 1, maxAttempts: 0 },
  ...extra,
})

describe('s3 sink limits', () => {
  it('are the roll-over settings: one batch is one object', () => {
    const sink = new S3Sink(
      's',
      config({ maxObjectBytes: 1000, maxObjectRecords: 10, maxObjectAgeMs: 1234 }),
      {
        logger,
      },
    )
    expect(sink.limits).toEqual({
      maxBatchBytes: 1000,
      maxBatchRecords: 10,
      lingerMs: 1234,
      maxRecordBytes: 1000,
    })
  })

  it('the common batch keys can lower them, never raise them', () => {
    const lowered = new S3Sink('s', config({ maxBatchBytes: 500, maxBatchRecords: 50, lingerMs: 100 }), {
      logger,
    })
    expect(lowered.limits).toMatchObject({ maxBatchBytes: 500, maxBatchRecords: 50, lingerMs: 100 })
    const raised = new S3Sink(
      's',
      config({ maxBatchBytes: 1e12, maxBatchRecords: 1e9, lingerMs: 1e9, maxObjectAgeMs: 1234 }),
      { logger },
    )
    expect(raised.limits).toMatchObject({
      maxBatchBytes: 64 * 1024 * 1024,
      maxBatchRecords: 1_000_000,
      lingerMs: 1234,
    })
  })

  it('refuses a key template without {{uuid}} (objects would overwrite each other)', () => {
    expect(
      () => new S3Sink('lake', config({ key: '{{stream}}/{{yyyy}}/{{HH}}.ndjson' }), { logger }),
    ).toThrow('sinks.lake.key must contain {{uuid}}')
    expect(() => new S3Sink('lake', config({ key: 'x/{{ uuid }}' }), { logger })).not.toThrow()
  })
})

describe('classifyS3Error', () => {
  it.each([
    ['NoSuchBucket', 404, false, 'unknown-bucket'],
    ['NotFound', 404, false, 'unknown-bucket'],
    ['AccessDenied', 403, false, 'unauthorized'],
    ['InvalidAccessKeyId', 403, false, 'unauthorized'],
    ['SignatureDoesNotMatch', 403, false, 'unauthorized'],
    ['Forbidden', 403, false, 'unauthorized'],
    ['PermanentRedirect', 301, false, 'wrong-region'],
    ['SlowDown', 503, true, 'throttled'],
    ['ServiceUnavailable', 503, true, 'unavailable'],
    ['InternalError', 500, true, 'server-error'],
    ['RequestTimeout', 400, true, 'timeout'],
    ['ExpiredToken', 400, true, 'credentials-expired'],
    ['BadDigest', 400, true, 'corrupted-in-transit'],
    ['SomethingNew', 502, true, 'server-error'],
    ['SomethingNew', 400, false, 'rejected'],
  ] as const)('%s (%i) → retriable %s, %s', (name, status, retriable, reason) => {
    expect(classifyS3Error(serviceError(name, status))).toMatchObject({ retriable, reason })
  })

  it('network failures are transient; programming errors are not', () => {
    expect(classifyS3Error(Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }))).toMatchObject({
      retriable: true,
      reason: 'network',
    })
    expect(classifyS3Error(new RangeError('bad'))).toMatchObject({ retriable: false, reason: 'internal' })
  })
})

// ---- the object writer against an S3 held in memory (test/support/fakes/s3.ts) ------------------------

const tempDirs: string[] = []
afterAll(() => {
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true })
})
const stateDir = (): string => {
  const dir = mkdtempSync(join(tmpdir(), 'sg-s3-state-'))
  tempDirs.push(dir)
  return dir
}

const line = (i: number, pad = 0): SinkRecord => ({
  stream: 'usage',
  payload: Buffer.from(`{"i":${i},"id":9007199254740993${pad ? `,"p":"${'x'.repeat(pad)}"` : ''}}`),
  receivedAtMs: Date.UTC(2026, 11, 2, 10),
})

/** Random base64: gzip keeps ~¾ of it, so a few MiB of records stay several MiB. */
const noise = (bytes: number): string => randomBytes(bytes).toString('base64').slice(0, bytes)

/** An s3 sink answered by a MemoryS3; its state dir is a fresh one unless given (null: none). */
function memorySink(extra: Partial<S3SinkConfig> = {}, given?: string | null) {
  const dir = given === null ? undefined : (given ?? stateDir())
  const sink = new S3Sink('lake', config(extra), { logger, ...(dir !== undefined ? { stateDir: dir } : {}) })
  const s3 = new MemoryS3()
  s3.attach(sink)
  return { sink, s3, dir }
}

const ledgerFiles = (dir: string): string[] => {
  try {
    return readdirSync(join(dir, 'multipart-uploads'))
  } catch {
    return []
  }
}

describe('s3 object writer (staged pieces, memory S3)', () => {
  it('uploads parts of exactly partBytes while pieces arrive; the object is the NDJSON of every piece', async () => {
    const { sink, s3, dir } = memorySink({ compression: 'none', partBytes: S3_MIN_PART_BYTES })
    const writer = sink.staging.begin('usage/lake')
    const records = Array.from({ length: 12_000 }, (_, i) => line(i, 1_000))
    const expected = Buffer.concat(records.flatMap((r) => [r.payload, Buffer.from('\n')]))
    let written = 0
    for (let i = 0; i < records.length; i += 1_000) {
      const piece = records.slice(i, i + 1_000)
      await writer.write(piece, AbortSignal.timeout(5_000))
      written += piece.reduce((n, r) => n + r.payload.length + 1, 0)
      // Never a part's worth waiting: everything written is uploaded but for less than one part.
      const uploaded = [...s3.uploads.values()].flatMap((u) => [...u.parts.values()])
      expect(written - uploaded.reduce((n, p) => n + p.length, 0)).toBeLessThan(S3_MIN_PART_BYTES)
    }
    // The upload is recorded while it is in progress (the record is written before it is created).
    expect(s3.inProgress()).toHaveLength(1)
    expect(ledgerFiles(dir!)).toHaveLength(1)
    expect(s3.objects.size).toBe(0)
    await writer.commit(AbortSignal.timeout(5_000))
    expect(ledgerFiles(dir!)).toEqual([])
    expect(s3.inProgress()).toEqual([])
    const [key, object] = [...s3.objects][0]!
    expect(key).toMatch(/^unit\/usage\/dt=2026-12-02\/hour=10\/[0-9a-f-]{36}\.ndjson$/)
    expect(object.parts).toBe(Math.ceil(expected.length / S3_MIN_PART_BYTES))
    expect(object.body.equals(expected)).toBe(true)
    expect(s3.commands[0]).toBe('CreateMultipartUploadCommand')
    expect(s3.commands.at(-1)).toBe('CompleteMultipartUploadCommand')
  })

  it.each(['none', 'gzip'] as const)(
    'copies a piece before write() returns (compression %s): the lane may let go of its records at once',
    async (compression) => {
      const { sink, s3 } = memorySink({ compression, partBytes: S3_MIN_PART_BYTES })
      const writer = sink.staging.begin('usage/lake')
      const expected: Buffer[] = []
      // 1,000-byte records in pieces of 1,000: pieces cross part boundaries (5 MiB) part-way through.
      for (let i = 0; i < 12_000; i += 1_000) {
        const piece = Array.from({ length: 1_000 }, (_, j) => ({
          ...line(i + j),
          payload: Buffer.from(`{"n":"${noise(1_000)}"}`),
        }))
        for (const r of piece) expected.push(Buffer.from(r.payload), Buffer.from('\n'))
        const writing = writer.write(piece, AbortSignal.timeout(5_000))
        // What a spool read buffer reused (or a lane's next piece) would do to the bytes once write returned.
        for (const r of piece) r.payload.fill(0x21)
        await writing
      }
      await writer.commit(AbortSignal.timeout(5_000))
      const [stored] = [...s3.objects.values()]
      expect(stored!.parts).toBeGreaterThanOrEqual(2)
      const body = compression === 'gzip' ? gunzipSync(stored!.body) : stored!.body
      expect(body.equals(Buffer.concat(expected))).toBe(true)
    },
  )

  it('a committed object leaves its part buffer to the next object; a discarded one does not', async () => {
    const { sink, s3 } = memorySink({ compression: 'none', partBytes: S3_MIN_PART_BYTES })
    const bodies: Buffer[] = []
    for (let o = 0; o < 3; o++) {
      const writer = sink.staging.begin('usage/lake')
      const records = Array.from({ length: 7_000 }, (_, i) => line(o * 10_000 + i, 1_000))
      for (let i = 0; i < records.length; i += 1_000)
        await writer.write(records.slice(i, i + 1_000), AbortSignal.timeout(5_000))
      await writer.commit(AbortSignal.timeout(5_000))
      bodies.push(Buffer.concat(records.flatMap((r) => [r.payload, Buffer.from('\n')])))
    }
    // Every object intact although the later ones were filled into the first one's buffer.
    const stored = [...s3.objects.values()]
    expect(stored.map((o) => o.parts)).toEqual([2, 2, 2])
    stored.forEach((o, i) => expect(o.body.equals(bodies[i]!)).toBe(true))
    const spare = sink.takePart()
    expect(spare?.length).toBe(S3_MIN_PART_BYTES)
    expect(sink.takePart()).toBeUndefined()

    s3.failures.push({
      command: 'CompleteMultipartUploadCommand',
      nth: 4,
      error: serviceError('InternalError', 500),
    })
    const failing = sink.staging.begin('usage/lake')
    await failing.write(
      Array.from({ length: 7_000 }, (_, i) => line(i, 1_000)),
      AbortSignal.timeout(5_000),
    )
    await expect(failing.commit(AbortSignal.timeout(5_000))).rejects.toMatchObject({ retriable: true })
    expect(sink.takePart()).toBeUndefined()
  })

  it('gzip streams through: a small object is one PutObject with its record count, a large one multipart', async () => {
    const { sink, s3 } = memorySink()
    const small = sink.staging.begin('usage/lake')
    const records = Array.from({ length: 30 }, (_, i) => line(i))
    for (let i = 0; i < 30; i += 7) await small.write(records.slice(i, i + 7), AbortSignal.timeout(5_000))
    await small.commit(AbortSignal.timeout(5_000))
    expect(s3.commands).toEqual(['PutObjectCommand'])
    const [object] = [...s3.objects.values()]
    expect(object!.metadata).toEqual({ records: '30' })
    expect(gunzipSync(object!.body).toString()).toBe(records.map((r) => `${r.payload.toString()}\n`).join(''))

    const { sink: big, s3: s3big } = memorySink({ partBytes: S3_MIN_PART_BYTES })
    const writer = big.staging.begin('usage/lake')
    const noisy = Array.from({ length: 14_000 }, (_, i) => ({
      ...line(i),
      payload: Buffer.from(`{"n":"${noise(1_000)}"}`),
    }))
    for (let i = 0; i < noisy.length; i += 500)
      await writer.write(noisy.slice(i, i + 500), AbortSignal.timeout(5_000))
    await writer.commit(AbortSignal.timeout(5_000))
    const [stored] = [...s3big.objects.values()]
    expect(stored!.parts).toBeGreaterThanOrEqual(2)
    expect(
      gunzipSync(stored!.body).equals(Buffer.concat(noisy.flatMap((r) => [r.payload, Buffer.from('\n')]))),
    ).toBe(true)
  })

  it.each([
    ['with', undefined],
    ['without', null],
  ] as const)(
    'a part that fails aborts the upload (%s a state dir) and removes its record; the writer is then unusable',
    async (_, given) => {
      const { sink, s3, dir } = memorySink({ compression: 'none', partBytes: S3_MIN_PART_BYTES }, given)
      s3.failures.push({ command: 'UploadPartCommand', nth: 2, error: serviceError('InternalError', 500) })
      const writer = sink.staging.begin('usage/lake')
      const records = Array.from({ length: 12_000 }, (_, i) => line(i, 1_000))
      let error: unknown
      for (let i = 0; i < records.length && !error; i += 1_000)
        error = await writer.write(records.slice(i, i + 1_000), AbortSignal.timeout(5_000)).then(
          () => undefined,
          (e: unknown) => e,
        )
      expect(error).toMatchObject({ retriable: true, reason: 'server-error' })
      expect(s3.commands).toContain('AbortMultipartUploadCommand')
      expect(s3.inProgress()).toEqual([])
      expect(s3.objects.size).toBe(0)
      if (dir !== undefined) expect(ledgerFiles(dir)).toEqual([])
      await expect(writer.commit(AbortSignal.timeout(5_000))).rejects.toMatchObject({ reason: 'internal' })
    },
  )

  it('a completion that fails aborts the upload; an abort that fails leaves the record for the next start', async () => {
    const { sink, s3, dir } = memorySink({ compression: 'none', partBytes: S3_MIN_PART_BYTES })
    s3.failures.push(
      { command: 'CompleteMultipartUploadCommand', nth: 1, error: serviceError('InternalError', 500) },
      { command: 'AbortMultipartUploadCommand', nth: 1, error: serviceError('ServiceUnavailable', 503) },
    )
    const writer = sink.staging.begin('usage/lake')
    await writer.write(
      Array.from({ length: 6_000 }, (_, i) => line(i, 1_000)),
      AbortSignal.timeout(5_000),
    )
    await expect(writer.commit(AbortSignal.timeout(5_000))).rejects.toMatchObject({ retriable: true })
    expect(s3.inProgress()).toHaveLength(1)
    expect(ledgerFiles(dir!)).toHaveLength(1)
    await sink.close()

    // The next start (a new sink on the same state directory) aborts it and removes the record.
    const next = new S3Sink('lake', config({ compression: 'none' }), { logger, stateDir: dir })
    s3.attach(next)
    expect(await next.recovered).toBe(1)
    expect(s3.inProgress()).toEqual([])
    expect(ledgerFiles(dir!)).toEqual([])
    await next.close()
  })

  it('at start, aborts only the uploads its own records name: not another writer’s, not a live one', async () => {
    const dir = stateDir()
    const { sink: live, s3 } = memorySink({ compression: 'none', partBytes: S3_MIN_PART_BYTES }, dir)
    const open = live.staging.begin('usage/lake')
    await open.write(
      Array.from({ length: 6_000 }, (_, i) => line(i, 1_000)),
      AbortSignal.timeout(5_000),
    )
    const liveUpload = s3.inProgress()[0]!
    // Another writer's upload in the same bucket and prefix, and an upload left by a killed run.
    const other = (command: string, input: Record<string, unknown>): unknown => s3.handle(command, input)
    other('CreateMultipartUploadCommand', {
      Bucket: 'unit',
      Key: 'usage/dt=2026-12-02/hour=10/other-writer.ndjson.gz',
    })
    const leftKey = 'usage/dt=2026-12-01/hour=23/5f0c8d52-0000-4000-8000-000000000000.ndjson.gz'
    other('CreateMultipartUploadCommand', { Bucket: 'unit', Key: leftKey })
    other('CreateMultipartUploadCommand', { Bucket: 'unit', Key: leftKey })
    mkdirSync(join(dir, 'multipart-uploads'), { recursive: true })
    writeFileSync(
      join(dir, 'multipart-uploads', 'left.json'),
      JSON.stringify({ bucket: 'unit', key: leftKey }),
    )
    writeFileSync(join(dir, 'multipart-uploads', 'torn.json'), '{"bucket":"un')

    const restarted = new S3Sink('lake', config(), { logger, stateDir: dir })
    s3.attach(restarted)
    expect(await restarted.recovered).toBe(2)
    expect(
      s3
        .inProgress()
        .map((u) => u.key)
        .sort(),
    ).toEqual([liveUpload.key, 'usage/dt=2026-12-02/hour=10/other-writer.ndjson.gz'].sort())
    expect(ledgerFiles(dir)).toHaveLength(1) // the live writer's
    await open.commit(AbortSignal.timeout(5_000))
    expect(ledgerFiles(dir)).toEqual([])
    await Promise.all([live.close(), restarted.close()])
  })

  it('without a state directory (a config check) it records nothing and aborts nothing at start', async () => {
    const { sink, s3 } = memorySink({ compression: 'none', partBytes: S3_MIN_PART_BYTES }, null)
    expect(await sink.recovered).toBe(0)
    const writer = sink.staging.begin('usage/lake')
    await writer.write(
      Array.from({ length: 6_000 }, (_, i) => line(i, 1_000)),
      AbortSignal.timeout(5_000),
    )
    await writer.commit(AbortSignal.timeout(5_000))
    expect(s3.objects.size).toBe(1)
    expect(await sink.ledger.add({ bucket: 'unit', key: 'k', lane: 'l' })).toBeUndefined()
  })

  it('write() streams a large batch the same way (one object per stream) and close aborts what is open', async () => {
    const { sink, s3 } = memorySink({ compression: 'none', partBytes: S3_MIN_PART_BYTES })
    const batch = Array.from({ length: 11_000 }, (_, i) => line(i, 1_000))
    expect((await sink.write(batch, AbortSignal.timeout(5_000))).failed).toEqual([])
    expect([...s3.objects.values()].map((o) => o.parts)).toEqual([3])
    const open = sink.staging.begin('usage/lake')
    await open.write(batch.slice(0, 6_000), AbortSignal.timeout(5_000))
    expect(s3.inProgress()).toHaveLength(1)
    await sink.close()
    expect(s3.inProgress()).toEqual([])
    expect(s3.objects.size).toBe(1)
  })
})

describe('s3 sink parts', () => {
  it('partBytes below 5 MiB, or too small for maxObjectBytes in 10,000 parts, is a config error', () => {
    expect(() => new S3Sink('lake', config({ partBytes: S3_MIN_PART_BYTES - 1 }), { logger })).toThrow(
      'sinks.lake.partBytes must be at least 5242880',
    )
    expect(
      () =>
        new S3Sink('lake', config({ partBytes: S3_MIN_PART_BYTES, maxObjectBytes: 60 * 1024 ** 3 }), {
          logger,
        }),
    ).toThrow(/sinks\.lake\.partBytes: objects of up to 64424509440 bytes need parts of at least \d+ bytes/)
  })

  it('a lane gets the object in pieces of at most 1 MiB / 10,000 records (less when the object is smaller)', () => {
    expect(new S3Sink('s', config(), { logger }).staging).toMatchObject({
      maxPieceBytes: 1024 * 1024,
      maxPieceRecords: 10_000,
    })
    expect(
      new S3Sink('s', config({ maxObjectBytes: 1000, maxObjectRecords: 10 }), { logger }).staging,
    ).toMatchObject({
      maxPieceBytes: 1000,
      maxPieceRecords: 10,
    })
  })
})
