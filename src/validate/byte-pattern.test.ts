import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { bytePatternOf, INTEGER_STRING_PATTERN, TIMESTAMP_PATTERN } from './byte-pattern.js'

// Each byte matcher must answer what the regex answers (with the `u` flag, as ajv compiles it) for the text
// its bytes spell. The strings generated here are built from the pieces the patterns care about (digits,
// separators, zone letters, full-width and other non-ASCII digits) so that both answers occur often, plus
// arbitrary strings and single-byte edits of valid timestamps.

const VALID = [
  '2021-10-27T11:59:29.000Z',
  '2017-10-26T07:28:00.000+0000',
  '2022-04-26T11:53:43Z',
  '2015-07-16 12:07:09',
  '2021-10-27T08:38:02',
  '2024-02-15T14:56:15.260+01:00',
  '2024-02-15T14:56',
  '2024-02-15T14:56-05',
  '2024-02-15T14:56:01.1234567890-0530',
]

const piece = fc.constantFrom(
  '0',
  '1',
  '9',
  '12',
  '2024',
  '-',
  '+',
  ':',
  '.',
  'T',
  ' ',
  'Z',
  'z',
  't',
  '/',
  'a',
  '\n',
  '٣', // ARABIC-INDIC DIGIT THREE: \d is ASCII only under `u`
  '２',
  'é',
)
const assembled = fc.array(piece, { maxLength: 30 }).map((p) => p.join(''))
const edited = fc
  .tuple(fc.constantFrom(...VALID), fc.nat(), fc.nat(), piece, fc.constantFrom('replace', 'insert', 'delete'))
  .map(([t, at, len, p, op]) => {
    const i = at % (t.length + 1)
    if (op === 'insert') return t.slice(0, i) + p + t.slice(i)
    if (op === 'delete') return t.slice(0, i) + t.slice(i + 1 + (len % 3))
    return t.slice(0, i) + p + t.slice(i + 1)
  })
const candidates = fc.oneof(fc.constantFrom(...VALID), assembled, edited, fc.string({ unit: 'grapheme' }))

function agrees(source: string, text: string): void {
  const regex = new RegExp(source, 'u')
  const match = bytePatternOf(source)
  // The bytes sit inside a larger buffer, as a string inside a record does.
  const inner = Buffer.from(text, 'utf8')
  const buf = Buffer.concat([Buffer.from('{"t":"9'), inner, Buffer.from('0","u":1}')])
  const start = 7
  expect(match(buf, start, start + inner.length), JSON.stringify(text)).toBe(regex.test(text))
}

describe('byte matchers of the built-in schemas’ patterns', () => {
  it('the timestamp matcher answers as the regex', () => {
    for (const t of VALID) agrees(TIMESTAMP_PATTERN, t)
    fc.assert(
      fc.property(candidates, (text) => agrees(TIMESTAMP_PATTERN, text)),
      { numRuns: 20000 },
    )
  })

  it('the integer-string matcher answers as the regex', () => {
    for (const t of ['0', '-0', '-', '', '12345678901234567890', '1-', '٣', '1 '])
      agrees(INTEGER_STRING_PATTERN, t)
    fc.assert(
      fc.property(candidates, (text) => agrees(INTEGER_STRING_PATTERN, text)),
      { numRuns: 20000 },
    )
  })

  it('valid timestamps are matched (the byte matcher is really the one taken)', () => {
    const match = bytePatternOf(TIMESTAMP_PATTERN)
    expect(match.name).toBe('timestamp')
    for (const t of VALID) expect(match(Buffer.from(t), 0, t.length)).toBe(true)
  })

  it('any other pattern falls back to the regex on the decoded text', () => {
    const source = '^[a-zé]+$'
    expect(bytePatternOf(source).name).not.toBe('timestamp')
    fc.assert(
      fc.property(fc.oneof(candidates, fc.constantFrom('abc', 'été', 'ab1')), (text) => agrees(source, text)),
    )
  })
})
