import { connectAdobe, disconnectAdobe, listAdobe } from './adobe.js'
import { connectAzion, disconnectAzion, listAzion } from './azion.js'
import type { ConnectContext } from './context.js'
import { connectDomo, disconnectDomo, listDomo } from './domo.js'
import { connectEmnify, disconnectEmnify, listEmnify } from './emnify.js'
import type { ConnectionRow, ConnectReport } from './plan.js'
import { ConnectProblem, VendorError, VENDORS, type Vendor } from './vendor-http.js'

// `streamgate connect` as one set of operations, shared by the CLI (src/connect/cli.ts) and the management
// API (src/connect/routes.ts): emnify and Azion wire a stream (the vendor sends to its ingest URL), Adobe
// and Domo a sink (the gateway sends to the vendor).

export const STREAM_VENDORS = ['emnify', 'azion'] as const
export const SINK_VENDORS = ['adobe', 'domo'] as const

export function isVendor(value: unknown): value is Vendor {
  return typeof value === 'string' && (VENDORS as readonly string[]).includes(value)
}

export function kindOf(vendor: Vendor): 'stream' | 'sink' {
  return vendor === 'emnify' || vendor === 'azion' ? 'stream' : 'sink'
}

const OPERATIONS = {
  emnify: { connect: connectEmnify, disconnect: disconnectEmnify, list: listEmnify },
  azion: { connect: connectAzion, disconnect: disconnectAzion, list: listAzion },
  adobe: { connect: connectAdobe, disconnect: disconnectAdobe, list: listAdobe },
  domo: { connect: connectDomo, disconnect: disconnectDomo, list: listDomo },
} satisfies Record<Vendor, unknown>

/** Checks that `name` is a stream (emnify, azion) or sink (adobe, domo) of the vendor's kind. */
export function checkTarget(ctx: ConnectContext, vendor: Vendor, name: string): void {
  if (kindOf(vendor) === 'stream') {
    const stream = Object.hasOwn(ctx.config.streams, name) ? ctx.config.streams[name] : undefined
    if (!stream)
      throw new ConnectProblem(`no stream ${JSON.stringify(name)} is configured`, 404, 'unknown-stream')
    if (stream.source !== vendor)
      throw new ConnectProblem(
        `stream ${JSON.stringify(name)} has source ${stream.source}: connect ${vendor} wires ${vendor} streams`,
        400,
        'wrong-vendor',
      )
    return
  }
  const sink = Object.hasOwn(ctx.config.sinks, name) ? ctx.config.sinks[name] : undefined
  if (!sink) throw new ConnectProblem(`no sink ${JSON.stringify(name)} is configured`, 404, 'unknown-sink')
  if (sink.type !== vendor)
    throw new ConnectProblem(
      `sink ${JSON.stringify(name)} is a ${sink.type} sink: connect ${vendor} wires ${vendor} sinks`,
      400,
      'wrong-vendor',
    )
}

export async function connect(ctx: ConnectContext, vendor: Vendor, name: string): Promise<ConnectReport> {
  checkTarget(ctx, vendor, name)
  return OPERATIONS[vendor].connect(ctx, name)
}

export async function disconnect(ctx: ConnectContext, vendor: Vendor, name: string): Promise<ConnectReport> {
  checkTarget(ctx, vendor, name)
  return OPERATIONS[vendor].disconnect(ctx, name)
}

export interface ConnectionsListing {
  rows: ConnectionRow[]
  /** Vendors not asked, and why (no token set, …); only when no vendor was named. */
  skipped: { vendor: Vendor; reason: string }[]
}

/**
 * What exists at each vendor for this gateway. Without `vendor`, every vendor with a stream or sink in the
 * config is asked, and one that cannot be (no token) is reported as skipped; a named vendor must answer.
 */
export async function connections(ctx: ConnectContext, vendor?: Vendor): Promise<ConnectionsListing> {
  const listing: ConnectionsListing = { rows: [], skipped: [] }
  for (const v of vendor ? [vendor] : VENDORS) {
    if (!vendor && !uses(ctx, v)) continue
    try {
      listing.rows.push(...(await OPERATIONS[v].list(ctx)))
    } catch (err) {
      if (vendor || !(err instanceof ConnectProblem || err instanceof VendorError)) throw err
      listing.skipped.push({ vendor: v, reason: err.message })
    }
  }
  return listing
}

function uses(ctx: ConnectContext, vendor: Vendor): boolean {
  return kindOf(vendor) === 'stream'
    ? Object.values(ctx.config.streams).some((s) => s.source === vendor)
    : Object.values(ctx.config.sinks).some((s) => s.type === vendor)
}
