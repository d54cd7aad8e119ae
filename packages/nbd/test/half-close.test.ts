// A client that shuts down its sending side after pipelining requests still gets every reply
// (NBD over TCP with half-close), and then the server ends the connection.
import { describe, expect, it } from 'vitest'
import { nbdConstants as C } from '../src/index.js'
import { tcpTransport } from './helpers/harness.js'
import { MemoryDevice } from './helpers/memory-device.js'

describe('half-closed client', () => {
  it('answers requests sent before the FIN, then ends the connection', async () => {
    const memory = new MemoryDevice(16 * 1024 * 1024)
    // Slow reads: the FIN arrives while every request is still in flight.
    const device = Object.assign(Object.create(memory) as MemoryDevice, {
      read: async (offset: number, target: Uint8Array) => {
        await new Promise((r) => setTimeout(r, 200))
        return memory.read(offset, target)
      },
    })
    const server = await tcpTransport.start({ resolveExport: (name) => (name === 'd' ? device : undefined) })
    try {
      const client = await server.connect()
      await client.connect('d')
      for (let i = 0; i < 5; i++) client.request(C.CMD_READ, { cookie: BigInt(i), offset: i * 1024 * 1024, length: 1024 * 1024 })
      client.socket.end()
      const cookies: bigint[] = []
      for (let i = 0; i < 5; i++) {
        const r = await client.readReply(1024 * 1024)
        expect(r.error).toBe(0)
        cookies.push(r.cookie)
      }
      expect(cookies.sort()).toEqual([0n, 1n, 2n, 3n, 4n])
      await client.closed
      for (let i = 0; i < 50 && server.connections() > 0; i++) await new Promise((r) => setTimeout(r, 20))
      expect(server.connections()).toBe(0)
    } finally {
      await server.close()
    }
  })
})
