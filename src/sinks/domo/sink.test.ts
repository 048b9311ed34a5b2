import { describe, expect, it } from 'vitest'
import type { SinkRecord } from '../../records/record.js'
import { csvField, csvParts } from './sink.js'

describe('csvField (DOMO-CSV: empty = null, "" = empty string)', () => {
  it.each([
    [undefined, ''],
    ['null', ''],
    ['""', '""'],
    ['"plain"', 'plain'],
    ['"null"', 'null'],
    ['"a,b"', '"a,b"'],
    ['"say \\"hi\\""', '"say ""hi"""'],
    ['"line\\nbreak"', '"line\nbreak"'],
    ['"cr\\rhere"', '"cr\rhere"'],
    ['"tab\\there"', 'tab\there'],
    ['"\\u00e9t\\u00e9"', 'été'],
    ['" padded "', ' padded '],
    ['12345678901234567890123', '12345678901234567890123'],
    ['-1.50e+3', '-1.50e+3'],
    ['true', 'true'],
    ['false', 'false'],
    ['{"a":"b"}', '"{""a"":""b""}"'],
    ['[]', '"[]"'],
  ])('%s → %s', (json, csv) => {
    expect(csvField(json)).toBe(csv)
  })
})

describe('csvParts', () => {
  const columns = ['id', 'v'].map((c) => ({ path: [c], dotted: c }))
  const rec = (text: string): SinkRecord => ({ stream: 's', payload: Buffer.from(text), receivedAtMs: 0 })

  it('one LF-terminated row per record, cut into parts of at most partBytes', () => {
    const batch = [
      rec('{"id":1,"v":"aaaa"}'),
      rec('{"id":2,"v":"bb"}'),
      rec('{"id":3}'),
      rec('{"v":"c","id":4}'),
    ]
    // Rows: "1,aaaa\n" (7) "2,bb\n" (5) "3,\n" (3) "4,c\n" (4).
    expect(csvParts(batch, columns, 12).map(String)).toEqual(['1,aaaa\n2,bb\n', '3,\n4,c\n'])
    expect(csvParts(batch, columns, 1000).map(String)).toEqual(['1,aaaa\n2,bb\n3,\n4,c\n'])
  })

  it('a row longer than partBytes gets a part of its own', () => {
    const batch = [rec('{"id":1,"v":"x"}'), rec(`{"id":2,"v":"${'y'.repeat(50)}"}`), rec('{"id":3,"v":"z"}')]
    expect(csvParts(batch, columns, 10).map((p) => p.toString().slice(0, 2))).toEqual(['1,', '2,', '3,'])
  })

  it('counts bytes, not characters', () => {
    const batch = [rec('{"id":1,"v":"ééé"}'), rec('{"id":2,"v":"é"}')]
    // "1,ééé\n" is 9 bytes, "2,é\n" 5 bytes.
    expect(csvParts(batch, columns, 13)).toHaveLength(2)
    expect(csvParts(batch, columns, 14)).toHaveLength(1)
  })
})
