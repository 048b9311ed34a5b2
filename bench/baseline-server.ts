// The baseline streamgate is measured against (SPEC section 10): a bare node:http server that reads the body,
// JSON-parses it and answers 200 with a small JSON — no auth, validation, spool or sinks. It answers
// `{"accepted":n}` with the number of records it parsed, so the harness can check both targets the same way,
// and GET /stats answers the totals since start (`{"requests":n,"records":n}`).
//
// Only node: built-ins and no runtime imports, so it runs standalone under the tsx loader
// (`node --import tsx bench/baseline-server.ts --port N`). bench/run.ts goes one step further: it transpiles
// this file once with TypeScript into a temporary .mjs and runs that with plain `node`, so neither the loader
// (~30 MB RSS, an esbuild helper process) nor any transpiling is in the measured process.
//
// How a body is parsed is chosen per stream id (the path after /ingest/):
//   json   one JSON.parse of the whole body; an array counts its elements, anything else counts 1
//   split  split on a separator, skip empty pieces, JSON.parse each piece (NDJSON and other line framings)
// `--routes '{"azion-ndjson":{"kind":"split","separator":"\n"}}'` overrides the defaults below.

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { parseArgs } from 'node:util'

export type BaselineParse = { kind: 'json' } | { kind: 'split'; separator: string }

/** Mirrors the streams of bench/scenarios.ts, so the server is useful on its own. */
const DEFAULT_ROUTES: Record<string, BaselineParse> = {
  'emnify-events': { kind: 'json' },
  'emnify-usage': { kind: 'json' },
  'azion-ndjson': { kind: 'split', separator: '\n' },
  'azion-array': { kind: 'json' },
}

const INGEST_PREFIX = '/ingest/'
const JSON_HEADERS = { 'content-type': 'application/json' }

function countRecords(body: string, parse: BaselineParse): number {
  if (parse.kind === 'json') {
    const value: unknown = JSON.parse(body)
    return Array.isArray(value) ? value.length : 1
  }
  let n = 0
  for (const piece of body.split(parse.separator)) {
    if (piece.length === 0 || piece === '\r') continue
    JSON.parse(piece)
    n++
  }
  return n
}

function answer(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { ...JSON_HEADERS, 'content-length': Buffer.byteLength(body) })
  res.end(body)
}

/** Totals since start, served at GET /stats, so the harness can count records on the server side. */
const totals = { requests: 0, records: 0 }

function handle(routes: Record<string, BaselineParse>, req: IncomingMessage, res: ServerResponse): void {
  const url = req.url ?? '/'
  if (url === '/healthz') {
    answer(res, 200, '{"status":"ok"}')
    return
  }
  if (url === '/stats') {
    answer(res, 200, JSON.stringify(totals))
    return
  }
  const parse = url.startsWith(INGEST_PREFIX) ? routes[url.slice(INGEST_PREFIX.length)] : undefined
  if (parse === undefined) {
    req.resume()
    answer(res, 404, '{"error":"not found"}')
    return
  }
  const chunks: Buffer[] = []
  req.on('data', (chunk: Buffer) => chunks.push(chunk))
  req.on('end', () => {
    let accepted: number
    try {
      accepted = countRecords(Buffer.concat(chunks).toString('utf8'), parse)
    } catch (err) {
      answer(res, 400, JSON.stringify({ error: (err as Error).message }))
      return
    }
    totals.requests++
    totals.records += accepted
    answer(res, 200, `{"accepted":${accepted}}`)
  })
}

function main(): void {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: '8090' },
      host: { type: 'string', default: '127.0.0.1' },
      routes: { type: 'string' },
    },
  })
  const routes =
    values.routes === undefined
      ? DEFAULT_ROUTES
      : (JSON.parse(values.routes) as Record<string, BaselineParse>)
  const server = createServer((req, res) => handle(routes, req, res))
  // Same keep-alive behaviour as a default node:http server; the harness reuses connections.
  server.listen(Number(values.port), values.host, () => {
    process.stderr.write(`baseline listening on ${values.host}:${values.port}\n`)
  })
  const stop = (): void => {
    server.close(() => process.exit(0))
    server.closeAllConnections()
  }
  process.once('SIGTERM', stop)
  process.once('SIGINT', stop)
}

main()
