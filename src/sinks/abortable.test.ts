import { describe, expect, it } from 'vitest'
import { abortable } from './abortable.js'

describe('abortable', () => {
  it('passes the outcome of the work through', async () => {
    await expect(abortable(Promise.resolve(7), new AbortController().signal)).resolves.toBe(7)
    await expect(abortable(Promise.reject(new Error('no')), new AbortController().signal)).rejects.toThrow(
      'no',
    )
  })

  it('rejects with the reason once the signal aborts, while the work goes on', async () => {
    const controller = new AbortController()
    let finish!: (v: string) => void
    const work = new Promise<string>((resolve) => (finish = resolve))
    const waiting = abortable(work, controller.signal)
    controller.abort(new Error('stop'))
    await expect(waiting).rejects.toThrow('stop')
    finish('done')
    await expect(work).resolves.toBe('done')
  })

  it('rejects at once on a signal aborted before, and a later failure of the work is handled', async () => {
    const unhandled: unknown[] = []
    const onUnhandled = (reason: unknown): void => void unhandled.push(reason)
    process.on('unhandledRejection', onUnhandled)
    try {
      let fail!: (e: Error) => void
      const work = new Promise<never>((_, reject) => (fail = reject))
      await expect(abortable(work, AbortSignal.abort(new Error('early')))).rejects.toThrow('early')
      fail(new Error('late'))
      await new Promise((r) => setTimeout(r, 20))
      expect(unhandled).toEqual([])
    } finally {
      process.off('unhandledRejection', onUnhandled)
    }
  })
})
