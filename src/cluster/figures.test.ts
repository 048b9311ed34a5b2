import { describe, expect, it } from 'vitest'
import { addFigures, carriesFigures, type WorkerFigures } from './figures.js'

const peer = (accepted: number, delivered: number, lag: number): WorkerFigures => ({
  streams: {
    s: {
      counts: { received: accepted, accepted, rejected: 1, filtered: 0, duplicates: 0 },
      lanes: [
        { sink: 'out', deadLetter: false, delivered, lag },
        { sink: 'dead-letter', deadLetter: true, delivered: 1, lag: 0 },
      ],
    },
  },
})

describe('the management API over every worker', () => {
  it('adds the other workers to a stream view: counts and each lane', () => {
    const view = {
      id: 's',
      status: { id: 1 },
      figures: { received: 5, accepted: 5, rejected: 0, filtered: 0, duplicates: 0 },
      delivery: [
        { sink: 'out', deadLetter: false, delivered: 4, lag: 1, lastError: null },
        { sink: 'dead-letter', deadLetter: true, delivered: 0, lag: 0, lastError: null },
      ],
    }
    addFigures([view], [peer(10, 7, 3), peer(1, 1, 0)])
    expect(view.figures).toEqual({ received: 16, accepted: 16, rejected: 2, filtered: 0, duplicates: 0 })
    expect(view.delivery.map((d) => [d.delivered, d.lag])).toEqual([
      [12, 4],
      [2, 0],
    ])
  })

  it('adds every lane that delivers to a sink to its view; other answers stay as they are', () => {
    const sink = { name: 'out', type: 'file', figures: { delivered: 2, lag: 0 }, usedBy: ['s'] }
    addFigures(sink, [peer(10, 7, 3)])
    expect(sink.figures).toEqual({ delivered: 9, lag: 3 })
    const lookups = [{ id: 1, description: 'Running' }]
    expect(addFigures(structuredClone(lookups), [peer(1, 1, 1)])).toEqual(lookups)
  })

  it('only GETs of streams and sinks carry figures', () => {
    expect(carriesFigures('GET', '/api/v1/streams')).toBe(true)
    expect(carriesFigures('GET', '/api/v1/sinks/out')).toBe(true)
    expect(carriesFigures('GET', '/api/v1/streams/s/drift')).toBe(false)
    expect(carriesFigures('PATCH', '/api/v1/streams/s')).toBe(false)
  })
})
