import { connect } from 'node:net'
import { NbdServer, serveConnection, type NbdConnection, type NbdServeOptions, type NbdStats, createNbdStats, snapshotNbdStats } from '../../src/index.js'
import { duplexPair } from './duplex-pair.js'
import { RawClient } from './raw-client.js'

export type ServeOptions = Omit<NbdServeOptions, 'stats'>

/** A server plus a way to open raw client connections to it. */
export interface Harness {
  connect(): Promise<RawClient>
  connections(): number
  stats(): NbdStats
  close(): Promise<void>
}

export interface Transport {
  name: string
  start(options: ServeOptions): Promise<Harness>
}

/** serveConnection over an in-process duplex pair. */
export const duplexTransport: Transport = {
  name: 'duplex pair',
  async start(options) {
    const conns = new Set<NbdConnection>()
    const stats = createNbdStats()
    return {
      async connect() {
        const [client, server] = duplexPair()
        const conn = serveConnection(server, { ...options, stats })
        conns.add(conn)
        void conn.closed.then(() => conns.delete(conn))
        return new RawClient(client)
      },
      connections: () => conns.size,
      stats: () => snapshotNbdStats(stats),
      async close() {
        await Promise.all([...conns].map((c) => c.close()))
      },
    }
  },
}

/** NbdServer on 127.0.0.1:0 with real TCP sockets. */
export const tcpTransport: Transport = {
  name: 'tcp 127.0.0.1',
  async start(options) {
    const server = new NbdServer({ listExports: () => [], ...options })
    const { port } = await server.listen({ host: '127.0.0.1', port: 0 })
    return {
      async connect() {
        const socket = connect({ host: '127.0.0.1', port })
        await new Promise<void>((resolve, reject) => {
          socket.once('connect', resolve)
          socket.once('error', reject)
        })
        return new RawClient(socket)
      },
      connections: () => server.connections,
      stats: () => server.stats,
      close: () => server.close(),
    }
  },
}
