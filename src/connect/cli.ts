import { parseArgs } from 'node:util'
import { ConfigError } from '../config/load.js'
import { loadCheckedConfig } from '../pipeline/config-check.js'
import { ProblemError } from '../errors.js'
import { CliSinkStore, effectiveConfig } from './config-store.js'
import type { ConnectContext } from './context.js'
import { Ledger, ledgerDirOf } from './ledger.js'
import type { ConnectionRow, ConnectReport } from './plan.js'
import { connect, connections, disconnect, isVendor, kindOf } from './service.js'
import { ConnectProblem, VendorError, type RequestRecord, type Vendor } from './vendor-http.js'

// `streamgate connect | connections | disconnect` (SPEC §8): the CLI face of src/connect/service.ts.
// Exit codes: 0 done (also "unchanged" and "nothing to delete"), 1 the vendor or the gateway refused or the
// target cannot be connected as configured, 2 usage.

export const CONNECT_USAGE = `  streamgate connect emnify|azion STREAM [--public-url URL] [--config FILE] [--dry-run] [--json]
                                                create or update the vendor's data stream that sends to the
                                                stream's ingest URL (URL default server.publicUrl)
  streamgate connect adobe|domo SINK [--config FILE] [--dry-run] [--json] [--admin-url URL]
                                                create (or find) the vendor's inlet / stream and write its
                                                inletUrl / streamId into the sink
  streamgate connections [VENDOR] [--public-url URL] [--config FILE] [--json]
                                                what exists at each vendor and whether it matches the config
  streamgate disconnect emnify|azion STREAM | adobe|domo SINK [same options]
                                                delete what connect made
`

const NOUNS: Record<Vendor, string> = {
  emnify: 'emnify data stream',
  azion: 'Azion data streaming',
  adobe: 'Adobe streaming connection',
  domo: 'Domo stream',
}

function write(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`)
}

function fail(text: string, code = 1): number {
  process.stderr.write(text.endsWith('\n') ? text : `${text}\n`)
  return code
}

export async function runConnect(argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  let parsed: ReturnType<typeof parse>
  try {
    parsed = parse(rest)
  } catch (err) {
    return fail(`${(err as Error).message}\nusage:\n${CONNECT_USAGE}`, 2)
  }
  const { values, positionals } = parsed
  const [vendorArg, name, extra] = positionals
  if (command === 'connections') {
    if (name !== undefined || (vendorArg !== undefined && !isVendor(vendorArg)))
      return fail(`usage:\n${CONNECT_USAGE}`, 2)
  } else if (!isVendor(vendorArg) || name === undefined || extra !== undefined)
    return fail(`usage:\n${CONNECT_USAGE}`, 2)

  try {
    const fileConfig = await loadCheckedConfig(values.config ?? 'config/streamgate.yaml')
    const { config, warnings } = await effectiveConfig(fileConfig)
    for (const w of warnings) process.stderr.write(`warning: ${w}\n`)
    const ctx: ConnectContext = {
      config,
      env: process.env,
      dryRun: values['dry-run'] ?? false,
      ledger: new Ledger(ledgerDirOf(config)),
      store: new CliSinkStore(fileConfig, values['admin-url'] ? { adminUrl: values['admin-url'] } : {}),
      ...(values['public-url'] !== undefined ? { publicUrl: values['public-url'] } : {}),
    }
    if (command === 'connections') {
      const listing = await connections(ctx, vendorArg)
      if (values.json) write(JSON.stringify(listing, null, 2))
      else write(formatConnections(listing.rows, listing.skipped))
      return 0
    }
    const vendor = vendorArg as Vendor
    const report = await (command === 'connect' ? connect : disconnect)(ctx, vendor, name!)
    write(values.json ? JSON.stringify(report, null, 2) : formatReport(report))
    return 0
  } catch (err) {
    if (err instanceof VendorError || err instanceof ConnectProblem) return fail(err.message)
    if (err instanceof ConfigError) return fail(err.message)
    if (err instanceof ProblemError) {
      const errors =
        (err.extra.errors as { path?: string; pointer?: string; message: string }[] | undefined) ?? []
      return fail(
        [err.message, ...errors.map((e) => `  ${e.path ?? e.pointer ?? ''}: ${e.message}`)].join('\n'),
      )
    }
    throw err
  }
}

function parse(args: string[]) {
  return parseArgs({
    args,
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c' },
      'public-url': { type: 'string' },
      'admin-url': { type: 'string' },
      'dry-run': { type: 'boolean' },
      json: { type: 'boolean' },
    },
  })
}

/** A connect or disconnect as text; a dry run lists every request (secrets masked). */
export function formatReport(r: ConnectReport): string {
  const noun = NOUNS[r.vendor]
  const id = r.vendorId !== undefined ? ` ${r.vendorId}` : ''
  const would = (done: string, planned: string): string => (r.dryRun ? planned : done)
  let what: string
  switch (r.action) {
    case 'created':
      what = would(`created ${noun}${id}`, `would create ${/^[aeiou]/i.test(noun) ? 'an' : 'a'} ${noun}`)
      break
    case 'updated':
      what = would(`updated ${noun}${id}`, `would update ${noun}${id}`)
      break
    case 'unchanged':
      what = `${noun}${id} matches the config; nothing to change`
      break
    case 'deleted':
      what = would(`deleted ${noun}${id}`, `would delete ${noun}${id}`)
      break
    case 'absent':
      what = `no ${noun} to delete`
      break
  }
  const lines = [`${r.dryRun ? 'dry run: ' : ''}${kindOf(r.vendor)} ${r.name}: ${what}`]
  if (r.changes.length > 0) lines.push(`  changes: ${r.changes.join(', ')}`)
  if (r.config)
    for (const [key, value] of Object.entries(r.config))
      lines.push(
        `  ${key}: ${value === null ? would('removed from the sink', 'would be removed from the sink') : `${JSON.stringify(value)} ${would('written to the sink', 'would be written to the sink')}`}`,
      )
  for (const note of r.notes) lines.push(`  note: ${note}`)
  if (r.dryRun) {
    lines.push('requests (only reads were sent; secrets masked):')
    for (const req of r.requests) lines.push(...formatRequest(req))
  }
  return lines.join('\n')
}

function formatRequest(req: RequestRecord): string[] {
  const outcome = req.sent ? (req.status !== undefined ? ` → ${req.status}` : ' (sent)') : ' (not sent)'
  const lines = [`  ${req.method} ${req.url}${outcome}`]
  for (const [name, value] of Object.entries(req.headers)) lines.push(`    ${name}: ${value}`)
  if (req.body !== undefined)
    lines.push(
      ...JSON.stringify(req.body, null, 2)
        .split('\n')
        .map((l) => `    ${l}`),
    )
  return lines
}

export function formatConnections(
  rows: readonly ConnectionRow[],
  skipped: readonly { vendor: Vendor; reason: string }[],
): string {
  const lines: string[] = []
  for (const row of rows) {
    const local = row.name !== undefined ? `${row.kind} ${row.name}` : '(no local object)'
    const verdict =
      row.matches === true
        ? 'matches'
        : row.matches === false
          ? row.differences.length > 0
            ? 'differs'
            : 'missing'
          : '-'
    const cells = [
      row.vendor,
      local,
      row.vendorId !== undefined ? `id ${row.vendorId}` : 'no id',
      row.status ?? '-',
      verdict,
    ]
    lines.push(cells.join('  '))
    if (row.url !== undefined) lines.push(`    url: ${row.url}`)
    if (row.headers && row.headers.length > 0)
      lines.push(`    headers: ${row.headers.map((h) => `${h} (value not shown)`).join(', ')}`)
    if (row.differences.length > 0) lines.push(`    differs: ${row.differences.join(', ')}`)
    if (row.detail !== undefined) lines.push(`    ${row.detail}`)
  }
  for (const s of skipped) lines.push(`${s.vendor}: not asked: ${s.reason}`)
  if (lines.length === 0)
    lines.push('nothing to list: no emnify or azion stream, no adobe or domo sink in the config')
  return lines.join('\n')
}
