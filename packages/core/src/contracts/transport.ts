import type { Clock } from '../clock.js'
import type { Logger } from '../logger.js'
import type { Random } from '../random.js'
import type { AbortOptions, LifecycleStatus } from './common.js'

/**
 * What a request or reply body may hold: plain MessagePack-able data. `Uint8Array` travels as
 * MessagePack `bin` (raw bytes, never base64). Objects are plain objects with string keys.
 *
 * On arrival: every `Uint8Array` is a `Buffer` that is a *view into the received frame* (no
 * copy). Integers come back as `number` when they are safe integers and as `bigint` otherwise,
 * whichever type they were sent as. `undefined` survives inside arrays and objects. Anything
 * else (Date, Map, Set, class instances, functions, other typed arrays) is refused: the sender
 * throws `TypeError`, and a receiver treats a frame holding one as malformed (TORUS_PROTOCOL).
 */
export type TransportValue =
  | null
  | undefined
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | readonly TransportValue[]
  | { readonly [key: string]: TransportValue }

/** The authenticated remote end of a connection, as its hello proved it. */
export interface TransportPeer {
  /** The remote peer's id (its UUID in a cluster), from the authenticated hello. */
  readonly id: string
  /** Where the remote end is: `ws://host:port` it was dialled at, or its socket address. */
  readonly address: string
}

/** What a request handler learns besides the body. One object per connection, not per request. */
export interface RequestContext {
  readonly peer: TransportPeer
  /**
   * Aborted when the connection closes (the reply can no longer be delivered). A caller's
   * timeout or abort is *not* forwarded: the handler runs to completion and its late reply
   * is dropped by the caller.
   */
  readonly signal: AbortSignal
}

/**
 * Serves one method. Runs only on an authenticated connection, never before the hello has
 * completed. Its return value (or resolved value) is the reply body.
 *
 * Bytes in `body` are views into the received frame: they are valid while the handler runs,
 * but a handler that keeps them after its returned promise settles must copy them
 * (`bytes.slice()`), both because a transport may recycle frame memory and because a small
 * view would keep the whole frame (up to `maxFrameBytes`) alive. Handing them to
 * `BlockStore.write`, which must not retain its input, needs no copy.
 *
 * Errors: a thrown `TorusError` reaches the caller with the same `code`, `message` and
 * `details` (details must be a TransportValue, else they are dropped). Anything else thrown
 * reaches the caller as TORUS_INTERNAL with the error's message.
 */
export type RequestHandler = (body: TransportValue, context: RequestContext) => TransportValue | Promise<TransportValue>

export interface RequestOptions extends AbortOptions {
  /**
   * Fail with TORUS_TIMEOUT when no reply arrived this many milliseconds after the call.
   * Defaults to the transport's `requestTimeoutMs`. Includes any time spent waiting for room
   * to send (backpressure).
   */
  timeoutMs?: number
}

/**
 * `connecting`: the first dial and hello are under way (only seen inside `connect()`).
 * `open`: authenticated; requests go out. `reconnecting`: the link dropped and the connection
 * is dialling again with back-off; requests fail fast with TORUS_UNAVAILABLE. `closed`: after
 * `close()` (of the connection or its transport); final.
 */
export type ConnectionState = 'connecting' | 'open' | 'reconnecting' | 'closed'

export type ConnectionStateListener = (state: ConnectionState, error?: Error) => void

/**
 * A client's long-lived link to one remote transport, made by `Transport.connect`. Once its
 * first hello succeeded it keeps itself connected: when the link drops it dials again with
 * exponential back-off and jitter, and re-authenticates, until `close()`.
 *
 * Requests on one connection are started on the remote in the order they were sent (handlers
 * may finish in any order; replies are matched by request id). Many may be in flight.
 */
export interface PeerConnection {
  /** The address this connection dials. */
  readonly address: string
  /** The remote peer, from the last successful hello. */
  readonly peer: TransportPeer
  readonly state: ConnectionState
  /** Requests sent or queued that have not settled yet. */
  readonly pendingRequests: number
  /**
   * Bytes accepted for sending but not yet handed to the network: frames buffered by the
   * socket plus frames waiting for room. Bounded by `maxBufferedBytes + maxQueuedBytes` (plus
   * one frame).
   */
  readonly bufferedBytes: number

  /**
   * Sends `body` to the remote handler of `method` and resolves with its reply.
   *
   * Methods are 1-64 characters from `A-Z a-z 0-9 . _ : / -` (TypeError otherwise); the
   * transport gives them no meaning. `body` must be a {@link TransportValue} (TypeError
   * otherwise). The reply's bytes belong to the caller; the transport never reuses them.
   *
   * Backpressure: while the link has `maxBufferedBytes` or more waiting to be written, new
   * requests wait in a FIFO (bounded by their timeout and signal); when the bytes already
   * waiting exceed `maxQueuedBytes`, a request fails at once with TORUS_UNAVAILABLE
   * (`details.reason === 'backpressure'`).
   *
   * Errors: the remote handler's TorusError (same code); TORUS_NOT_SUPPORTED (no handler for
   * `method` on the remote); TORUS_TIMEOUT; TORUS_ABORTED (signal); TORUS_UNAVAILABLE (not
   * open right now; backpressure; or the link dropped with the request in flight, for any
   * reason including a malformed frame from the remote, with `cause` saying why — the request
   * may or may not have run); TORUS_INVALID_ARGUMENT (the encoded request or its reply is
   * larger than the receiving end's `maxFrameBytes`); TORUS_NOT_OPEN (after `close()`).
   */
  request(method: string, body: TransportValue, options?: RequestOptions): Promise<TransportValue>
  /**
   * Resolves once the connection is `open` (at once if it is). TORUS_TIMEOUT after
   * `timeoutMs` (default `requestTimeoutMs`), TORUS_ABORTED, or TORUS_NOT_OPEN when closed.
   */
  ready(options?: RequestOptions): Promise<void>
  /**
   * While `reconnecting`, dials now instead of at the end of the back-off (a caller that learnt
   * the peer is back, e.g. from its heartbeat, need not wait up to `reconnectMaxDelayMs`).
   * Resolves once that attempt (or one already in progress) has succeeded or failed; never
   * rejects. At once in any other state.
   */
  reconnectNow(): Promise<void>
  /** Calls `listener` on every state change; returns a function that unsubscribes. */
  onStateChange(listener: ConnectionStateListener): () => void
  /**
   * Closes the link and stops reconnecting. Pending requests reject with TORUS_NOT_OPEN.
   * Safe to call twice.
   */
  close(): Promise<void>
}

export interface ConnectOptions extends AbortOptions {
  /** Deadline for the first dial and hello. Defaults to the transport's `helloTimeoutMs`. */
  timeoutMs?: number
  /** Refuse (TORUS_PROTOCOL) a remote that proves a different peer id. */
  expectedPeerId?: string
}

/**
 * Options every transport implementation accepts (implementations add their own). Limits are
 * per connection.
 */
export interface TransportOptions {
  /** The cluster this transport belongs to; a hello from another cluster is refused. */
  clusterId: string
  /** This transport's peer id (1-128 printable ASCII characters), sent in the hello. */
  peerId: string
  /**
   * The cluster secret (at least 16 bytes; a string is taken as UTF-8). Both ends of every
   * connection prove they know it (HMAC-SHA256 over both sides' nonces); it never travels.
   */
  secret: string | Uint8Array
  /** Largest frame this end accepts (and advertises in its hello). Default 16 MiB. */
  maxFrameBytes?: number
  /** Handlers running at once per connection; further requests wait unread. Default 64. */
  maxConcurrentHandlers?: number
  /** Bytes a connection may have waiting in its socket before new frames queue. Default 8 MiB. */
  maxBufferedBytes?: number
  /** Bytes of frames that may queue behind a full socket before requests fail fast. Default 32 MiB. */
  maxQueuedBytes?: number
  /** Default request timeout. Default 30 s. */
  requestTimeoutMs?: number
  /** A connection that has not finished its hello after this long is dropped. Default 5 s. */
  helloTimeoutMs?: number
  /** First reconnect delay; doubles per failed attempt up to `reconnectMaxDelayMs`. Default 100 ms. */
  reconnectMinDelayMs?: number
  /** Default 10 s. Each delay is drawn uniformly from [d/2, d) (jitter). */
  reconnectMaxDelayMs?: number
  logger?: Logger
  clock?: Clock
  random?: Random
}

/**
 * Peer RPC: request/reply over authenticated, long-lived connections between the peers of one
 * cluster. A transport can listen (serving the methods registered with `handle`) and dial
 * others (`connect`). Transports are chosen by address scheme: `ws://host:port` for
 * WebSocket, `loopback://name` for the in-process hub used by tests.
 *
 * Every connection starts with a mutual hello: each side proves knowledge of the cluster
 * secret and states its cluster id and peer id. A peer that fails is refused and logged at
 * `warn` with its remote address; no handler runs before the hello completes. Requests that
 * arrive on any authenticated connection, inbound or outbound, are served by `handle`'s table.
 *
 * Errors: TORUS_NOT_OPEN (after `close()`), TORUS_INVALID_ARGUMENT (an address this transport
 * cannot use), TORUS_ALREADY_EXISTS (listen address in use), TORUS_UNAVAILABLE (nobody
 * listening, link lost), TORUS_PROTOCOL (refused hello: wrong secret, other cluster,
 * unexpected peer id; or a malformed frame), TORUS_TIMEOUT, TORUS_ABORTED.
 */
export interface Transport {
  readonly clusterId: string
  readonly peerId: string
  /** `open` from construction until `close()`. */
  readonly status: LifecycleStatus
  /** The bound address once `listen()` resolved (the real port for `ws://host:0`), else `undefined`. */
  readonly address: string | undefined

  /**
   * Serves `method` with `handler` on every connection, replacing an earlier handler. May be
   * called before or after `listen()`. Requests for a method without a handler fail on the
   * caller with TORUS_NOT_SUPPORTED.
   */
  handle(method: string, handler: RequestHandler): void
  /** Accepts connections at `address`; resolves with the bound address. Listening twice is a TypeError. */
  listen(address: string, options?: AbortOptions): Promise<string>
  /**
   * Dials `address`, runs the hello, and resolves with an open {@link PeerConnection}. The
   * first attempt is not retried: it rejects with TORUS_UNAVAILABLE (nothing there),
   * TORUS_PROTOCOL (refused), TORUS_TIMEOUT or TORUS_ABORTED. Reconnection starts only after
   * a successful hello.
   */
  connect(address: string, options?: ConnectOptions): Promise<PeerConnection>
  /**
   * Stops listening, closes every inbound and outbound connection (pending requests reject;
   * running handlers see their signal abort) and releases the address. Safe to call twice.
   */
  close(): Promise<void>
}
