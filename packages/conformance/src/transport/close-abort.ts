// Goal: closing either end, or losing the link, settles every request with the right code
// (TORUS_NOT_OPEN after our own close, TORUS_UNAVAILABLE when the link went away), aborts
// running handlers' signals, and a connection that had opened comes back by itself once the
// server is back. Method: gated handlers, server restarts on the same address.
import { describe, expect, it } from 'vitest'
import type { ConnectionState, RequestContext } from '@torus/core'
import { CLIENT_ID, CLUSTER, gate, pair, SECRET, SERVER_ID, sleep, until, type SuiteContext } from './context.js'

export function describeCloseAbort(ctx: SuiteContext): void {
  describe('close, abort and reconnect', () => {
    it('connection.close() rejects pending requests and later ones with TORUS_NOT_OPEN', ctx.run(async (net) => {
      const never = gate()
      const { connection } = await pair(net, { handlers: { hang: () => never.promise.then(() => null) } })
      const pending = connection.request('hang', null).catch((e: unknown) => e)
      await sleep(10)
      await connection.close()
      expect(await pending).toMatchObject({ code: 'TORUS_NOT_OPEN' })
      await expect(connection.request('hang', null)).rejects.toMatchObject({ code: 'TORUS_NOT_OPEN' })
      expect(connection.state).toBe('closed')
      await connection.close()
      await expect(connection.ready()).rejects.toMatchObject({ code: 'TORUS_NOT_OPEN' })
      never.open()
    }))

    it('closing the client transport closes its connections', ctx.run(async (net) => {
      const { client, connection } = await pair(net, { handlers: { ok: () => 1 } })
      const states: ConnectionState[] = []
      connection.onStateChange((s) => states.push(s))
      await client.close()
      expect(client.status).toBe('closed')
      expect(connection.state).toBe('closed')
      expect(states).toEqual(['closed'])
      await expect(connection.request('ok', null)).rejects.toMatchObject({ code: 'TORUS_NOT_OPEN' })
      await client.close()
    }))

    it('closing the server fails requests in flight with TORUS_UNAVAILABLE and aborts running handlers', ctx.run(async (net) => {
      const never = gate()
      let context: RequestContext | undefined
      const { server, connection } = await pair(net, {
        handlers: {
          hang: (_b, c) => {
            context = c
            return never.promise.then(() => null)
          },
        },
      })
      // Caught at once: it rejects while server.close() is still being awaited.
      const pending = connection.request('hang', null).catch((e: unknown) => e)
      await until(() => context !== undefined, 5000, 'handler to start')
      await server.close()
      expect(await pending).toMatchObject({ code: 'TORUS_UNAVAILABLE' })
      expect(context?.signal.aborted).toBe(true)
      await until(() => connection.state !== 'open', 5000, 'connection to notice')
      expect(connection.state).toBe('reconnecting')
      await expect(connection.request('hang', null)).rejects.toMatchObject({ code: 'TORUS_UNAVAILABLE' })
      never.open()
    }))

    it('reconnects once the server is back at the same address, and serves again', ctx.run(async (net) => {
      const { server, connection, address } = await pair(net, {
        client: { reconnectMinDelayMs: 10, reconnectMaxDelayMs: 50 },
        handlers: { who: () => 'first' },
      })
      const states: ConnectionState[] = []
      connection.onStateChange((s) => states.push(s))
      expect(await connection.request('who', null)).toBe('first')
      await server.close()
      await until(() => connection.state === 'reconnecting', 5000, 'reconnecting')
      await sleep(80) // a few failed attempts while nothing listens
      const again = net.transport({ clusterId: CLUSTER, peerId: SERVER_ID, secret: SECRET })
      again.handle('who', () => 'second')
      await again.listen(address)
      await connection.ready({ timeoutMs: 5000 })
      expect(await connection.request('who', null)).toBe('second')
      expect(states).toEqual(['reconnecting', 'open'])
    }))

    it('reconnectNow() dials at once instead of waiting out the back-off, and resolves either way', ctx.run(async (net) => {
      // A back-off of 30-60 s: only reconnectNow() can bring the connection back within the test.
      const { server, connection, address } = await pair(net, {
        client: { reconnectMinDelayMs: 60_000, reconnectMaxDelayMs: 60_000 },
        handlers: { who: () => 'first' },
      })
      await connection.reconnectNow() // open: nothing to do
      expect(connection.state).toBe('open')
      await server.close()
      await until(() => connection.state === 'reconnecting', 5000, 'reconnecting')
      await connection.reconnectNow() // nothing listens: the attempt fails, and it resolves
      expect(connection.state).toBe('reconnecting')
      const again = net.transport({ clusterId: CLUSTER, peerId: SERVER_ID, secret: SECRET })
      again.handle('who', () => 'second')
      await again.listen(address)
      await connection.reconnectNow()
      expect(connection.state).toBe('open')
      expect(await connection.request('who', null)).toBe('second')
      await connection.close()
      await connection.reconnectNow()
      expect(connection.state).toBe('closed')
    }))

    it('does not reconnect to a different peer at the same address', ctx.run(async (net) => {
      const { server, connection, address } = await pair(net, { client: { reconnectMinDelayMs: 10, reconnectMaxDelayMs: 20 } })
      await server.close()
      const impostor = net.transport({ clusterId: CLUSTER, peerId: 'ffffffff-0000-4000-8000-00000000000f', secret: SECRET })
      impostor.handle('who', () => 'impostor')
      await impostor.listen(address)
      await expect(connection.ready({ timeoutMs: 300 })).rejects.toMatchObject({ code: 'TORUS_TIMEOUT' })
      expect(connection.state).toBe('reconnecting')
      await connection.close()
    }))

    it('ready() resolves at once when open and honours its signal while reconnecting', ctx.run(async (net) => {
      const { server, connection } = await pair(net)
      await connection.ready()
      await server.close()
      await until(() => connection.state === 'reconnecting', 5000, 'reconnecting')
      const controller = new AbortController()
      const waiting = connection.ready({ signal: controller.signal, timeoutMs: 5000 })
      controller.abort()
      await expect(waiting).rejects.toMatchObject({ code: 'TORUS_ABORTED' })
      const closing = connection.ready({ timeoutMs: 5000 })
      await connection.close()
      await expect(closing).rejects.toMatchObject({ code: 'TORUS_NOT_OPEN' })
    }))

    it('connect() fails with TORUS_UNAVAILABLE where nothing listens', ctx.run(async (net) => {
      const client = net.transport({ clusterId: CLUSTER, peerId: CLIENT_ID, secret: SECRET })
      await expect(client.connect(net.deadAddress())).rejects.toMatchObject({ code: 'TORUS_UNAVAILABLE' })
    }))

    it('connect() with an aborted signal fails with TORUS_ABORTED', ctx.run(async (net) => {
      const server = net.transport({ clusterId: CLUSTER, peerId: SERVER_ID, secret: SECRET })
      const address = await server.listen(net.listenAddress())
      const client = net.transport({ clusterId: CLUSTER, peerId: CLIENT_ID, secret: SECRET })
      await expect(client.connect(address, { signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'TORUS_ABORTED' })
      const connection = await client.connect(address)
      expect(connection.state).toBe('open')
    }))

    it('connect() to an address of another scheme fails with TORUS_INVALID_ARGUMENT', ctx.run(async (net) => {
      const client = net.transport({ clusterId: CLUSTER, peerId: CLIENT_ID, secret: SECRET })
      for (const address of ['nonsense', 'http://127.0.0.1:1', '']) {
        await expect(client.connect(address)).rejects.toMatchObject({ code: 'TORUS_INVALID_ARGUMENT' })
      }
    }))

    it('refuses a second listen() (TypeError) and an address already in use (TORUS_ALREADY_EXISTS)', ctx.run(async (net) => {
      const a = net.transport({ clusterId: CLUSTER, peerId: SERVER_ID, secret: SECRET })
      const address = await a.listen(net.listenAddress())
      await expect(a.listen(net.listenAddress())).rejects.toBeInstanceOf(TypeError)
      const b = net.transport({ clusterId: CLUSTER, peerId: CLIENT_ID, secret: SECRET })
      await expect(b.listen(address)).rejects.toMatchObject({ code: 'TORUS_ALREADY_EXISTS' })
    }))

    it('a closed transport refuses listen() and connect() with TORUS_NOT_OPEN, and close() is idempotent', ctx.run(async (net) => {
      const t = net.transport({ clusterId: CLUSTER, peerId: SERVER_ID, secret: SECRET })
      expect(t.status).toBe('open')
      await Promise.all([t.close(), t.close()])
      await t.close()
      expect(t.status).toBe('closed')
      await expect(t.listen(net.listenAddress())).rejects.toMatchObject({ code: 'TORUS_NOT_OPEN' })
      await expect(t.connect(net.deadAddress())).rejects.toMatchObject({ code: 'TORUS_NOT_OPEN' })
    }))

    it('frees the listen address on close', ctx.run(async (net) => {
      const a = net.transport({ clusterId: CLUSTER, peerId: SERVER_ID, secret: SECRET })
      const address = await a.listen(net.listenAddress())
      await a.close()
      const b = net.transport({ clusterId: CLUSTER, peerId: SERVER_ID, secret: SECRET })
      expect(await b.listen(address)).toBe(address)
    }))
  })
}
