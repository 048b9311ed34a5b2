import { Hono } from 'hono'
import { problem } from '../errors.js'
import { AZION_TEMPLATES, findAzionTemplate, type AzionTemplate } from '../ingest/azion-templates.js'

// GET /api/v1/templates and /api/v1/templates/{id}: the built-in Azion templates, in the shape of Azion's
// own templates API [AZ-OAS3]: {"results": …, "schema_version": 3}, template_model as a string. Added to
// Azion's shape: every model the documents show for the preset (`documented_models`, with where each is
// quoted from and whether it is abbreviated), `documented` (false: template_model is our reconstruction) and
// `abbreviated` (every documented model is a shortened one: real records carry more keys, counted as drift).

const SCHEMA_VERSION = 3

function view(t: AzionTemplate): Record<string, unknown> {
  return {
    id: t.id,
    name: t.name,
    data_source: t.dataSource,
    template_model: t.templateModel,
    documented: t.documented,
    abbreviated: t.abbreviated,
    documented_models: t.documentedModels.map((m) => ({
      template_model: m.templateModel,
      source: m.source,
      abbreviated: m.abbreviated,
    })),
  }
}

export function templatesRoutes(): Hono {
  const app = new Hono()
  app.get('/templates', (c) =>
    c.json({
      count: AZION_TEMPLATES.length,
      results: AZION_TEMPLATES.map(view),
      schema_version: SCHEMA_VERSION,
    }),
  )
  app.get('/templates/:id', (c) => {
    const raw = c.req.param('id')
    const id = /^\d+$/.test(raw) ? Number(raw) : NaN
    const template = Number.isSafeInteger(id) ? findAzionTemplate(id) : undefined
    if (!template) throw problem('unknown-template', `no built-in template ${JSON.stringify(raw)}`)
    return c.json({ results: view(template), schema_version: SCHEMA_VERSION })
  })
  return app
}
