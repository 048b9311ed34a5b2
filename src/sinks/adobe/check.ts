import type { ConfigIssue } from '../../config/load.js'
import type { AdobeSinkConfig } from '../../config/types.js'

/** What the adobe sink's schema cannot say: which of its keys go together. */
export function adobeIssues(sink: AdobeSinkConfig, at: string): ConfigIssue[] {
  // Synchronous validation exists on the single-message endpoint only [AEP-VALID].
  if (sink.mode === 'batch' && sink.syncValidation)
    return [
      {
        path: `${at}.syncValidation`,
        message:
          'the batch endpoint does not support synchronous validation; use mode "single" or set it to false',
      },
    ]
  return []
}
