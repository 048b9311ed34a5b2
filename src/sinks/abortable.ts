/**
 * Resolves or rejects with `work`, or rejects with the signal's reason as soon as it aborts (at once when it
 * already has). The work itself goes on (a sink's close() waits for it), and its outcome is always
 * handled, so a rejection after the abort is never an unhandled one. The one helper for every sink.
 */
export function abortable<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason as Error)
    if (signal.aborted) onAbort()
    else signal.addEventListener('abort', onAbort, { once: true })
    work.then(
      (value) => {
        signal.removeEventListener('abort', onAbort)
        resolve(value)
      },
      (err: Error) => {
        signal.removeEventListener('abort', onAbort)
        reject(err)
      },
    )
  })
}
