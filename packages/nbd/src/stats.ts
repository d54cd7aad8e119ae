/** Counters an NBD server keeps for a metrics layer; plain numbers, no dependencies. */
// A type alias (not an interface) so it is assignable to Record<string, number>.
export type NbdRequestCounts = {
  read: number
  write: number
  flush: number
  trim: number
  writeZeroes: number
  cache: number
  blockStatus: number
  disc: number
  /** Commands the spec does not define (answered with EINVAL). */
  unknown: number
}

export interface NbdStats {
  /** Connections accepted since the server started. */
  connectionsTotal: number
  /** Connections that reached the transmission phase. */
  sessionsTotal: number
  requests: NbdRequestCounts
  /** Payload bytes sent to clients by successful READs. */
  bytesRead: number
  /** Payload bytes accepted from clients by successful WRITEs. */
  bytesWritten: number
  /** Replies with a nonzero error. */
  errors: number
  /** Hard disconnects caused by the client breaking the protocol (bad magic, oversized data). */
  protocolErrors: number
  /** Connections closed because the client said nothing within the handshake timeout. */
  handshakeTimeouts: number
  /** Connections closed on accept because `maxConnections` were already open. */
  refusedConnections: number
  /** Connections still in their handshake closed to give their slot to a new client (all slots taken). */
  evictedHandshakes: number
}

export function createNbdStats(): NbdStats {
  return {
    connectionsTotal: 0,
    sessionsTotal: 0,
    requests: { read: 0, write: 0, flush: 0, trim: 0, writeZeroes: 0, cache: 0, blockStatus: 0, disc: 0, unknown: 0 },
    bytesRead: 0,
    bytesWritten: 0,
    errors: 0,
    protocolErrors: 0,
    handshakeTimeouts: 0,
    refusedConnections: 0,
    evictedHandshakes: 0,
  }
}

/** A detached copy, safe to hand to a metrics layer. */
export function snapshotNbdStats(s: NbdStats): NbdStats {
  return { ...s, requests: { ...s.requests } }
}
