import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import type { StreamConfig } from '../config/types.js'
import { ProblemError } from '../errors.js'
import { Validators } from '../validate/validators.js'
import { StreamRuntime } from './stream.js'

// What vendors really send must be accepted and forwarded byte for byte: Azion presets describe their
// records and do not gate them (vendor-docs/001 "6. Retrieving a list of templates" / "7. Detailing a
// template"), and the differences are drift, not errors. Fixtures: test/fixtures/azion/README.md.

const fixture = (name: string): Buffer =>
  readFileSync(new URL(`../../test/fixtures/${name}`, import.meta.url))
const lines = (name: string): string[] => fixture(name).toString('utf8').split('\n')

const validators = new Validators()
const NOW = Date.parse('2026-12-01T00:00:00Z')

function azion(over: Partial<StreamConfig>): StreamConfig {
  return {
    source: 'azion',
    recordType: 'event',
    method: 'POST',
    auth: {},
    payloadFormat: '$dataset',
    logLineSeparator: '\n',
    unknownFields: 'drift',
    validation: 'reject',
    filters: [],
    durability: 'spool',
    status: 1,
    sinks: ['out'],
    ...over,
  }
}

function run(config: StreamConfig, body: Buffer | string): { runtime: StreamRuntime; payloads: string[] } {
  const runtime = new StreamRuntime('s', config, validators, { now: NOW })
  const outcome = runtime.process(Buffer.from(body), NOW)
  expect(outcome.deadLetters).toEqual([])
  return { runtime, payloads: outcome.records.map((r) => r.payload.toString('utf8')) }
}

const driftOf = (runtime: StreamRuntime): [string, string, number][] =>
  runtime.drift
    .report()
    .fields.map((f): [string, string, number] => [f.pointer, f.kind, f.records])
    .sort((a, b) => a[0].localeCompare(b[0]))

describe('Azion presets describe, they do not gate', () => {
  it('template 2: records of the model in Azion’s templates list are accepted byte for byte, no drift', () => {
    const { runtime, payloads } = run(azion({ template: 2 }), fixture('azion/template2-list.ndjson'))
    expect(payloads).toEqual(lines('azion/template2-list.ndjson'))
    expect(runtime.drift.report()).toMatchObject({ observedRecords: 2, unknownRecords: 0, fields: [] })
  })

  it('template 2: records with more or fewer keys than the preset shows are accepted, and counted as drift', () => {
    const { runtime, payloads } = run(azion({ template: 2 }), fixture('azion/template2-extra-fields.ndjson'))
    expect(payloads).toEqual(lines('azion/template2-extra-fields.ndjson'))
    expect(driftOf(runtime)).toEqual([
      ['/request_uri', 'unknown', 2],
      ['/status', 'unknown', 2],
      ['/upstream_status', 'unknown', 2],
      ['/version', 'missing', 1],
    ])
    expect(runtime.drift.report()).toMatchObject({ unknownRecords: 2, missingRecords: 1 })
    expect(runtime.drift.report().fields.find((f) => f.pointer === '/upstream_status')?.example).toBe(
      '"502 : 200"',
    )
  })

  it('template 2: the ~45-key records of the old reconstruction are valid too (they were dead-lettered)', () => {
    const { runtime, payloads } = run(azion({ template: 2 }), fixture('azion/http-template2.ndjson'))
    expect(payloads).toHaveLength(2)
    expect(runtime.drift.report().unknownRecords).toBe(2)
    expect(runtime.drift.report().missingRecords).toBe(2) // the list's model has "version"; these lack it
  })

  it('template 3 (Test Applications EC) exists and accepts its records', () => {
    const { runtime, payloads } = run(azion({ template: 3 }), fixture('azion/template3-list.ndjson'))
    expect(payloads).toEqual(lines('azion/template3-list.ndjson'))
    expect(runtime.drift.report().fields).toEqual([])
  })

  it('template 86: both documented shapes are accepted without drift', () => {
    const body = `${fixture('azion/functions-preset.ndjson').toString()}\n${fixture('azion/template86-detail.ndjson').toString()}`
    const { runtime, payloads } = run(azion({ template: 86 }), body)
    expect(payloads).toEqual([
      ...lines('azion/functions-preset.ndjson'),
      ...lines('azion/template86-detail.ndjson'),
    ])
    expect(runtime.drift.report()).toMatchObject({ observedRecords: 5, unknownRecords: 0, missingRecords: 0 })
  })

  it('a preset still refuses what Azion never renders: a value that is not a string, nesting, not an object', () => {
    const runtime = new StreamRuntime('s', azion({ template: 2, validation: 'dead-letter' }), validators)
    const outcome = runtime.process(
      Buffer.from('{"host":"h","status":200}\n{"host":{"name":"h"}}\n["h"]\n{"host":"h","version":null}'),
      NOW,
    )
    expect(outcome.records).toEqual([])
    expect(outcome.deadLetters).toHaveLength(4)
  })

  it('a reconstructed preset (4) counts unknown keys but never missing ones', () => {
    const { runtime } = run(azion({ template: 4 }), '{"time":"t","host":"h","brand_new":"x"}')
    expect(driftOf(runtime)).toEqual([['/brand_new', 'unknown', 1]])
  })
})

describe('a templateModel is a strict contract', () => {
  // vendor-docs/001 "c. Inserting customized template": {"custom_template_field":"$custom_value", "status":"$status"}
  const CUSTOM = '{"custom_template_field":"$custom_value", "status":"$status"}'

  it('accepts the custom template’s records byte for byte', () => {
    const { runtime, payloads } = run(
      azion({ templateModel: CUSTOM }),
      fixture('azion/custom-template.ndjson'),
    )
    expect(payloads).toEqual(lines('azion/custom-template.ndjson'))
    expect(runtime.drift.report().fields).toEqual([])
  })

  it('a missing key is an error; an unknown key is drift by default', () => {
    const runtime = new StreamRuntime('s', azion({ templateModel: CUSTOM }), validators)
    expect(() => runtime.process(Buffer.from('{"custom_template_field":"x"}'), NOW)).toThrow(ProblemError)
    const { runtime: drifting, payloads } = run(
      azion({ templateModel: CUSTOM }),
      '{"custom_template_field":"x", "status":"200", "region":"sa-east"}',
    )
    expect(payloads).toHaveLength(1)
    expect(driftOf(drifting)).toEqual([['/region', 'unknown', 1]])
  })

  it('unknownFields: reject refuses unknown keys, naming them', () => {
    const runtime = new StreamRuntime(
      's',
      azion({ templateModel: CUSTOM, unknownFields: 'reject' }),
      validators,
    )
    const body = Buffer.from(
      '{"custom_template_field":"x", "status":"200"}\n{"custom_template_field":"x", "status":"200", "region":"sa"}',
    )
    try {
      runtime.process(body, NOW)
      expect.unreachable()
    } catch (err) {
      expect((err as ProblemError).status).toBe(422)
      expect((err as ProblemError).errors).toEqual([
        { index: 1, pointer: '/region', message: expect.stringContaining('unknownFields: reject') as string },
      ])
    }
    // A dead-letter replay applies the same contract.
    const replayed = runtime.processRecords(
      [Buffer.from('{"custom_template_field":"x", "status":"2", "r":"1"}')],
      NOW,
    )
    expect(replayed.deadLetters).toHaveLength(1)
    expect(runtime.drift.report().observedRecords).toBe(2) // the request's two records; the replay is not counted
  })
})

describe('emnify and own-schema streams', () => {
  const emnify = (over: Partial<StreamConfig> = {}): StreamConfig =>
    azion({ source: 'emnify', recordType: 'event', payloadFormat: '$dataset', ...over })

  it('the documented events (nulls included) are accepted byte for byte; new fields are drift', () => {
    for (const name of [
      'event-nulls.json',
      'event-update-location.json',
      'event-delete-pdp.json',
      'events-bulk.json',
    ]) {
      const body = fixture(`emnify/${name}`)
      const { payloads } = run(emnify(), body)
      expect(payloads.length, name).toBeGreaterThan(0)
    }
    const { runtime } = run(
      emnify(),
      '[{"id":1,"timestamp":"2021-10-27T08:40:10.000Z","event_type":{"id":1,"description":"x"},"endpoint":{"id":2,"firmware":"1.0"},"roaming":true}]',
    )
    expect(driftOf(runtime)).toEqual([
      ['/endpoint/firmware', 'unknown', 1],
      ['/roaming', 'unknown', 1],
    ])
  })

  it('an own schema with unknownFields: reject refuses fields it does not declare', () => {
    const schema = new URL('../../test/fixtures/needs-n.schema.json', import.meta.url).pathname
    const config = azion({ source: 'ndjson', schema, unknownFields: 'reject' })
    const runtime = new StreamRuntime('s', config, validators)
    expect(runtime.process(Buffer.from('{"n":1}'), NOW).records).toHaveLength(1)
    expect(() => runtime.process(Buffer.from('{"n":1,"zz_unknown":2}'), NOW)).toThrow(ProblemError)
  })
})
