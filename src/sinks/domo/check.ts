import type { ConfigIssue } from '../../config/load.js'
import type { DomoSinkConfig } from '../../config/types.js'

/** What the domo sink's schema cannot say: which API's credentials, streamId or create, the columns. */
export function domoIssues(sink: DomoSinkConfig, at: string): ConfigIssue[] {
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
