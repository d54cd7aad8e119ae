// Goal: NBD_OPT_INFO answers from describeExport when given — opening nothing, so it works while
// the export is held elsewhere — and NBD_OPT_GO still opens the export.
// Method: a real NbdServer on loopback and the raw handshake client; counters on openExport.
import { connect } from 'node:net'
import { describe, expect, it } from 'vitest'
import { NbdServer } from '../src/index.js'
import * as C from '../src/protocol/constants.js'
import { MemoryDevice } from './helpers/memory-device.js'
import { RawClient } from './helpers/raw-client.js'

async function open(port: number): Promise<RawClient> {
  const socket = connect({ host: '127.0.0.1', port })
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve)
    socket.once('error', reject)
  })
  return new RawClient(socket)
}

describe('NbdServer describeExport', () => {
  it('answers NBD_OPT_INFO without opening the export, and opens it for NBD_OPT_GO', async () => {
    const device = new MemoryDevice(3 * 1024 * 1024)
    let opens = 0
    const server = new NbdServer({
      listExports: () => [{ name: 'pad' }],
      openExport: () => {
        opens++
        throw new Error('volume pad is locked by someone else')
      },
      describeExport: (name) => (name === 'pad' ? { sizeBytes: device.sizeBytes, supports: device.supports } : undefined),
    })
    const { port } = await server.listen({ host: '127.0.0.1', port: 0 })
    try {
      const c = await open(port)
      await c.start()
      const info = await c.go('pad', [C.INFO_BLOCK_SIZE], C.OPT_INFO)
      expect(info.final).toBe(C.REP_ACK)
      expect(Number(info.infos.get(C.INFO_EXPORT)!.readBigUInt64BE(2))).toBe(3 * 1024 * 1024)
      expect((await c.go('nope', [], C.OPT_INFO)).final).toBe(C.REP_ERR_UNKNOWN)
      expect(opens).toBe(0)
      // GO opens, and here the open is refused with its reason.
      const go = await c.go('pad')
      expect(go.final).toBe(C.REP_ERR_POLICY)
      expect(go.message).toBe('export pad not available: volume pad is locked by someone else')
      expect(opens).toBe(1)
      c.destroy()
    } finally {
      await server.close()
    }
  })
})
