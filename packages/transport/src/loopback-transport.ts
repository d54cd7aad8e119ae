/**
 * In-process transport for tests and simulations: transports on one {@link LoopbackHub} reach
 * each other at `loopback://name`. Frames are encoded, delivered asynchronously (setImmediate
 * batches) in order, and decoded exactly as over WebSocket, by the same session code, with
 * the same hello, limits, backpressure (a paused receiver leaves frames queued, which the
 * sender sees as buffered bytes) and errors. Nothing is copied: the receiver gets the
 * sender's frame.
 *
 * Faults: `hub.isolate(address)` cuts every connection to that listener and refuses new ones
 * (a crashed or partitioned peer) until `hub.restore(address)`. Request-level faults (drop,
 * delay, error rates) belong in a wrapper around `Transport` (`FlakyTransport` in
 * @torus/testing), which can inject them for any transport.
 */
import { TorusError, type TransportOptions } from '@torus/core'
import { AbstractTransport } from './abstract-transport.js'
import { CloseCode, type FramePipe, type FrameSink } from './session.js'

const NAME_RE = /^[A-Za-z0-9._-]{1,64}$/

/** One end of an in-memory pipe. Frames sent on one end are delivered to the other's sink. */
class LoopbackEnd implements FramePipe {
  other!: LoopbackEnd
  sink: FrameSink
  readonly hub: LoopbackHub
  readonly listener: string
  // Frames on their way to this end's sink.
  #queue: Uint8Array[] = []
  #head = 0
  #queuedBytes = 0
  #paused = false
  #scheduled = false
  #closed = false
  #remoteClose: { code: number; reason: string } | undefined
  #notified = false

  constructor(hub: LoopbackHub, listener: string, sink: FrameSink) {
    this.hub = hub
    this.listener = listener
    this.sink = sink
  }

  get queuedBytes(): number {
    return this.#queuedBytes
  }

  send(frame: Uint8Array): void {
    if (this.#closed) return
    this.other.#enqueue(frame)
  }

  get bufferedBytes(): number {
    return this.other.#queuedBytes
  }

  pause(): void {
    this.#paused = true
  }

  resume(): void {
    this.#paused = false
    this.#schedule()
  }

  close(code: number, reason: string): void {
    if (this.#closed) return
    this.#closed = true
    this.hub.pipeClosed(this)
    this.#queue = []
    this.#head = this.#queuedBytes = 0
    this.other.#peerClosed(code, reason)
    // Our own sink hears about it too (asynchronously, as with a socket).
    this.#remoteClose = { code, reason }
    this.#schedule()
  }

  #enqueue(frame: Uint8Array): void {
    if (this.#closed) return
    this.#queue.push(frame)
    this.#queuedBytes += frame.byteLength
    this.#schedule()
  }

  #peerClosed(code: number, reason: string): void {
    if (this.#remoteClose !== undefined) return
    this.#remoteClose = { code, reason }
    // A paused reader would never get to the close: drop what it has not read, as a socket
    // torn down under a paused reader would.
    if (this.#paused) {
      this.#queue = []
      this.#head = this.#queuedBytes = 0
      this.#paused = false
    }
    this.#schedule()
  }

  #schedule(): void {
    if (this.#scheduled) return
    this.#scheduled = true
    setImmediate(this.#deliver)
  }

  readonly #deliver = (): void => {
    this.#scheduled = false
    let delivered = false
    while (!this.#paused && this.#head < this.#queue.length) {
      const frame = this.#queue[this.#head]!
      this.#queue[this.#head++] = undefined as never
      this.#queuedBytes -= frame.byteLength
      delivered = true
      this.sink.receive(frame)
    }
    if (this.#head === this.#queue.length) {
      this.#queue.length = 0
      this.#head = 0
    }
    // The sender's buffer shrank: let it send what it queued.
    if (delivered && !this.other.#closed) this.other.sink.drain()
    if (this.#remoteClose !== undefined && this.#head === this.#queue.length && !this.#notified) {
      this.#notified = true
      if (!this.#closed) {
        this.#closed = true
        this.hub.pipeClosed(this)
      }
      this.sink.closed(this.#remoteClose.code, this.#remoteClose.reason)
    }
  }
}

/**
 * The in-process network. Create one per test (or simulation) and give it to every
 * {@link LoopbackTransport} that should see the others.
 */
export class LoopbackHub {
  readonly #listeners = new Map<string, LoopbackTransport>()
  readonly #isolated = new Set<string>()
  readonly #ends = new Set<LoopbackEnd>()
  #anonymous = 0

  /** Cuts every connection to the listener at `address` and refuses new ones until `restore`. */
  isolate(address: string): void {
    const name = loopbackName(address)
    this.#isolated.add(name)
    for (const end of [...this.#ends]) if (end.listener === name) end.close(CloseCode.ABNORMAL, 'isolated')
  }

  /** Lets connections to `address` through again. */
  restore(address: string): void {
    this.#isolated.delete(loopbackName(address))
  }

  /** @internal */
  bind(name: string, transport: LoopbackTransport): void {
    if (this.#listeners.has(name)) throw new TorusError('TORUS_ALREADY_EXISTS', `address in use: loopback://${name}`)
    this.#listeners.set(name, transport)
  }

  /** @internal */
  unbind(name: string, transport: LoopbackTransport): void {
    if (this.#listeners.get(name) === transport) this.#listeners.delete(name)
  }

  /** @internal */
  connect(from: LoopbackTransport, address: string, sink: FrameSink): FramePipe {
    const name = loopbackName(address)
    const listener = this.#listeners.get(name)
    if (listener === undefined || this.#isolated.has(name)) {
      throw new TorusError('TORUS_UNAVAILABLE', `nothing listening at ${address}`, { details: { address } })
    }
    const remote = from.address ?? `loopback://anonymous-${++this.#anonymous}`
    const serverSession = listener.acceptLoopback(remote)
    if (serverSession === undefined) throw new TorusError('TORUS_UNAVAILABLE', `nothing listening at ${address}`, { details: { address } })
    const client = new LoopbackEnd(this, name, sink)
    const server = new LoopbackEnd(this, name, serverSession)
    client.other = server
    server.other = client
    this.#ends.add(client)
    this.#ends.add(server)
    serverSession.start(server)
    return client
  }

  /** @internal */
  pipeClosed(end: LoopbackEnd): void {
    this.#ends.delete(end)
  }
}

export interface LoopbackTransportOptions extends TransportOptions {
  hub: LoopbackHub
}

/** A transport on a {@link LoopbackHub}: `listen('loopback://name')`, `connect('loopback://name')`. */
export class LoopbackTransport extends AbstractTransport {
  readonly #hub: LoopbackHub
  #name: string | undefined

  constructor(options: LoopbackTransportOptions) {
    super(options, 'transport:loopback')
    if (!(options.hub instanceof LoopbackHub)) throw new TypeError('options.hub must be a LoopbackHub')
    this.#hub = options.hub
  }

  protected _checkAddress(address: string): void {
    loopbackName(address)
  }

  protected async _listen(address: string): Promise<string> {
    const name = loopbackName(address)
    this.#hub.bind(name, this)
    this.#name = name
    return `loopback://${name}`
  }

  protected async _dial(address: string, sink: FrameSink, signal: AbortSignal): Promise<FramePipe> {
    // A socket connect takes a turn of the event loop; so does this.
    await new Promise<void>((resolve) => setImmediate(resolve))
    if (signal.aborted) throw signal.reason instanceof TorusError ? signal.reason : new TorusError('TORUS_ABORTED', 'dial aborted')
    return this.#hub.connect(this, address, sink)
  }

  protected async _close(): Promise<void> {
    if (this.#name !== undefined) this.#hub.unbind(this.#name, this)
    // Let the pipes deliver their close notifications.
    await new Promise<void>((resolve) => setImmediate(resolve))
  }

  /** @internal Called by the hub for a connection to this transport's address. */
  acceptLoopback(remoteAddress: string): ReturnType<AbstractTransport['_accept']> {
    return this._accept(remoteAddress)
  }
}

function loopbackName(address: string): string {
  const m = typeof address === 'string' ? /^loopback:\/\/(.+)$/.exec(address) : null
  if (m === null || !NAME_RE.test(m[1]!)) throw new TorusError('TORUS_INVALID_ARGUMENT', `not a loopback://name address: ${String(address)}`)
  return m[1]!
}
