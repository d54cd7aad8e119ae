/**
 * One connection's protocol logic, shared by every transport: the hello, request ids and the
 * table of requests in flight, per-request deadlines, handler dispatch with a concurrency
 * limit, and send-side backpressure. It talks to the network only through a {@link FramePipe}
 * (whole frames, a buffered byte count, pause/resume, close), so the ws and loopback glue stay
 * thin and the logic is tested once.
 *
 * Deadlines: one timer per session, armed for the earliest deadline. With one timeout for
 * every request (the usual case) new requests never re-arm it, so a busy connection costs one
 * timer firing per `timeoutMs`, not one timer per request.
 *
 * Send backpressure: a frame goes to the pipe while the pipe holds less than
 * `maxBufferedBytes` (or holds nothing). Otherwise it waits in a FIFO; requests that would push
 * the FIFO past `maxQueuedBytes` fail at once with TORUS_UNAVAILABLE. Replies always queue
 * (they are bounded by the handler limit below).
 *
 * Receive backpressure: at most `maxConcurrentHandlers` requests are being handled (a request
 * counts until its reply has been handed to the pipe, so a caller that stops reading replies
 * stalls its own requests too). Beyond that, requests wait here in arrival order and the pipe
 * is paused, so the socket stops reading and TCP pushes back on the sender.
 */
import { TorusError, isTorusError, type Clock, type Logger, type RequestContext, type RequestHandler, type Timer, type TransportPeer, type TransportValue } from '@torus/core'
import { decodeFrame, encodeError, encodeReply, encodeRequest, FrameType, REQUEST_ID_MAX, type ErrorBody, type Frame } from './frame-codec.js'
import type { FrameBufferPool } from './frame-pool.js'
import { ClientHandshake, ServerHandshake, type HandshakeIdentity, type HandshakeResult } from './handshake.js'

/** A bidirectional channel of whole frames; implemented over a WebSocket and in memory. */
export interface FramePipe {
  send(frame: Uint8Array): void
  /**
   * Set by pipes that copy a frame out and let go of it once written (ws): the session encodes
   * large frames into its buffers and `send` releases them after the write (frame-pool.ts).
   */
  readonly framePool?: FrameBufferPool
  /** Bytes sent but not yet handed to the network (ws `bufferedAmount`). */
  readonly bufferedBytes: number
  /** Stop delivering frames (the socket stops reading) until `resume()`. */
  pause(): void
  resume(): void
  /** Close with a WebSocket close code and a short reason. Idempotent. */
  close(code: number, reason: string): void
}

/** What a pipe reports to its session. */
export interface FrameSink {
  receive(frame: Uint8Array): void
  /** Buffered bytes went down: queued frames may go now. */
  drain(): void
  /** The pipe saw something that is not a frame (a WebSocket text message). */
  violation(message: string): void
  /** The pipe is gone. Called once, also after a local `close()`. */
  closed(code: number, reason: string, cause?: Error): void
}

/** WebSocket close codes the transport uses (4000-4999 are for applications). */
export const CloseCode = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  ABNORMAL: 1006,
  TOO_BIG: 1009,
  PROTOCOL: 4400,
  REFUSED: 4401,
  HELLO_TIMEOUT: 4408,
} as const

/** Frames larger than this are refused before the hello completes. */
export const HELLO_FRAME_BYTES_MAX = 1024

export interface SessionConfig {
  readonly identity: HandshakeIdentity
  readonly maxConcurrentHandlers: number
  readonly maxBufferedBytes: number
  readonly maxQueuedBytes: number
  readonly helloTimeoutMs: number
  readonly clock: Clock
  readonly logger: Logger
  readonly handlers: ReadonlyMap<string, RequestHandler>
}

export interface SessionOwner {
  sessionOpened(session: Session): void
  /** `error` says why: TORUS_NOT_OPEN after a local close, else what went wrong. */
  sessionClosed(session: Session, error: TorusError): void
}

type SessionState = 'hello' | 'open' | 'closed'

/** A request waiting for its reply. Doubles as the abort listener (no closure per request). */
class PendingRequest {
  resolve!: (body: TransportValue) => void
  reject!: (err: Error) => void
  /** Set while the frame waits in the send queue; cleared once sent or cancelled. */
  frame: Uint8Array | undefined = undefined
  readonly promise: Promise<TransportValue>

  constructor(
    readonly session: Session,
    readonly id: number,
    readonly deadline: number,
    readonly signal: AbortSignal | undefined,
  ) {
    this.promise = new Promise<TransportValue>((resolve, reject) => {
      this.resolve = resolve
      this.reject = reject
    })
  }

  handleEvent(): void {
    this.session.settle(this, new TorusError('TORUS_ABORTED', 'request aborted', { cause: this.signal?.reason }))
  }
}

type Outgoing = PendingRequest | Uint8Array

const ONCE = { once: true } as const

export class Session implements FrameSink {
  readonly role: 'client' | 'server'
  readonly remoteAddress: string
  #config: SessionConfig
  #owner: SessionOwner
  #log: Logger
  #pipe: FramePipe | undefined
  #state: SessionState = 'hello'
  #handshake: ClientHandshake | ServerHandshake
  #helloTimer: Timer | undefined
  #remote: HandshakeResult | undefined
  #context: RequestContext | undefined
  #abort: AbortController | undefined
  #closeError: TorusError | undefined

  // Requests we sent.
  #pending = new Map<number, PendingRequest>()
  #nextId = 1
  #timer: Timer | undefined
  #timerAt = Infinity
  readonly #onTimer = (): void => this.#expire()

  // Frames waiting for room in the pipe.
  #queue: Outgoing[] = []
  #queueHead = 0
  #queuedBytes = 0

  // Requests we serve.
  #running = 0
  #pumping = false
  #inbound: Frame[] = []
  #inboundHead = 0
  #paused = false

  constructor(config: SessionConfig, role: 'client' | 'server', remoteAddress: string, owner: SessionOwner, expectedPeerId?: string) {
    this.#config = config
    this.role = role
    this.remoteAddress = remoteAddress
    this.#owner = owner
    this.#log = config.logger
    this.#handshake = role === 'client' ? new ClientHandshake(config.identity, expectedPeerId) : new ServerHandshake(config.identity)
  }

  #isClosed(): boolean {
    return this.#state === 'closed'
  }

  get state(): SessionState {
    return this.#state
  }

  /** The authenticated remote; only once open. */
  get peer(): TransportPeer | undefined {
    return this.#context?.peer
  }

  get closeError(): TorusError | undefined {
    return this.#closeError
  }

  get pendingRequests(): number {
    return this.#pending.size
  }

  get bufferedBytes(): number {
    return (this.#pipe?.bufferedBytes ?? 0) + this.#queuedBytes
  }

  /** Connects the session to its pipe and starts the hello (the client speaks first). */
  start(pipe: FramePipe): void {
    this.#pipe = pipe
    this.#helloTimer = this.#config.clock.setTimeout(() => {
      this.#helloTimer = undefined
      if (this.#state !== 'hello') return
      this.#log.warn('hello timed out', { remote: this.remoteAddress, timeoutMs: this.#config.helloTimeoutMs })
      this.#fail(new TorusError('TORUS_TIMEOUT', 'hello did not complete in time'), CloseCode.HELLO_TIMEOUT)
    }, this.#config.helloTimeoutMs)
    if (this.#handshake instanceof ClientHandshake) pipe.send(this.#handshake.start())
  }

  // ---------------------------------------------------------------------------------------
  // Sending requests

  /**
   * Sends a request. The caller checked that the session is open, that `method` is valid and
   * that `timeoutMs` is a positive number. Throws TypeError for a body that is not plain data.
   */
  request(method: string, body: TransportValue, timeoutMs: number, signal: AbortSignal | undefined): Promise<TransportValue> {
    if (signal?.aborted === true) return Promise.reject(new TorusError('TORUS_ABORTED', 'request aborted', { cause: signal.reason }))
    const id = this.#allocateId()
    const pool = this.#pipe!.framePool
    const frame = encodeRequest(id, method, body, pool)
    const remoteMax = this.#remote!.maxFrameBytes
    if (frame.byteLength > remoteMax) {
      pool?.release(frame)
      return Promise.reject(
        new TorusError('TORUS_INVALID_ARGUMENT', 'request is larger than the peer accepts', { details: { method, frameBytes: frame.byteLength, maxFrameBytes: remoteMax } }),
      )
    }
    const direct = this.#queueHead === this.#queue.length && this.#hasRoom(frame.byteLength)
    if (!direct && this.#queuedBytes + frame.byteLength > this.#config.maxQueuedBytes) {
      pool?.release(frame)
      return Promise.reject(
        new TorusError('TORUS_UNAVAILABLE', 'peer is not keeping up: send queue full', {
          details: { reason: 'backpressure', method, queuedBytes: this.#queuedBytes, maxQueuedBytes: this.#config.maxQueuedBytes },
        }),
      )
    }
    const deadline = this.#config.clock.now() + timeoutMs
    const p = new PendingRequest(this, id, deadline, signal)
    this.#pending.set(id, p)
    if (deadline < this.#timerAt) this.#arm(deadline)
    signal?.addEventListener('abort', p, ONCE)
    if (direct) {
      this.#pipe!.send(frame)
    } else {
      p.frame = frame
      this.#queue.push(p)
      this.#queuedBytes += frame.byteLength
    }
    return p.promise
  }

  #allocateId(): number {
    for (;;) {
      const id = this.#nextId
      this.#nextId = id === REQUEST_ID_MAX ? 1 : id + 1
      if (!this.#pending.has(id)) return id
    }
  }

  #hasRoom(frameBytes: number): boolean {
    const buffered = this.#pipe!.bufferedBytes
    return buffered === 0 || buffered + frameBytes <= this.#config.maxBufferedBytes
  }

  /** Settles `p` with `outcome` (an Error rejects) unless it already settled. */
  settle(p: PendingRequest, outcome: TransportValue | Error): void {
    if (this.#pending.get(p.id) !== p) return
    this.#pending.delete(p.id)
    if (p.frame !== undefined) {
      // Still queued: it will never be sent.
      this.#queuedBytes -= p.frame.byteLength
      this.#pipe?.framePool?.release(p.frame)
      p.frame = undefined
    }
    p.signal?.removeEventListener('abort', p)
    if (outcome instanceof Error) p.reject(outcome)
    else p.resolve(outcome)
  }

  #arm(deadline: number): void {
    if (this.#timer !== undefined) this.#config.clock.clearTimeout(this.#timer)
    this.#timerAt = deadline
    this.#timer = this.#config.clock.setTimeout(this.#onTimer, Math.max(0, deadline - this.#config.clock.now()))
  }

  #expire(): void {
    this.#timer = undefined
    this.#timerAt = Infinity
    const now = this.#config.clock.now()
    let next = Infinity
    for (const p of this.#pending.values()) {
      if (p.deadline <= now) this.settle(p, new TorusError('TORUS_TIMEOUT', 'request timed out', { details: { id: p.id } }))
      else if (p.deadline < next) next = p.deadline
    }
    if (next !== Infinity && this.#state !== 'closed') this.#arm(next)
  }

  // ---------------------------------------------------------------------------------------
  // Output queue

  #sendReply(frame: Uint8Array): void {
    if (this.#queueHead === this.#queue.length && this.#hasRoom(frame.byteLength)) {
      this.#pipe!.send(frame)
      this.#handlerDone()
    } else {
      this.#queue.push(frame)
      this.#queuedBytes += frame.byteLength
    }
  }

  drain(): void {
    if (this.#state === 'closed') return
    const queue = this.#queue
    while (this.#queueHead < queue.length) {
      const entry = queue[this.#queueHead]!
      const isReply = entry instanceof Uint8Array
      const frame = isReply ? entry : entry.frame
      if (frame === undefined) {
        // A request that settled (timeout, abort) while it waited.
        queue[this.#queueHead++] = undefined as never
        continue
      }
      if (!this.#hasRoom(frame.byteLength)) break
      queue[this.#queueHead++] = undefined as never
      this.#queuedBytes -= frame.byteLength
      if (!isReply) entry.frame = undefined
      this.#pipe!.send(frame)
      if (isReply) this.#handlerDone()
      // Sending can end the session (a handler finishing, a pipe failing): re-check.
      if (this.#isClosed()) return
    }
    if (this.#queueHead === queue.length) {
      queue.length = 0
      this.#queueHead = 0
    } else if (this.#queueHead > 1024 && this.#queueHead * 2 > queue.length) {
      this.#queue = queue.slice(this.#queueHead)
      this.#queueHead = 0
    }
  }

  // ---------------------------------------------------------------------------------------
  // Receiving

  receive(bytes: Uint8Array): void {
    if (this.#state === 'closed') return
    if (this.#state === 'hello' && bytes.byteLength > HELLO_FRAME_BYTES_MAX) {
      this.#protocolError(new TorusError('TORUS_PROTOCOL', 'frame too large before the hello completed', { details: { frameBytes: bytes.byteLength } }))
      return
    }
    let frame: Frame
    try {
      frame = decodeFrame(bytes, this.#config.identity.maxFrameBytes)
    } catch (err) {
      this.#protocolError(err as TorusError)
      return
    }
    if (this.#state === 'hello') {
      this.#receiveHello(frame)
      return
    }
    switch (frame.type) {
      case FrameType.REQUEST:
        if (this.#running < this.#config.maxConcurrentHandlers && this.#inboundHead === this.#inbound.length) this.#dispatch(frame)
        else {
          this.#inbound.push(frame)
          if (!this.#paused) {
            this.#paused = true
            this.#pipe!.pause()
          }
        }
        return
      case FrameType.REPLY: {
        const p = this.#pending.get(frame.id)
        // Unknown id: the request already timed out or was aborted.
        if (p !== undefined) this.settle(p, frame.body)
        return
      }
      case FrameType.ERROR: {
        if (frame.id === 0) {
          const error = new TorusError(frame.error.code, frame.error.message, frame.error.details === undefined ? {} : { details: frame.error.details })
          this.#log.warn('peer closed the connection with an error', { remote: this.remoteAddress, peer: this.peer?.id, code: error.code, message: error.message })
          this.#shutdown(CloseCode.NORMAL, 'peer reported an error', new TorusError('TORUS_UNAVAILABLE', `peer closed the connection: ${error.message}`, { cause: error }))
          return
        }
        const p = this.#pending.get(frame.id)
        if (p !== undefined) {
          const { code, message, details } = frame.error
          this.settle(p, new TorusError(code, message, details === undefined ? {} : { details }))
        }
        return
      }
      default:
        this.#protocolError(new TorusError('TORUS_PROTOCOL', 'hello frame after the hello completed', { details: { type: frame.type } }))
    }
  }

  #receiveHello(frame: Frame): void {
    if (frame.type === FrameType.ERROR) {
      // The other side refused us; it closes the connection.
      const { code, message, details } = frame.error
      const error = new TorusError(code, message, details === undefined ? {} : { details })
      this.#log.warn('hello refused by peer', { remote: this.remoteAddress, code, message })
      this.#shutdown(CloseCode.NORMAL, 'hello refused by peer', error)
      return
    }
    let step
    try {
      step = this.#handshake.receive(frame)
    } catch (err) {
      const error = err as TorusError
      const claimed = this.#handshake instanceof ServerHandshake ? this.#handshake.claimedPeerId : undefined
      this.#log.warn('hello refused', { remote: this.remoteAddress, peer: claimed, reason: error.details?.['reason'], message: error.message })
      this.#fail(error, CloseCode.REFUSED)
      return
    }
    if (step.send !== undefined) this.#pipe!.send(step.send)
    if (step.done !== undefined) this.#open(step.done)
  }

  #open(remote: HandshakeResult): void {
    if (this.#helloTimer !== undefined) {
      this.#config.clock.clearTimeout(this.#helloTimer)
      this.#helloTimer = undefined
    }
    this.#remote = remote
    this.#abort = new AbortController()
    this.#context = { peer: { id: remote.peerId, address: this.remoteAddress }, signal: this.#abort.signal }
    this.#log = this.#log.child({ remote: this.remoteAddress, peer: remote.peerId })
    this.#state = 'open'
    this.#log.info('peer connected', { direction: this.role === 'client' ? 'outbound' : 'inbound' })
    this.#owner.sessionOpened(this)
  }

  #dispatch(frame: Frame & { type: typeof FrameType.REQUEST }): void {
    this.#running++
    const handler = this.#config.handlers.get(frame.method)
    if (handler === undefined) {
      this.#sendReply(encodeError(frame.id, { code: 'TORUS_NOT_SUPPORTED', message: `no handler for method ${frame.method}`, details: { method: frame.method } }))
      return
    }
    void this.#run(handler, frame.id, frame.method, frame.body)
  }

  async #run(handler: RequestHandler, id: number, method: string, body: TransportValue): Promise<void> {
    let reply: Uint8Array
    try {
      const result = await handler(body, this.#context!)
      if (this.#state === 'closed') return
      reply = encodeReply(id, result, this.#pipe?.framePool)
    } catch (err) {
      if (this.#state === 'closed') return
      reply = encodeError(id, this.#errorBody(err, method))
    }
    if (reply.byteLength > this.#remote!.maxFrameBytes) {
      this.#pipe?.framePool?.release(reply)
      reply = encodeError(id, { code: 'TORUS_INVALID_ARGUMENT', message: 'reply is larger than the peer accepts', details: { method, frameBytes: reply.byteLength } })
    }
    this.#sendReply(reply)
  }

  #errorBody(err: unknown, method: string): ErrorBody {
    if (isTorusError(err)) {
      const details = err.details as ErrorBody['details']
      return details === undefined ? { code: err.code, message: err.message } : { code: err.code, message: err.message, details }
    }
    const message = err instanceof Error ? err.message : String(err)
    this.#log.warn('request handler failed', { method, error: err })
    return { code: 'TORUS_INTERNAL', message, details: { method } }
  }

  #handlerDone(): void {
    this.#running--
    // A dispatch can finish at once (no handler: the error reply goes out synchronously) and
    // land back here; the outer loop carries on instead of recursing.
    if (this.#pumping) return
    this.#pumping = true
    try {
      while (this.#running < this.#config.maxConcurrentHandlers && this.#inboundHead < this.#inbound.length) {
        const next = this.#inbound[this.#inboundHead]!
        this.#inbound[this.#inboundHead++] = undefined as never
        this.#dispatch(next as Frame & { type: typeof FrameType.REQUEST })
        if (this.#state === 'closed') return
      }
    } finally {
      this.#pumping = false
    }
    if (this.#inboundHead === this.#inbound.length) {
      this.#inbound.length = 0
      this.#inboundHead = 0
      if (this.#paused) {
        this.#paused = false
        this.#pipe!.resume()
      }
    }
  }

  // ---------------------------------------------------------------------------------------
  // Ending

  violation(message: string): void {
    if (this.#state !== 'closed') this.#protocolError(new TorusError('TORUS_PROTOCOL', message))
  }

  /** Ends a session whose connect failed, timed out or was aborted (its pipe may be open, mid-hello). */
  abandon(error: TorusError): void {
    this.#shutdown(CloseCode.GOING_AWAY, 'connect abandoned', error)
  }

  /** A frame we cannot accept: tell the peer why, log, close. */
  #protocolError(error: TorusError): void {
    this.#log.warn('protocol error', { remote: this.remoteAddress, message: error.message, details: error.details })
    this.#fail(error, CloseCode.PROTOCOL)
  }

  /** Sends `error` to the peer as the reason (ERROR, id 0) and closes. */
  #fail(error: TorusError, code: number): void {
    if (this.#state === 'closed') return
    try {
      const details = error.details as ErrorBody['details']
      this.#pipe!.send(encodeError(0, details === undefined ? { code: error.code, message: error.message } : { code: error.code, message: error.message, details }))
    } catch {
      // The pipe may already be gone; closing is what matters.
    }
    this.#shutdown(code, error.message, error)
  }

  /** Local close (connection or transport closing). */
  close(code: number = CloseCode.NORMAL, reason = 'closed'): void {
    this.#shutdown(code, reason, new TorusError('TORUS_NOT_OPEN', 'connection closed'))
  }

  closed(code: number, reason: string, cause?: Error): void {
    if (this.#state === 'closed') return
    const during = this.#state === 'hello' ? 'during hello' : 'while open'
    const details = { code, reason }
    const error =
      code === CloseCode.TOO_BIG
        ? new TorusError('TORUS_PROTOCOL', 'frame larger than maxFrameBytes', { details, ...(cause === undefined ? {} : { cause }) })
        : new TorusError('TORUS_UNAVAILABLE', `connection closed by peer or network ${during}`, { details, ...(cause === undefined ? {} : { cause }) })
    if (this.#state === 'hello' || code === CloseCode.TOO_BIG) this.#log.warn('connection lost', { remote: this.remoteAddress, during, code, reason, error: cause })
    this.#shutdown(code, reason, error)
  }

  #shutdown(code: number, reason: string, error: TorusError): void {
    if (this.#state === 'closed') return
    const wasOpen = this.#state === 'open'
    this.#state = 'closed'
    this.#closeError = error
    const clock = this.#config.clock
    if (this.#helloTimer !== undefined) clock.clearTimeout(this.#helloTimer)
    if (this.#timer !== undefined) clock.clearTimeout(this.#timer)
    this.#helloTimer = this.#timer = undefined
    this.#pipe?.close(code, reason.length > 120 ? reason.slice(0, 120) : reason)
    // Requests in flight: after a local close, TORUS_NOT_OPEN; otherwise the link is gone and
    // the request may or may not have run on the peer.
    const pendingError = error.code === 'TORUS_NOT_OPEN' ? error : new TorusError('TORUS_UNAVAILABLE', 'connection lost before the reply arrived', { cause: error })
    for (const p of this.#pending.values()) this.settle(p, pendingError)
    this.#queue = []
    this.#queueHead = this.#queuedBytes = 0
    this.#inbound = []
    this.#inboundHead = 0
    this.#abort?.abort(error)
    if (wasOpen) this.#log.info('peer disconnected', { code, reason })
    this.#owner.sessionClosed(this, error)
  }
}
