import type { ConfigIssue } from './load.js'
import type { AdobeSinkConfig, DomoSinkConfig, SinkConfig } from './types.js'

// Rules about sink keys that a JSON Schema cannot say clearly (which keys go together), checked with the
// rest of the config (validateConfig), so check-config, serve and the management API all refuse the same
// configs with the same paths.

export function sinkIssues(sinks: Record<string, SinkConfig>): ConfigIssue[] {
  const issues: ConfigIssue[] = []
  for (const [name, sink] of Object.entries(sinks)) {
    const at = `sinks.${name}`
    if (sink.type === 'adobe') issues.push(...adobeIssues(sink, at))
    else if (sink.type === 'domo') issues.push(...domoIssues(sink, at))
  }
  return issues
}

function adobeIssues(sink: AdobeSinkConfig, at: string): ConfigIssue[] {
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

function domoIssues(sink: DomoSinkConfig, at: string): ConfigIssue[] {
  const issues: ConfigIssue[] = []
  const own = sink.api === 'instance' ? INSTANCE_KEYS : PUBLIC_KEYS
  const other = sink.api === 'instance' ? PUBLIC_KEYS : INSTANCE_KEYS
  for (const key of own)
    if (sink[key] === undefined || sink[key] === '')
      issues.push({ path: `${at}.${key}`, message: `is required with api "${sink.api}"` })
  for (const key of other)
    if (sink[key] !== undefined)
      issues.push({
        path: `${at}.${key}`,
        message: `only applies to api "${sink.api === 'instance' ? 'public' : 'instance'}"`,
      })
  if (sink.streamId !== undefined && sink.create !== undefined)
    issues.push({ path: at, message: 'set either "streamId" or "create", not both' })
  const schema = sink.create?.columns
  if (schema && schema.length !== sink.columns.length)
    issues.push({
      path: `${at}.create.columns`,
      message: `has ${schema.length} columns but "columns" maps ${sink.columns.length} record fields`,
    })
  return issues
}

const PUBLIC_KEYS = ['clientId', 'clientSecret'] as const
const INSTANCE_KEYS = ['instanceUrl', 'developerToken'] as const
