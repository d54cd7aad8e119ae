/**
 * The dialling side's long-lived connection: one {@link Session} at a time, replaced after a
 * drop by dialling again with exponential back-off and jitter until `close()`.
 *
 * Requests made while the link is down fail fast with TORUS_UNAVAILABLE instead of waiting:
 * the replication path would rather mark a replica degraded now than stall on it. Callers that
 * want to wait use `ready()`.
 */
import {
  TorusError,
  type ConnectionState,
  type ConnectionStateListener,
  type PeerConnection,
  type RequestOptions,
  type Timer,
  type TransportPeer,
  type TransportValue,
} from '@torus/core'
import { isValidMethod } from './frame-codec.js'
import { timeoutOption, type ResolvedOptions } from './options.js'
import { Session, type FramePipe, type FrameSink, type SessionConfig, type SessionOwner } from './session.js'

/** What a connection needs from its transport. */
export interface ConnectionHost {
  readonly options: ResolvedOptions
  readonly sessionConfig: SessionConfig
  /** Opens a pipe to `address` that reports to `sink`; resolves once the hello can start. */
  dial(address: string, sink: FrameSink, signal: AbortSignal): Promise<FramePipe>
  connectionClosed(connection: ReconnectingConnection): void
}

interface Attempt {
  session: Session
  resolve: () => void
  reject: (err: TorusError) => void
  dial: AbortController
  timer: Timer
}

export class ReconnectingConnection implements PeerConnection, SessionOwner {
  readonly address: string
  #host: ConnectionHost
  #expectedPeerId: string | undefined
  #state: ConnectionState = 'connecting'
  #session: Session | undefined
  #peer: TransportPeer | undefined
  #attempt: Attempt | undefined
  #failures = 0
  #retryTimer: Timer | undefined
  /** The reconnect dial in progress, if any. */
  #redialing: Promise<void> | undefined
  #listeners = new Set<ConnectionStateListener>()

  constructor(host: ConnectionHost, address: string, expectedPeerId: string | undefined) {
    this.#host = host
    this.address = address
    this.#expectedPeerId = expectedPeerId
  }

  get state(): ConnectionState {
    return this.#state
  }

  get peer(): TransportPeer {
    return this.#peer ?? { id: this.#expectedPeerId ?? '', address: this.address }
  }

  get pendingRequests(): number {
    return this.#session?.pendingRequests ?? 0
  }

  get bufferedBytes(): number {
    return this.#session?.bufferedBytes ?? 0
  }

  /** The first dial and hello; rejects (and leaves the connection closed) on failure. */
  async start(timeoutMs: number, signal: AbortSignal | undefined): Promise<void> {
    try {
      await this.#dial(timeoutMs, signal)
    } catch (err) {
      this.#setState('closed', err as Error)
      this.#host.connectionClosed(this)
      throw err
    }
  }

  request(method: string, body: TransportValue, options?: RequestOptions): Promise<TransportValue> {
    const session = this.#session
    if (this.#state !== 'open' || session === undefined || session.state !== 'open') {
      return Promise.reject(
        this.#state === 'closed'
          ? new TorusError('TORUS_NOT_OPEN', 'connection closed', { details: { address: this.address } })
          : new TorusError('TORUS_UNAVAILABLE', 'peer not connected', { details: { address: this.address, state: this.#state } }),
      )
    }
    try {
      if (!isValidMethod(method)) throw new TypeError(`invalid method ${JSON.stringify(method)}: use 1-64 characters from A-Z a-z 0-9 . _ : / -`)
      const timeoutMs = timeoutOption(options?.timeoutMs, this.#host.options.requestTimeoutMs)
      return session.request(method, body, timeoutMs, options?.signal)
    } catch (err) {
      return Promise.reject(err as Error)
    }
  }

  ready(options?: RequestOptions): Promise<void> {
    if (this.#state === 'open') return Promise.resolve()
    if (this.#state === 'closed') return Promise.reject(new TorusError('TORUS_NOT_OPEN', 'connection closed'))
    const signal = options?.signal
    if (signal?.aborted === true) return Promise.reject(new TorusError('TORUS_ABORTED', 'wait aborted', { cause: signal.reason }))
    const timeoutMs = timeoutOption(options?.timeoutMs, this.#host.options.requestTimeoutMs)
    const clock = this.#host.options.clock
    return new Promise<void>((resolve, reject) => {
      const finish = (err?: TorusError): void => {
        clock.clearTimeout(timer)
        unsubscribe()
        signal?.removeEventListener('abort', onAbort)
        if (err === undefined) resolve()
        else reject(err)
      }
      const onAbort = (): void => finish(new TorusError('TORUS_ABORTED', 'wait aborted', { cause: signal?.reason }))
      const timer = clock.setTimeout(() => finish(new TorusError('TORUS_TIMEOUT', 'peer did not become ready in time', { details: { address: this.address } })), timeoutMs)
      const unsubscribe = this.onStateChange((state) => {
        if (state === 'open') finish()
        else if (state === 'closed') finish(new TorusError('TORUS_NOT_OPEN', 'connection closed'))
      })
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }

  reconnectNow(): Promise<void> {
    if (this.#state !== 'reconnecting') return Promise.resolve()
    if (this.#redialing !== undefined) return this.#redialing
    if (this.#retryTimer === undefined) return Promise.resolve()
    this.#host.options.clock.clearTimeout(this.#retryTimer)
    this.#retryTimer = undefined
    return this.#redial()
  }

  onStateChange(listener: ConnectionStateListener): () => void {
    this.#listeners.add(listener)
    return () => {
      this.#listeners.delete(listener)
    }
  }

  async close(): Promise<void> {
    if (this.#state === 'closed') return
    const clock = this.#host.options.clock
    if (this.#retryTimer !== undefined) clock.clearTimeout(this.#retryTimer)
    this.#retryTimer = undefined
    this.#setState('closed')
    const attempt = this.#attempt
    if (attempt !== undefined) this.#endAttempt(attempt, new TorusError('TORUS_NOT_OPEN', 'connection closed'))
    this.#session?.close()
    this.#host.connectionClosed(this)
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }

  // ---------------------------------------------------------------------------------------

  #dial(timeoutMs: number, signal: AbortSignal | undefined): Promise<void> {
    const { sessionConfig, options } = this.#host
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted === true) {
        reject(new TorusError('TORUS_ABORTED', 'connect aborted', { cause: signal.reason }))
        return
      }
      const session = new Session(sessionConfig, 'client', this.address, this, this.#peer?.id ?? this.#expectedPeerId)
      const attempt: Attempt = {
        session,
        resolve,
        reject,
        dial: new AbortController(),
        timer: options.clock.setTimeout(
          () => this.#endAttempt(attempt, new TorusError('TORUS_TIMEOUT', 'connect timed out', { details: { address: this.address, timeoutMs } })),
          timeoutMs,
        ),
      }
      this.#attempt = attempt
      this.#session = session
      const onAbort = (): void => this.#endAttempt(attempt, new TorusError('TORUS_ABORTED', 'connect aborted', { cause: signal?.reason }))
      signal?.addEventListener('abort', onAbort, { once: true })
      const cleanup = (): void => signal?.removeEventListener('abort', onAbort)
      attempt.resolve = () => {
        cleanup()
        resolve()
      }
      attempt.reject = (err) => {
        cleanup()
        reject(err)
      }
      this.#host.dial(this.address, session, attempt.dial.signal).then(
        (pipe) => {
          if (this.#attempt !== attempt) pipe.close(1000, 'connect abandoned')
          else session.start(pipe)
        },
        (err: unknown) => this.#endAttempt(attempt, err instanceof TorusError ? err : new TorusError('TORUS_UNAVAILABLE', 'dial failed', { cause: err })),
      )
    })
  }

  /** Fails the attempt in progress with `error` (no-op when it already ended). */
  #endAttempt(attempt: Attempt, error: TorusError): void {
    if (this.#attempt !== attempt) return
    this.#attempt = undefined
    this.#host.options.clock.clearTimeout(attempt.timer)
    attempt.dial.abort(error)
    attempt.session.abandon(error)
    attempt.reject(error)
  }

  sessionOpened(session: Session): void {
    const attempt = this.#attempt
    if (attempt === undefined || attempt.session !== session) {
      session.close()
      return
    }
    this.#attempt = undefined
    this.#host.options.clock.clearTimeout(attempt.timer)
    this.#peer = session.peer
    this.#failures = 0
    attempt.resolve()
    this.#setState('open')
  }

  sessionClosed(session: Session, error: TorusError): void {
    const attempt = this.#attempt
    if (attempt !== undefined && attempt.session === session) {
      this.#endAttempt(attempt, error)
      return
    }
    if (session !== this.#session || this.#state !== 'open') return
    this.#host.options.logger.info('peer connection lost, reconnecting', { address: this.address, peer: this.#peer?.id, code: error.code, message: error.message })
    this.#setState('reconnecting', error)
    this.#scheduleRetry()
  }

  #scheduleRetry(): void {
    if (this.#state === 'closed') return
    const { reconnectMinDelayMs, reconnectMaxDelayMs, clock, random } = this.#host.options
    const ceiling = Math.min(reconnectMaxDelayMs, reconnectMinDelayMs * 2 ** Math.min(this.#failures, 30))
    // Half fixed, half random: peers that lost the same server do not all come back at once,
    // and none retries in a tight loop.
    const delayMs = ceiling / 2 + random.next() * (ceiling / 2)
    this.#failures++
    this.#retryTimer = clock.setTimeout(() => {
      this.#retryTimer = undefined
      void this.#redial()
    }, delayMs)
  }

  /** One reconnect attempt; on failure the next is scheduled. Never rejects. */
  #redial(): Promise<void> {
    const redialing: Promise<void> = this.#dial(this.#host.options.helloTimeoutMs, undefined)
      .then(
        () => this.#host.options.logger.info('peer reconnected', { address: this.address, peer: this.#peer?.id }),
        (err: TorusError) => {
          this.#host.options.logger.debug('reconnect failed', { address: this.address, code: err.code, message: err.message, attempt: this.#failures })
          this.#scheduleRetry()
        },
      )
      .finally(() => {
        if (this.#redialing === redialing) this.#redialing = undefined
      })
    this.#redialing = redialing
    return redialing
  }

  #setState(state: ConnectionState, error?: Error): void {
    if (this.#state === state) return
    this.#state = state
    for (const listener of [...this.#listeners]) {
      try {
        listener(state, error)
      } catch (err) {
        this.#host.options.logger.warn('connection state listener threw', { error: err })
      }
    }
  }
}
