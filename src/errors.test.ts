import { readdirSync, readFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { describe, expect, it } from 'vitest'
import { PROBLEM_BASE, PROBLEM_KINDS, problem, type ProblemKind } from './errors.js'

const SRC = new URL('.', import.meta.url).pathname

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) return sourceFiles(path)
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts') ? [path] : []
  })
}

describe('PROBLEM_KINDS, the one table of statuses and problem types', () => {
  it('builds each kind with its status, title and type', () => {
    for (const [kind, spec] of Object.entries(PROBLEM_KINDS)) {
      const err = problem(kind as ProblemKind, 'detail')
      const slug = 'slug' in spec ? spec.slug : kind
      expect(err.toBody('/x')).toEqual({
        type: PROBLEM_BASE + slug,
        title: spec.title,
        status: spec.status,
        detail: 'detail',
        instance: '/x',
      })
      expect(err.status).toBeGreaterThanOrEqual(400)
      expect(err.status).toBeLessThan(600)
    }
  })

  it('keeps the answers of the SPEC status table', () => {
    expect(problem('spool-full', 'd').status).toBe(503)
    expect(problem('invalid-records', 'd').status).toBe(422)
    expect(problem('malformed-request', 'd').toBody().type).toBe(`${PROBLEM_BASE}bad-request`)
    expect(problem('malformed-request', 'd').title).toBe('Malformed HTTP request')
    const withHeaders = problem('rate-limited', 'd', { headers: { 'retry-after': '3' } })
    expect(withHeaders.headers).toEqual({ 'retry-after': '3' })
  })

  it('is the only place a status literal is chosen', () => {
    // Passing a status through from elsewhere (the running gateway's own answer, a connect problem) is not
    // choosing one; a numeric literal as the first argument is.
    const offenders = sourceFiles(SRC)
      .filter((file) => /new ProblemError\(\s*\d{3}\b/.test(readFileSync(file, 'utf8')))
      .map((file) => relative(SRC, file))
    expect(offenders).toEqual([])
  })
})
