import { formatIssues } from '../config/load.js'
import {
  apiStatePath,
  applyOverlay,
  emptyOverlay,
  readOverlay,
  setAside,
  shadowedFileChanges,
  type ApiOverlay,
} from '../config/store.js'
import type { GatewayConfig } from '../config/types.js'
import type { Logger } from '../telemetry/logger.js'
import { checkCandidate } from './candidate.js'
import type { ApiState } from './config-writer.js'

/**
 * At start: the config file's config with the management API's saved changes applied, validated as a whole.
 * Never fails the start: when the saved changes are unreadable or no longer fit the config file (a sink they
 * use was removed from it, say), the problem is logged, the state file is moved aside
 * (api-state.json.rejected-<time>, nothing is lost) and the gateway starts with the config file alone.
 */
export async function openApiState(
  fileConfig: GatewayConfig,
  logger: Logger,
): Promise<{ config: GatewayConfig; state: ApiState }> {
  const file = apiStatePath(fileConfig)
  const alone = { config: fileConfig, state: { file, fileConfig, overlay: emptyOverlay() } }
  let overlay: ApiOverlay
  try {
    overlay = await readOverlay(file)
  } catch (err) {
    await reject(file, logger, { err: (err as Error).message })
    return alone
  }
  const names = (kind: keyof ApiOverlay): string[] => Object.keys(overlay[kind])
  if (names('streams').length === 0 && names('sinks').length === 0) return alone

  const { config, issues } = await checkCandidate(applyOverlay(fileConfig, overlay), fileConfig)
  if (!config) {
    await reject(file, logger, { issues: formatIssues(issues).split('\n') })
    return alone
  }
  for (const path of shadowedFileChanges(fileConfig, overlay))
    logger.warn(
      { file, object: path },
      'the config file changed an object that the management API overrides; the API version is used (remove its entry from the state file to use the config file)',
    )
  logger.info(
    { file, streams: names('streams'), sinks: names('sinks') },
    'applied the changes saved by the management API',
  )
  return { config, state: { file, fileConfig, overlay } }
}

async function reject(file: string, logger: Logger, details: Record<string, unknown>): Promise<void> {
  let movedTo: string | undefined
  try {
    movedTo = await setAside(file)
  } catch (err) {
    logger.error({ file, err: (err as Error).message }, 'could not move the rejected API state file aside')
  }
  logger.error(
    { file, movedTo, ...details },
    'the changes saved by the management API do not fit the config file; starting with the config file alone',
  )
}
