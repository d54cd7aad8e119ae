import net from 'node:net'

/**
 * A TCP proxy on 127.0.0.1 between a WsTransport client and server that can misbehave on
 * demand: stop reading from the client (a server that does not read), go silent both ways (a
 * dead peer behind a live socket), or cut every connection without a close handshake (a crash).
 */
export class TcpProxy {
  readonly #server: net.Server
  readonly #pairs = new Set<{ client: net.Socket; upstream: net.Socket }>()
  #upstreamPaused = false

  private constructor(server: net.Server) {
    this.#server = server
  }

  static async start(targetPort: number): Promise<TcpProxy> {
    const server = net.createServer()
    const proxy = new TcpProxy(server)
    server.on('connection', (client) => proxy.#accept(client, targetPort))
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    return proxy
  }

  get address(): string {
    return `ws://127.0.0.1:${(this.#server.address() as net.AddressInfo).port}`
  }

  #accept(client: net.Socket, targetPort: number): void {
    const upstream = net.connect(targetPort, '127.0.0.1')
    const pair = { client, upstream }
    this.#pairs.add(pair)
    const forward = (from: net.Socket, to: net.Socket, held: () => boolean): void => {
      from.on('data', (chunk) => {
        if (!to.write(chunk)) from.pause()
      })
      to.on('drain', () => {
        if (!held()) from.resume()
      })
    }
    forward(client, upstream, () => this.#upstreamPaused)
    forward(upstream, client, () => false)
    const end = (): void => {
      this.#pairs.delete(pair)
      client.destroy()
      upstream.destroy()
    }
    client.on('close', end).on('error', end)
    upstream.on('close', end).on('error', end)
    if (this.#upstreamPaused) client.pause()
  }

  /** Stops reading what clients send: their bytes pile up in kernel buffers, then in theirs. */
  pauseUpstream(): void {
    this.#upstreamPaused = true
    for (const { client } of this.#pairs) client.pause()
  }

  resumeUpstream(): void {
    this.#upstreamPaused = false
    for (const { client } of this.#pairs) client.resume()
  }

  /** Existing connections go quiet in both directions (new connections are unaffected). */
  silence(): void {
    for (const { client, upstream } of this.#pairs) {
      client.pause()
      upstream.pause()
      client.removeAllListeners('data')
      upstream.removeAllListeners('data')
    }
  }

  /** Destroys every proxied connection at once, with no WebSocket close. */
  cut(): void {
    for (const { client, upstream } of this.#pairs) {
      client.resetAndDestroy()
      upstream.resetAndDestroy()
    }
    this.#pairs.clear()
  }

  async close(): Promise<void> {
    this.cut()
    await new Promise<void>((resolve) => this.#server.close(() => resolve()))
  }
}
