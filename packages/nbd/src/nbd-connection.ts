/**
 * The socket glue for one NBD connection: feeds received bytes to the sans-IO handshake and
 * request parser (`protocol/`), asks the application for exports, runs requests against the
 * chosen `BlockDevice` concurrently and writes replies as they complete.
 *
 * Spec: NetworkBlockDevice/nbd `doc/proto.md` — "Fixed newstyle negotiation", "Transmission"
 * (replies in any order), "Ordering of messages and writes", "Terminating the transmission
 * phase" (DISC finishes outstanding requests; on shutdown, wait for in-flight requests and
 * answer later ones with ESHUTDOWN), "Request types", "Error values".
 *
 * Backpressure: reading from the socket stops while `maxInflightRequests` requests are in
 * flight, or while the payload bytes in flight (WRITE data held, READ replies being built) plus
 * the replies still queued in the socket reach `maxInflightBytes`; it resumes as replies
 * complete and drain. A client that floods requests without reading replies therefore
 * makes the kernel buffers fill up, not the server's heap.
 */
import { setMaxListeners } from 'node:events'
import type { Duplex } from 'node:stream'
import { silentLogger, type BlockDevice, type Logger } from '@torus/core'
import { nbdErrnoFor } from './errno.js'
import {
  CMD_CACHE,
  CMD_DISC,
  CMD_FLAG_FAST_ZERO,
  CMD_FLUSH,
  CMD_READ,
  CMD_TRIM,
  CMD_WRITE,
  CMD_WRITE_ZEROES,
  CMD_BLOCK_STATUS,
  EINVAL,
  EIO,
  ENOSPC,
  ESHUTDOWN,
  FLAG_SEND_FUA,
  OPTION_NAMES,
  OPT_GO,
  OPT_LIST,
  INFO_DESCRIPTION,
  REP_ERR_POLICY,
  REP_ERR_UNKNOWN,
} from './protocol/constants.js'
import {
  DEFAULT_BLOCK_SIZE,
  ServerHandshake,
  encodeExportNameReply,
  encodeGreeting,
  encodeInfoReplies,
  encodeListReplies,
  encodeOptionError,
  transmissionFlagsFor,
  validateBlockSizeConstraints,
  type BlockSizeConstraints,
  type ExportListing,
  type HandshakeEvent,
} from './protocol/handshake.js'
import {
  RequestParser,
  checkRequest,
  encodeSimpleReply,
  type ExportLimits,
  type NbdRequest,
} from './protocol/transmission.js'
import { sharedPayloadPool } from './payload-pool.js'
import { createExecuteContext, executeRequest, type ExecuteContext } from './execute-request.js'
import { createNbdStats, type NbdRequestCounts, type NbdStats } from './stats.js'
import type { DirectReader, NbdConnection, NbdExportHandle, NbdServeOptions } from './connection-api.js'

export { createDirectReader } from './connection-api.js'
export type { DirectReader, NbdConnection, NbdExportHandle, NbdServeOptions } from './connection-api.js'

const DEFAULT_HANDSHAKE_TIMEOUT_MS = 30_000
/** Server-side request failures are logged at warn at most this often per connection. */
const FAILURE_WARN_INTERVAL_MS = 10_000
const DEFAULT_MAX_INFLIGHT_REQUESTS = 256
const DEFAULT_MAX_INFLIGHT_BYTES = 64 * 1024 * 1024
const DEFAULT_SETTLE_TIMEOUT_MS = 30_000
/** Handshake replies queued beyond this stop option parsing until the socket drains. */
const HANDSHAKE_WRITE_LIMIT_BYTES = 256 * 1024
/** After we end our side, give the client this long to close before destroying the socket. */
const LINGER_MS = 2_000

const COUNT_KEYS: Record<number, keyof NbdRequestCounts> = {
  [CMD_READ]: 'read',
  [CMD_WRITE]: 'write',
  [CMD_DISC]: 'disc',
  [CMD_FLUSH]: 'flush',
  [CMD_TRIM]: 'trim',
  [CMD_CACHE]: 'cache',
  [CMD_WRITE_ZEROES]: 'writeZeroes',
  [CMD_BLOCK_STATUS]: 'blockStatus',
}

/** Attaches the NBD server protocol to a connected duplex (a TCP socket or an in-process pair). */
export function serveConnection(socket: Duplex, options: NbdServeOptions): NbdConnection {
  return new Connection(socket, options, undefined)
}

/** Like serveConnection, for a socket whose reads are driven by `reader`. */
export function serveDirectConnection(socket: Duplex, options: NbdServeOptions, reader: DirectReader): NbdConnection {
  return new Connection(socket, options, reader)
}

type SocketLike = Duplex & { setNoDelay?: (noDelay?: boolean) => unknown }

class Connection implements NbdConnection {
  readonly closed: Promise<void>
  #state: NbdConnection['state'] = 'handshake'
  readonly #socket: SocketLike
  readonly #opts: NbdServeOptions
  readonly #log: Logger
  readonly #stats: NbdStats
  readonly #blockSize: BlockSizeConstraints
  readonly #maxInflightRequests: number
  readonly #maxInflightBytes: number
  readonly #settleTimeoutMs: number
  readonly #abort = new AbortController()
  #resolveClosed!: () => void

  #handshake: ServerHandshake | undefined
  #handshakeBusy = false
  #handshakeTimer: NodeJS.Timeout | undefined

  #parser: RequestParser | undefined
  #device: BlockDevice | undefined
  #handle: NbdExportHandle | undefined
  #exportName: string | undefined
  #lastFailureWarnMs = -Infinity
  #failuresSuppressed = 0
  #limits: ExportLimits | undefined
  #exec: ExecuteContext

  #inflight = 0
  #inflightBytes = 0
  #paused = false
  #pumping = false
  #corked = false
  #socketGone = false
  #ending = false
  #shutdown = false
  #lingerTimer: NodeJS.Timeout | undefined
  #settleTimer: NodeJS.Timeout | undefined

  readonly #reader: DirectReader | undefined

  constructor(socket: Duplex, options: NbdServeOptions, reader: DirectReader | undefined) {
    // Every request in flight listens on this signal (up to maxInflightRequests of them, each
    // removed when it settles): no leak for Node's warning to report, which would otherwise print
    // a plain-text line into the JSON log under a deep queue.
    setMaxListeners(0, this.#abort.signal)
    this.#socket = socket
    this.#reader = reader
    if (reader !== undefined) {
      reader.target = this.#readTarget
      reader.onRead = this.#onDirectRead
    }
    this.#opts = options
    this.#log = (options.logger ?? silentLogger).child({ component: 'nbd:connection' })
    this.#stats = options.stats ?? createNbdStats()
    this.#exec = createExecuteContext(this.#abort.signal, this.#stats)
    this.#blockSize = validateBlockSizeConstraints({
      minimumBytes: options.blockSize?.minimumBytes ?? DEFAULT_BLOCK_SIZE.minimumBytes,
      preferredBytes: options.blockSize?.preferredBytes ?? DEFAULT_BLOCK_SIZE.preferredBytes,
      maximumPayloadBytes: options.maxPayloadBytes ?? DEFAULT_BLOCK_SIZE.maximumPayloadBytes,
    })
    this.#maxInflightRequests = options.maxInflightRequests ?? DEFAULT_MAX_INFLIGHT_REQUESTS
    this.#maxInflightBytes = options.maxInflightBytes ?? DEFAULT_MAX_INFLIGHT_BYTES
    this.#settleTimeoutMs = options.settleTimeoutMs ?? DEFAULT_SETTLE_TIMEOUT_MS
    this.closed = new Promise((resolve) => {
      this.#resolveClosed = resolve
    })
    this.#stats.connectionsTotal++

    this.#handshake = new ServerHandshake(options.maxOptionBytes === undefined ? {} : { maxOptionBytes: options.maxOptionBytes })
    this.#socket.setNoDelay?.(true)
    socket.on('data', this.#onData)
    socket.on('error', this.#onError)
    socket.on('close', this.#onClose)
    // A duplex pair may emit 'end' without 'close' when the peer ends; treat it as gone.
    socket.on('end', this.#onEnd)
    socket.on('drain', this.#onDrain)
    const timeoutMs = options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS
    if (timeoutMs > 0 && Number.isFinite(timeoutMs)) {
      this.#handshakeTimer = setTimeout(this.#onHandshakeTimeout, timeoutMs)
      this.#handshakeTimer.unref()
    }
    this.#write(encodeGreeting())
  }

  get state(): NbdConnection['state'] {
    return this.#state
  }

  get exportName(): string | undefined {
    return this.#exportName
  }

  get waitingForClient(): boolean {
    return this.#state === 'handshake' && !this.#handshakeBusy
  }

  get inflight(): number {
    return this.#inflight
  }

  close(): Promise<void> {
    if (this.#state === 'handshake') {
      this.destroy()
    } else if (this.#state === 'transmission') {
      this.#shutdown = true
      this.#state = 'closing'
      this.#maybeFinish()
    }
    return this.closed
  }

  destroy(): void {
    this.#socketGone = true
    this.#abort.abort()
    this.#socket.destroy()
    this.#checkClosed()
  }

  // ---- socket events (bound once) ----

  readonly #onData = (chunk: Buffer | string): void => {
    if (this.#ending || this.#socketGone) return
    // After DISC the client MUST NOT send anything; whatever it sends is dropped, not buffered.
    if (this.#state === 'closing' && !this.#shutdown) return
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk
    if (this.#parser !== undefined) {
      this.#parser.push(buf)
      this.#pump()
    } else if (this.#handshake !== undefined) {
      this.#handshake.push(buf)
      this.#pumpHandshake()
    }
  }

  /** Direct reads: into the payload being assembled when there is one, else into scratch. */
  readonly #readTarget = (): Buffer => {
    if (this.#state === 'transmission' && !this.#ending && !this.#socketGone) {
      const target = this.#parser?.payloadTarget()
      if (target !== undefined) return target
    }
    return this.#reader!.scratch
  }

  readonly #onDirectRead = (n: number, buf: Buffer): void => {
    if (buf === this.#reader!.scratch) {
      // Scratch is reused by the next read; the parser may keep what it is given.
      this.#onData(Buffer.from(buf.subarray(0, n)))
      return
    }
    if (this.#ending || this.#socketGone || this.#parser === undefined) return
    try {
      this.#parser.payloadFilled(n)
    } catch (err) {
      // A read landed somewhere the parser did not ask for: the stream cannot be trusted.
      this.#log.error('direct read out of step, closing connection', { err })
      this.destroy()
      return
    }
    this.#pump()
  }

  readonly #onError = (err: Error): void => {
    this.#log.debug('socket error', { err })
  }

  readonly #onEnd = (): void => {
    // The client hung up or half-closed: nothing more can arrive. In the handshake there is
    // nothing to finish. In transmission, answer what it sent before the FIN (the server sets
    // allowHalfOpen, so our side stays writable), then end gracefully so queued replies leave.
    if (this.#state === 'handshake') {
      this.destroy()
      return
    }
    this.#ending = true
    this.#pump()
    if (this.#inflight === 0) this.#hangUp()
  }

  readonly #onClose = (): void => {
    this.#socketGone = true
    this.#abort.abort()
    this.#clearTimers()
    if (this.#state !== 'closed') this.#state = 'closing'
    this.#checkClosed()
  }

  readonly #onDrain = (): void => {
    if (this.#state === 'handshake') {
      if (!this.#paused || this.#socketGone) return
      this.#paused = false
      if (!this.#handshakeBusy) this.#socket.resume()
      this.#pumpHandshake()
      return
    }
    this.#maybeResume()
  }

  readonly #onHandshakeTimeout = (): void => {
    this.#handshakeTimer = undefined
    if (this.#state !== 'handshake') return
    this.#stats.handshakeTimeouts++
    this.#log.debug('handshake timeout')
    this.destroy()
  }

  readonly #uncork = (): void => {
    this.#corked = false
    if (!this.#socketGone) this.#socket.uncork()
  }

  // ---- output ----

  #write(buf: Buffer): void {
    if (this.#socketGone || this.#socket.destroyed || this.#socket.writableEnded) return
    // Batch replies that complete in the same event-loop turn (several fs callbacks land in one
    // poll phase) into one writev: at queue depth the send syscall dominates the main thread.
    if (!this.#corked) {
      this.#corked = true
      this.#socket.cork()
      setImmediate(this.#uncork)
    }
    this.#socket.write(buf)
  }

  /** Ends our side after pending writes; destroys the socket if the client lingers. */
  #hangUp(): void {
    if (this.#socketGone || this.#socket.writableEnded) return
    this.#ending = true
    this.#socket.end()
    this.#lingerTimer = setTimeout(() => this.destroy(), LINGER_MS)
    this.#lingerTimer.unref()
  }

  #clearTimers(): void {
    if (this.#handshakeTimer !== undefined) clearTimeout(this.#handshakeTimer)
    if (this.#lingerTimer !== undefined) clearTimeout(this.#lingerTimer)
    this.#handshakeTimer = undefined
    this.#lingerTimer = undefined
  }

  #checkClosed(): void {
    if (!this.#socketGone) return
    if (this.#inflight === 0) {
      if (this.#settleTimer !== undefined) clearTimeout(this.#settleTimer)
      this.#settleTimer = undefined
      if (this.#state !== 'closed') {
        this.#state = 'closed'
        this.#clearTimers()
        const handle = this.#handle
        this.#handle = undefined
        this.#release(handle)
        this.#resolveClosed()
      }
    } else if (this.#settleTimer === undefined) {
      // A device that ignores the abort signal must not keep `closed` pending forever.
      this.#settleTimer = setTimeout(() => {
        this.#log.warn('device calls still pending after close', { inflight: this.#inflight })
        this.#inflight = 0
        this.#checkClosed()
      }, this.#settleTimeoutMs)
      this.#settleTimer.unref()
    }
  }

  // ---- handshake ----

  #pumpHandshake(): void {
    const hs = this.#handshake
    if (hs === undefined) return
    while (!this.#handshakeBusy && this.#state === 'handshake' && !this.#ending) {
      // A client that sends options without reading the replies must not grow our write buffer.
      if (this.#socket.writableLength >= HANDSHAKE_WRITE_LIMIT_BYTES) {
        if (!this.#paused) {
          this.#paused = true
          this.#socket.pause()
        }
        return
      }
      const ev = hs.next()
      if (ev === undefined) return
      this.#onHandshakeEvent(ev)
    }
  }

  #onHandshakeEvent(ev: HandshakeEvent): void {
    switch (ev.type) {
      case 'client-flags':
        return
      case 'reply':
        this.#log.debug('option refused', { option: OPTION_NAMES[ev.option] ?? ev.option, reply: ev.replyType })
        this.#write(ev.bytes)
        return
      case 'close':
        if (ev.reason !== 'abort') {
          this.#stats.protocolErrors++
          this.#log.debug('handshake violation', { reason: ev.reason })
        }
        if (ev.bytes !== undefined) this.#write(ev.bytes)
        this.#hangUp()
        return
      case 'list':
        this.#async(this.#list())
        return
      case 'export-name':
      case 'info':
        this.#async(this.#chooseExport(ev))
        return
    }
  }

  /** Runs an async option handler with socket reads paused; errors end the connection. */
  #async(p: Promise<void>): void {
    this.#handshakeBusy = true
    this.#socket.pause()
    p.then(
      () => {
        this.#handshakeBusy = false
        if (this.#state === 'handshake' && !this.#socketGone) {
          if (!this.#paused) this.#socket.resume()
          this.#pumpHandshake()
        }
      },
      (err: unknown) => {
        this.#log.error('handshake failed', { err })
        this.destroy()
      },
    )
  }

  async #list(): Promise<void> {
    let exports: ExportListing[]
    try {
      exports = (await this.#opts.listExports?.()) ?? []
    } catch (err) {
      this.#log.warn('list exports failed', { err })
      this.#write(encodeOptionError(OPT_LIST, REP_ERR_POLICY, 'cannot list exports'))
      return
    }
    this.#write(encodeListReplies(exports))
  }

  async #open(name: string): Promise<NbdExportHandle | undefined> {
    const o = this.#opts
    if (o.openExport !== undefined) return await o.openExport(name)
    if (o.resolveExport === undefined) throw new TypeError('serveConnection needs resolveExport or openExport')
    const device = await o.resolveExport(name)
    return device === undefined ? undefined : { device }
  }

  #release(handle: NbdExportHandle | undefined): void {
    if (handle?.close === undefined) return
    try {
      Promise.resolve(handle.close()).catch((err: unknown) => this.#log.warn('export close failed', { err }))
    } catch (err) {
      this.#log.warn('export close failed', { err })
    }
  }

  async #chooseExport(ev: Extract<HandshakeEvent, { type: 'export-name' | 'info' }>): Promise<void> {
    const name = ev.name === '' && this.#opts.defaultExport !== undefined ? this.#opts.defaultExport : ev.name
    let handle: NbdExportHandle | undefined
    let failure: unknown
    // NBD_OPT_INFO only asks: answer from a description when there is one, opening nothing.
    const describe = ev.type === 'info' && ev.option !== OPT_GO ? this.#opts.describeExport : undefined
    try {
      if (describe !== undefined) {
        const described = await describe(name)
        handle = described === undefined ? undefined : { device: described as BlockDevice }
      } else {
        handle = await this.#open(name)
      }
    } catch (err) {
      failure = err
    }
    if (this.#socketGone) {
      this.#release(handle)
      return
    }
    if (ev.type === 'export-name') {
      if (handle === undefined) {
        // "If the chosen export does not exist ... the server MUST terminate the session."
        this.#log.debug('unknown export', { export: name, err: failure })
        this.#hangUp()
        return
      }
      const device = handle.device
      const flags = transmissionFlagsFor(device.supports)
      this.#write(encodeExportNameReply(device.sizeBytes, flags, this.#handshake?.noZeroes ?? false))
      this.#enterTransmission(handle, name, flags)
      return
    }
    if (handle === undefined) {
      if (failure === undefined) {
        this.#log.debug('unknown export', { export: name })
        this.#write(encodeOptionError(ev.option, REP_ERR_UNKNOWN, `unknown export: ${name}`))
        return
      }
      // The export exists but cannot be served now (e.g. another server holds its lock): say
      // why. Clients such as qemu print the server's message.
      this.#log.warn('export refused', { export: name, err: failure })
      const why = failure instanceof Error ? failure.message.slice(0, 1024) : 'export not available'
      this.#write(encodeOptionError(ev.option, REP_ERR_POLICY, `export ${name} not available: ${why}`))
      return
    }
    const device = handle.device
    const flags = transmissionFlagsFor(device.supports)
    let description: string | undefined
    if (ev.requests.includes(INFO_DESCRIPTION) && this.#opts.listExports !== undefined) {
      try {
        description = (await this.#opts.listExports()).find((e) => e.name === name)?.description
      } catch {
        description = undefined
      }
      if (this.#socketGone) {
        this.#release(handle)
        return
      }
    }
    const details = { name, sizeBytes: device.sizeBytes, transmissionFlags: flags, blockSize: this.#blockSize }
    this.#write(encodeInfoReplies(ev.option, description === undefined ? details : { ...details, description }, ev.requests))
    if (ev.option === OPT_GO) this.#enterTransmission(handle, name, flags)
    else this.#release(handle)
  }

  #enterTransmission(handle: NbdExportHandle, name: string, flags: number): void {
    const device = handle.device
    this.#handle = handle
    const hs = this.#handshake!
    const rest = hs.finish()
    this.#handshake = undefined
    if (this.#handshakeTimer !== undefined) clearTimeout(this.#handshakeTimer)
    this.#handshakeTimer = undefined
    this.#state = 'transmission'
    this.#device = device
    this.#exportName = name
    this.#exec.fuaHonoured = (flags & FLAG_SEND_FUA) !== 0
    this.#limits = { sizeBytes: device.sizeBytes, transmissionFlags: flags, blockSize: this.#blockSize }
    this.#parser = new RequestParser({ maxPayloadBytes: this.#blockSize.maximumPayloadBytes, allocatePayload: (n) => sharedPayloadPool.acquire(n) })
    this.#paused = false
    this.#stats.sessionsTotal++
    this.#log.debug('transmission', { export: name, sizeBytes: device.sizeBytes, flags })
    if (rest.length > 0) this.#parser.push(rest)
    this.#socket.resume()
    this.#pump()
  }

  // ---- transmission ----

  #blocked(): boolean {
    return (
      this.#inflight >= this.#maxInflightRequests ||
      // Replies queued in the socket count too: a client that does not read must not grow them.
      this.#inflightBytes + this.#socket.writableLength >= this.#maxInflightBytes
    )
  }

  #pump(): void {
    const parser = this.#parser
    if (parser === undefined || this.#pumping) return
    this.#pumping = true
    try {
      while (this.#state === 'transmission' || (this.#state === 'closing' && this.#shutdown)) {
        if (this.#blocked()) {
          if (!this.#paused) {
            this.#paused = true
            this.#socket.pause()
          }
          return
        }
        const r = parser.next()
        if (r === undefined) return
        if ('reason' in r) {
          this.#stats.protocolErrors++
          this.#log.debug('transmission violation', { reason: r.reason })
          if (r.request !== undefined) this.#replyError(r.request, EINVAL)
          this.#state = 'closing'
          this.#hardCloseWhenIdle()
          return
        }
        this.#dispatch(r)
      }
    } finally {
      this.#pumping = false
    }
  }

  #maybeResume(): void {
    if (!this.#paused || this.#socketGone || this.#blocked()) return
    this.#paused = false
    this.#pump()
    if (!this.#paused) this.#socket.resume()
  }

  #dispatch(req: NbdRequest): void {
    const counts = this.#stats.requests
    counts[COUNT_KEYS[req.type] ?? 'unknown']++
    if (req.type === CMD_DISC) {
      // "The server MUST handle all outstanding requests ... and close the TCP session."
      this.#state = 'closing'
      this.#shutdown = false
      this.#maybeFinish()
      return
    }
    if (this.#shutdown) {
      this.#replyError(req, ESHUTDOWN)
      return
    }
    const errno = checkRequest(req, this.#limits!)
    if (errno !== 0) {
      this.#replyError(req, errno)
      return
    }
    if (req.length === 0 && req.type !== CMD_FLUSH) {
      // Zero-length READ/WRITE/TRIM/WRITE_ZEROES: unspecified by the spec, which only asks the
      // server not to disconnect. Succeed without touching the device.
      this.#write(encodeSimpleReply(0, req.cookieHi, req.cookieLo))
      return
    }
    const cost = req.type === CMD_READ || req.type === CMD_WRITE ? req.length : 0
    this.#inflight++
    this.#inflightBytes += cost
    void this.#run(req, cost)
  }

  /** Executes one request; never rejects. */
  /**
   * EIO and ENOSPC mean the server could not do what it should (replicas unreachable, store
   * full, a disk failing): the operator must hear of it, at most once per 10 s per connection
   * with a count of the rest. Other errors answer a client's mistake (out of range, read-only)
   * and stay at debug level.
   */
  #logFailure(errno: number, fields: Record<string, unknown>): void {
    if (errno !== EIO && errno !== ENOSPC) {
      this.#log.debug('request failed', fields)
      return
    }
    const now = Date.now()
    if (now - this.#lastFailureWarnMs < FAILURE_WARN_INTERVAL_MS) {
      this.#failuresSuppressed++
      return
    }
    this.#log.warn('request failed', { ...fields, export: this.#exportName, ...(this.#failuresSuppressed > 0 ? { suppressedSinceLastWarning: this.#failuresSuppressed } : {}) })
    this.#lastFailureWarnMs = now
    this.#failuresSuppressed = 0
  }

  async #run(req: NbdRequest, cost: number): Promise<void> {
    try {
      this.#write(await executeRequest(this.#device!, req, this.#exec))
    } catch (err) {
      const errno = nbdErrnoFor(err, req.type === CMD_WRITE_ZEROES && (req.flags & CMD_FLAG_FAST_ZERO) !== 0)
      if (!this.#socketGone) this.#logFailure(errno, { command: COUNT_KEYS[req.type], offset: req.offset, length: req.length, errno, err })
      this.#replyError(req, errno)
    } finally {
      this.#inflight--
      this.#inflightBytes -= cost
      this.#afterRequest()
    }
  }

  #replyError(req: NbdRequest, errno: number): void {
    this.#stats.errors++
    this.#write(encodeSimpleReply(errno, req.cookieHi, req.cookieLo))
  }

  #afterRequest(): void {
    if (this.#socketGone) {
      this.#checkClosed()
      return
    }
    if (this.#ending && this.#state !== 'closing') {
      // The client half-closed: answer what it sent before the FIN, then end our side (with a
      // linger timer, in case it never reads the replies).
      this.#pump()
      if (this.#inflight === 0) this.#hangUp()
      return
    }
    this.#maybeFinish()
    this.#maybeResume()
  }

  /** After DISC or shutdown: end the connection once nothing is in flight. */
  #maybeFinish(): void {
    if (this.#state !== 'closing' || this.#inflight > 0 || this.#socketGone) return
    if (this.#shutdown) {
      // Keep answering ESHUTDOWN to whatever is already buffered, then end.
      this.#pump()
    }
    this.#hangUp()
  }

  #hardCloseWhenIdle(): void {
    if (this.#inflight === 0) this.#hangUp()
    else {
      this.#shutdown = true
      // #maybeFinish runs when the last request completes.
    }
  }
}
