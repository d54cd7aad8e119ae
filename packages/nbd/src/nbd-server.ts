/**
 * `NbdServer`: a TCP listener that runs {@link serveConnection} on every accepted socket and
 * keeps the connection set, so `close()` can end them all.
 *
 * Spec: NetworkBlockDevice/nbd `doc/proto.md`, "Newstyle negotiation" (any port may be used
 * for debugging; 10809 is the IANA port), "Terminating the transmission phase" (on shutdown,
 * wait for in-flight requests, answer later ones with ESHUTDOWN).
 */
import { createServer, Socket, type AddressInfo, type Server, type SocketConstructorOpts } from 'node:net'
import { silentLogger, type Logger } from '@torus/core'
import { createDirectReader, serveConnection, serveDirectConnection, type NbdConnection, type NbdServeOptions } from './nbd-connection.js'
import { createNbdStats, snapshotNbdStats, type NbdStats } from './stats.js'
import type { ExportListing } from './protocol/handshake.js'

export interface NbdServerOptions extends Omit<NbdServeOptions, 'stats' | 'listExports'> {
  /** Exports for NBD_OPT_LIST. */
  listExports(): Promise<ExportListing[]> | ExportListing[]
  /** Shutdown: how long `close()` lets in-flight requests finish before hard-closing. Default 10 s. */
  closeTimeoutMs?: number
  /**
   * Connections served at once; more are refused (and logged). Each connection may hold up to
   * its in-flight budget (64 MiB by default) of requests and unread replies, so this bounds the
   * server's memory. A refused client still gets the handshake, and its export request fails
   * with a message naming the limit (a few such handshakes at a time, each at most 5 s; beyond
   * that the socket is closed at once). Default 64.
   */
  maxConnections?: number
  /** Read WRITE payloads straight into their buffers (default true); false uses plain stream reads. */
  directReads?: boolean
}

export interface NbdListenOptions {
  /** Default `127.0.0.1`. */
  host?: string
  /** 0 picks a free port. Default 10809 (the IANA NBD port). */
  port?: number
}

const DEFAULT_CLOSE_TIMEOUT_MS = 10_000
const DEFAULT_MAX_CONNECTIONS = 64
/** Over-limit clients told why at once; more are cut off without a word. */
const REFUSAL_SLOTS = 8
const REFUSAL_HANDSHAKE_TIMEOUT_MS = 5_000
/**
 * When every slot is taken, a connection still in its handshake after this long gives its slot
 * to a new client: a real client finishes the handshake in milliseconds, so sockets that
 * connect and say nothing cannot lock clients out for the handshake timeout.
 */
const IDLE_HANDSHAKE_EVICT_MS = 1_000

export class NbdServer {
  readonly #options: NbdServerOptions
  readonly #log: Logger
  readonly #stats: NbdStats = createNbdStats()
  /** Served connections, oldest first, with when each was accepted. */
  readonly #connections = new Map<NbdConnection, number>()
  /** Over-limit connections in their refusal handshake (not counted in `connections`). */
  readonly #refusals = new Set<NbdConnection>()
  readonly #serveOptions: NbdServeOptions
  #server: Server | undefined
  #closing: Promise<void> | undefined

  constructor(options: NbdServerOptions) {
    if (typeof options.resolveExport !== 'function' && typeof options.openExport !== 'function') {
      throw new TypeError('NbdServer needs resolveExport or openExport')
    }
    if (typeof options.listExports !== 'function') throw new TypeError('listExports must be a function')
    this.#options = options
    // Explicit copies: `options` may be a class instance whose methods live on its prototype.
    const { closeTimeoutMs: _closeTimeoutMs, maxConnections: _maxConnections, directReads: _directReads, resolveExport: _resolve, openExport: _open, listExports: _list, describeExport: _describe, ...rest } = options
    this.#serveOptions = { ...rest, listExports: () => options.listExports(), stats: this.#stats }
    if (typeof options.describeExport === 'function') this.#serveOptions.describeExport = (name) => options.describeExport!(name)
    if (typeof options.openExport === 'function') this.#serveOptions.openExport = (name) => options.openExport!(name)
    else this.#serveOptions.resolveExport = (name) => options.resolveExport!(name)
    this.#log = (options.logger ?? silentLogger).child({ component: 'nbd:server' })
  }

  /** Connections currently open (handshake or transmission). */
  get connections(): number {
    return this.#connections.size
  }

  /** A snapshot of the counters (requests by command, bytes, errors). */
  get stats(): NbdStats {
    return snapshotNbdStats(this.#stats)
  }

  /** The bound address while listening. */
  get address(): AddressInfo | undefined {
    const a = this.#server?.address()
    return a !== null && typeof a === 'object' ? a : undefined
  }

  /** Starts listening; resolves with the bound address (useful with port 0). */
  async listen(options: NbdListenOptions = {}): Promise<AddressInfo> {
    if (this.#server !== undefined) throw new Error('NbdServer is already listening')
    if (this.#closing !== undefined) throw new Error('NbdServer is closed')
    // allowHalfOpen: a client may shut down its sending side and still wait for the replies
    // to what it already sent (the connection ends our side once they are out).
    const server = createServer({ noDelay: true, allowHalfOpen: true, pauseOnConnect: true }, (socket) => this.#accept(socket))
    this.#server = server
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => {
        server.off('listening', onListening)
        reject(err)
      }
      const onListening = (): void => {
        server.off('error', onError)
        resolve()
      }
      server.once('error', onError)
      server.once('listening', onListening)
      server.listen({ host: options.host ?? '127.0.0.1', port: options.port ?? 10809 })
    }).catch((err: unknown) => {
      this.#server = undefined
      throw err
    })
    server.on('error', (err) => this.#log.error('listener error', { err }))
    const address = this.address!
    this.#log.info('listening', { host: address.address, port: address.port })
    return address
  }

  /**
   * Stops accepting, then closes every connection: those in the handshake at once, those in
   * transmission after their in-flight requests finish (new requests get ESHUTDOWN), hard after
   * `closeTimeoutMs`. Safe to call twice.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close()
    return this.#closing
  }

  async #close(): Promise<void> {
    const server = this.#server
    const stopped =
      server === undefined ? Promise.resolve() : new Promise<void>((resolve) => server.close(() => resolve()))
    const timeoutMs = this.#options.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS
    const conns = [...this.#connections.keys()]
    const timer = setTimeout(() => {
      for (const c of this.#connections.keys()) c.destroy()
    }, timeoutMs)
    timer.unref()
    for (const c of this.#refusals) c.destroy()
    await Promise.all(conns.map((c) => c.close()))
    clearTimeout(timer)
    await stopped
    this.#log.info('closed')
  }

  #accept(socket: Socket): void {
    if (this.#closing !== undefined) {
      socket.destroy()
      return
    }
    const limit = this.#options.maxConnections ?? DEFAULT_MAX_CONNECTIONS
    if (this.#connections.size >= limit && !this.#evictIdleHandshake(socket)) {
      this.#stats.refusedConnections++
      this.#log.warn('connection refused: too many connections', { limit, remote: socket.remoteAddress })
      this.#refuse(socket, limit)
      return
    }
    const remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}` // before #serveDirect detaches it
    const conn = this.#serveDirect(socket) ?? this.#serveStream(socket)
    this.#connections.set(conn, Date.now())
    this.#log.debug('connection', { remote })
    void conn.closed.then(() => this.#connections.delete(conn))
  }

  /** Closes the oldest connection still in its handshake after IDLE_HANDSHAKE_EVICT_MS and waiting on its client, if any. */
  #evictIdleHandshake(socket: Socket): boolean {
    const before = Date.now() - IDLE_HANDSHAKE_EVICT_MS
    for (const [conn, accepted] of this.#connections) {
      if (accepted > before) break
      // Not one whose export is being opened (taking a lock, fencing replicas may take seconds).
      if (!conn.waitingForClient) continue
      this.#connections.delete(conn)
      conn.destroy()
      this.#stats.evictedHandshakes++
      this.#log.warn('all connection slots taken: closed one still in its handshake to serve a new client', { idleMs: Date.now() - accepted, remote: socket.remoteAddress })
      return true
    }
    return false
  }

  /**
   * Runs the handshake with every export unavailable, so the client prints why (qemu:
   * "server reported: export X not available: too many NBD connections…") instead of an
   * unexplained end of file.
   */
  #refuse(socket: Socket, limit: number): void {
    if (this.#refusals.size >= REFUSAL_SLOTS) {
      socket.destroy()
      return
    }
    const { resolveExport: _resolve, openExport: _open, describeExport: _describe, ...options } = this.#serveOptions
    const why = new Error(`too many NBD connections: this server serves at most ${limit} at once; close some, or raise its limit`)
    const conn = serveConnection(socket, { ...options, handshakeTimeoutMs: REFUSAL_HANDSHAKE_TIMEOUT_MS, openExport: () => Promise.reject(why) })
    socket.resume()
    this.#refusals.add(conn)
    void conn.closed.then(() => this.#refusals.delete(conn))
  }

  #serveStream(socket: Socket): NbdConnection {
    const conn = serveConnection(socket, this.#serveOptions)
    socket.resume() // accepted paused (pauseOnConnect)
    return conn
  }

  /**
   * Re-wraps the accepted socket's handle in a socket created with Node's `onread` option, so
   * reads land where the connection says: WRITE payloads go from the kernel straight into their
   * final buffer, in reads as large as the payload, instead of 64 KiB chunks that are copied
   * again (on 2 cores this more than doubled the receive rate). Relies on the socket's private
   * `_handle`; when that is absent, the plain stream path serves the connection.
   */
  #serveDirect(socket: Socket): NbdConnection | undefined {
    const accepted = socket as Socket & { _handle?: { useUserBuffer?: unknown } | null }
    const handle = accepted._handle
    if (this.#options.directReads === false || handle == null || typeof handle.useUserBuffer !== 'function') return undefined
    const reader = createDirectReader()
    // Detach the handle first: destroying the accepted socket then releases the server's count
    // of it without closing the connection.
    accepted._handle = null
    socket.destroy()
    const direct = new Socket({
      handle,
      allowHalfOpen: true,
      onread: { buffer: () => reader.target(), callback: (n: number, buf: Uint8Array) => reader.onRead(n, buf as Buffer) },
    } as SocketConstructorOpts & { handle: unknown })
    return serveDirectConnection(direct, this.#serveOptions, reader)
  }
}

export { serveConnection } from './nbd-connection.js'

export type { NbdConnection, NbdExportHandle, NbdServeOptions } from './nbd-connection.js'
