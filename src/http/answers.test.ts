import { describe, expect, it } from 'vitest'
import { countsBody } from './ingest.js'
import { ingestStreamId } from './server.js'

describe('countsBody: the 200 body', () => {
  it('pre-built bodies are the text JSON.stringify gives, key order included', () => {
    for (let accepted = 0; accepted <= 20; accepted++) {
      const counts = { accepted, rejected: 0, filtered: 0, duplicates: 0 }
      expect(countsBody(counts)).toBe(JSON.stringify(counts))
    }
  })

  it('answers with rejections, filtered or duplicates are built as before', () => {
    for (const counts of [
      { accepted: 1, rejected: 2, filtered: 0, duplicates: 0 },
      { accepted: 0, rejected: 0, filtered: 1, duplicates: 0 },
      { accepted: 3, rejected: 0, filtered: 0, duplicates: 4 },
      { accepted: 2000, rejected: 0, filtered: 0, duplicates: 0 },
    ])
      expect(countsBody(counts)).toBe(JSON.stringify(counts))
  })
})

describe('ingestStreamId', () => {
  it('a path without percent-escapes is the id as written', () => {
    expect(ingestStreamId('/ingest/emnify')).toBe('emnify')
    expect(ingestStreamId('/ingest/emnify/')).toBe('emnify')
    expect(ingestStreamId('/ingest/emnify?x=%41')).toBe('emnify')
    expect(ingestStreamId('/ingest/a/b')).toBe('a/b')
    expect(ingestStreamId('/ingest/')).toBe('')
  })

  it('percent-escapes are decoded; a malformed escape leaves the id undecoded', () => {
    expect(ingestStreamId('/ingest/em%6Eify')).toBe('emnify')
    expect(ingestStreamId('/ingest/a%2Fb/')).toBe('a/b')
    expect(ingestStreamId('/ingest/%E2%82%AC')).toBe('€')
    expect(ingestStreamId('/ingest/bad%zz')).toBe('bad%zz')
  })
})
