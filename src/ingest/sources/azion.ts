import type { ConfigIssue } from '../../config/load.js'
import { headerPairs } from '../../config/headers.js'
import { compileTemplate, TemplateError } from '../azion-template.js'
import { findAzionTemplate, presetModels } from '../azion-templates.js'
import { azionFramer, jsonRecordFramer, maxDepthOf, templateRecordFramer } from '../framing.js'
import type { Source } from './source.js'

/** Azion Data Stream sends up to 5 custom headers [AZ-HTTP]. */
export const AZION_MAX_HEADERS = 5

/**
 * Azion Data Stream's HTTP POST endpoint: payload_format around $dataset, records joined by
 * log_line_separator [AZ-REF "Payload"]. Records follow the stream's template: a built-in preset (`template`,
 * which describes records: differences are drift) or the user's `templateModel` (a strict contract).
 */
export const azionSource: Source<'azion'> = {
  type: 'azion',
  ownKeys: ['template', 'templateModel', 'dataSource', 'domainIds'],
  check(stream, at) {
    const issues: ConfigIssue[] = []
    if (stream.template === undefined && stream.templateModel === undefined)
      issues.push({
        path: at,
        message: 'an azion stream needs "template" (a built-in id) or "templateModel"',
      })
    if (stream.template !== undefined && stream.templateModel !== undefined)
      issues.push({ path: at, message: 'set either "template" or "templateModel", not both' })
    if (stream.template !== undefined && !findAzionTemplate(stream.template))
      issues.push({ path: `${at}.template`, message: `unknown Azion template ${stream.template}` })
    if (stream.templateModel !== undefined) {
      try {
        compileTemplate(stream.templateModel)
      } catch (err) {
        if (!(err instanceof TemplateError)) throw err
        issues.push({ path: `${at}.templateModel`, message: err.message })
      }
    }
    if (!stream.payloadFormat.includes('$dataset'))
      issues.push({ path: `${at}.payloadFormat`, message: 'must contain $dataset' })
    if (headerPairs(stream.auth.headers).length > AZION_MAX_HEADERS)
      issues.push({
        path: `${at}.auth.headers`,
        message: `Azion sends at most ${AZION_MAX_HEADERS} custom headers`,
      })
    return issues
  },
  contentTypes: undefined,
  templates(stream) {
    const preset = stream.templateModel === undefined ? findAzionTemplate(stream.template!) : undefined
    return preset
      ? { variants: presetModels(preset).map(compileTemplate), preset }
      : { variants: [compileTemplate(stream.templateModel!)] }
  },
  framer(stream, { template, proven }) {
    if (!template) throw new Error('an azion stream needs a compiled template')
    return azionFramer(stream, template, maxDepthOf(stream), proven)
  },
  recordFramer(stream, template) {
    if (template?.kind === 'text') return templateRecordFramer(template)
    return jsonRecordFramer(maxDepthOf(stream), false)
  },
}
