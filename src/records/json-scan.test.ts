import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { JsonScanError, nestsDeeper, rawField, skipString, splitOn, splitTopLevel } from './json-scan.js'

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

describe('skipString', () => {
  // The string's end as the scan found it before it took short strings in a loop: the next quote with an
  // even run of backslashes before it.
  const reference = (buf: Buffer, pos: number, end: number): number => {
    let i = pos + 1
    for (;;) {
      const q = buf.indexOf(0x22, i)
      if (q < 0 || q >= end) return -1
      let backslashes = 0
      for (let k = q - 1; k > pos && buf[k] === 0x5c; k--) backslashes++
      if (backslashes % 2 === 0) return q + 1
      i = q + 1
    }
  }
  const ends = (buf: Buffer, end: number): number => {
    try {
      return skipString(buf, 0, end)
    } catch (err) {
      if (err instanceof JsonScanError) return -1
      throw err
    }
  }
  // Runs of backslashes and quotes placed around the 64 bytes it scans in a loop before indexOf.
  const piece = fc.oneof(
    fc.constantFrom('\\\\', '\\"', '\\', '"', '\\\\\\"', 'é', '\\u0022'),
    fc.string({ maxLength: 70 }).map((t) => t.replace(/["\\]/g, 'x')),
  )

  it('ends where the indexOf scan ends, on any bytes (property)', () => {
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 12 }), fc.nat(200), (pieces, cut) => {
        const buf = Buffer.from(`"${pieces.join('')}`)
        const end = Math.min(buf.length, 1 + cut)
        expect(ends(buf, end)).toBe(reference(buf, 0, end))
        expect(ends(buf, buf.length)).toBe(reference(buf, 0, buf.length))
      }),
      { numRuns: 5000 },
    )
  })

  it('ends just past a JSON string of any length (property)', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (text) => {
        const literal = Buffer.from(`${JSON.stringify(text)},"next"`)
        expect(ends(literal, literal.length)).toBe(Buffer.byteLength(JSON.stringify(text)))
      }),
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

/** The nesting depth of a parsed JSON value: 0 for a scalar, 1 for `{}` or `[1]`. */
function depthOf(value: unknown): number {
  if (value === null || typeof value !== 'object') return 0
  const children = Array.isArray(value) ? value : Object.values(value as Record<string, unknown>)
  return 1 + children.reduce<number>((d, c) => Math.max(d, depthOf(c)), 0)
}

const nested = (depth: number, inner = '1'): string =>
  '{"a":['.repeat(depth / 2) + inner + ']}'.repeat(depth / 2)

describe('nesting depth', () => {
  it('splitTopLevel marks exactly the values deeper than maxDepth', () => {
    const buf = Buffer.from(`${nested(4)},${nested(6)},"[[[[[[[[",[[[]]],7`)
    const spans = splitTopLevel(buf, 0, buf.length, Buffer.from(','), 4)
    expect(spans.map((s) => s.deep === true)).toEqual([false, true, false, false, false])
  })

  it('nestsDeeper answers by depth, not by the number of brackets, and ignores brackets in strings', () => {
    const check = (text: string, limit: number): boolean => nestsDeeper(text, limit)
    expect(check(nested(4), 4)).toBe(false)
    expect(check(nested(6), 4)).toBe(true)
    // Many containers side by side are shallow.
    expect(check(`[${Array.from({ length: 50 }, () => '{"a":[1]}').join(',')}]`, 4)).toBe(false)
    // Brackets inside strings (and escaped quotes) do not nest.
    const tricky = JSON.stringify({ s: `${'[{'.repeat(40)}\\`, t: `"${'['.repeat(40)}` })
    expect(tricky).toContain('\\\\",') // an escaped backslash right before a closing quote
    expect(check(tricky, 4)).toBe(false)
    expect(check('['.repeat(10_000) + ']'.repeat(10_000), 256)).toBe(true)
    expect(check('['.repeat(256) + ']'.repeat(256), 256)).toBe(false)
    expect(check('['.repeat(257) + ']'.repeat(257), 256)).toBe(true)
  })

  it('both agree with the depth of the parsed value (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.jsonValue({ maxDepth: 8 }), { minLength: 1, maxLength: 8 }),
        fc.integer({ min: 1, max: 6 }),
        (values, limit) => {
          const texts = values.map((v) => JSON.stringify(v))
          const buf = Buffer.from(texts.join('\n'))
          const expected = values.map((v) => depthOf(v) > limit)
          const split = splitTopLevel(buf, 0, buf.length, Buffer.from('\n'), limit)
          expect(split.map((s) => s.deep === true)).toEqual(expected)
          expect(texts.map((t) => nestsDeeper(t, limit))).toEqual(expected)
        },
      ),
    )
  })
})
