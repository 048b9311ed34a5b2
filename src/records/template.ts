import { randomUUID } from 'node:crypto'
import { rawField } from './json-scan.js'
import type { SinkRecord } from './record.js'

// Templates in sink settings: `{{field.path}}` reads a record field (JSON payloads, or the parsed fields of
// an Azion text record); `{{stream}}`, `{{yyyy}}`, `{{MM}}`, `{{dd}}`, `{{HH}}`, `{{mm}}`, `{{uuid}}` are the
// rest (time in UTC, from when the record was received). A missing field renders as "".

type Part =
  | { kind: 'text'; text: string }
  | { kind: 'field'; path: string[]; dotted: string }
  | { kind: 'builtin'; name: 'stream' | 'yyyy' | 'MM' | 'dd' | 'HH' | 'mm' | 'uuid' }

const BUILTINS = new Set(['stream', 'yyyy', 'MM', 'dd', 'HH', 'mm', 'uuid'])

export class RecordTemplate {
  private readonly parts: Part[]
  /** True when the template has no placeholders: one value for every record. */
  readonly constant: boolean
  readonly usesFields: boolean

  constructor(readonly source: string) {
    this.parts = []
    const re = /\{\{\s*([^}\s]+)\s*\}\}/g
    let last = 0
    for (let m = re.exec(source); m; m = re.exec(source)) {
      if (m.index > last) this.parts.push({ kind: 'text', text: source.slice(last, m.index) })
      const name = m[1]!
      if (BUILTINS.has(name)) this.parts.push({ kind: 'builtin', name: name as 'stream' })
      else this.parts.push({ kind: 'field', path: name.split('.'), dotted: name })
      last = m.index + m[0].length
    }
    if (last < source.length) this.parts.push({ kind: 'text', text: source.slice(last) })
    this.constant = this.parts.every((p) => p.kind === 'text')
    this.usesFields = this.parts.some((p) => p.kind === 'field')
  }

  render(record: SinkRecord, now?: Date): string {
    if (this.constant) return this.source
    let out = ''
    let date: Date | undefined = now
    for (const part of this.parts) {
      if (part.kind === 'text') out += part.text
      else if (part.kind === 'field') out += fieldText(record, part.path, part.dotted) ?? ''
      else if (part.name === 'stream') out += record.stream
      else if (part.name === 'uuid') out += randomUUID()
      else {
        date ??= new Date(record.receivedAtMs)
        out += timePart(date, part.name)
      }
    }
    return out
  }
}

export function fieldText(
  record: SinkRecord,
  path: readonly string[],
  dotted = path.join('.'),
): string | undefined {
  if (record.fields) return Object.hasOwn(record.fields, dotted) ? record.fields[dotted] : undefined
  return rawField(record.payload, path)
}

function timePart(d: Date, name: 'yyyy' | 'MM' | 'dd' | 'HH' | 'mm'): string {
  switch (name) {
    case 'yyyy':
      return String(d.getUTCFullYear())
    case 'MM':
      return String(d.getUTCMonth() + 1).padStart(2, '0')
    case 'dd':
      return String(d.getUTCDate()).padStart(2, '0')
    case 'HH':
      return String(d.getUTCHours()).padStart(2, '0')
    case 'mm':
      return String(d.getUTCMinutes()).padStart(2, '0')
  }
}
