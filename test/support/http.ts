import { request } from 'node:http'

export interface Answer {
  status: number
  headers: Record<string, string | string[] | undefined>
  text: string
  json: <T = Record<string, unknown>>() => T
}

/** A raw node:http request (no client-side niceties), so tests control every header and byte. */
export function send(
  url: string,
  options: {
    method?: string
    headers?: Record<string, string>
    body?: Buffer | string | Buffer[]
    /** Source address to connect from (e.g. 127.0.0.2: another client on loopback). */
    localAddress?: string
  } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const init = {
      method: options.method ?? 'POST',
      headers: options.headers ?? {},
      ...(options.localAddress ? { localAddress: options.localAddress } : {}),
    }
    const req = request(url, init, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8')
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          text,
          json: <T>() => JSON.parse(text) as T,
        })
      })
      res.on('error', reject)
    })
    req.on('error', reject)
    const body = options.body
    if (Array.isArray(body)) {
      // Written piece by piece: chunked transfer encoding, no Content-Length.
      for (const piece of body) req.write(piece)
      req.end()
    } else req.end(body)
  })
}
