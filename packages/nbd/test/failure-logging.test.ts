// Goal: a request the server fails (EIO, ENOSPC) is logged at warn — once per 10 s per
// connection, with a count of the rest — while a client's own mistake stays at debug.
// Method: a real NbdServer on loopback with a MemoryDevice that fails on demand, the raw
// protocol client, and a recording logger.
import { connect } from 'node:net'
import { describe, expect, it } from 'vitest'
import { TorusError, type Logger } from '@torus/core'
import { NbdServer } from '../src/index.js'
import * as C from '../src/protocol/constants.js'
import { MemoryDevice } from './helpers/memory-device.js'
import { RawClient } from './helpers/raw-client.js'

function recordingLogger(lines: Array<{ level: string; msg: string; fields: Record<string, unknown> }>): Logger {
  const log = (level: string) => (msg: string, fields: Record<string, unknown> = {}) => void lines.push({ level, msg, fields })
  const logger: Logger = { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error'), child: () => logger }
  return logger
}

describe('NbdServer request failure logging', () => {
  it('warns about server-side failures at most once per 10 s per connection, and logs client mistakes at debug', async () => {
    const lines: Array<{ level: string; msg: string; fields: Record<string, unknown> }> = []
    const device = new MemoryDevice(1024 * 1024)
    const server = new NbdServer({ listExports: () => [], resolveExport: () => device, logger: recordingLogger(lines) })
    const { port } = await server.listen({ host: '127.0.0.1', port: 0 })
    const socket = connect({ host: '127.0.0.1', port })
    await new Promise<void>((resolve) => socket.once('connect', resolve))
    const c = new RawClient(socket)
    try {
      await c.connect('pad')
      device.fail = () => new TorusError('TORUS_UNAVAILABLE', 'no current replica of the block')
      for (let i = 0; i < 3; i++) {
        c.request(C.CMD_WRITE, { cookie: BigInt(i), offset: 0, length: 4096, data: new Uint8Array(4096) })
        expect((await c.readReply()).error).toBe(C.EIO)
      }
      // A write to a read-only volume is the client's mistake, not the server's failure.
      device.fail = () => new TorusError('TORUS_READ_ONLY', 'volume pad is open read-only')
      c.request(C.CMD_WRITE, { cookie: 9n, offset: 0, length: 4096, data: new Uint8Array(4096) })
      expect((await c.readReply()).error).toBe(C.EPERM)
      const failures = lines.filter((l) => l.msg === 'request failed')
      expect(failures.map((l) => [l.level, l.fields.errno])).toEqual([['warn', C.EIO], ['debug', C.EPERM]])
      expect(failures[0]!.fields).toMatchObject({ command: 'write', export: 'pad' })
    } finally {
      c.destroy()
      await server.close()
    }
  })
})
