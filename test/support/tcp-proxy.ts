import { connect, createServer, type Socket } from 'node:net'

// A TCP proxy on 127.0.0.1 for fault injection: point a client at `proxy.port` instead of the real server,
// then `pause()` to simulate an outage (every open connection is reset, new ones are reset as soon as they
// arrive) and `resume()` to end it. The server behind it keeps running, so shared backends are never stopped.
// Bytes pass through unchanged; the proxy knows nothing of the protocol.

export interface TcpProxy {
  /** The loopback port to connect to. */
  readonly port: number
  /** Connections accepted and forwarded so far (not counting ones refused while paused). */
  readonly forwarded: number
  /** Resets every open connection and every new one until `resume()`. */
  pause(): void
  /** Forwards new connections again. */
  resume(): void
  /** Resets every connection and stops listening. */
  close(): Promise<void>
}

export async function startTcpProxy(targetHost: string, targetPort: number): Promise<TcpProxy> {
  const pairs = new Set<{ client: Socket; upstream: Socket }>()
  let paused = false
  let forwarded = 0

  const drop = (pair: { client: Socket; upstream: Socket }): void => {
    pairs.delete(pair)
    // An RST, not a FIN: the client sees ECONNRESET at once, like a crashed or unplugged server.
    if (!pair.client.destroyed) pair.client.resetAndDestroy()
    if (!pair.upstream.destroyed) pair.upstream.destroy()
  }

  const server = createServer((client) => {
    client.on('error', () => undefined)
    if (paused) {
      client.resetAndDestroy()
      return
    }
    forwarded++
    const upstream = connect({ host: targetHost, port: targetPort })
    upstream.on('error', () => undefined)
    const pair = { client, upstream }
    pairs.add(pair)
    client.pipe(upstream)
    upstream.pipe(client)
    client.on('close', () => drop(pair))
    upstream.on('close', () => drop(pair))
  })

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject)
      resolve()
    })
  })
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('tcp proxy: no port')

  return {
    port: address.port,
    get forwarded() {
      return forwarded
    },
    pause() {
      paused = true
      for (const pair of [...pairs]) drop(pair)
    },
    resume() {
      paused = false
    },
    close() {
      paused = true
      for (const pair of [...pairs]) drop(pair)
      return new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
