// Goal: many requests in flight on one connection each get their own reply, handlers start in
// the order requests were sent, and the per-connection handler limit holds without losing
// requests. Method: handlers with random or gated delays; counters of running handlers.
import { describe, expect, it } from 'vitest'
import { SeededRandom } from '@torus/core'
import { CLIENT_ID, CLUSTER, gate, pair, SECRET, sleep, until, type SuiteContext } from './context.js'

export function describeOrdering(ctx: SuiteContext): void {
  describe('ordering and concurrency', () => {
    it('matches 500 concurrent requests to their replies when handlers finish out of order', ctx.run(async (net) => {
      const random = new SeededRandom(7)
      const { connection } = await pair(net, {
        handlers: {
          square: async (body) => {
            await sleep(random.int(4))
            return (body as number) * (body as number)
          },
        },
      })
      const replies = await Promise.all(Array.from({ length: 500 }, (_, i) => connection.request('square', i)))
      expect(replies).toEqual(Array.from({ length: 500 }, (_, i) => i * i))
      expect(connection.pendingRequests).toBe(0)
    }))

    it('starts handlers in the order the requests were sent on one connection', ctx.run(async (net) => {
      const started: number[] = []
      const { connection } = await pair(net, {
        server: { maxConcurrentHandlers: 8 },
        handlers: {
          seq: async (body) => {
            started.push(body as number)
            await sleep((body as number) % 3)
            return body
          },
        },
      })
      await Promise.all(Array.from({ length: 300 }, (_, i) => connection.request('seq', i)))
      expect(started).toEqual(Array.from({ length: 300 }, (_, i) => i))
    }))

    it('runs at most maxConcurrentHandlers handlers at once per connection and serves the rest later', ctx.run(async (net) => {
      let running = 0
      let peak = 0
      let started = 0
      const release = gate()
      const { connection } = await pair(net, {
        server: { maxConcurrentHandlers: 4 },
        handlers: {
          slow: async (body) => {
            started++
            running++
            peak = Math.max(peak, running)
            await release.promise
            running--
            return body
          },
        },
      })
      const all = Promise.all(Array.from({ length: 40 }, (_, i) => connection.request('slow', i)))
      await until(() => started === 4, 5000, '4 handlers to start')
      await sleep(50)
      expect(started).toBe(4)
      release.open()
      expect(await all).toEqual(Array.from({ length: 40 }, (_, i) => i))
      expect(peak).toBe(4)
    }))

    it('applies the handler limit per connection: a busy connection does not block another', ctx.run(async (net) => {
      const release = gate()
      const { server, connection, address } = await pair(net, {
        server: { maxConcurrentHandlers: 1 },
        handlers: { block: () => release.promise.then(() => 'unblocked'), ping: () => 'pong' },
      })
      const blocked = connection.request('block', null)
      const queued = connection.request('ping', null)
      const other = net.transport({ clusterId: CLUSTER, peerId: `${CLIENT_ID.slice(0, -1)}9`, secret: SECRET })
      const second = await other.connect(address)
      expect(await second.request('ping', null)).toBe('pong')
      let queuedDone = false
      void queued.then(() => {
        queuedDone = true
      })
      await sleep(30)
      expect(queuedDone).toBe(false)
      release.open()
      expect(await blocked).toBe('unblocked')
      expect(await queued).toBe('pong')
      expect(server.status).toBe('open')
    }))

    it('serves several connections from one client transport to one server', ctx.run(async (net) => {
      const { client, address, connection } = await pair(net, { handlers: { id: (body) => body } })
      const more = await Promise.all([client.connect(address), client.connect(address)])
      const results = await Promise.all([connection, ...more].flatMap((c, n) => Array.from({ length: 50 }, (_, i) => c.request('id', n * 1000 + i))))
      expect(results).toEqual([0, 1, 2].flatMap((n) => Array.from({ length: 50 }, (_, i) => n * 1000 + i)))
    }))
  })
}
