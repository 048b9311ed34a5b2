import { readFileSync } from 'node:fs'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  compileTemplate,
  isTemplateMismatch,
  renderTemplate,
  TemplateError,
  templateSchema,
  type CompiledTemplate,
} from './azion-template.js'
import { AZION_TEMPLATES, AZION_VARIABLES, findAzionTemplate, presetModels } from './azion-templates.js'

const fixture = (name: string): string =>
  readFileSync(new URL(`../../test/fixtures/azion/${name}`, import.meta.url), 'utf8')

/** AZ-REF's documented Activity History Standard-POST form, as a user would write it in YAML ("\t" escapes). */
const ACTIVITY_MODEL =
  'v1\\t$time_iso8601\\t$clientid\\t$title\\t$comment\\t$type\\t$author_name\\t$author_email'

/** The Functions Event Collector preset, verbatim from AZ-FN (vendor-formats.md §2.2). */
const FUNCTIONS_PRESET =
  '{"time":"$time","client":"$client","configuration":"$global_id","edgeFunctionID":"$edge_function_id","requestID":"$request_id","messageSource":"$message_source","logLevel":"$log_level","logMessage":"$log_message"}'

function text(model: string): Extract<CompiledTemplate, { kind: 'text' }> {
  const t = compileTemplate(model)
  if (t.kind !== 'text') throw new Error(`expected a text template, got ${t.kind}`)
  return t
}

function json(model: string): Extract<CompiledTemplate, { kind: 'json' }> {
  const t = compileTemplate(model)
  if (t.kind !== 'json') throw new Error(`expected a json template, got ${t.kind}`)
  return t
}

describe('compileTemplate: JSON templates', () => {
  it('compiles the Functions preset into key → variable fields, variables in order', () => {
    const t = json(FUNCTIONS_PRESET)
    expect(t.model).toBe(FUNCTIONS_PRESET)
    expect(t.variables).toEqual([
      'time',
      'client',
      'global_id',
      'edge_function_id',
      'request_id',
      'message_source',
      'log_level',
      'log_message',
    ])
    expect(t.fields).toContainEqual({ key: 'configuration', variable: 'global_id' })
    expect(t.fields).toContainEqual({ key: 'logMessage', variable: 'log_message' })
    expect(t.fields).toHaveLength(8)
  })

  it('keeps constants as literals and splits values that mix text and variables', () => {
    const t = json('{"v":"1","url":"$scheme://$host$request_uri","empty":"","cost":"$ 5"}')
    expect(t.fields).toEqual([
      { key: 'v', variable: null, literal: '1' },
      {
        key: 'url',
        variable: null,
        parts: [
          { variable: 'scheme' },
          { literal: '://' },
          { variable: 'host' },
          { variable: 'request_uri' },
        ],
      },
      { key: 'empty', variable: null, literal: '' },
      { key: 'cost', variable: null, literal: '$ 5' }, // a `$` without a name is text
    ])
    expect(t.variables).toEqual(['scheme', 'host', 'request_uri'])
  })

  it('reads variable names greedily ($time_iso8601, $requestPath)', () => {
    const t = json('{"a":"$time_iso8601","b":"$requestPath","c":"$time"}')
    expect(t.variables).toEqual(['time_iso8601', 'requestPath', 'time'])
  })

  it('lists a variable used twice once', () => {
    expect(json('{"a":"$x","b":"$x"}').variables).toEqual(['x'])
  })

  it('does not turn "\\t" into a tab in JSON models (JSON.parse decodes it)', () => {
    const t = json('{"a\\tb":"$x"}')
    expect(t.fields).toEqual([{ key: 'a\tb', variable: 'x' }])
    expect(t.model).toBe('{"a\\tb":"$x"}')
  })

  it('treats a __proto__ key as an ordinary key without touching any prototype', () => {
    const t = json('{"__proto__":"$__proto__","constructor":"$c","ok":"$ok"}')
    expect(t.fields.map((f) => f.key)).toEqual(['__proto__', 'constructor', 'ok'])
    expect(t.variables).toEqual(['__proto__', 'c', 'ok'])
    const schema = templateSchema(t, 'https://streamgate.dev/schemas/test-proto.json') as {
      properties: object
      required: string[]
      patternProperties: Record<string, unknown>
    }
    // ajv ignores __proto__ in properties/required, so that key is checked through patternProperties/not.
    expect(Object.keys(schema.properties)).toEqual(['constructor', 'ok'])
    expect(Object.getPrototypeOf(schema.properties)).toBe(Object.prototype)
    expect(schema.required).toEqual(['constructor', 'ok'])
    expect(Object.keys(schema.patternProperties)).toEqual(['^__proto__$'])
    const values = JSON.parse('{"__proto__":"p","c":"C","ok":"K"}') as Record<string, string>
    expect(renderTemplate(t, values)).toBe('{"__proto__":"p","constructor":"C","ok":"K"}')
    expect(renderTemplate(t, { c: 'C', ok: 'K' })).toBe('{"__proto__":"-","constructor":"C","ok":"K"}')
    expect(({} as Record<string, unknown>).type).toBeUndefined()
  })
})

describe('compileTemplate: text templates', () => {
  it('reads "\\t" escapes as tabs and gives the same result as real tabs', () => {
    const escaped = text(ACTIVITY_MODEL)
    const real = text(ACTIVITY_MODEL.replaceAll('\\t', '\t'))
    expect(escaped.model).toBe(
      'v1\t$time_iso8601\t$clientid\t$title\t$comment\t$type\t$author_name\t$author_email',
    )
    expect(real.model).toBe(escaped.model)
    expect(escaped.variables).toEqual([
      'time_iso8601',
      'clientid',
      'title',
      'comment',
      'type',
      'author_name',
      'author_email',
    ])
  })

  it('treats AZ-REF\'s space-separated example ("$request_method $host $status") as text', () => {
    const t = text('$request_method $host $status')
    expect(t.parse('GET www.onedomain.com 200')).toEqual({
      request_method: 'GET',
      host: 'www.onedomain.com',
      status: '200',
    })
  })

  it('treats a model that is a JSON string, not an object, as text', () => {
    const t = text('"$a"')
    expect(t.parse('"x"')).toEqual({ a: 'x' })
  })
})

describe('text parse', () => {
  const activity = text(ACTIVITY_MODEL)

  it('splits the documented Activity History lines (fixture) back into named fields', () => {
    const lines = fixture('activity-history.tsv').split('\n')
    expect(lines).toHaveLength(3)
    const first = activity.parse(lines[0]!)
    expect(isTemplateMismatch(first)).toBe(false)
    expect(first).toEqual({
      time_iso8601: '2024-06-12T14:05:11+00:00',
      clientid: '4529r',
      title: 'Edge Application shop-frontend was edited',
      comment: 'Raised the browser cache TTL to 3600 s',
      type: 'edited',
      author_name: 'Maria Souza',
      author_email: 'maria.souza@example.com',
    })
    expect(Object.getPrototypeOf(first)).toBeNull()
    expect((activity.parse(lines[1]!) as Record<string, string>).comment).toBe('-')
    // Parsing and rendering are inverses on every fixture line.
    for (const line of lines) {
      const fields = activity.parse(line)
      if (isTemplateMismatch(fields)) throw new Error(fields.mismatch)
      expect(renderTemplate(activity, fields)).toBe(line)
    }
  })

  it('reports a missing separator with the variable and column', () => {
    const r = activity.parse('v1\t2024-06-12T14:05:11+00:00')
    expect(isTemplateMismatch(r)).toBe(true)
    expect(r).toEqual({
      mismatch: 'expected "\\t" after $time_iso8601 (value starting at column 4), found the end of the line',
    })
  })

  it('reports a wrong leading literal at column 1', () => {
    const r = activity.parse('v2\ta\tb\tc\td\te\tf\tg')
    expect(isTemplateMismatch(r) && r.mismatch).toBe('expected "v1\\t" at column 1')
  })

  it('gives the last variable the rest of the line, tabs included', () => {
    const r = activity.parse('v1\tt\tc\tti\tco\tty\tname\tmail\textra')
    expect(isTemplateMismatch(r)).toBe(false)
    expect((r as Record<string, string>).author_email).toBe('mail\textra')
  })

  it('handles leading and trailing literals', () => {
    const t = text('[$a|$b]')
    expect(t.parse('[x|y]')).toEqual({ a: 'x', b: 'y' })
    expect(t.parse('[|]')).toEqual({ a: '', b: '' })
    expect(t.parse('[x|y]]')).toEqual({ a: 'x', b: 'y]' })
    const r = t.parse('[x|y')
    expect(isTemplateMismatch(r) && r.mismatch).toBe(
      'expected the line to end with "]" after $b (value starting at column 4)',
    )
  })

  it('requires a repeated variable to repeat its value', () => {
    const t = text('$a-$b-$a')
    expect(t.parse('x-y-x')).toEqual({ a: 'x', b: 'y' })
    expect(isTemplateMismatch(t.parse('x-y-z'))).toBe(true)
  })

  it('tells a mismatch from a record that has a variable called "mismatch"', () => {
    const t = text('$mismatch;$b')
    const r = t.parse('x;y')
    expect(isTemplateMismatch(r)).toBe(false)
    expect(r).toEqual({ mismatch: 'x', b: 'y' })
    expect(isTemplateMismatch(t.parse('no separator'))).toBe(true)
  })

  it('stores a $__proto__ variable as an own field', () => {
    const t = text('$__proto__\t$b')
    const r = t.parse('evil\tok') as Record<string, string>
    expect(Object.keys(r)).toEqual(['__proto__', 'b'])
    expect(Object.getOwnPropertyDescriptor(r, '__proto__')?.value).toBe('evil')
    expect(({} as Record<string, unknown>).evil).toBeUndefined()
  })
})

describe('renderTemplate', () => {
  it('JSON-escapes values and keeps the model text (spacing, order) as is', () => {
    const t = json('{"a": "$a", "b":"x-$b"}')
    const values = { a: 'say "hi"\\ \n\t\u0001 é', b: '</script>' }
    const out = renderTemplate(t, values)
    expect(out).toBe('{"a": "say \\"hi\\"\\\\ \\n\\t\\u0001 é", "b":"x-</script>"}')
    expect(JSON.parse(out)).toEqual({ a: values.a, b: 'x-</script>' })
  })

  it('renders a missing value as "-" (Azion\'s no-value marker)', () => {
    expect(renderTemplate(json('{"a":"$a","b":"$b"}'), { a: '1' })).toBe('{"a":"1","b":"-"}')
  })

  it('inserts values raw in text templates, and never re-expands a $ inside a value', () => {
    const t = text('$a\\t$b')
    expect(renderTemplate(t, { a: 'say "hi"', b: '$a' })).toBe('say "hi"\t$a')
  })

  it('reproduces the Functions preset fixture byte for byte', () => {
    const t = json(findAzionTemplate(86)!.templateModel)
    const lines = fixture('functions-preset.ndjson').split('\n')
    expect(lines).toHaveLength(3)
    for (const line of lines) {
      const record = JSON.parse(line) as Record<string, string>
      const values: Record<string, string> = {}
      for (const f of t.fields) values[f.variable!] = record[f.key]!
      expect(renderTemplate(t, values)).toBe(line)
    }
  })
})

describe('compileTemplate: unusable templates throw TemplateError', () => {
  const cases: [string, string, RegExp][] = [
    ['empty', '', /empty/],
    ['blank', '  \n', /empty/],
    ['no variables (text)', 'v1\tconstant', /has no \$variables/],
    ['no variables (JSON)', '{"a":"constant"}', /has no \$variables/],
    ['no keys', '{}', /has no keys/],
    ['adjacent variables', '$a$b', /\$a and \$b are adjacent/],
    ['adjacent variables after "\\t"', 'v1\\t$time$client', /\$time and \$client are adjacent/],
    ['number value', '{"a":"$a","n":1}', /value of "n" must be a string.*got number/],
    ['null value', '{"a":null}', /value of "a" must be a string.*got null/],
    ['nested object', '{"a":{"b":"$b"}}', /value of "a" must be a string.*got object/],
    ['array', '["$a","$b"]', /not an array/],
    ['variable in a key', '{"$k":"$v"}', /key "\$k" contains a \$variable/],
    ['escaped dollar', '{"a":"\\u0024x","b":"$b"}', /write each \$variable literally/],
    ['duplicate key', '{"a":"$x","a":"$y"}', /use each key once/],
  ]
  for (const [name, model, message] of cases) {
    it(name, () => {
      let caught: unknown
      try {
        compileTemplate(model)
      } catch (e) {
        caught = e
      }
      expect(caught).toBeInstanceOf(TemplateError)
      expect((caught as TemplateError).name).toBe('TemplateError')
      expect((caught as TemplateError).message).toMatch(message)
    })
  }
})

describe('properties', () => {
  const name = fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,12}$/)
  // Separator text: no name characters (they would extend the variable before them), no backslash (the
  // "\t" rule), no "{" or "[" (so the model never parses as a JSON object or array).
  const separator = fc
    .string({
      unit: fc.constantFrom('\t', ' ', '|', ',', ';', '"', '.', ':', '-', '=', ']', '}', '$', '\n'),
      minLength: 1,
      maxLength: 3,
    })
    .filter((s) => !/\$[A-Za-z_]/.test(s))
  const anyText = fc.string({ unit: 'binary', maxLength: 20 })

  it('text: render then parse returns the values (values never hold the literal that follows them)', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(name, { minLength: 1, maxLength: 6 }),
        fc.array(separator, { minLength: 6, maxLength: 6 }),
        fc.option(separator),
        fc.option(separator),
        fc.array(anyText, { minLength: 6, maxLength: 6 }),
        (vars, seps, lead, trail, texts) => {
          let model = lead ?? ''
          vars.forEach((v, i) => {
            model += `$${v}`
            if (i < vars.length - 1) model += seps[i]!
          })
          model += trail ?? ''
          const t = compileTemplate(model)
          if (t.kind !== 'text') return false
          const values: Record<string, string> = {}
          vars.forEach((v, i) => {
            const following = i < vars.length - 1 ? seps[i]! : undefined
            let value = texts[i]!
            // Enforce the documented assumption: the following literal first occurs right after the value.
            if (following !== undefined) {
              while ((value + following).indexOf(following) !== value.length) value = value.slice(1)
            }
            values[v] = value
          })
          const parsed = t.parse(renderTemplate(t, values))
          expect(isTemplateMismatch(parsed)).toBe(false)
          expect({ ...parsed }).toEqual(values)
        },
      ),
    )
  })

  it('json: render then JSON.parse gives the values, for any keys and values', () => {
    const key = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 8 }),
      fc.constantFrom('__proto__', '1', 'constructor'),
    )
    fc.assert(
      fc.property(
        fc.uniqueArray(
          fc.tuple(
            key.filter((k) => !/\$[A-Za-z_]/.test(k)),
            name,
          ),
          {
            minLength: 1,
            maxLength: 6,
            selector: ([k]) => k,
          },
        ),
        fc.array(anyText, { minLength: 6, maxLength: 6 }),
        (pairs, texts) => {
          const model = `{${pairs.map(([k, v]) => `${JSON.stringify(k)}: ${JSON.stringify(`$${v}`)}`).join(', ')}}`
          const t = json(model)
          const values: Record<string, string> = {}
          pairs.forEach(([, v], i) => (values[v] = texts[i]!))
          const parsed = JSON.parse(renderTemplate(t, values)) as Record<string, string>
          for (const [k, v] of pairs) {
            expect(Object.getOwnPropertyDescriptor(parsed, k)?.value).toBe(values[v])
          }
          expect(Object.keys(parsed)).toHaveLength(pairs.length)
        },
      ),
    )
  })
})

/**
 * The template_model of a line of Azion's API document (vendor-docs/001, sections 6 and 7), made JSON: the
 * document prints its inner quotes as typographic quotes (\u201c, \u201d) and drops the closing quote of the
 * last value ("$host\}"). Keys, variables, order and spacing stay the document's.
 */
function modelFromDoc(line: string): string {
  const raw = line.slice(line.search(/template_model"\s*:\s*/i)).replace(/^[^:]*:\s*"?/, '')
  return raw
    .replace(/\\[\u201c\u201d]/g, '"')
    .replace(/\$host\\}/, '$host"}')
    .replace(/\s*\u201d,?\s*$/, '')
}

const docModels = (file: string): Map<number, string> => {
  const lines = fixture(file).split('\n')
  const out = new Map<number, string>()
  lines.forEach((l, i) => {
    if (!/template_model/i.test(l)) return
    const id = lines
      .slice(0, i)
      .reverse()
      .map((x) => /"id":\s*(\d+)/.exec(x))
      .find(Boolean)
    out.set(Number(id![1]), modelFromDoc(l))
  })
  return out
}

describe('AZION_TEMPLATES', () => {
  it('has the v3 template ids with their names and data sources (AZ-OAS3, and 3 from the API document)', () => {
    expect(AZION_TEMPLATES.map((t) => [t.id, t.name, t.dataSource, t.documented, t.abbreviated])).toEqual([
      [2, 'Edge Applications Event Collector', 'http', true, true],
      [3, 'Test Applications EC', 'http', true, true],
      [4, 'WAF Event Collector', 'waf', false, false],
      [86, 'Edge Functions Event Collector', 'cells_console', true, false],
      [184, 'Edge Applications + WAF Event Collector', 'http', false, false],
      [251, 'Activity History Collector', 'rtm_activity', false, false],
    ])
  })

  it('quotes the models of the API document: templates 2 and 3 from its list, 86 from its detail', () => {
    const list = docModels('templates-list-response.txt')
    const detail = docModels('template-86-detail-response.txt')
    expect([...list.keys()]).toEqual([2, 3])
    expect([...detail.keys()]).toEqual([86])
    expect(findAzionTemplate(2)!.templateModel).toBe(list.get(2))
    expect(findAzionTemplate(3)!.templateModel).toBe(list.get(3))
    expect(json(list.get(2)!).fields.map((f) => f.key)).toEqual([
      'version',
      'time',
      'client',
      'configuration',
      'host',
    ])
    expect(json(list.get(3)!).fields.map((f) => f.key)).toEqual([
      'request_time',
      'time',
      'client',
      'proxy_status',
      'host',
    ])
    // 86: both documented shapes, the Functions page's eight keys first.
    const models = findAzionTemplate(86)!.documentedModels
    expect(models.map((m) => m.templateModel)).toEqual([FUNCTIONS_PRESET, detail.get(86)])
    expect(json(detail.get(86)!).fields.map((f) => [f.key, f.variable])).toEqual([
      ['time', 'time'],
      ['client', 'client'],
      ['requestID', 'request_id'],
      ['logmessage', 'log_message'],
    ])
    expect(models.map((m) => m.abbreviated)).toEqual([false, true])
    expect(presetModels(findAzionTemplate(86)!)).toEqual([FUNCTIONS_PRESET, detail.get(86)])
  })

  it('finds by id and returns undefined for unknown ids', () => {
    expect(findAzionTemplate(184)?.name).toBe('Edge Applications + WAF Event Collector')
    expect(findAzionTemplate(3)?.name).toBe('Test Applications EC')
    expect(findAzionTemplate(5)).toBeUndefined()
  })

  it('reconstructs undocumented presets as "name":"$name" over the documented variables', () => {
    const reconstructed = AZION_TEMPLATES.filter((t) => !t.documented)
    expect(reconstructed.map((t) => t.id)).toEqual([4, 184, 251])
    for (const t of reconstructed) {
      const c = json(t.templateModel)
      expect(c.fields.every((f) => f.key === f.variable)).toBe(true)
      expect(t.documentedModels).toEqual([])
      expect(presetModels(t)).toEqual([t.templateModel])
    }
    expect(json(findAzionTemplate(4)!.templateModel).variables).toEqual([...AZION_VARIABLES.waf])
    expect(json(findAzionTemplate(184)!.templateModel).variables).toEqual([...AZION_VARIABLES.http])
    expect(json(findAzionTemplate(251)!.templateModel).variables).toEqual([...AZION_VARIABLES.rtm_activity])
  })

  it('reconstructions use only documented variables of their data source', () => {
    for (const t of AZION_TEMPLATES.filter((x) => !x.documented)) {
      const documented = new Set(AZION_VARIABLES[t.dataSource])
      expect(compileTemplate(t.templateModel).variables.filter((v) => !documented.has(v))).toEqual([])
    }
  })

  it('lists the documented variables per data source (AZ-REF)', () => {
    expect(AZION_VARIABLES.http).toHaveLength(53)
    expect(AZION_VARIABLES.http).toContain('requestPath')
    expect(AZION_VARIABLES.waf).toContain('truncated_body')
    expect(AZION_VARIABLES.cells_console).toHaveLength(8)
    expect(AZION_VARIABLES.rtm_activity).toHaveLength(21)
    expect(AZION_VARIABLES.rtm_activity.some((v) => v.startsWith('$'))).toBe(false)
  })
})
