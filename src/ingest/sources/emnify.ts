import type { Source } from './source.js'

/** emnify Data Streamer, RestAPI/Webhook destination: a JSON array of records (bulk) or one object [EM-DS-INTEG]. */
export const emnifySource: Source<'emnify'> = {
  type: 'emnify',
  ownKeys: [],
  check: () => [],
}
