// Goal: a body reaches the handler and a reply reaches the caller unchanged, for every kind of
// value the contract allows, and bytes stay bytes. Method: echo handlers on a fresh pair.
import { describe, expect, it } from 'vitest'
import type { RequestContext, TransportValue } from '@torus/core'
import { CLIENT_ID, pair, pattern, SERVER_ID, type SuiteContext } from './context.js'

export function describeRoundtrip(ctx: SuiteContext): void {
  describe('roundtrip', () => {
    it('echoes plain values: nil, booleans, numbers, strings, arrays and maps', ctx.run(async (net) => {
      const { connection } = await pair(net, { handlers: { echo: (body) => body } })
      const values: TransportValue[] = [
        null,
        true,
        false,
        0,
        -1,
        42,
        2 ** 31,
        2 ** 32 + 5,
        Number.MAX_SAFE_INTEGER,
        -(2 ** 40),
        1.5,
        -0.25,
        '',
        'block.write',
        'ünïcödé ✓ 🚀',
        'x'.repeat(70_000),
        [],
        [1, 'two', [3, [4]], { five: 5 }],
        {},
        { volumeId: 7, index: 3, offset: 4096, generation: 12, seq: 99, nested: { ok: true, list: [null] } },
      ]
      for (const value of values) expect(await connection.request('echo', value)).toEqual(value)
    }))

    it('carries Uint8Array payloads as bytes in both directions', ctx.run(async (net) => {
      let seen: unknown
      const { connection } = await pair(net, {
        handlers: {
          put: (body) => {
            const { bytes } = body as { bytes: Uint8Array }
            seen = bytes
            return { back: pattern(bytes.byteLength, 2), length: bytes.byteLength }
          },
        },
      })
      const sent = pattern(4096, 1)
      const reply = (await connection.request('put', { bytes: sent })) as { back: Uint8Array; length: number }
      expect(seen).toBeInstanceOf(Uint8Array)
      expect(new Uint8Array(seen as Uint8Array)).toEqual(sent)
      expect(reply.length).toBe(4096)
      expect(reply.back).toBeInstanceOf(Uint8Array)
      expect(new Uint8Array(reply.back)).toEqual(pattern(4096, 2))
    }))

    it('carries empty byte arrays, a bare Uint8Array body and bytes inside arrays', ctx.run(async (net) => {
      const { connection } = await pair(net, { handlers: { echo: (body) => body } })
      const empty = (await connection.request('echo', new Uint8Array(0))) as Uint8Array
      expect(empty).toBeInstanceOf(Uint8Array)
      expect(empty.byteLength).toBe(0)
      const bare = (await connection.request('echo', pattern(17, 3))) as Uint8Array
      expect(new Uint8Array(bare)).toEqual(pattern(17, 3))
      const list = (await connection.request('echo', [pattern(3, 4), pattern(5, 5)])) as Uint8Array[]
      expect(list.map((b) => new Uint8Array(b))).toEqual([pattern(3, 4), pattern(5, 5)])
    }))

    it('returns integers beyond 2^53 as bigint and safe integers as number', ctx.run(async (net) => {
      const { connection } = await pair(net, { handlers: { echo: (body) => body } })
      expect(await connection.request('echo', 2n ** 60n + 3n)).toBe(2n ** 60n + 3n)
      expect(await connection.request('echo', -(2n ** 62n))).toBe(-(2n ** 62n))
      expect(await connection.request('echo', 7n)).toBe(7)
      expect(await connection.request('echo', { generation: 2n ** 55n })).toEqual({ generation: 2n ** 55n })
    }))

    it('keeps undefined inside arrays and as a whole body', ctx.run(async (net) => {
      const { connection } = await pair(net, { handlers: { echo: (body) => body } })
      expect(await connection.request('echo', [1, undefined, 3])).toEqual([1, undefined, 3])
      expect(await connection.request('echo', undefined)).toBeUndefined()
    }))

    it('tells the handler which authenticated peer is calling', ctx.run(async (net) => {
      let context: RequestContext | undefined
      const { connection } = await pair(net, {
        handlers: {
          who: (_body, c) => {
            context = c
            return c.peer.id
          },
        },
      })
      expect(await connection.request('who', null)).toBe(CLIENT_ID)
      expect(context?.peer.id).toBe(CLIENT_ID)
      expect(typeof context?.peer.address).toBe('string')
      expect(context?.signal.aborted).toBe(false)
    }))

    it('shows the remote peer and address on the connection', ctx.run(async (net) => {
      const { connection, address, server } = await pair(net)
      expect(connection.state).toBe('open')
      expect(connection.peer.id).toBe(SERVER_ID)
      expect(connection.address).toBe(address)
      expect(server.address).toBe(address)
      expect(connection.pendingRequests).toBe(0)
    }))

    it('serves several methods, and a later handle() replaces a handler', ctx.run(async (net) => {
      const { server, connection } = await pair(net, { handlers: { a: () => 'a1', b: async () => 'b1' } })
      expect(await connection.request('a', null)).toBe('a1')
      expect(await connection.request('b', null)).toBe('b1')
      server.handle('a', () => 'a2')
      expect(await connection.request('a', null)).toBe('a2')
    }))

    it('accepts every method character and a 64-character method', ctx.run(async (net) => {
      const long = 'm'.repeat(64)
      const odd = 'Block.write_v2:replica/x-1'
      const { connection } = await pair(net, { handlers: { [long]: () => 'long', [odd]: () => 'odd' } })
      expect(await connection.request(long, null)).toBe('long')
      expect(await connection.request(odd, null)).toBe('odd')
    }))

    it('rejects a body that is not plain data with TypeError and keeps the connection', ctx.run(async (net) => {
      const { connection } = await pair(net, { handlers: { echo: (body) => body } })
      class Thing {
        x = 1
      }
      const bad: unknown[] = [new Date(0), new Map([[1, 2]]), new Set([1]), new Thing(), () => 1, Symbol('s'), new Float64Array(2), { nested: [new Date(0)] }]
      for (const body of bad) await expect(connection.request('echo', body as TransportValue)).rejects.toBeInstanceOf(TypeError)
      const cyclic: Record<string, unknown> = {}
      cyclic['self'] = cyclic
      await expect(connection.request('echo', cyclic as TransportValue)).rejects.toBeInstanceOf(TypeError)
      expect(await connection.request('echo', 'still fine')).toBe('still fine')
    }))

    it('rejects invalid method names with TypeError', ctx.run(async (net) => {
      const { server, connection } = await pair(net)
      for (const method of ['', 'm'.repeat(65), 'has space', 'ünï', 'a\nb', 42]) {
        await expect(connection.request(method as string, null)).rejects.toBeInstanceOf(TypeError)
        expect(() => server.handle(method as string, () => null)).toThrow(TypeError)
      }
    }))
  })
}
