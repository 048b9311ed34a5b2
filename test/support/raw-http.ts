import { connect } from 'node:net'

// HTTP/1.1 over a raw socket, for tests that send bytes no HTTP client would (malformed request lines,
// conflicting framing headers, broken chunking) and must check every byte that comes back. The parser is
// strict: a response that is not well-formed HTTP/1.1 is reported, never skipped.

export interface RawResponse {
  status: number
  /** Lower-case names; repeated headers joined with ", ". */
  headers: Record<string, string>
  body: Buffer
}

export interface RawExchange {
  /** Final (non-1xx) responses, in order. */
  responses: RawResponse[]
  /** Bytes after the last complete response: an answer cut short. */
  leftover: Buffer
  /** Why the bytes are not HTTP, if they are not. */
  malformed?: string
  /** The server ended or reset the connection before the client gave up. */
  closedByServer: boolean
  /** The client gave up waiting (`deadlineMs`). */
  timedOut: boolean
}

export interface RawRequestPlan {
  /** Written in order; `gapMs` apart. */
  pieces: Buffer[]
  gapMs?: number
  /** How many answers to wait for (requests on the connection); 0 waits for the close or the deadline. */
  requests: number
  /** Per request: was it a HEAD (its answer has no body)? */
  heads?: boolean[]
}

/**
 * Sends `plan.pieces` on a fresh connection and collects what comes back, until the expected answers are in
 * (and, when the last one says `Connection: close`, the server has closed), the server closes, or
 * `deadlineMs` passes.
 */
export function rawExchange(port: number, plan: RawRequestPlan, deadlineMs: number): Promise<RawExchange> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    const chunks: Buffer[] = []
    let closedByServer = false
    let timedOut = false
    let settled = false
    const finish = (): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      socket.destroy()
      const parsed = parseResponses(Buffer.concat(chunks), plan.heads ?? [], closedByServer)
      resolve({ ...parsed, closedByServer, timedOut })
    }
    const timer = setTimeout(() => {
      timedOut = true
      finish()
    }, deadlineMs)
    socket.on('data', (d: Buffer) => {
      chunks.push(d)
      if (plan.requests === 0) return
      const parsed = parseResponses(Buffer.concat(chunks), plan.heads ?? [], false)
      const last = parsed.responses.at(-1)
      if (parsed.malformed !== undefined) finish()
      else if (parsed.responses.length >= plan.requests && !/\bclose\b/i.test(last?.headers.connection ?? ''))
        finish()
    })
    socket.on('end', () => {
      closedByServer = true
      finish()
    })
    socket.on('error', () => {
      // ECONNRESET/EPIPE: the server dropped the connection; what arrived before still counts.
      closedByServer = true
      finish()
    })
    socket.on('close', finish)
    socket.once('connect', () => {
      void (async () => {
        for (const [i, piece] of plan.pieces.entries()) {
          if (socket.destroyed) return
          if (i > 0 && plan.gapMs) await new Promise((r) => setTimeout(r, plan.gapMs))
          await new Promise<void>((r) => socket.write(piece, () => r()))
        }
      })()
    })
  })
}

/** Parses consecutive HTTP/1.x responses; 1xx interim answers are skipped. */
export function parseResponses(
  buf: Buffer,
  heads: readonly boolean[],
  closed: boolean,
): { responses: RawResponse[]; leftover: Buffer; malformed?: string } {
  const responses: RawResponse[] = []
  let pos = 0
  const stop = (malformed?: string) => ({
    responses,
    leftover: buf.subarray(pos),
    ...(malformed !== undefined ? { malformed } : {}),
  })
  while (pos < buf.length) {
    const headEnd = buf.indexOf('\r\n\r\n', pos)
    if (headEnd < 0) return stop(closed ? 'the connection closed inside a response head' : undefined)
    const lines = buf.toString('latin1', pos, headEnd).split('\r\n')
    const statusLine = /^HTTP\/1\.[01] (\d{3})(?: [^\r\n]*)?$/.exec(lines[0]!)
    if (!statusLine) return stop(`not a status line: ${JSON.stringify(lines[0]!.slice(0, 80))}`)
    const status = Number(statusLine[1])
    const headers: Record<string, string> = {}
    for (const line of lines.slice(1)) {
      const m = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*(.*?)[ \t]*$/.exec(line)
      if (!m) return stop(`not a header line: ${JSON.stringify(line.slice(0, 80))}`)
      const name = m[1]!.toLowerCase()
      headers[name] = headers[name] === undefined ? m[2]! : `${headers[name]}, ${m[2]!}`
    }
    let at = headEnd + 4
    if (status >= 100 && status < 200) {
      pos = at
      continue
    }
    let body: Buffer
    if (heads[responses.length] || status === 204 || status === 304) body = Buffer.alloc(0)
    else if (/\bchunked\b/i.test(headers['transfer-encoding'] ?? '')) {
      const pieces: Buffer[] = []
      for (;;) {
        const lineEnd = buf.indexOf('\r\n', at)
        if (lineEnd < 0) return stop(closed ? 'the connection closed inside a chunked body' : undefined)
        const size = /^([0-9a-fA-F]+)(;.*)?$/.exec(buf.toString('latin1', at, lineEnd))
        if (!size) return stop('a malformed chunk size line')
        const n = parseInt(size[1]!, 16)
        at = lineEnd + 2
        if (n === 0) {
          const trailerEnd = buf.indexOf('\r\n', at)
          if (trailerEnd < 0) return stop(closed ? 'the connection closed before the last chunk' : undefined)
          if (trailerEnd !== at) return stop('trailers in an answer')
          at = trailerEnd + 2
          break
        }
        if (buf.length < at + n + 2) return stop(closed ? 'the connection closed inside a chunk' : undefined)
        pieces.push(buf.subarray(at, at + n))
        if (buf.toString('latin1', at + n, at + n + 2) !== '\r\n') return stop('a chunk without its CRLF')
        at += n + 2
      }
      body = Buffer.concat(pieces)
    } else if (headers['content-length'] !== undefined) {
      if (!/^\d+$/.test(headers['content-length'])) return stop('a malformed Content-Length')
      const n = Number(headers['content-length'])
      if (buf.length < at + n) return stop(closed ? 'the connection closed inside a body' : undefined)
      body = buf.subarray(at, at + n)
      at += n
    } else {
      // Neither: the body runs to the end of the connection.
      if (!closed) return stop()
      body = buf.subarray(at)
      at = buf.length
    }
    responses.push({ status, headers, body })
    pos = at
  }
  return stop()
}
