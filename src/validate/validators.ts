import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv'
import addFormatsModule, { type FormatsPlugin } from 'ajv-formats'
import { SCHEMAS_DIR } from '../config/load.js'
import { byteSchemaCheck, type ByteSchemaCheck } from './byte-schema.js'

// One ajv instance for records; each schema is compiled once and looked up by its $id. The config file has
// its own validator (config/load.ts) because it fills in defaults, which record validation must never do.

// ajv-formats ships CJS with a default export; under NodeNext the callable sits on .default.
export const addFormats: FormatsPlugin =
  (addFormatsModule as unknown as { default?: FormatsPlugin }).default ??
  (addFormatsModule as unknown as FormatsPlugin)

export const BUILTIN_SCHEMAS = {
  'emnify-event': 'emnify-event.schema.json',
  'emnify-usage': 'emnify-usage.schema.json',
} as const

export type BuiltinSchemaName = keyof typeof BUILTIN_SCHEMAS

export interface RecordError {
  /** JSON pointer inside the record ("" = the record itself). */
  pointer: string
  message: string
}

export type RecordValidator = (value: unknown) => RecordError[] | null

export class Validators {
  private readonly ajv: Ajv
  private readonly byId = new Map<string, RecordValidator>()
  private readonly files = new Map<string, Record<string, unknown>>()

  constructor() {
    // allErrors off: the first error per record is enough to route it, and it keeps validation cheap.
    this.ajv = new Ajv({ allErrors: false, strict: false, validateFormats: true })
    addFormats(this.ajv)
  }

  /** A built-in schema by name (emnify-event, emnify-usage). */
  builtin(name: keyof typeof BUILTIN_SCHEMAS): RecordValidator {
    return this.fromFile(resolve(SCHEMAS_DIR, BUILTIN_SCHEMAS[name]))
  }

  /**
   * The byte-level check of a built-in schema (src/validate/byte-schema.ts): 0 proves a record valid JSON,
   * nested at most `maxDepth` deep, that the schema accepts; -1 means "parse and validate it". Undefined when
   * the schema uses keywords the check does not implement.
   */
  builtinByteCheck(name: keyof typeof BUILTIN_SCHEMAS, maxDepth: number): ByteSchemaCheck | undefined {
    const key = `${name}:${maxDepth}`
    if (!this.byteChecks.has(key))
      this.byteChecks.set(key, byteSchemaCheck(this.builtinSchema(name), maxDepth))
    return this.byteChecks.get(key)
  }

  private readonly byteChecks = new Map<string, ByteSchemaCheck | undefined>()

  /** The schema object of a built-in schema (what drift tracking compares records with). */
  builtinSchema(name: keyof typeof BUILTIN_SCHEMAS): Record<string, unknown> {
    return this.schemaFile(resolve(SCHEMAS_DIR, BUILTIN_SCHEMAS[name]))
  }

  /** A schema file, read and parsed once. */
  schemaFile(path: string): Record<string, unknown> {
    let schema = this.files.get(path)
    if (!schema) {
      schema = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>
      this.files.set(path, schema)
    }
    return schema
  }

  fromFile(path: string): RecordValidator {
    const key = `file:${path}`
    const cached = this.byId.get(key)
    if (cached) return cached
    const schema = this.schemaFile(path)
    const validator = this.fromSchema(schema, key)
    this.byId.set(key, validator)
    return validator
  }

  /** Compiles (once per $id or key) a schema object. */
  fromSchema(
    schema: Record<string, unknown>,
    key = typeof schema.$id === 'string' ? schema.$id : undefined,
  ): RecordValidator {
    if (key !== undefined) {
      const cached = this.byId.get(key)
      if (cached) return cached
    }
    const id = typeof schema.$id === 'string' ? schema.$id : undefined
    const existing = id ? this.ajv.getSchema(id) : undefined
    const fn: ValidateFunction = existing ?? this.ajv.compile(schema)
    const validator: RecordValidator = (value) => (fn(value) ? null : toRecordErrors(fn.errors ?? []))
    if (key !== undefined) this.byId.set(key, validator)
    return validator
  }
}

function toRecordErrors(errors: readonly ErrorObject[]): RecordError[] {
  return errors.map((e) => {
    let pointer = e.instancePath
    let message = e.message ?? 'is invalid'
    if (e.keyword === 'required') {
      const missing = (e.params as { missingProperty: string }).missingProperty
      pointer = `${pointer}/${missing.replace(/~/g, '~0').replace(/\//g, '~1')}`
      message = 'is required'
    }
    return { pointer, message }
  })
}
