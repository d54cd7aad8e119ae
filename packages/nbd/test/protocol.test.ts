/**
 * Protocol tests through the real server glue, run twice: over an in-process duplex pair
 * (serveConnection) and over real TCP on 127.0.0.1:0 (NbdServer). Each test plays a client by
 * hand, often a hostile one, checks the exact replies and error numbers, and then checks that
 * the connection count returns to 0 and that a fresh client is still served.
 */
import { TorusError } from '@torus/core'
import { afterEach, beforeEach, describe, expect, it, onTestFinished } from 'vitest'
import { encodeRequest, nbdConstants as C } from '../src/index.js'
import { duplexTransport, tcpTransport, type Harness, type ServeOptions } from './helpers/harness.js'
import { MemoryDevice } from './helpers/memory-device.js'
import { RawClient, goData, until } from './helpers/raw-client.js'

const MiB = 1024 * 1024

describe.each([duplexTransport, tcpTransport])('NBD protocol over $name', (transport) => {
  let h: Harness
  let disk: MemoryDevice
  let devices: Record<string, MemoryDevice>
  let clients: RawClient[]
  let extra: Partial<ServeOptions>

  const start = async (more: Partial<ServeOptions> = {}): Promise<void> => {
    h = await transport.start({
      resolveExport: (name) => devices[name],
      listExports: () => [{ name: 'disk', description: '1 MiB test disk' }, { name: 'ro' }],
      defaultExport: 'disk',
      ...extra,
      ...more,
    })
  }
  const client = async (): Promise<RawClient> => {
    const c = await h.connect()
    clients.push(c)
    return c
  }
  const session = async (name = 'disk'): Promise<RawClient> => {
    const c = await client()
    await c.connect(name)
    return c
  }

  beforeEach(async () => {
    disk = new MemoryDevice(MiB)
    devices = {
      disk,
      ro: new MemoryDevice(MiB, { supports: { readOnly: true } }),
      nofast: new MemoryDevice(MiB, { supports: { fastZero: false, multiConn: false } }),
      slowzero: new MemoryDevice(MiB, { supports: { fastZero: true } }),
    }
    clients = []
    extra = {}
    await start()
  })

  afterEach(async () => {
    for (const c of clients) c.destroy()
    await until(() => h.connections() === 0)
    // The server still serves a well-behaved client.
    const c = await h.connect()
    await c.connect('disk')
    c.request(C.CMD_READ, { cookie: 77n, offset: 0, length: 512 })
    expect(await c.readReply(512)).toMatchObject({ error: 0, cookie: 77n })
    c.request(C.CMD_DISC)
    await c.expectClose()
    await until(() => h.connections() === 0)
    await h.close()
  })

  describe('handshake', () => {
    it('negotiates with NBD_OPT_GO and reports size, flags and block sizes', async () => {
      const c = await client()
      await c.start()
      const { final, infos } = await c.go('disk', [C.INFO_NAME, C.INFO_DESCRIPTION, C.INFO_BLOCK_SIZE])
      expect(final).toBe(C.REP_ACK)
      const e = infos.get(C.INFO_EXPORT)!
      expect(e.readBigUInt64BE(2)).toBe(BigInt(MiB))
      expect(e.readUInt16BE(10)).toBe(0x096d)
      expect(infos.get(C.INFO_NAME)!.subarray(2).toString()).toBe('disk')
      expect(infos.get(C.INFO_DESCRIPTION)!.subarray(2).toString()).toBe('1 MiB test disk')
      const bs = infos.get(C.INFO_BLOCK_SIZE)!
      expect([bs.readUInt32BE(2), bs.readUInt32BE(6), bs.readUInt32BE(10)]).toEqual([1, 4096, 32 * MiB])
    })

    it('serves the default export for the empty name, with its canonical name', async () => {
      const c = await client()
      await c.start()
      const { final, infos } = await c.go('', [C.INFO_NAME])
      expect(final).toBe(C.REP_ACK)
      expect(infos.get(C.INFO_NAME)!.subarray(2).toString()).toBe('disk')
    })

    it('answers NBD_OPT_INFO, then accepts NBD_OPT_GO on the same connection', async () => {
      const c = await client()
      await c.start()
      expect((await c.go('ro', [], C.OPT_INFO)).final).toBe(C.REP_ACK)
      const { final, infos } = await c.go('ro')
      expect(final).toBe(C.REP_ACK)
      expect(infos.get(C.INFO_EXPORT)!.readUInt16BE(10) & C.FLAG_READ_ONLY).toBe(C.FLAG_READ_ONLY)
    })

    it('lists exports', async () => {
      const c = await client()
      await c.start()
      c.sendOption(C.OPT_LIST)
      const names: string[] = []
      for (;;) {
        const r = await c.readOptionReply()
        if (r.type !== C.REP_SERVER) {
          expect(r.type).toBe(C.REP_ACK)
          break
        }
        names.push(r.data.subarray(4, 4 + r.data.readUInt32BE(0)).toString())
      }
      expect(names).toEqual(['disk', 'ro'])
    })

    it('answers NBD_OPT_GO for an unknown export with NBD_REP_ERR_UNKNOWN and keeps haggling', async () => {
      const c = await client()
      await c.start()
      expect((await c.go('nope')).final).toBe(C.REP_ERR_UNKNOWN)
      expect((await c.go('nope', [], C.OPT_INFO)).final).toBe(C.REP_ERR_UNKNOWN)
      expect((await c.go('disk')).final).toBe(C.REP_ACK)
    })

    it('answers NBD_REP_ERR_POLICY with the reason when opening the export throws, and keeps haggling', async () => {
      await h.close()
      await start({ resolveExport: (name) => (name === 'boom' ? Promise.reject(new Error('volume boom is locked by torusd/x')) : devices[name]) })
      const c = await client()
      await c.start()
      const refused = await c.go('boom')
      expect(refused.final).toBe(C.REP_ERR_POLICY)
      expect(refused.message).toBe('export boom not available: volume boom is locked by torusd/x')
      expect((await c.go('boom', [], C.OPT_INFO)).final).toBe(C.REP_ERR_POLICY)
      expect((await c.go('disk')).final).toBe(C.REP_ACK)
    })

    it('closes the session on NBD_OPT_EXPORT_NAME for an unknown export', async () => {
      const c = await client()
      await c.start()
      c.sendOption(C.OPT_EXPORT_NAME, Buffer.from('nope'))
      expect(await c.expectClose()).toHaveLength(0)
    })

    it('enters transmission with NBD_OPT_EXPORT_NAME, with and without the 124 zeroes', async () => {
      const a = await client()
      await a.start()
      a.sendOption(C.OPT_EXPORT_NAME, Buffer.from('disk'))
      const r = await a.read(10)
      expect(r.readBigUInt64BE(0)).toBe(BigInt(MiB))
      a.request(C.CMD_READ, { cookie: 1n, length: 16 })
      expect(await a.readReply(16)).toMatchObject({ error: 0, cookie: 1n })

      const b = await client()
      await b.start(C.FLAG_C_FIXED_NEWSTYLE)
      b.sendOption(C.OPT_EXPORT_NAME, Buffer.from('disk'))
      const full = await b.read(134)
      expect(full.subarray(10).every((x) => x === 0)).toBe(true)
      b.request(C.CMD_READ, { cookie: 2n, length: 16 })
      expect(await b.readReply(16)).toMatchObject({ error: 0, cookie: 2n })
      expect(b.pending).toBe(0)
    })

    it('answers unknown options and STRUCTURED_REPLY with NBD_REP_ERR_UNSUP', async () => {
      const c = await client()
      await c.start()
      c.sendOption(0xdead, Buffer.from('xyz'))
      expect(await c.readOptionReply()).toMatchObject({ option: 0xdead, type: C.REP_ERR_UNSUP })
      c.sendOption(C.OPT_STRUCTURED_REPLY)
      expect(await c.readOptionReply()).toMatchObject({ option: C.OPT_STRUCTURED_REPLY, type: C.REP_ERR_UNSUP })
      c.sendOption(C.OPT_SET_META_CONTEXT, Buffer.alloc(8))
      expect(await c.readOptionReply()).toMatchObject({ type: C.REP_ERR_UNSUP })
      expect((await c.go('disk')).final).toBe(C.REP_ACK)
    })

    it('answers a flood of unknown options in order, even when the client reads late', async () => {
      const c = await client()
      await c.start()
      const n = 5000
      const one = Buffer.alloc(16)
      one.writeUInt32BE(C.IHAVEOPT_HI, 0)
      one.writeUInt32BE(C.IHAVEOPT_LO, 4)
      const flood = Buffer.concat(
        Array.from({ length: n }, (_, i) => {
          one.writeUInt32BE(0x1000 + i, 8)
          return Buffer.from(one)
        }),
      )
      c.send(flood)
      await new Promise((r) => setTimeout(r, 200))
      for (let i = 0; i < n; i++) {
        const r = await c.readOptionReply()
        if (r.option !== 0x1000 + i || r.type !== C.REP_ERR_UNSUP) throw new Error(`reply ${i}: ${r.option} ${r.type}`)
      }
      expect((await c.go('disk')).final).toBe(C.REP_ACK)
    })

    it('answers malformed NBD_OPT_GO with NBD_REP_ERR_INVALID', async () => {
      const c = await client()
      await c.start()
      c.sendOption(C.OPT_GO, Buffer.from([0, 0, 0, 200, 1, 2]))
      expect(await c.readOptionReply()).toMatchObject({ option: C.OPT_GO, type: C.REP_ERR_INVALID })
      c.sendOption(C.OPT_LIST, Buffer.from([1]))
      expect(await c.readOptionReply()).toMatchObject({ option: C.OPT_LIST, type: C.REP_ERR_INVALID })
    })

    it('acknowledges NBD_OPT_ABORT and closes', async () => {
      const c = await client()
      await c.start()
      c.sendOption(C.OPT_ABORT)
      expect(await c.readOptionReply()).toMatchObject({ option: C.OPT_ABORT, type: C.REP_ACK })
      await c.expectClose()
    })

    it('replies NBD_REP_ERR_TOO_BIG to a huge option length and disconnects', async () => {
      const c = await client()
      await c.start()
      c.sendOption(C.OPT_GO, Buffer.alloc(0), 0xfffffff0)
      expect(await c.readOptionReply()).toMatchObject({ option: C.OPT_GO, type: C.REP_ERR_TOO_BIG })
      await c.expectClose()
      expect(h.stats().protocolErrors).toBeGreaterThan(0)
    })

    it('disconnects on a wrong option magic', async () => {
      const c = await client()
      await c.start()
      c.send(Buffer.from('NBDMAGICxxxxxxxxxxxxxxxx'))
      expect(await c.expectClose()).toHaveLength(0)
    })

    it('disconnects on unknown client flags', async () => {
      const c = await client()
      await c.start(0x80000001)
      expect(await c.expectClose()).toHaveLength(0)
    })

    it('cleans up after a client hangs up in the middle of an option', async () => {
      const c = await client()
      await c.start()
      const opt = goData('disk', [C.INFO_NAME])
      c.sendOption(C.OPT_GO, opt.subarray(0, 5), opt.length)
      await until(() => h.connections() === 1)
      c.destroy()
      await until(() => h.connections() === 0)
    })

    it('cleans up after a client hangs up before sending its flags', async () => {
      const c = await client()
      await c.read(C.GREETING_BYTES)
      c.send(Buffer.from([0, 0]))
      c.destroy()
      await until(() => h.connections() === 0)
    })

    it('closes a connection that stays silent past the handshake timeout', async () => {
      await h.close()
      await start({ handshakeTimeoutMs: 100 })
      const c = await client()
      await c.read(C.GREETING_BYTES)
      await c.expectClose(3000)
      expect(h.stats().handshakeTimeouts).toBe(1)
    })
  })

  describe('transmission', () => {
    it('writes, reads, flushes, trims and zeroes', async () => {
      const c = await session()
      const data = Buffer.alloc(8192, 0xab)
      c.request(C.CMD_WRITE, { cookie: 1n, offset: 4096, data, flags: C.CMD_FLAG_FUA })
      expect(await c.readReply()).toMatchObject({ error: 0, cookie: 1n })
      c.request(C.CMD_READ, { cookie: 2n, offset: 4096, length: 8192 })
      expect((await c.readReply(8192)).data).toEqual(data)
      c.request(C.CMD_FLUSH, { cookie: 3n })
      expect(await c.readReply()).toMatchObject({ error: 0, cookie: 3n })
      c.request(C.CMD_TRIM, { cookie: 4n, offset: 4096, length: 4096 })
      expect(await c.readReply()).toMatchObject({ error: 0, cookie: 4n })
      c.request(C.CMD_WRITE_ZEROES, { cookie: 5n, offset: 8192, length: 4096, flags: C.CMD_FLAG_NO_HOLE | C.CMD_FLAG_FUA })
      expect(await c.readReply()).toMatchObject({ error: 0, cookie: 5n })
      expect(disk.bytes.subarray(4096, 12288).every((b) => b === 0)).toBe(true)
      expect(disk.flushes).toBe(1)
      const opts = Object.fromEntries(disk.calls.map(([m, , , o]) => [m, o]))
      expect(opts.write).toMatchObject({ fua: true })
      expect(opts.writeZeroes).toMatchObject({ fua: true, noHole: true })
      expect(opts.trim).not.toHaveProperty('fua')
      const s = h.stats()
      expect(s.requests).toMatchObject({ read: 1, write: 1, flush: 1, trim: 1, writeZeroes: 1 })
      expect(s.bytesWritten).toBe(8192)
      expect(s.bytesRead).toBe(8192)
    })

    it('answers requests past the end: EINVAL for READ/TRIM, ENOSPC for WRITE/WRITE_ZEROES', async () => {
      const c = await session()
      c.request(C.CMD_READ, { cookie: 1n, offset: MiB - 512, length: 1024 })
      expect(await c.readReply(1024)).toMatchObject({ error: C.EINVAL, cookie: 1n })
      c.request(C.CMD_WRITE, { cookie: 2n, offset: MiB, data: Buffer.alloc(512, 1) })
      expect(await c.readReply()).toMatchObject({ error: C.ENOSPC, cookie: 2n })
      c.request(C.CMD_TRIM, { cookie: 3n, offset: MiB, length: 1 })
      expect(await c.readReply()).toMatchObject({ error: C.EINVAL, cookie: 3n })
      c.request(C.CMD_WRITE_ZEROES, { cookie: 4n, offset: MiB - 1, length: 2 })
      expect(await c.readReply()).toMatchObject({ error: C.ENOSPC, cookie: 4n })
      expect(disk.calls).toHaveLength(0)
      expect(h.stats().errors).toBe(4)
    })

    it('answers EINVAL when offset + length overflows 2^64', async () => {
      const c = await session()
      c.request(C.CMD_READ, { cookie: 1n, offset: 2n ** 64n - 512n, length: 1024 })
      expect(await c.readReply()).toMatchObject({ error: C.EINVAL, cookie: 1n })
      c.request(C.CMD_WRITE, { cookie: 2n, offset: 2n ** 64n - 1n, data: Buffer.alloc(2) })
      expect(await c.readReply()).toMatchObject({ error: C.ENOSPC, cookie: 2n })
      expect(disk.calls).toHaveLength(0)
    })

    it('answers zero-length requests with success without calling the device', async () => {
      const c = await session()
      for (const [i, type] of [C.CMD_READ, C.CMD_WRITE, C.CMD_TRIM, C.CMD_WRITE_ZEROES].entries()) {
        c.request(type, { cookie: BigInt(i), offset: 4096, length: 0 })
        expect(await c.readReply()).toEqual({ error: 0, cookie: BigInt(i), data: Buffer.alloc(0) })
      }
      c.request(C.CMD_READ, { cookie: 9n, offset: MiB, length: 0 })
      expect(await c.readReply()).toMatchObject({ error: 0, cookie: 9n })
      expect(disk.calls).toHaveLength(0)
    })

    it('answers EINVAL to a READ over the maximum payload without allocating it', async () => {
      const c = await session()
      c.request(C.CMD_READ, { cookie: 1n, offset: 0, length: 0xffffffff })
      expect(await c.readReply()).toMatchObject({ error: C.EINVAL, cookie: 1n })
    })

    it('skips an oversized WRITE payload, answers EINVAL and stays in sync', async () => {
      await h.close()
      await start({ maxPayloadBytes: 64 * 1024 })
      const c = await session()
      c.request(C.CMD_WRITE, { cookie: 1n, offset: 0, data: Buffer.alloc(100 * 1024, 1) })
      c.request(C.CMD_READ, { cookie: 2n, offset: 0, length: 4 })
      expect(await c.readReply()).toMatchObject({ error: C.EINVAL, cookie: 1n })
      expect(await c.readReply(4)).toMatchObject({ error: 0, cookie: 2n, data: Buffer.alloc(4) })
      expect(disk.calls.map((x) => x[0])).toEqual(['read'])
    })

    it('answers EINVAL and disconnects on a WRITE payload too large to skip', async () => {
      const c = await session()
      c.request(C.CMD_WRITE, { cookie: 1n, offset: 0, length: 0xfffffff0 })
      c.send(Buffer.alloc(1000))
      expect(await c.readReply()).toMatchObject({ error: C.EINVAL, cookie: 1n })
      await c.expectClose()
      expect(disk.calls).toHaveLength(0)
    })

    it('answers EINVAL to unknown commands, BLOCK_STATUS, CACHE and bad flags', async () => {
      const c = await session()
      c.request(0x4242, { cookie: 1n, length: 512 })
      expect(await c.readReply()).toMatchObject({ error: C.EINVAL, cookie: 1n })
      c.request(C.CMD_BLOCK_STATUS, { cookie: 2n, length: 512 })
      expect(await c.readReply()).toMatchObject({ error: C.EINVAL, cookie: 2n })
      c.request(C.CMD_CACHE, { cookie: 3n, length: 512 })
      expect(await c.readReply()).toMatchObject({ error: C.EINVAL, cookie: 3n })
      c.request(C.CMD_READ, { cookie: 4n, length: 512, flags: C.CMD_FLAG_DF })
      expect(await c.readReply()).toMatchObject({ error: C.EINVAL, cookie: 4n })
      c.request(C.CMD_WRITE, { cookie: 5n, data: Buffer.alloc(8), flags: 1 << 12 })
      expect(await c.readReply()).toMatchObject({ error: C.EINVAL, cookie: 5n })
      c.request(C.CMD_FLUSH, { cookie: 6n, offset: 1 })
      expect(await c.readReply()).toMatchObject({ error: C.EINVAL, cookie: 6n })
      expect(disk.calls).toHaveLength(0)
      expect(h.stats().requests.unknown).toBe(1)
    })

    it('answers EPERM to writes, trims and zeroes on a read-only export', async () => {
      const c = await session('ro')
      c.request(C.CMD_WRITE, { cookie: 1n, data: Buffer.alloc(512) })
      expect(await c.readReply()).toMatchObject({ error: C.EPERM, cookie: 1n })
      c.request(C.CMD_TRIM, { cookie: 2n, length: 512 })
      expect(await c.readReply()).toMatchObject({ error: C.EPERM, cookie: 2n })
      c.request(C.CMD_WRITE_ZEROES, { cookie: 3n, length: 512 })
      expect(await c.readReply()).toMatchObject({ error: C.EPERM, cookie: 3n })
      c.request(C.CMD_READ, { cookie: 4n, length: 512 })
      expect(await c.readReply(512)).toMatchObject({ error: 0, cookie: 4n })
    })

    it('handles FAST_ZERO: EINVAL when not advertised, ENOTSUP when the device refuses', async () => {
      const a = await session('nofast')
      a.request(C.CMD_WRITE_ZEROES, { cookie: 1n, length: 512, flags: C.CMD_FLAG_FAST_ZERO })
      expect(await a.readReply()).toMatchObject({ error: C.EINVAL, cookie: 1n })
      devices.slowzero!.fail = (m) => (m === 'writeZeroes' ? new TorusError('TORUS_NOT_SUPPORTED', 'slow') : undefined)
      const b = await session('slowzero')
      b.request(C.CMD_WRITE_ZEROES, { cookie: 2n, length: 512, flags: C.CMD_FLAG_FAST_ZERO })
      expect(await b.readReply()).toMatchObject({ error: C.ENOTSUP, cookie: 2n })
      b.request(C.CMD_WRITE_ZEROES, { cookie: 3n, length: 512 })
      expect(await b.readReply()).toMatchObject({ error: C.EINVAL, cookie: 3n })
    })

    it('maps device errors through the errno table and keeps serving', async () => {
      const c = await session()
      const errors: unknown[] = [
        new TorusError('TORUS_OUT_OF_SPACE', 'full'),
        new TorusError('TORUS_UNAVAILABLE', 'down'),
        new TorusError('TORUS_ABORTED', 'aborted'),
        new RangeError('bad range'),
        'not even an Error',
      ]
      const expected = [C.ENOSPC, C.EIO, C.ESHUTDOWN, C.EINVAL, C.EIO]
      for (const [i, err] of errors.entries()) {
        disk.fail = () => err
        c.request(C.CMD_WRITE, { cookie: BigInt(i), data: Buffer.alloc(16) })
        expect(await c.readReply()).toMatchObject({ error: expected[i], cookie: BigInt(i) })
      }
      disk.fail = () => new Error('read failed')
      c.request(C.CMD_READ, { cookie: 10n, length: 64 })
      expect(await c.readReply(64)).toEqual({ error: C.EIO, cookie: 10n, data: Buffer.alloc(0) })
      disk.fail = undefined
      c.request(C.CMD_READ, { cookie: 11n, length: 64 })
      expect(await c.readReply(64)).toMatchObject({ error: 0, cookie: 11n })
    })

    it('survives a device that throws synchronously', async () => {
      const c = await session()
      const read = disk.read
      disk.read = () => {
        throw new Error('sync')
      }
      c.request(C.CMD_READ, { cookie: 1n, length: 64 })
      expect(await c.readReply(64)).toMatchObject({ error: C.EIO, cookie: 1n })
      disk.read = read
    })

    it('replies out of order as requests complete', async () => {
      const c = await session()
      const slow = disk.read.bind(disk)
      disk.read = async (off, target, o) => {
        if (off === 0) await new Promise((r) => setTimeout(r, 150))
        return slow(off, target, o)
      }
      onTestFinished(() => {
        disk.read = slow
      })
      c.request(C.CMD_READ, { cookie: 1n, offset: 0, length: 512 })
      c.request(C.CMD_READ, { cookie: 2n, offset: 4096, length: 512 })
      c.request(C.CMD_FLUSH, { cookie: 3n })
      const order: bigint[] = []
      for (let i = 0; i < 3; i++) {
        const head = await c.read(16)
        const cookie = head.readBigUInt64BE(8)
        if (cookie !== 3n) await c.read(512)
        order.push(cookie)
      }
      expect(order[2]).toBe(1n)
      expect(order.slice(0, 2).sort()).toEqual([2n, 3n])
    })

    it('disconnects on a wrong request magic', async () => {
      const c = await session()
      c.send(Buffer.alloc(28, 0x11))
      expect(await c.expectClose()).toHaveLength(0)
      expect(h.stats().protocolErrors).toBe(1)
    })

    it('finishes in-flight requests after NBD_CMD_DISC, then closes', async () => {
      const c = await session()
      disk.delayMs = 50
      c.request(C.CMD_WRITE, { cookie: 1n, data: Buffer.alloc(512, 9) })
      c.request(C.CMD_READ, { cookie: 2n, offset: 4096, length: 512 })
      c.request(C.CMD_DISC)
      c.request(C.CMD_READ, { cookie: 3n, length: 512 }) // ignored: nothing may follow DISC
      const rest = await c.expectClose()
      const cookies = [rest.readBigUInt64BE(8)]
      const second = rest[16 + 4] === undefined ? -1 : rest.readUInt32BE(16) === C.SIMPLE_REPLY_MAGIC ? 16 : 32
      cookies.push(rest.readBigUInt64BE(second + 8))
      expect(cookies.sort()).toEqual([1n, 2n])
      expect(rest.length).toBe(16 + 16 + 512)
      expect(disk.bytes[0]).toBe(9)
    })

    it('cleans up after a client hangs up in the middle of a WRITE payload', async () => {
      const c = await session()
      c.request(C.CMD_WRITE, { cookie: 1n, offset: 0, length: 64 * 1024 })
      c.send(Buffer.alloc(1000, 1))
      await new Promise((r) => setTimeout(r, 50))
      c.destroy()
      await until(() => h.connections() === 0)
      expect(disk.calls).toHaveLength(0)
    })

    it('settles in-flight device calls after a hang-up without writing to the dead socket', async () => {
      const c = await session()
      disk.delayMs = 100
      for (let i = 0; i < 20; i++) c.request(C.CMD_READ, { cookie: BigInt(i), offset: i * 512, length: 512 })
      await until(() => disk.calls.length === 20)
      c.destroy()
      await until(() => h.connections() === 0)
      const signals = disk.calls.map(([, , , o]) => (o as { signal: AbortSignal }).signal)
      expect(signals.every((s) => s.aborted)).toBe(true)
    })

    it('lets every request in flight listen on its abort signal without a MaxListenersExceeded warning', async () => {
      // A device over the peer transport adds one abort listener per request; Node's warning
      // would print a plain-text line into the daemon's JSON log.
      const warnings: string[] = []
      const onWarning = (w: Error): void => void warnings.push(w.name)
      process.on('warning', onWarning)
      try {
        const c = await session()
        disk.delayMs = 100
        for (let i = 0; i < 20; i++) c.request(C.CMD_READ, { cookie: BigInt(i), offset: i * 512, length: 512 })
        await until(() => disk.calls.length === 20)
        for (const [, , , o] of disk.calls) (o as { signal: AbortSignal }).signal.addEventListener('abort', () => {}, { once: true })
        await new Promise((r) => setTimeout(r, 20))
        expect(warnings).not.toContain('MaxListenersExceededWarning')
      } finally {
        process.off('warning', onWarning)
      }
    })

    it('limits requests in flight while a client floods pipelined requests', async () => {
      await h.close()
      await start({ maxInflightRequests: 8 })
      const c = await session()
      let active = 0
      let peak = 0
      const read = disk.read.bind(disk)
      disk.read = async (off, target, o) => {
        peak = Math.max(peak, ++active)
        await new Promise((r) => setTimeout(r, 2))
        active--
        return read(off, target, o)
      }
      onTestFinished(() => {
        disk.read = read
      })
      const n = 2000
      const batch = Buffer.concat(
        Array.from({ length: n }, (_, i) => {
          const b = Buffer.alloc(28)
          b.writeUInt32BE(C.REQUEST_MAGIC, 0)
          b.writeUInt16BE(C.CMD_READ, 6)
          b.writeBigUInt64BE(BigInt(i), 8)
          b.writeBigUInt64BE(BigInt((i % 256) * 4096), 16)
          b.writeUInt32BE(512, 24)
          return b
        }),
      )
      c.send(batch)
      const seen = new Set<bigint>()
      for (let i = 0; i < n; i++) {
        const r = await c.readReply(512)
        expect(r.error).toBe(0)
        seen.add(r.cookie)
      }
      expect(seen.size).toBe(n)
      expect(peak).toBeLessThanOrEqual(8)
      expect(peak).toBeGreaterThan(1)
    })

    it('stops reading requests while replies pile up unread', async () => {
      await h.close()
      await start({ maxInflightBytes: MiB })
      const c = await session()
      const n = 1000
      const len = 64 * 1024
      c.socket.pause() // the client stops reading replies
      c.send(Buffer.concat(Array.from({ length: n }, (_, i) => encodeRequest(C.CMD_READ, { cookie: BigInt(i), offset: (i % 16) * len, length: len }))))
      await new Promise((r) => setTimeout(r, 300))
      if (transport === tcpTransport) expect(h.stats().requests.read).toBeLessThan(n)
      c.socket.resume()
      for (let i = 0; i < n; i++) expect((await c.readReply(len)).error).toBe(0)
      expect(h.stats().requests.read).toBe(n)
    })

    it('answers later requests with ESHUTDOWN when the server closes, after finishing in-flight ones', async () => {
      const c = await session()
      disk.delayMs = 100
      c.request(C.CMD_READ, { cookie: 1n, length: 512 })
      await until(() => disk.calls.length === 1)
      const closing = h.close()
      c.request(C.CMD_READ, { cookie: 2n, length: 512 })
      const replies = [await c.readReply(512), await c.readReply(512)]
      expect(replies.find((r) => r.cookie === 1n)?.error).toBe(0)
      expect(replies.find((r) => r.cookie === 2n)?.error).toBe(C.ESHUTDOWN)
      await c.expectClose()
      await closing
      // afterEach needs a live server again.
      disk.delayMs = 0
      await start()
    })
  })
})
