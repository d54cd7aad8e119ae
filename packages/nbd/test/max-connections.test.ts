// The server bounds how many connections it serves at once (and so its memory): past
// `maxConnections` a new client gets the handshake and an export error naming the limit (a few
// at a time; beyond those the socket is closed at once), and a slot frees when a client leaves,
// or when a connection has not finished its handshake within a second and a new client needs it.
import { connect } from 'node:net'
import { describe, expect, it } from 'vitest'
import { NbdServer } from '../src/index.js'
import * as C from '../src/protocol/constants.js'
import { MemoryDevice } from './helpers/memory-device.js'
import { RawClient, until } from './helpers/raw-client.js'

async function open(port: number): Promise<RawClient> {
  const socket = connect({ host: '127.0.0.1', port })
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve)
    socket.once('error', reject)
  })
  return new RawClient(socket)
}

describe('NbdServer maxConnections', () => {
  it('refuses connections past the limit with a reason, and accepts again once one leaves', async () => {
    const device = new MemoryDevice(1024 * 1024)
    const server = new NbdServer({ listExports: () => [], resolveExport: () => device, maxConnections: 2 })
    const { port } = await server.listen({ host: '127.0.0.1', port: 0 })
    try {
      const a = await open(port)
      const b = await open(port)
      await a.connect('x')
      await b.connect('x')
      const c = await open(port)
      await c.start()
      const refused = await c.go('x')
      expect(refused.final).toBe(C.REP_ERR_POLICY)
      expect(refused.message).toBe('export x not available: too many NBD connections: this server serves at most 2 at once; close some, or raise its limit')
      expect(server.stats.refusedConnections).toBe(1)
      expect(server.connections).toBe(2)
      c.destroy()
      a.destroy()
      await until(() => server.connections === 1)
      const d = await open(port)
      expect((await d.connect('x')).sizeBytes).toBe(1024 * 1024)
      d.destroy()
      b.destroy()
    } finally {
      await server.close()
    }
  })

  it('gives the slot of a connection still waiting in its handshake after a second to a new client', async () => {
    const device = new MemoryDevice(1024 * 1024)
    const server = new NbdServer({ listExports: () => [], resolveExport: () => device, maxConnections: 2 })
    const { port } = await server.listen({ host: '127.0.0.1', port: 0 })
    const clients: RawClient[] = []
    try {
      const served = await open(port)
      clients.push(served)
      await served.connect('x')
      const silent = await open(port)
      clients.push(silent)
      await until(() => server.connections === 2)
      // Within its first second a handshake keeps its slot: the next client is refused.
      const early = await open(port)
      clients.push(early)
      await early.start()
      expect((await early.go('x')).final).toBe(C.REP_ERR_POLICY)
      await new Promise((r) => setTimeout(r, 1_100))
      const late = await open(port)
      clients.push(late)
      expect((await late.connect('x')).sizeBytes).toBe(1024 * 1024)
      expect(server.stats.evictedHandshakes).toBe(1)
      expect((await silent.expectClose()).byteLength).toBeGreaterThan(0) // it had got the greeting only
      // The client in transmission is never evicted.
      served.request(C.CMD_WRITE, { cookie: 1n, offset: 0, data: new Uint8Array([7]) })
      expect(await served.readReply()).toMatchObject({ error: 0, cookie: 1n })
    } finally {
      for (const c of clients) c.destroy()
      await server.close()
    }
  })

  it('does not take the slot of a client whose export is still being opened, however long that takes', async () => {
    const device = new MemoryDevice(1024 * 1024)
    let opened!: () => void
    const slowOpen = new Promise<void>((r) => (opened = r))
    const server = new NbdServer({ listExports: () => [], maxConnections: 1, resolveExport: async () => (await slowOpen, device) })
    const { port } = await server.listen({ host: '127.0.0.1', port: 0 })
    const clients: RawClient[] = []
    try {
      const slow = await open(port)
      clients.push(slow)
      await slow.start()
      const going = slow.go('x', [C.INFO_BLOCK_SIZE])
      await new Promise((r) => setTimeout(r, 1_100))
      const next = await open(port)
      clients.push(next)
      await next.start()
      expect((await next.go('x')).final).toBe(C.REP_ERR_POLICY)
      expect(server.stats.evictedHandshakes).toBe(0)
      opened()
      expect((await going).final).toBe(C.REP_ACK)
    } finally {
      for (const c of clients) c.destroy()
      await server.close()
    }
  })

  it('cuts off over-limit clients without a word once several are being refused', async () => {
    const device = new MemoryDevice(1024 * 1024)
    const server = new NbdServer({ listExports: () => [], resolveExport: () => device, maxConnections: 1 })
    const { port } = await server.listen({ host: '127.0.0.1', port: 0 })
    const clients: RawClient[] = []
    try {
      const a = await open(port)
      await a.connect('x')
      clients.push(a)
      // Eight refusals hold their handshake open (the client sends nothing)...
      for (let i = 0; i < 8; i++) {
        const r = await open(port)
        clients.push(r)
        await r.start()
      }
      // ...so the ninth is closed at once, before any greeting.
      const late = await open(port)
      clients.push(late)
      expect((await late.expectClose()).byteLength).toBe(0)
      expect(server.stats.refusedConnections).toBe(9)
    } finally {
      for (const c of clients) c.destroy()
      await server.close()
    }
  })
})
