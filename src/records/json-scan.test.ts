import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { JsonScanError, rawField, splitOn, splitTopLevel } from './json-scan.js'

const spansText = (buf: Buffer, spans: { start: number; end: number }[]): string[] =>
  spans.map((s) => buf.toString('utf8', s.start, s.end))

describe('splitTopLevel', () => {
  it('never splits inside strings or containers', () => {
    const buf = Buffer.from('{"a":"x,y","b":[1,2]} , {"c":{"d":","}},,"s\\",t",12,')
    expect(spansText(buf, splitTopLevel(buf, 0, buf.length, Buffer.from(',')))).toEqual([
      '{"a":"x,y","b":[1,2]}',
      '{"c":{"d":","}}',
      '"s\\",t"',
      '12',
    ])
  })

  it('handles multi-character and whitespace separators', () => {
    const buf = Buffer.from('{"a":"||"}||{"b":1}||')
    expect(spansText(buf, splitTopLevel(buf, 0, buf.length, Buffer.from('||')))).toEqual([
      '{"a":"||"}',
      '{"b":1}',
    ])
    const tab = Buffer.from('{"a":1}\t{"b":2}\t\t')
    expect(spansText(tab, splitTopLevel(tab, 0, tab.length, Buffer.from('\t')))).toEqual([
      '{"a":1}',
      '{"b":2}',
    ])
  })

  it('rejects garbage between records', () => {
    const buf = Buffer.from('{"a":1} x {"b":2}')
    expect(() => splitTopLevel(buf, 0, buf.length, Buffer.from(','))).toThrow(JsonScanError)
  })

  it('scans a 10,000-deep array without overflowing the stack', () => {
    const buf = Buffer.from('['.repeat(10_000) + ']'.repeat(10_000))
    expect(splitTopLevel(buf, 0, buf.length, Buffer.from(','))).toEqual([{ start: 0, end: 20_000 }])
  })

  it('finds exactly the elements JSON.parse sees (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.jsonValue(), { maxLength: 20 }),
        fc.constantFrom(',', ';', '||', '\t', '\n'),
        (values, sep) => {
          const texts = values.map((v) => JSON.stringify(v))
          const buf = Buffer.from(texts.join(sep))
          const got = spansText(buf, splitTopLevel(buf, 0, buf.length, Buffer.from(sep)))
          expect(got).toEqual(texts)
        },
      ),
    )
  })
})

describe('splitOn', () => {
  it('splits lines, drops empty ones and CR before LF', () => {
    const buf = Buffer.from('a\r\nb\n\nc\n')
    expect(spansText(buf, splitOn(buf, 0, buf.length, Buffer.from('\n')))).toEqual(['a', 'b', 'c'])
  })
})

describe('rawField', () => {
  const doc = Buffer.from(
    '{"id": 9007199254740993, "sim": {"iccid": "8988303", "n": null}, "esc\\u0061ped": "a\\"b", "list": [1, {"x": "y"}]}',
  )
  it('returns exact number text, strings unescaped, nested paths and array elements', () => {
    expect(rawField(doc, ['id'])).toBe('9007199254740993')
    expect(rawField(doc, ['sim', 'iccid'])).toBe('8988303')
    expect(rawField(doc, ['sim', 'n'])).toBe('null')
    expect(rawField(doc, ['escaped'])).toBe('a"b')
    expect(rawField(doc, ['list', '1', 'x'])).toBe('y')
    expect(rawField(doc, ['sim'])).toBe('{"iccid": "8988303", "n": null}')
  })
  it('returns undefined for missing paths and non-objects', () => {
    expect(rawField(doc, ['nope'])).toBeUndefined()
    expect(rawField(doc, ['id', 'x'])).toBeUndefined()
    expect(rawField(Buffer.from('[1,2]'), ['a'])).toBeUndefined()
    expect(rawField(Buffer.from('{"a":'), ['a'])).toBeUndefined()
  })
  it('agrees with JSON.parse on generated objects (property)', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.oneof(fc.string(), fc.integer(), fc.boolean())), (obj) => {
        const buf = Buffer.from(JSON.stringify(obj))
        for (const [k, v] of Object.entries(obj)) expect(rawField(buf, [k])).toBe(String(v))
      }),
    )
  })
})
