// Azion Data Stream built-in templates and the variables each data source documents, as data.
//
// Sources: the Azion Data Streaming API v3 document (../../../shared/vendor-docs/001_*.txt, "6. Retrieving a
// list of templates" and "7. Detailing a template") gives template 2 "Edge Applications EC" as
// {version, time, client, configuration, host}, template 3 "Test Applications EC" as
// {request_time, time, client, proxy_status, host}, and template 86 as {time, client, requestID, logmessage}.
// vendor-formats.md §2.2 quotes 86 with eight keys from Azion's Functions debugging page (AZ-FN), and gives the
// v3 template ids and names (AZ-OAS3); variables per data source come from AZ-REF (§2.3).
//
// What a preset is for: it *describes* what a template's records look like; it does not gate them. The models
// the documents show are abbreviated and vary (86 has two different documented shapes), so a real record of a
// preset template is valid when it is what Azion renders — a flat JSON object whose values are strings — and
// keys it has beyond the preset's, or lacks from it, are schema drift (src/pipeline/drift.ts), not errors.
// Only a `templateModel` the user writes is a strict contract.
//
// Templates 4, 184 and 251 have no published model (vendor-formats.md §5 "Open questions"). For those we ship a
// reconstruction, marked `documented: false`: a JSON object template with every documented variable of the data
// source as "name":"$name". It is used only to tell which keys are known; a record lacking a reconstructed key is
// not reported as drift (we do not know that the real preset shows it).

export type AzionDataSource = 'http' | 'waf' | 'cells_console' | 'rtm_activity'

/** One template_model a document shows for a preset, with where it is quoted from. */
export interface DocumentedModel {
  templateModel: string
  /** The document and section it is quoted from. */
  source: string
  /**
   * true when the document shows a shortened model (an API example listing a handful of fields): real records
   * of the template may carry more keys, which then count as drift.
   */
  abbreviated: boolean
}

export interface AzionTemplate {
  id: number
  name: string
  dataSource: AzionDataSource
  /** The primary model: the first documented one, or our reconstruction. */
  templateModel: string
  /** false where no model of this preset was found and templateModel is our reconstruction. */
  documented: boolean
  /** true when every documented model is abbreviated (and for reconstructions: we do not know). */
  abbreviated: boolean
  /** Every model the documents show, primary first; empty for a reconstruction. */
  documentedModels: readonly DocumentedModel[]
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

// The API document's models, as JSON. The document prints them with typographic quotes (\u201d) and drops the
// closing quote of the last value (`\"$host\}`); the keys, variables and their order are the document's.

/** 001, "6. Retrieving a list of templates": id 2, "Edge Applications EC". */
const EDGE_APPLICATIONS_EC =
  '{ "version": "$version","time": "$time","client":"$client","configuration": "$configuration","host": "$host"}'

/** 001, "6. Retrieving a list of templates": id 3, "Test Applications EC". */
const TEST_APPLICATIONS_EC =
  '{ "request_time": "$request_time","time": "$time","client": "$client","proxy_status": "$proxy_status","host": "$host"}'

/** 001, "7. Detailing a template": id 86, "Edge Functions Event Collector". */
const FUNCTIONS_DETAIL =
  '{ "time": "$time","client": "$client", "requestID": "$request_id","logmessage": "$log_message" }'

const API_DOC = 'Azion Data Streaming API v3 (vendor-docs/001)'

/** Our reconstruction of an unpublished preset: {"name":"$name",…} over the given variables, in order. */
function objectTemplateOf(variables: readonly string[]): string {
  return `{${variables.map((v) => `${JSON.stringify(v)}:${JSON.stringify(`$${v}`)}`).join(',')}}`
}

function documented(
  id: number,
  name: string,
  dataSource: AzionDataSource,
  models: DocumentedModel[],
): AzionTemplate {
  return {
    id,
    name,
    dataSource,
    templateModel: models[0]!.templateModel,
    documented: true,
    abbreviated: models.every((m) => m.abbreviated),
    documentedModels: Object.freeze(models.map((m) => Object.freeze(m))),
  }
}

function reconstructed(
  id: number,
  name: string,
  dataSource: AzionDataSource,
  variables: readonly string[],
): AzionTemplate {
  return {
    id,
    name,
    dataSource,
    templateModel: objectTemplateOf(variables),
    documented: false,
    abbreviated: false,
    documentedModels: Object.freeze([]),
  }
}

const TEMPLATES: AzionTemplate[] = [
  documented(2, 'Edge Applications Event Collector', 'http', [
    {
      templateModel: EDGE_APPLICATIONS_EC,
      source: `${API_DOC}, "6. Retrieving a list of templates" (id 2, "Edge Applications EC")`,
      abbreviated: true,
    },
  ]),
  documented(3, 'Test Applications EC', 'http', [
    {
      templateModel: TEST_APPLICATIONS_EC,
      source: `${API_DOC}, "6. Retrieving a list of templates" (id 3, "Test Applications EC")`,
      abbreviated: true,
    },
  ]),
  // Reconstruction over the WAF Events variables.
  reconstructed(4, 'WAF Event Collector', 'waf', WAF_VARIABLES),
  documented(86, 'Edge Functions Event Collector', 'cells_console', [
    {
      templateModel: FUNCTIONS_PRESET,
      source: 'Azion Edge Functions debugging guide (AZ-FN, vendor-formats.md §2.2)',
      abbreviated: false,
    },
    {
      templateModel: FUNCTIONS_DETAIL,
      source: `${API_DOC}, "7. Detailing a template" (id 86)`,
      abbreviated: true,
    },
  ]),
  // Reconstruction including the waf_* fields of the Applications source.
  reconstructed(184, 'Edge Applications + WAF Event Collector', 'http', HTTP_VARIABLES),
  // Reconstruction. AZ-REF's documented Standard-POST form for this source is a tab-separated line
  // (v1\t$time_iso8601\t$clientid\t…); that is a custom template, kept as a fixture, not this preset.
  reconstructed(251, 'Activity History Collector', 'rtm_activity', ACTIVITY_VARIABLES),
]

export const AZION_TEMPLATES: readonly AzionTemplate[] = Object.freeze(TEMPLATES.map((t) => Object.freeze(t)))

export function findAzionTemplate(id: number): AzionTemplate | undefined {
  return AZION_TEMPLATES.find((t) => t.id === id)
}

/** Every model of a preset that describes its records: the documented ones, or the reconstruction. */
export function presetModels(t: AzionTemplate): string[] {
  return t.documentedModels.length > 0 ? t.documentedModels.map((m) => m.templateModel) : [t.templateModel]
}
