/**
 * The transport over WebSocket (`ws`): one binary message per frame. This file is only socket
 * glue; the protocol lives in session.ts, handshake.ts and frame-codec.ts.
 *
 * - Upgrades must ask for the `torus-transport.v1` subprotocol; others get HTTP 400 and a
 *   warning in the log. Plain HTTP requests get 426.
 * - `maxPayload` is `maxFrameBytes` on both ends, so ws refuses an oversized frame (close 1009)
 *   before buffering it whole.
 * - No permessage-deflate: block data does not compress well enough to pay for the copies.
 * - Client frames use an all-zero mask unless `maskFrames` is set. RFC 6455 masking protects
 *   browsers' intermediaries from script-chosen bytes; between daemons it only costs a copy
 *   and an XOR pass over every payload (ws then skips both on send and receive).
 * - Keep-alive: a ping every `keepAliveMs`; a connection that sent nothing (no pong, no frame)
 *   for a whole period is dropped, so a dead peer is noticed without a request timing out.
 * - Write batching: the first frame sent in a tick corks the socket and a `process.nextTick`
 *   uncorks it, so every frame produced in one turn (64 replies resolving 64 new requests)
 *   leaves in one `writev` instead of one syscall each. The socket comes from public events
 *   (the server's 'upgrade' and the client's 'upgrade' response), not from ws internals.
 */
import http from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { WebSocket, WebSocketServer, type RawData } from 'ws'
import { TorusError, type Clock, type Timer, type TransportOptions } from '@torus/core'
import { AbstractTransport } from './abstract-transport.js'
import { FrameBufferPool } from './frame-pool.js'
import { CloseCode, type FramePipe, type FrameSink } from './session.js'

export const WS_SUBPROTOCOL = 'torus-transport.v1'

export interface WsTransportOptions extends TransportOptions {
  /** Mask client frames with random keys (RFC 6455 strictness). Default false: zero masks. */
  maskFrames?: boolean
  /** Ping period in ms; 0 turns keep-alive off. Default 15 s. */
  keepAliveMs?: number
  /**
   * Share this HTTP server's port instead of binding one: `listen(address)` then only adds the
   * WebSocket upgrade handling to `server` (which must already listen; its owner closes it) and
   * takes `address` as the advertised one. Plain HTTP requests stay the server's business.
   */
  server?: http.Server
}

/** How long a closing socket may take to finish the close handshake before it is destroyed. */
const CLOSE_GRACE_MS = 1000
const SEND_OPTIONS = { binary: true } as const
const zeroMask = (mask: Uint8Array): void => {
  mask.fill(0)
}

/** One WebSocket as a {@link FramePipe}. */
class WsPipe implements FramePipe {
  readonly framePool: FrameBufferPool
  readonly #ws: WebSocket
  readonly #socket: Socket | undefined
  #corked = false
  readonly #sink: FrameSink
  readonly #clock: Clock
  readonly #keepAliveMs: number
  readonly #onDone: (pipe: WsPipe) => void
  #keepAlive: Timer | undefined
  #alive = true
  #error: Error | undefined
  #closing = false
  #graceTimer: NodeJS.Timeout | undefined
  readonly closed: Promise<void>
  #resolveClosed!: () => void
  readonly #onWritten = (err?: Error | null): void => {
    if (err == null) this.#sink.drain()
  }

  readonly #uncork = (): void => {
    this.#corked = false
    this.#socket!.uncork()
  }

  constructor(ws: WebSocket, socket: Socket | undefined, sink: FrameSink, clock: Clock, keepAliveMs: number, framePool: FrameBufferPool, onDone: (pipe: WsPipe) => void) {
    this.framePool = framePool
    this.#ws = ws
    this.#socket = socket
    this.#sink = sink
    this.#clock = clock
    this.#keepAliveMs = keepAliveMs
    this.#onDone = onDone
    this.closed = new Promise((resolve) => {
      this.#resolveClosed = resolve
    })
    ws.binaryType = 'nodebuffer'
    ws.on('message', (data: RawData, isBinary: boolean) => {
      this.#alive = true
      if (isBinary) sink.receive(data as Buffer)
      else sink.violation('text message on a binary protocol')
    })
    ws.on('pong', () => {
      this.#alive = true
    })
    ws.on('error', (err: Error) => {
      this.#error ??= err
    })
    ws.on('close', (code: number, reason: Buffer) => {
      if (this.#keepAlive !== undefined) this.#clock.clearTimeout(this.#keepAlive)
      if (this.#graceTimer !== undefined) clearTimeout(this.#graceTimer)
      const tooBig = (this.#error as { code?: string } | undefined)?.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH'
      sink.closed(tooBig ? CloseCode.TOO_BIG : code, reason.toString('utf8'), this.#error)
      this.#onDone(this)
      this.#resolveClosed()
    })
    if (keepAliveMs > 0) this.#keepAlive = clock.setTimeout(this.#tick, keepAliveMs)
  }

  readonly #tick = (): void => {
    this.#keepAlive = undefined
    if (this.#ws.readyState !== WebSocket.OPEN) return
    if (!this.#alive) {
      this.#error ??= new Error('keep-alive: no pong within one period')
      this.#ws.terminate()
      return
    }
    this.#alive = false
    this.#ws.ping()
    this.#keepAlive = this.#clock.setTimeout(this.#tick, this.#keepAliveMs)
  }

  send(frame: Uint8Array): void {
    if (!this.#corked && this.#socket !== undefined) {
      this.#corked = true
      this.#socket.cork()
      process.nextTick(this.#uncork)
    }
    if (!this.framePool.owns(frame)) {
      this.#ws.send(frame, SEND_OPTIONS, this.#onWritten)
      return
    }
    // ws calls back once the socket wrote the frame (or with an error when it never will):
    // only then may the buffer carry another frame.
    this.#ws.send(frame, SEND_OPTIONS, (err) => {
      this.framePool.release(frame)
      this.#onWritten(err)
    })
  }

  get bufferedBytes(): number {
    return this.#ws.bufferedAmount
  }

  pause(): void {
    this.#ws.pause()
  }

  resume(): void {
    this.#ws.resume()
  }

  close(code: number, reason: string): void {
    if (this.#closing) return
    this.#closing = true
    const ws = this.#ws
    if (ws.readyState === WebSocket.CLOSED) return
    // 1005/1006/1015 describe a close, they are never sent; ws throws on them. A pipe that
    // opened while its session was being abandoned gets here with 1006: just cut it.
    if (ws.readyState === WebSocket.OPEN && isSendableCloseCode(code)) ws.close(code, closeReason(reason))
    else ws.terminate()
    this.#graceTimer = setTimeout(() => ws.terminate(), CLOSE_GRACE_MS)
    this.#graceTimer.unref()
  }

  terminate(): void {
    this.#ws.terminate()
  }
}

/** Close codes RFC 6455 lets an endpoint put in a close frame. */
function isSendableCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) || (code >= 3000 && code <= 4999)
}

/** A close frame's reason is at most 123 UTF-8 bytes; cut on a character boundary. */
function closeReason(reason: string): string {
  if (Buffer.byteLength(reason) <= 123) return reason
  let cut = reason.slice(0, 123)
  while (Buffer.byteLength(cut) > 123) cut = cut.slice(0, -1)
  return cut
}

/**
 * Peer RPC over WebSocket. `listen('ws://127.0.0.1:0')` binds (port 0 picks a free port;
 * `address` then shows it), `connect('ws://host:port')` dials.
 */
export class WsTransport extends AbstractTransport {
  readonly #maskFrames: boolean
  readonly #keepAliveMs: number
  #server: http.Server | undefined
  #wss: WebSocketServer | undefined
  readonly #shared: http.Server | undefined
  #upgradeListener: ((req: http.IncomingMessage, socket: Duplex, head: Buffer) => void) | undefined
  readonly #pipes = new Set<WsPipe>()
  /** Output buffers for large frames, shared by this transport's connections (frame-pool.ts). */
  readonly #framePool = new FrameBufferPool()
  readonly #pipeDone = (pipe: WsPipe): void => {
    this.#pipes.delete(pipe)
  }

  constructor(options: WsTransportOptions) {
    super(options, 'transport:ws')
    this.#maskFrames = options.maskFrames ?? false
    const keepAliveMs = options.keepAliveMs ?? 15_000
    if (!Number.isSafeInteger(keepAliveMs) || keepAliveMs < 0) throw new RangeError(`keepAliveMs must be a non-negative integer, got ${String(keepAliveMs)}`)
    this.#keepAliveMs = keepAliveMs
    this.#shared = options.server
  }

  protected _checkAddress(address: string): void {
    parseWsAddress(address)
  }

  protected async _listen(address: string): Promise<string> {
    const url = parseWsAddress(address)
    if (url.pathname !== '/' || url.search !== '') throw new TorusError('TORUS_INVALID_ARGUMENT', `listen address takes no path: ${address}`)
    const wss = new WebSocketServer({
      noServer: true,
      maxPayload: this.options.maxFrameBytes,
      perMessageDeflate: false,
      clientTracking: false,
      skipUTF8Validation: true,
      handleProtocols: (protocols) => (protocols.has(WS_SUBPROTOCOL) ? WS_SUBPROTOCOL : false),
    })
    this.#wss = wss
    const onUpgrade = (req: http.IncomingMessage, socket: Duplex, head: Buffer): void => this.#upgrade(wss, req, socket, head)
    if (this.#shared !== undefined) {
      // The owner bound the port; we only take the upgrades and advertise what we were told.
      this.#shared.on('upgrade', onUpgrade)
      this.#upgradeListener = onUpgrade
      return url.href.replace(/\/$/, '')
    }
    const host = url.hostname.replace(/^\[(.*)\]$/, '$1')
    // URL drops a default port, so an explicit ':80' reads back as ''.
    const port = url.port === '' ? 80 : Number(url.port)
    const server = http.createServer((req, res) => {
      res.writeHead(426, { connection: 'close', upgrade: 'websocket', 'content-type': 'text/plain' })
      res.end('this port speaks the Torus peer transport (WebSocket)\n')
    })
    server.on('upgrade', onUpgrade)
    server.on('clientError', (_err, socket) => socket.destroy())
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen({ host, port, exclusive: true }, () => {
        server.off('error', reject)
        resolve()
      })
    }).catch((err: NodeJS.ErrnoException) => {
      throw err.code === 'EADDRINUSE'
        ? new TorusError('TORUS_ALREADY_EXISTS', `address in use: ${address}`, { cause: err })
        : new TorusError('TORUS_INVALID_ARGUMENT', `cannot listen on ${address}: ${err.message}`, { cause: err })
    })
    server.on('error', (err) => this.options.logger.error('listener error', { error: err }))
    this.#server = server
    const bound = server.address() as AddressInfo
    return `ws://${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}`
  }

  /** One HTTP upgrade: checks the subprotocol and the hello cap, then starts a session. */
  #upgrade(wss: WebSocketServer, req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    const log = this.options.logger
    socket.on('error', () => {})
    const remote = formatRemote(req.socket.remoteAddress, req.socket.remotePort)
    const offered = String(req.headers['sec-websocket-protocol'] ?? '').split(',').map((s) => s.trim())
    if (!offered.includes(WS_SUBPROTOCOL)) {
      log.warn('upgrade refused', { remote, reason: `missing subprotocol ${WS_SUBPROTOCOL}` })
      const body = `missing subprotocol ${WS_SUBPROTOCOL}\n`
      socket.end(`HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\n\r\n${body}`)
      return
    }
    const refused = this._refuseReason()
    if (refused !== undefined) {
      log.warn('upgrade refused', { remote, reason: refused })
      socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n')
      return
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      const session = this._accept(remote)
      if (session === undefined) {
        ws.terminate()
        return
      }
      const pipe = new WsPipe(ws, socket as Socket, session, this.options.clock, this.#keepAliveMs, this.#framePool, this.#pipeDone)
      this.#pipes.add(pipe)
      session.start(pipe)
    })
  }

  protected _dial(address: string, sink: FrameSink, signal: AbortSignal): Promise<FramePipe> {
    const options = this.options
    return new Promise<FramePipe>((resolve, reject) => {
      const ws = new WebSocket(address, WS_SUBPROTOCOL, {
        maxPayload: options.maxFrameBytes,
        perMessageDeflate: false,
        followRedirects: false,
        skipUTF8Validation: true,
        handshakeTimeout: options.helloTimeoutMs,
        ...(this.#maskFrames ? {} : { generateMask: zeroMask }),
      })
      let settled = false
      const fail = (err: TorusError): void => {
        if (settled) return
        settled = true
        signal.removeEventListener('abort', onAbort)
        ws.terminate()
        reject(err)
      }
      const onAbort = (): void => fail(signal.reason instanceof TorusError ? signal.reason : new TorusError('TORUS_ABORTED', 'dial aborted'))
      signal.addEventListener('abort', onAbort, { once: true })
      // Always listen for errors: an 'error' without a listener would crash the process.
      ws.on('error', (err: NodeJS.ErrnoException) => fail(new TorusError('TORUS_UNAVAILABLE', `cannot reach ${address}: ${err.message}`, { cause: err, details: { address, errno: err.code } })))
      ws.once('unexpected-response', (req, res) => {
        fail(new TorusError('TORUS_PROTOCOL', `${address} refused the WebSocket upgrade (HTTP ${res.statusCode})`, { details: { address, status: res.statusCode } }))
        req.destroy()
      })
      let socket: Socket | undefined
      ws.once('upgrade', (res: http.IncomingMessage) => {
        socket = res.socket as Socket
      })
      ws.once('open', () => {
        if (settled) return
        settled = true
        signal.removeEventListener('abort', onAbort)
        const pipe = new WsPipe(ws, socket, sink, options.clock, this.#keepAliveMs, this.#framePool, this.#pipeDone)
        this.#pipes.add(pipe)
        resolve(pipe)
      })
    })
  }

  protected async _close(): Promise<void> {
    const server = this.#server
    this.#server = undefined
    const closing = [...this.#pipes].map((p) => p.closed)
    // Sessions asked every pipe to close; anything still open after the grace is destroyed.
    const grace = setTimeout(() => {
      for (const p of this.#pipes) p.terminate()
    }, CLOSE_GRACE_MS)
    grace.unref()
    if (server !== undefined) {
      await new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      })
    }
    if (this.#upgradeListener !== undefined) this.#shared?.off('upgrade', this.#upgradeListener)
    this.#upgradeListener = undefined
    this.#wss?.close()
    await Promise.all(closing)
    clearTimeout(grace)
  }
}

function parseWsAddress(address: string): URL {
  let url: URL
  try {
    url = new URL(address)
  } catch {
    throw new TorusError('TORUS_INVALID_ARGUMENT', `not a ws:// address: ${address}`)
  }
  if (url.protocol !== 'ws:') throw new TorusError('TORUS_INVALID_ARGUMENT', `not a ws:// address: ${address} (wss:// is not supported yet)`)
  if (url.port === '' && !/:\d+(\/|$)/.test(address)) throw new TorusError('TORUS_INVALID_ARGUMENT', `address needs a port: ${address}`)
  return url
}

function formatRemote(address: string | undefined, port: number | undefined): string {
  if (address === undefined) return 'unknown'
  return address.includes(':') ? `[${address}]:${port ?? 0}` : `${address}:${port ?? 0}`
}
