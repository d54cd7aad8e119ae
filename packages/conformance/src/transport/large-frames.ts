// Goal: block-sized and larger payloads (up to a few MiB) travel intact in both directions,
// concurrently, and a frame above the receiver's limit is refused locally with a clear code
// without harming the connection. Method: patterned buffers compared byte by byte.
import { describe, expect, it } from 'vitest'
import { pair, pattern, sameBytes, type SuiteContext } from './context.js'

const MiB = 1024 * 1024

export function describeLargeFrames(ctx: SuiteContext): void {
  describe('large payloads', () => {
    it('carries a 1 MiB body to the handler and a 1 MiB reply back, byte for byte', ctx.run(async (net) => {
      let ok = false
      const { connection } = await pair(net, {
        handlers: {
          put: (body) => {
            ok = sameBytes((body as { bytes: Uint8Array }).bytes, pattern(MiB, 1))
            return pattern(MiB, 2)
          },
        },
      })
      const reply = await connection.request('put', { bytes: pattern(MiB, 1) })
      expect(ok).toBe(true)
      expect(sameBytes(reply, pattern(MiB, 2))).toBe(true)
    }))

    it('carries a 4 MiB body', ctx.run(async (net) => {
      const { connection } = await pair(net, { handlers: { len: (body) => (body as Uint8Array).byteLength, echo: (body) => body } })
      expect(await connection.request('len', pattern(4 * MiB, 3))).toBe(4 * MiB)
      expect(sameBytes(await connection.request('echo', pattern(4 * MiB, 4)), pattern(4 * MiB, 4))).toBe(true)
    }))

    it('keeps 8 concurrent 1 MiB requests apart', ctx.run(async (net) => {
      const { connection } = await pair(net, { handlers: { echo: (body) => body } })
      const replies = await Promise.all(Array.from({ length: 8 }, (_, i) => connection.request('echo', { i, bytes: pattern(MiB, 10 + i) })))
      replies.forEach((r, i) => {
        const { i: got, bytes } = r as { i: number; bytes: Uint8Array }
        expect(got).toBe(i)
        expect(sameBytes(bytes, pattern(MiB, 10 + i))).toBe(true)
      })
    }))

    it('refuses a request larger than the remote accepts with TORUS_INVALID_ARGUMENT and keeps the connection', ctx.run(async (net) => {
      let calls = 0
      const { connection } = await pair(net, {
        server: { maxFrameBytes: 64 * 1024 },
        handlers: {
          put: (body) => {
            calls++
            return (body as Uint8Array).byteLength
          },
        },
      })
      await expect(connection.request('put', new Uint8Array(100 * 1024))).rejects.toMatchObject({ code: 'TORUS_INVALID_ARGUMENT' })
      expect(await connection.request('put', new Uint8Array(60 * 1024))).toBe(60 * 1024)
      expect(calls).toBe(1)
      expect(connection.state).toBe('open')
    }))

    it('fails a reply larger than the caller accepts with TORUS_INVALID_ARGUMENT and keeps the connection', ctx.run(async (net) => {
      const { connection } = await pair(net, {
        client: { maxFrameBytes: 64 * 1024 },
        handlers: { get: (body) => new Uint8Array(body as number) },
      })
      await expect(connection.request('get', 100 * 1024)).rejects.toMatchObject({ code: 'TORUS_INVALID_ARGUMENT' })
      expect(((await connection.request('get', 1024)) as Uint8Array).byteLength).toBe(1024)
      expect(connection.state).toBe('open')
    }))
  })
}
