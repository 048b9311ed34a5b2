// Load scenarios: what is POSTed, to which stream, and how the baseline parses the same bytes.
//
// Each body is generated once, up front, from a seeded PRNG (the same bytes in every run and on every
// machine) and then sent unchanged for the whole run. Records inside a batch differ from each other the way
// real ones do (ids, timestamps, message lengths, commas and escaped quotes inside strings), so framing and
// validation do real work; every stream runs without dedupe (emnify streams turn their default off), so
// re-sending the same body is not short-cut.

import type { BaselineParse } from './baseline-server.js'
import type { BenchSink } from './sinks.js'

export interface Scenario {
  /** CLI name (`--scenario NAME`). */
  readonly name: string
  readonly description: string
  /** Stream id on both targets: POST /ingest/<streamId>. */
  readonly streamId: string
  /** The streamgate stream config (section 6 keys) minus `sinks`, which the harness fills in. */
  readonly stream: Record<string, unknown>
  /** Request headers on top of `content-type: application/json`; the auth header the stream expects. */
  readonly headers: Readonly<Record<string, string>>
  readonly recordsPerRequest: number
  /** How bench/baseline-server.ts parses the body. */
  readonly baselineParse: BaselineParse
  /** Builds the body; the harness calls it once per run. */
  generate(): Buffer
  /** streamgate's sink (default `file`); kafka and s3 use the real backends of scripts/backends. */
  readonly sink?: BenchSink
  /** Run only when named with --scenario (it needs the backends), not in the default set. */
  readonly optIn?: boolean
  /**
   * Not a baseline comparison but a sustained-load run of bench/sustained.ts: `sustained` (full load, the
   * sustainable rate, 2× overload) or `fanout` (a burst, the highest rate with bounded lag on every lane).
   */
  readonly kind?: 'sustained' | 'fanout'
  /** Several sinks on the one stream (one lane each), instead of `sink`. */
  readonly fanOut?: readonly BenchSink[]
}

const EMNIFY_TOKEN = 'bench-emnify-token'
const AZION_KEY = 'bench-azion-key'

// ---- deterministic randomness ------------------------------------------------------------------------

/** mulberry32: tiny, fast, good enough to vary test data; seeded so bodies are reproducible. */
export function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

class Gen {
  private readonly next: () => number
  constructor(seed: number) {
    this.next = prng(seed)
  }
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1))
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)] as T
  }
  chance(p: number): boolean {
    return this.next() < p
  }
  hex(len: number): string {
    let s = ''
    for (let i = 0; i < len; i++) s += '0123456789abcdef'[this.int(0, 15)]
    return s
  }
  digits(len: number): string {
    let s = String(this.int(1, 9))
    for (let i = 1; i < len; i++) s += String(this.int(0, 9))
    return s
  }
  base36(len: number): string {
    let s = ''
    for (let i = 0; i < len; i++) s += '0123456789abcdefghijklmnopqrstuvwxyz'[this.int(0, 35)]
    return s
  }
  uuid(): string {
    return `${this.hex(8)}-${this.hex(4)}-4${this.hex(3)}-${this.pick(['8', '9', 'a', 'b'])}${this.hex(3)}-${this.hex(12)}`
  }
}

// ---- emnify --------------------------------------------------------------------------------------------

/** vendor-formats.md 1.4, "Update location" (test/fixtures/emnify/event-update-location.json). */
const EMNIFY_EVENT = {
  id: 176777623,
  alert: false,
  description:
    "New location received from VLR for IMSI='901430111111111', now attached to VLR='491720000095'.",
  timestamp: '2017-10-26T07:28:00.000+0000',
  event_type: { id: 1, description: 'Update location' },
  event_source: { id: 0, description: 'Network' },
  event_severity: { id: 0, description: 'Info' },
  organisation: { id: 215294, name: 'Demo Company' },
  endpoint: {
    id: 733023,
    name: 'GPS Tracker',
    ip_address: '127.137.56.181',
    tags: null,
    imei: '732554536373291',
  },
  imsi: { id: 216476, imsi: '401960166508658', import_date: '2016-12-27T10:09:23.000+0000' },
  sim: { id: 2614385, iccid: '3590376990354243198', production_date: '2016-12-27T10:09:23.000+0000' },
  detail: {
    id: 3,
    name: 'Vodafone',
    country: { id: 74, name: 'Germany', country_code: '49', mcc: '262', iso_code: 'de' },
    tapcode: [{ id: 2, tapcode: 'DEUD2' }],
    mnc: [{ id: 3, mnc: '02' }],
  },
}

const OPERATORS = [
  { id: 5, name: 'Telefonica O2', mnc: '07', country: { id: 74, mcc: '262', name: 'Germany' } },
  { id: 3, name: 'Vodafone', mnc: '02', country: { id: 74, mcc: '262', name: 'Germany' } },
  { id: 12, name: 'Orange', mnc: '01', country: { id: 75, mcc: '208', name: 'France' } },
  { id: 41, name: 'AT&T', mnc: '410', country: { id: 226, mcc: '310', name: 'United States' } },
]

function isoAt(ms: number, fraction: boolean): string {
  const s = new Date(ms).toISOString()
  return fraction ? s : `${s.slice(0, 19)}Z`
}

/**
 * Usage records shaped like vendor-formats.md 1.5 (test/fixtures/emnify/usage-data.json, usage-sms.json).
 * Ids are distinct; every 25th one is above 2^53 (emnify ids are 64-bit Longs), written as raw digits —
 * JSON.stringify of a JS number could not produce it.
 */
function emnifyUsageBody(count: number): Buffer {
  const g = new Gen(0x5eed_0003)
  const t0 = Date.UTC(2026, 10, 1, 0, 0, 0)
  const parts: string[] = []
  for (let i = 0; i < count; i++) {
    const id =
      i % 25 === 7 ? (9007199254740993n + BigInt(i) * 2n).toString() : String(333333333333333 + i * 3)
    const sms = g.chance(0.15)
    const rx = sms ? g.int(0, 1) : g.int(0, 5_000_000) / 1e6
    const tx = sms ? 1 - rx : g.int(0, 1_000_000) / 1e6
    const start = t0 + g.int(0, 86_400_000)
    const rest = {
      cost: sms ? 0.07 : Math.round((rx + tx) * 0.0085 * 1e8) / 1e8,
      operator: g.pick(OPERATORS),
      organisation: { id: 12345, name: 'Example Organization' },
      tariff: { id: 1, name: 'Internal Test Data Plan', ratezone: { id: g.int(1, 4), name: 'Area 2' } },
      traffic_type: sms ? { id: 6, description: 'SMS' } : { id: 5, description: 'Data' },
      endpoint: {
        id: 123456789 + g.int(0, 50_000),
        name: `Device ${g.base36(6)}`,
        ip_address: `10.${g.int(0, 255)}.${g.int(0, 255)}.${g.int(1, 254)}`,
        tags: g.chance(0.5) ? 'V1' : null,
        imei: g.digits(16),
        balance: null,
      },
      imsi: `29505${g.digits(10)}`,
      volume: { total: Math.round((rx + tx) * 1e6) / 1e6, rx, tx },
      start_timestamp: isoAt(start, false),
      sim: {
        id: 3324192 + g.int(0, 50_000),
        iccid: `8988303${g.digits(13)}`,
        msisdn: `4236${g.digits(11)}`,
        production_date: '2020-09-09T06:42:59Z',
      },
      currency: { id: 1, code: 'EUR', symbol: '€' },
      end_timestamp: isoAt(start + g.int(1_000, 3_600_000), true),
      imsi_id: 9624042 + g.int(0, 50_000),
      session_id: g.uuid(),
    }
    parts.push(`{"id":${id},${JSON.stringify(rest).slice(1)}`)
  }
  return Buffer.from(`[${parts.join(',')}]`)
}

// ---- Azion ---------------------------------------------------------------------------------------------

const AZION_PATHS = ['/api/orders', '/api/cart', '/login', '/static/app.js', '/graphql', '/api/users/me']
const AZION_WORDS =
  'edge cache origin upstream timeout retry request response header cookie token session user order cart payment region'.split(
    ' ',
  )

/** A log message of realistic, varied length: access lines, JSON blobs, stack traces, plain sentences. */
function azionLogMessage(g: Gen): string {
  switch (g.int(0, 3)) {
    case 0:
      return `${g.pick(['GET', 'POST', 'PUT'])} ${g.pick(AZION_PATHS)}/${g.int(1, 99999)}?ref=${g.base36(8)}, status=${g.pick([200, 200, 200, 201, 304, 404, 500])}, took ${g.int(1, 900)}ms, ua="Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/${g.int(100, 131)}.0.0.0 Safari/537.36"`
    case 1:
      return JSON.stringify({
        event: g.pick(['checkout', 'signup', 'search', 'render']),
        user: g.uuid(),
        items: Array.from({ length: g.int(1, 6) }, () => ({ sku: g.base36(8), qty: g.int(1, 5) })),
        note: `price, qty and "discount" applied for ${g.pick(['DE', 'BR', 'US', 'FR'])}`,
      })
    case 2:
      return `Error: ${g.pick(AZION_WORDS)} ${g.pick(AZION_WORDS)} failed: fetch to https://origin-${g.base36(5)}.example.com${g.pick(AZION_PATHS)} timed out after ${g.int(1000, 20000)} ms\n    at handleRequest (file:///function.js:${g.int(10, 400)}:${g.int(1, 80)})\n    at async main (file:///function.js:${g.int(1, 9)}:${g.int(1, 40)})\n    at async Object.fetch (internal:${g.int(100, 999)})`
    default:
      return Array.from({ length: g.int(20, 55) }, () => g.pick(AZION_WORDS)).join(g.pick([' ', ', ', ' - ']))
  }
}

/**
 * Records rendered with Azion template 86 (Functions Event Collector, vendor-formats.md 2.2): every value a
 * string. The rendered object's key order and spacing follow the template_model.
 */
function azionRecords(count: number): string[] {
  const g = new Gen(0x5eed_0002)
  const t0 = Date.UTC(2026, 10, 23, 19, 0, 0)
  const clients = Array.from({ length: 20 }, () => g.base36(5))
  const functions = Array.from({ length: 8 }, () => String(g.int(1000, 99999)))
  const records: string[] = []
  for (let i = 0; i < count; i++) {
    const source = g.chance(0.7) ? 'CONSOLE' : 'RUNTIME'
    records.push(
      JSON.stringify({
        time: isoAt(t0 + i * 37 + g.int(0, 30), false),
        client: g.pick(clients),
        configuration: g.digits(10),
        edgeFunctionID: g.pick(functions),
        requestID: g.hex(32),
        messageSource: source,
        logLevel: g.pick(['INFO', 'INFO', 'INFO', 'DEBUG', 'WARN', 'ERROR', 'TRACE']),
        logMessage: azionLogMessage(g),
      }),
    )
  }
  return records
}

function azionStream(separator: string, payloadFormat: string): Record<string, unknown> {
  return {
    source: 'azion',
    template: 86,
    logLineSeparator: separator,
    payloadFormat,
    auth: { headers: { 'X-Azion-Key': AZION_KEY } },
  }
}

// ---- the scenarios -------------------------------------------------------------------------------------

const AZION_BATCH = 2000
const EMNIFY_BULK = 3000

/** The Azion NDJSON batch scenario, or a variant of it (another sink, extra stream keys). */
function azionNdjson(
  name: string,
  description: string,
  variant: {
    stream?: Record<string, unknown>
    sink?: BenchSink
    optIn?: boolean
    kind?: Scenario['kind']
    fanOut?: readonly BenchSink[]
  } = {},
): Scenario {
  return {
    name,
    description,
    streamId: 'azion-ndjson',
    stream: { ...azionStream('\n', '$dataset'), ...variant.stream },
    headers: { 'x-azion-key': AZION_KEY },
    recordsPerRequest: AZION_BATCH,
    baselineParse: { kind: 'split', separator: '\n' },
    generate: () => Buffer.from(azionRecords(AZION_BATCH).join('\n')),
    ...(variant.sink !== undefined ? { sink: variant.sink } : {}),
    ...(variant.optIn !== undefined ? { optIn: variant.optIn } : {}),
    ...(variant.kind !== undefined ? { kind: variant.kind } : {}),
    ...(variant.fanOut !== undefined ? { fanOut: variant.fanOut } : {}),
  }
}

/** The Azion JSON-array batch: the same records as azion-ndjson-2000, as `[rec,rec,…]`. */
function azionArray(name: string, description: string, kind?: Scenario['kind']): Scenario {
  return {
    name,
    description,
    streamId: 'azion-array',
    stream: azionStream(',', '[$dataset]'),
    headers: { 'x-azion-key': AZION_KEY },
    recordsPerRequest: AZION_BATCH,
    baselineParse: { kind: 'json' },
    generate: () => Buffer.from(`[${azionRecords(AZION_BATCH).join(',')}]`),
    ...(kind !== undefined ? { kind, optIn: true } : {}),
  }
}

export const SCENARIOS: readonly Scenario[] = [
  {
    name: 'emnify-single',
    description: 'one emnify event per request (a single JSON object, ~1 KB): per-request overhead',
    streamId: 'emnify-events',
    stream: {
      source: 'emnify',
      recordType: 'event',
      dedupe: false,
      auth: { headers: { 'X-Emnify-Token': EMNIFY_TOKEN } },
    },
    headers: { 'x-emnify-token': EMNIFY_TOKEN },
    recordsPerRequest: 1,
    baselineParse: { kind: 'json' },
    generate: () => Buffer.from(JSON.stringify(EMNIFY_EVENT)),
  },
  azionNdjson(
    'azion-ndjson-2000',
    `Azion template 86, ${AZION_BATCH} records as NDJSON (payloadFormat "$dataset", separator "\\n"), ~1 MB`,
  ),
  azionArray(
    'azion-array-2000',
    `the same ${AZION_BATCH} records as a JSON array (payloadFormat "[$dataset]", separator ","), ~1 MB`,
  ),
  azionNdjson(
    'azion-ndjson-2000-direct',
    `azion-ndjson-2000 with durability: none (no spool: answered once the file sink wrote the records)`,
    { stream: { durability: 'none' } },
  ),
  azionNdjson(
    'azion-ndjson-2000-kafka',
    `azion-ndjson-2000 delivered to real Kafka (acks -1, idempotent, gzip; needs the backends)`,
    { sink: 'kafka', optIn: true },
  ),
  azionNdjson(
    'azion-ndjson-2000-kafka-platformatic',
    `azion-ndjson-2000 delivered to real Kafka by client platformatic (zstd, 4 producers; acks -1, idempotent; needs the backends)`,
    { sink: 'kafka-platformatic', optIn: true },
  ),
  azionNdjson(
    'azion-ndjson-2000-s3',
    `azion-ndjson-2000 delivered to S3 (MinIO; gzip NDJSON objects rolled every 2 s; needs the backends)`,
    { sink: 's3', optIn: true },
  ),
  {
    name: 'emnify-usage-3000',
    description: `emnify bulk mode: a JSON array of ${EMNIFY_BULK} usage records, distinct ids, some > 2^53, ~2.5 MB`,
    streamId: 'emnify-usage',
    stream: {
      source: 'emnify',
      recordType: 'usage',
      dedupe: false,
      auth: { headers: { 'X-Emnify-Token': EMNIFY_TOKEN } },
    },
    headers: { 'x-emnify-token': EMNIFY_TOKEN },
    recordsPerRequest: EMNIFY_BULK,
    baselineParse: { kind: 'json' },
    generate: () => emnifyUsageBody(EMNIFY_BULK),
  },
  azionNdjson(
    'sustained',
    `sustained load: azion-ndjson-2000 batches, fsync'd spool, file sink; full load, the sustainable rate, 2× overload`,
    { kind: 'sustained' },
  ),
  azionArray(
    'sustained-array',
    `sustained load with the JSON-array form of the batch (azion-array-2000), fsync'd spool, file sink`,
    'sustained',
  ),
  azionNdjson(
    'fanout',
    `fan-out: azion-ndjson-2000 batches to Kafka and S3 at once (real broker and MinIO; needs the backends up)`,
    { kind: 'fanout', fanOut: ['kafka', 's3'], optIn: true },
  ),
  azionNdjson(
    'fanout-platformatic',
    `fan-out as \`fanout\`, the Kafka lane on client platformatic (zstd, 4 producers: the lane bench's fastest)`,
    { kind: 'fanout', fanOut: ['kafka-platformatic', 's3'], optIn: true },
  ),
]

export function findScenario(name: string): Scenario | undefined {
  return SCENARIOS.find((s) => s.name === name)
}
