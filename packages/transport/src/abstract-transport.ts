/**
 * What every transport shares: option handling, the handler table, lifecycle, the set of open
 * connections, and the `Transport` methods' argument checks. Subclasses supply only the byte
 * pipes (`_listen`, `_dial`, `_close`) and hand each accepted pipe to `_accept`.
 */
import {
  TorusError,
  throwIfAborted,
  type AbortOptions,
  type ConnectOptions,
  type LifecycleStatus,
  type PeerConnection,
  type RequestHandler,
  type Transport,
  type TransportOptions,
} from '@torus/core'
import { isValidId, isValidMethod } from './frame-codec.js'
import { resolveOptions, timeoutOption, type ResolvedOptions } from './options.js'
import { ReconnectingConnection, type ConnectionHost } from './peer-connection.js'
import { CloseCode, Session, type FramePipe, type FrameSink, type SessionConfig, type SessionOwner } from './session.js'

/** Inbound connections that may be in their (unauthenticated) hello at once, per transport. */
export const PENDING_HELLOS_MAX = 32

export abstract class AbstractTransport implements Transport, ConnectionHost, SessionOwner {
  readonly options: ResolvedOptions
  readonly sessionConfig: SessionConfig
  #status: LifecycleStatus = 'open'
  #address: string | undefined
  #listening = false
  #closing: Promise<void> | undefined
  readonly #handlers = new Map<string, RequestHandler>()
  readonly #connections = new Set<ReconnectingConnection>()
  readonly #inbound = new Set<Session>()
  /** Inbound sessions still in their hello (unauthenticated). */
  #inboundHello = 0

  constructor(options: TransportOptions, component: string) {
    this.options = resolveOptions(options, component)
    const o = this.options
    this.sessionConfig = {
      identity: { clusterId: o.clusterId, peerId: o.peerId, secret: o.secret, maxFrameBytes: o.maxFrameBytes },
      maxConcurrentHandlers: o.maxConcurrentHandlers,
      maxBufferedBytes: o.maxBufferedBytes,
      maxQueuedBytes: o.maxQueuedBytes,
      helloTimeoutMs: o.helloTimeoutMs,
      clock: o.clock,
      logger: o.logger,
      handlers: this.#handlers,
    }
  }

  get clusterId(): string {
    return this.options.clusterId
  }

  get peerId(): string {
    return this.options.peerId
  }

  get status(): LifecycleStatus {
    return this.#status
  }

  get address(): string | undefined {
    return this.#address
  }

  handle(method: string, handler: RequestHandler): void {
    if (!isValidMethod(method)) throw new TypeError(`invalid method ${JSON.stringify(method)}: use 1-64 characters from A-Z a-z 0-9 . _ : / -`)
    if (typeof handler !== 'function') throw new TypeError('handler must be a function')
    this.#handlers.set(method, handler)
  }

  async listen(address: string, options?: AbortOptions): Promise<string> {
    if (typeof address !== 'string') throw new TypeError('address must be a string')
    this.#checkOpen()
    if (this.#listening) throw new TypeError(`already listening on ${this.#address ?? address}`)
    throwIfAborted(options?.signal)
    this.#listening = true
    try {
      this.#address = await this._listen(address)
    } catch (err) {
      this.#listening = false
      throw err
    }
    if (this.#status !== 'open') {
      // Closed while binding: release what we just bound.
      await this._close()
      throw new TorusError('TORUS_NOT_OPEN', 'transport closed')
    }
    this.options.logger.info('transport listening', { address: this.#address })
    return this.#address
  }

  async connect(address: string, options?: ConnectOptions): Promise<PeerConnection> {
    if (typeof address !== 'string') throw new TypeError('address must be a string')
    this.#checkOpen()
    const expected = options?.expectedPeerId
    if (expected !== undefined && !isValidId(expected)) throw new RangeError(`invalid expectedPeerId ${JSON.stringify(expected)}`)
    const timeoutMs = timeoutOption(options?.timeoutMs, this.options.helloTimeoutMs)
    this._checkAddress(address)
    const connection = new ReconnectingConnection(this, address, expected)
    this.#connections.add(connection)
    await connection.start(timeoutMs, options?.signal)
    return connection
  }

  close(): Promise<void> {
    this.#closing ??= this.#close()
    return this.#closing
  }

  /** `await using transport = new WsTransport(…)` closes it at the end of the scope. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }

  async #close(): Promise<void> {
    this.#status = 'closing'
    await Promise.all([...this.#connections].map((c) => c.close()))
    for (const session of [...this.#inbound]) session.close(CloseCode.GOING_AWAY, 'transport closing')
    await this._close()
    this.#status = 'closed'
    this.options.logger.info('transport closed', { address: this.#address })
  }

  #checkOpen(): void {
    if (this.#status !== 'open') throw new TorusError('TORUS_NOT_OPEN', 'transport closed')
  }

  // ---------------------------------------------------------------------------------------
  // For subclasses

  /** Binds `address`; resolves with the bound address. */
  protected abstract _listen(address: string): Promise<string>
  /** Throws TORUS_INVALID_ARGUMENT when `address` is not one this transport can dial. */
  protected abstract _checkAddress(address: string): void
  /** Opens a pipe to `address`; see {@link ConnectionHost.dial}. */
  protected abstract _dial(address: string, sink: FrameSink, signal: AbortSignal): Promise<FramePipe>
  /** Stops listening and releases every pipe. Sessions are already closed. */
  protected abstract _close(): Promise<void>

  /**
   * Why a new inbound connection would be refused right now, or `undefined` if it would be
   * accepted: the transport is closing, or {@link PENDING_HELLOS_MAX} peers are already in
   * their hello (each may make the socket buffer up to `maxFrameBytes` before it has proven
   * anything, so their number is capped).
   */
  protected _refuseReason(): string | undefined {
    if (this.#status !== 'open') return 'transport closing'
    if (this.#inboundHello >= PENDING_HELLOS_MAX) return `more than ${PENDING_HELLOS_MAX} connections in their hello`
    return undefined
  }

  /**
   * A new inbound pipe from `remoteAddress`: returns the session to feed it to (pass it as the
   * pipe's sink, then call `session.start(pipe)`), or `undefined` when refused (drop the pipe).
   */
  protected _accept(remoteAddress: string): Session | undefined {
    if (this._refuseReason() !== undefined) return undefined
    const session = new Session(this.sessionConfig, 'server', remoteAddress, this)
    this.#inbound.add(session)
    this.#inboundHello++
    return session
  }

  // ConnectionHost and SessionOwner: not part of the public API.

  /** @internal */
  dial(address: string, sink: FrameSink, signal: AbortSignal): Promise<FramePipe> {
    return this._dial(address, sink, signal)
  }

  /** @internal */
  connectionClosed(connection: ReconnectingConnection): void {
    this.#connections.delete(connection)
  }

  /** @internal */
  sessionOpened(): void {
    this.#inboundHello--
  }

  /** @internal */
  sessionClosed(session: Session): void {
    // A session that closes before opening was still counted as in its hello.
    if (this.#inbound.delete(session) && session.peer === undefined) this.#inboundHello--
  }
}
