import { describe, expect, it } from 'vitest'
import { configPath } from './paths.js'

describe('configPath', () => {
  it('renders JSON pointers as dotted paths with indexes', () => {
    expect(configPath('/streams/emnify-events/sinks/0')).toBe('streams.emnify-events.sinks[0]')
    expect(configPath('')).toBe('(root)')
    expect(configPath('/sinks/a~1b')).toBe('sinks.a/b')
  })
})
