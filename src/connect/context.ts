import type { GatewayConfig } from '../config/types.js'
import type { Ledger } from './ledger.js'

/** Where connect writes a sink's new keys (Adobe inletUrl, Domo streamId): the management API's store. */
export interface SinkStore {
  /** Applies a JSON merge patch to the sink through the store; resolves once saved (and, live, applied). */
  patchSink(name: string, patch: Record<string, unknown>): Promise<void>
  /** Fails early, before any vendor call, when a later patchSink could not work. */
  check(name: string): Promise<void>
}

export interface ConnectContext {
  /** The effective config (the config file with the management API's changes), secrets in clear. */
  config: GatewayConfig
  /** Vendor API bases and tokens (EMNIFY_API_URL, EMNIFY_API_TOKEN, AZION_…, ADOBE_PLATFORM_URL). */
  env: NodeJS.ProcessEnv
  /** Only reads are sent; changes are recorded and shown. */
  dryRun: boolean
  ledger: Ledger
  store: SinkStore
  /** The base URL vendors reach the gateway at; default server.publicUrl. */
  publicUrl?: string
}
