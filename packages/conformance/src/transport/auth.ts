// Goal: only peers that prove the cluster secret, in the same cluster, get a connection; a
// refused peer is told why, logged with its address, and never reaches a handler. Method:
// pairs with mismatched secrets, cluster ids and expected peer ids; a capturing logger.
import { describe, expect, it } from 'vitest'
import { captureLogger, CLIENT_ID, CLUSTER, pair, SECRET, SERVER_ID, sleep, type SuiteContext, type TransportNetwork } from './context.js'

async function server(net: TransportNetwork, logger = captureLogger()): Promise<{ address: string; calls: () => number; logger: ReturnType<typeof captureLogger> }> {
  let calls = 0
  const t = net.transport({ clusterId: CLUSTER, peerId: SERVER_ID, secret: SECRET, logger })
  t.handle('ping', () => {
    calls++
    return 'pong'
  })
  return { address: await t.listen(net.listenAddress()), calls: () => calls, logger }
}

export function describeAuth(ctx: SuiteContext): void {
  describe('authenticated hello', () => {
    it('opens a connection when both sides share the cluster id and secret', ctx.run(async (net) => {
      const s = await server(net)
      const client = net.transport({ clusterId: CLUSTER, peerId: CLIENT_ID, secret: SECRET })
      const connection = await client.connect(s.address)
      expect(await connection.request('ping', null)).toBe('pong')
      expect(s.calls()).toBe(1)
    }))

    it('refuses a peer with the wrong secret: TORUS_PROTOCOL, a warning with its address, no handler run', ctx.run(async (net) => {
      const s = await server(net)
      const client = net.transport({ clusterId: CLUSTER, peerId: CLIENT_ID, secret: 'not the cluster secret, same length!' })
      const err = await client.connect(s.address).catch((e: unknown) => e)
      expect(err).toMatchObject({ code: 'TORUS_PROTOCOL' })
      expect((err as Error).message).toMatch(/authentication failed/)
      await sleep(20)
      expect(s.calls()).toBe(0)
      const warning = s.logger.records.find((r) => r.level === 'warn' && r.message === 'hello refused')
      expect(warning?.fields).toMatchObject({ reason: 'auth', peer: CLIENT_ID })
      expect(typeof warning?.fields['remote']).toBe('string')
    }))

    it('accepts the secret as bytes or as the same UTF-8 string', ctx.run(async (net) => {
      const s = await server(net)
      const client = net.transport({ clusterId: CLUSTER, peerId: CLIENT_ID, secret: new TextEncoder().encode(SECRET) })
      expect(await (await client.connect(s.address)).request('ping', null)).toBe('pong')
    }))

    it('refuses a peer of another cluster with a message that names both clusters', ctx.run(async (net) => {
      const s = await server(net)
      const client = net.transport({ clusterId: 'other-cluster', peerId: CLIENT_ID, secret: SECRET })
      const err = await client.connect(s.address).catch((e: unknown) => e)
      expect(err).toMatchObject({ code: 'TORUS_PROTOCOL' })
      expect((err as Error).message).toMatch(/other-cluster/)
      expect((err as Error).message).toMatch(new RegExp(CLUSTER))
      expect(s.calls()).toBe(0)
      expect(s.logger.records.some((r) => r.level === 'warn' && r.fields['reason'] === 'cluster')).toBe(true)
    }))

    it('refuses a server whose peer id is not the expected one', ctx.run(async (net) => {
      const s = await server(net)
      const client = net.transport({ clusterId: CLUSTER, peerId: CLIENT_ID, secret: SECRET })
      await expect(client.connect(s.address, { expectedPeerId: 'aaaaaaaa-0000-4000-8000-00000000000a' })).rejects.toMatchObject({
        code: 'TORUS_PROTOCOL',
        details: { reason: 'peer' },
      })
      const connection = await client.connect(s.address, { expectedPeerId: SERVER_ID })
      expect(connection.peer.id).toBe(SERVER_ID)
      expect(s.calls()).toBe(0)
    }))

    it('lets a transport connect to itself', ctx.run(async (net) => {
      const { server: t, address } = await pair(net, { handlers: { ping: () => 'pong' } })
      const self = await t.connect(address)
      expect(await self.request('ping', null)).toBe('pong')
      expect(self.peer.id).toBe(SERVER_ID)
    }))

    it('rejects bad identities and short secrets when the transport is made', ctx.run(async (net) => {
      expect(() => net.transport({ clusterId: CLUSTER, peerId: CLIENT_ID, secret: 'short' })).toThrow(RangeError)
      expect(() => net.transport({ clusterId: '', peerId: CLIENT_ID, secret: SECRET })).toThrow(RangeError)
      expect(() => net.transport({ clusterId: CLUSTER, peerId: 'has space', secret: SECRET })).toThrow(RangeError)
      expect(() => net.transport({ clusterId: CLUSTER, peerId: CLIENT_ID, secret: 42 as unknown as string })).toThrow(TypeError)
    }))
  })
}
