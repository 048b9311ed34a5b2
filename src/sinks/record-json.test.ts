import { describe, expect, it } from 'vitest'
import type { SinkRecord } from '../records/record.js'
import { fieldJson, isJsonObject, rawJsonAt } from './record-json.js'

const buf = (text: string): Buffer => Buffer.from(text)

describe('rawJsonAt', () => {
  const doc = buf(
    '{ "id" : 12345678901234567890123, "s":"a \\"q\\" \\u00e9", "n":null, "t":true, "num":"123",' +
      ' "o":{"a":[1,{"b":"c"}], "e\\u0073c":2}, "arr":[10, 20.50, -3e2] }',
  )
  it.each([
    [['id'], '12345678901234567890123'],
    [['s'], '"a \\"q\\" \\u00e9"'],
    [['n'], 'null'],
    [['t'], 'true'],
    [['num'], '"123"'],
    [['o', 'a'], '[1,{"b":"c"}]'],
    [['o', 'a', '1', 'b'], '"c"'],
    [['o', 'esc'], '2'],
    [['arr', '1'], '20.50'],
    [['arr', '2'], '-3e2'],
    [[], doc.toString().trim()],
  ])('%j → %s', (path, expected) => {
    expect(rawJsonAt(doc, path)).toBe(expected)
  })

  it.each([[['missing']], [['id', 'x']], [['arr', '3']], [['arr', 'x']], [['o', 'a', '5']]])(
    '%j is missing',
    (path) => {
      expect(rawJsonAt(doc, path)).toBeUndefined()
    },
  )

  it('does not throw on text that is not JSON', () => {
    expect(rawJsonAt(buf('plain text line'), ['a'])).toBeUndefined()
    expect(rawJsonAt(buf('{"a":"unterminated'), ['a'])).toBeUndefined()
  })
})

describe('fieldJson', () => {
  it('quotes the fields of a parsed text record', () => {
    const record: SinkRecord = {
      stream: 's',
      payload: buf('v1\t2024\tx'),
      receivedAtMs: 0,
      fields: { time: '2024', 'a.b': 'say "hi"' },
    }
    expect(fieldJson(record, ['time'])).toBe('"2024"')
    expect(fieldJson(record, ['a', 'b'])).toBe('"say \\"hi\\""')
    expect(fieldJson(record, ['none'])).toBeUndefined()
  })

  it('isJsonObject looks at the first non-blank byte', () => {
    expect(isJsonObject(buf('  {"a":1}'))).toBe(true)
    expect(isJsonObject(buf('[1]'))).toBe(false)
    expect(isJsonObject(buf('"s"'))).toBe(false)
  })
})
