// Azion Data Stream built-in templates and the variables each data source documents, as data.
//
// Sources (../../../shared/vendor-formats.md §2.2–2.3): template ids and names from AZ-OAS3 (v3 `template_id`
// enum, same labels in AZ-CONSOLE); variables from AZ-REF; the Functions preset verbatim from AZ-FN.
//
// Only template 86 (Edge Functions) has a published preset. The presets of 2, 4, 184 and 251 were not found
// (vendor-formats.md §5 "Open questions": fetch them with GET /data_streaming/templates/{id} on a real
// account). For those we ship a reconstruction, marked `documented: false`: a JSON object template with every
// documented variable of the data source as "name":"$name". A real preset may name keys differently or omit
// variables; a stream that knows its real model should configure it as `templateModel`.

export type AzionDataSource = 'http' | 'waf' | 'cells_console' | 'rtm_activity'

export interface AzionTemplate {
  id: number
  name: string
  dataSource: AzionDataSource
  templateModel: string
  /** false where the vendor's exact preset was not found and templateModel is our reconstruction. */
  documented: boolean
}

/** The variables AZ-REF documents for the Applications (`http`) data source, WAF fields last. */
const HTTP_VARIABLES = [
  // client and geo
  'asn',
  'bytes_sent',
  'client',
  'configuration',
  'country',
  'state',
  // request
  'host',
  'http_referrer',
  'http_user_agent',
  'request_id',
  'request_length',
  'request_method',
  'request_time',
  'request_uri',
  'requestPath',
  'requestQuery',
  'scheme',
  'server_protocol',
  'session_id',
  'time',
  'traceback',
  // response
  'proxy_status',
  'status',
  'sent_http_content_type',
  'sent_http_x_original_image_size',
  // addresses and ports
  'remote_addr',
  'remote_port',
  'server_addr',
  'server_port',
  // TLS
  'ssl_cipher',
  'ssl_protocol',
  'ssl_server_name',
  'ssl_session_reused',
  // other
  'stream',
  'tcpinfo_rtt',
  // upstream (may hold "a, b" for several servers and "x : y" for internal redirects)
  'upstream_addr',
  'upstream_bytes_received',
  'upstream_bytes_sent',
  'upstream_cache_status',
  'upstream_connect_time',
  'upstream_header_time',
  'upstream_local_addr',
  'upstream_response_time',
  'upstream_status',
  // WAF fields of the Applications source
  'waf_attack_action',
  'waf_attack_family',
  'waf_block',
  'waf_headers',
  'waf_learning',
  'waf_match',
  'waf_score',
  'waf_total_blocked',
  'waf_total_processed',
] as const

/** The variables AZ-REF documents for the WAF Events (`waf`) data source. */
const WAF_VARIABLES = [
  'blocked',
  'client',
  'configuration',
  'country',
  'headers',
  'host',
  'remote_addr',
  'requestPath',
  'requestQuery',
  'server_protocol',
  'time',
  'truncated_body', // deprecated, always '-'; still documented, so still listed
  'version',
  'waf_args',
  'waf_attack_action',
  'waf_attack_family',
  'waf_learning',
  'waf_match',
  'waf_score',
  'waf_server',
  'waf_uri',
] as const

/** The variables AZ-REF documents for the Functions (`cells_console`) data source. */
const FUNCTIONS_VARIABLES = [
  'client',
  'edge_function_id',
  'global_id',
  'request_id',
  'time',
  'log_level',
  'log_message',
  'message_source',
] as const

/**
 * The variables AZ-REF documents for the Activity History (`rtm_activity`) data source. Note: AZ-REF's
 * Standard-POST example for this source uses `$time_iso8601` and `$clientid`, which this list does not name.
 */
const ACTIVITY_VARIABLES = [
  'account_id',
  'created_at',
  'author_email',
  'author_name',
  'client',
  'comment',
  'parent_resource_id',
  'parent_resource_name',
  'parent_resource_type',
  'referer_header',
  'remote_port',
  'request_data',
  'resource_id',
  'resource_name',
  'resource_type',
  'title',
  'type',
  'user_agent',
  'user_id',
  'user_ip',
  'time',
] as const

/** The documented variables per data source (AZ-REF), without `$`. */
export const AZION_VARIABLES: Readonly<Record<AzionDataSource, readonly string[]>> = Object.freeze({
  http: HTTP_VARIABLES,
  waf: WAF_VARIABLES,
  cells_console: FUNCTIONS_VARIABLES,
  rtm_activity: ACTIVITY_VARIABLES,
})

/** The Functions Event Collector preset, verbatim from AZ-FN. */
const FUNCTIONS_PRESET =
  '{"time":"$time","client":"$client","configuration":"$global_id","edgeFunctionID":"$edge_function_id","requestID":"$request_id","messageSource":"$message_source","logLevel":"$log_level","logMessage":"$log_message"}'

/** Our reconstruction of an unpublished preset: {"name":"$name",…} over the given variables, in order. */
function objectTemplateOf(variables: readonly string[]): string {
  return `{${variables.map((v) => `${JSON.stringify(v)}:${JSON.stringify(`$${v}`)}`).join(',')}}`
}

const TEMPLATES: AzionTemplate[] = [
  {
    id: 2,
    name: 'Edge Applications Event Collector',
    dataSource: 'http',
    // Reconstruction: the Applications variables without the waf_* ones (those are what 184 adds).
    templateModel: objectTemplateOf(HTTP_VARIABLES.filter((v) => !v.startsWith('waf_'))),
    documented: false,
  },
  {
    id: 4,
    name: 'WAF Event Collector',
    dataSource: 'waf',
    templateModel: objectTemplateOf(WAF_VARIABLES), // reconstruction
    documented: false,
  },
  {
    id: 86,
    name: 'Edge Functions Event Collector',
    dataSource: 'cells_console',
    templateModel: FUNCTIONS_PRESET,
    documented: true,
  },
  {
    id: 184,
    name: 'Edge Applications + WAF Event Collector',
    dataSource: 'http',
    templateModel: objectTemplateOf(HTTP_VARIABLES), // reconstruction, including the waf_* fields
    documented: false,
  },
  {
    id: 251,
    name: 'Activity History Collector',
    dataSource: 'rtm_activity',
    // Reconstruction. AZ-REF's documented Standard-POST form for this source is a tab-separated line
    // (v1\t$time_iso8601\t$clientid\t…); that is a custom template, kept as a fixture, not this preset.
    templateModel: objectTemplateOf(ACTIVITY_VARIABLES),
    documented: false,
  },
]

export const AZION_TEMPLATES: readonly AzionTemplate[] = Object.freeze(TEMPLATES.map((t) => Object.freeze(t)))

export function findAzionTemplate(id: number): AzionTemplate | undefined {
  return AZION_TEMPLATES.find((t) => t.id === id)
}
