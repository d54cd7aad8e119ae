/**
 * The public shape of one NBD connection and the options that configure it, shared by
 * `serveConnection` (nbd-connection.ts) and `NbdServer`.
 */
import type { BlockDevice, Logger } from '@torus/core'
import type { ExportListing } from './protocol/handshake.js'
import type { NbdStats } from './stats.js'

/** An export opened for one connection; `close` runs once the connection is over. */
export interface NbdExportHandle {
  device: BlockDevice
  close?(): void | Promise<void>
}

/**
 * Options shared by {@link serveConnection} and `NbdServer`. Give `resolveExport` or
 * `openExport` (if both are given, `openExport` wins).
 */
export interface NbdServeOptions {
  /** The device behind an export name, or `undefined` when there is no such export. */
  resolveExport?(name: string): Promise<BlockDevice | undefined> | BlockDevice | undefined
  /**
   * Like `resolveExport`, for applications that acquire something per connection (a volume
   * lock): the handle's `close()` is called once the connection has closed and every device
   * call has settled, or right after answering NBD_OPT_INFO. A rejection refuses the export
   * with NBD_REP_ERR_POLICY carrying the error's message (NBD_OPT_GO/INFO), or hangs up
   * (NBD_OPT_EXPORT_NAME, which has no way to say why).
   */
  openExport?(name: string): Promise<NbdExportHandle | undefined> | NbdExportHandle | undefined
  /**
   * Size and capabilities of an export without opening it, for NBD_OPT_INFO (a query: the
   * client does not go on to use the export). Without it INFO opens the export and closes it
   * again, which for a locked volume means taking and dropping its lock.
   */
  describeExport?(name: string): Promise<Pick<BlockDevice, 'sizeBytes' | 'supports'> | undefined> | Pick<BlockDevice, 'sizeBytes' | 'supports'> | undefined
  /** Exports for NBD_OPT_LIST (and descriptions for NBD_INFO_DESCRIPTION). Default: none. */
  listExports?(): Promise<ExportListing[]> | ExportListing[]
  /** The export a client gets when it asks for the empty name. Default: resolve `''` as is. */
  defaultExport?: string
  logger?: Logger
  /** Largest READ/WRITE payload; advertised as the maximum payload size. Default 32 MiB. */
  maxPayloadBytes?: number
  /** Minimum and preferred block sizes advertised with NBD_INFO_BLOCK_SIZE (default 1 and 4096). */
  blockSize?: { minimumBytes?: number; preferredBytes?: number }
  /** Largest option data accepted during the handshake. Default 64 KiB. */
  maxOptionBytes?: number
  /** Close a connection that has not finished the handshake after this long. Default 30 s. */
  handshakeTimeoutMs?: number
  /** Stop reading requests while this many are in flight on one connection. Default 256. */
  maxInflightRequests?: number
  /** Stop reading requests while this many payload bytes are in flight. Default 64 MiB. */
  maxInflightBytes?: number
  /** After the socket is gone, wait at most this long for device calls to settle. Default 30 s. */
  settleTimeoutMs?: number
  /** Counters to update; `NbdServer` passes one object for all its connections. */
  stats?: NbdStats
}

/** A live connection. */
export interface NbdConnection {
  /** 'handshake', 'transmission', 'closing' (DISC or shutdown, finishing requests), 'closed'. */
  readonly state: 'handshake' | 'transmission' | 'closing' | 'closed'
  /** In the handshake and not working on an option the client sent (e.g. opening its export): the client owes the next move. */
  readonly waitingForClient: boolean
  /** Export name chosen by the client, once in transmission. */
  readonly exportName: string | undefined
  /** Requests being executed right now. */
  readonly inflight: number
  /** Resolves once the socket is closed and every device call has settled. Never rejects. */
  readonly closed: Promise<void>
  /**
   * Graceful shutdown: in transmission, new requests get ESHUTDOWN, in-flight ones finish,
   * then the connection ends; in the handshake it is closed at once. Resolves like `closed`.
   */
  close(): Promise<void>
  /** Hard disconnect now. */
  destroy(): void
}

/**
 * The read side of a socket created with Node's `onread` option (see NbdServer): the socket
 * asks `target()` where to put the next read and reports it with `onRead()`. `scratch` is
 * where reads go when there is no payload to fill.
 */
export interface DirectReader {
  readonly scratch: Buffer
  target: () => Buffer
  onRead: (n: number, buf: Buffer) => void
}

export function createDirectReader(): DirectReader {
  const scratch = Buffer.allocUnsafe(64 * 1024)
  return { scratch, target: () => scratch, onRead: () => {} }
}

