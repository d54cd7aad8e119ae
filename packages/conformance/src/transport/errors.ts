// Goal: handler failures reach the caller as TorusErrors with stable codes, deadlines and
// signals end requests with TORUS_TIMEOUT and TORUS_ABORTED, and none of it harms the
// connection. Method: handlers that throw, never answer, or answer late; short real timeouts.
import { describe, expect, it } from 'vitest'
import { TorusError } from '@torus/core'
import { gate, pair, sleep, type SuiteContext } from './context.js'

export function describeErrors(ctx: SuiteContext): void {
  describe('errors and timeouts', () => {
    it('returns a handler TorusError with the same code, message and details', ctx.run(async (net) => {
      const { connection } = await pair(net, {
        handlers: {
          stale: async () => {
            throw new TorusError('TORUS_CONFLICT', 'generation 3 is older than 5', { details: { generation: 3, current: 5 } })
          },
        },
      })
      const err = await connection.request('stale', null).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(TorusError)
      expect(err).toMatchObject({ code: 'TORUS_CONFLICT', message: 'generation 3 is older than 5', details: { generation: 3, current: 5 } })
      expect(await connection.request('stale', null).catch((e: TorusError) => e.retryable)).toBe(false)
    }))

    it('keeps the retryable default of the code', ctx.run(async (net) => {
      const { connection } = await pair(net, {
        handlers: {
          busy: () => {
            throw new TorusError('TORUS_UNAVAILABLE', 'replica busy')
          },
        },
      })
      await expect(connection.request('busy', null)).rejects.toMatchObject({ code: 'TORUS_UNAVAILABLE', retryable: true })
    }))

    it('returns any other thrown error as TORUS_INTERNAL with its message', ctx.run(async (net) => {
      const { connection } = await pair(net, {
        handlers: {
          boom: () => {
            throw new Error('disk on fire')
          },
          reject: () => Promise.reject(new RangeError('bad offset')),
        },
      })
      await expect(connection.request('boom', null)).rejects.toMatchObject({ code: 'TORUS_INTERNAL', message: 'disk on fire' })
      await expect(connection.request('reject', null)).rejects.toMatchObject({ code: 'TORUS_INTERNAL', message: 'bad offset' })
      expect(await connection.request('boom', null).catch(() => 'connection still fine')).toBe('connection still fine')
    }))

    it('fails a reply that is not plain data as TORUS_INTERNAL', ctx.run(async (net) => {
      const { connection } = await pair(net, { handlers: { date: () => new Date() as never, ok: () => 1 } })
      await expect(connection.request('date', null)).rejects.toMatchObject({ code: 'TORUS_INTERNAL' })
      expect(await connection.request('ok', null)).toBe(1)
    }))

    it('rejects a method nobody handles with TORUS_NOT_SUPPORTED', ctx.run(async (net) => {
      const { connection } = await pair(net, { handlers: { known: () => 1 } })
      await expect(connection.request('unknown.method', null)).rejects.toMatchObject({ code: 'TORUS_NOT_SUPPORTED' })
      expect(await connection.request('known', null)).toBe(1)
    }))

    it('times out with TORUS_TIMEOUT when the handler does not answer in time', ctx.run(async (net) => {
      const never = gate()
      const { connection } = await pair(net, { handlers: { hang: () => never.promise.then(() => null), ok: () => 'ok' } })
      const started = Date.now()
      const err = await connection.request('hang', null, { timeoutMs: 100 }).catch((e: unknown) => e)
      expect(err).toMatchObject({ code: 'TORUS_TIMEOUT', retryable: true })
      expect(Date.now() - started).toBeGreaterThanOrEqual(90)
      expect(await connection.request('ok', null, { timeoutMs: 2000 })).toBe('ok')
      never.open()
    }))

    it('drops a reply that arrives after the timeout, and the next request gets its own reply', ctx.run(async (net) => {
      const { connection } = await pair(net, {
        handlers: {
          late: async (body) => {
            await sleep(body as number)
            return `late ${String(body)}`
          },
        },
      })
      await expect(connection.request('late', 150, { timeoutMs: 30 })).rejects.toMatchObject({ code: 'TORUS_TIMEOUT' })
      await sleep(200)
      expect(await connection.request('late', 0)).toBe('late 0')
      expect(connection.pendingRequests).toBe(0)
    }))

    it('uses the transport requestTimeoutMs when the call gives none', ctx.run(async (net) => {
      const never = gate()
      const { connection } = await pair(net, { client: { requestTimeoutMs: 80 }, handlers: { hang: () => never.promise.then(() => null) } })
      await expect(connection.request('hang', null)).rejects.toMatchObject({ code: 'TORUS_TIMEOUT' })
      never.open()
    }))

    it('times out requests with different deadlines each at its own time', ctx.run(async (net) => {
      const never = gate()
      const { connection } = await pair(net, { handlers: { hang: () => never.promise.then(() => null) } })
      const settled: number[] = []
      const started = Date.now()
      const calls = [300, 60, 150].map((t) => connection.request('hang', t, { timeoutMs: t }).catch(() => settled.push(t)))
      await Promise.all(calls)
      expect(settled).toEqual([60, 150, 300])
      expect(Date.now() - started).toBeLessThan(2000)
      never.open()
    }))

    it('rejects with TORUS_ABORTED for a signal aborted before or during the request', ctx.run(async (net) => {
      const never = gate()
      let calls = 0
      const { connection } = await pair(net, {
        handlers: {
          hang: () => {
            calls++
            return never.promise.then(() => null)
          },
        },
      })
      await expect(connection.request('hang', null, { signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'TORUS_ABORTED' })
      const controller = new AbortController()
      const pending = connection.request('hang', null, { signal: controller.signal })
      await sleep(20)
      controller.abort()
      await expect(pending).rejects.toMatchObject({ code: 'TORUS_ABORTED' })
      expect(calls).toBe(1)
      expect(connection.pendingRequests).toBe(0)
      never.open()
    }))

    it('rejects a timeoutMs that is not a positive number with RangeError', ctx.run(async (net) => {
      const { connection } = await pair(net, { handlers: { ok: () => 1 } })
      for (const timeoutMs of [0, -1, Number.NaN, '10' as unknown as number]) {
        await expect(connection.request('ok', null, { timeoutMs })).rejects.toBeInstanceOf(RangeError)
      }
    }))
  })
}
