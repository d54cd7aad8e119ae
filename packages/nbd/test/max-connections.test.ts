// The server bounds how many connections it serves at once (and so its memory): past
// `maxConnections` a new connection is closed at once, and a slot frees when a client leaves.
import { connect } from 'node:net'
import { describe, expect, it } from 'vitest'
import { NbdServer } from '../src/index.js'
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
  it('closes connections past the limit and accepts again once one leaves', async () => {
    const device = new MemoryDevice(1024 * 1024)
    const server = new NbdServer({ listExports: () => [], resolveExport: () => device, maxConnections: 2 })
    const { port } = await server.listen({ host: '127.0.0.1', port: 0 })
    try {
      const a = await open(port)
      const b = await open(port)
      await a.connect('x')
      await b.connect('x')
      const c = await open(port)
      await c.closed
      expect(server.stats.refusedConnections).toBe(1)
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
})
