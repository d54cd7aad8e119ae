/**
 * LoopbackTransport behaviour beyond the shared suite: the hub's fault hooks (isolate and
 * restore a listener), reconnect back-off drawn from the injected Clock and Random (checked
 * delay by delay), and backpressure between two in-process ends (a stalled receiver leaves
 * frames queued on the pipe, which the sender counts and bounds).
 */
import { afterEach, describe, expect, it } from 'vitest'
import { CLIENT_ID, CLUSTER, SECRET, SERVER_ID } from '@torus/conformance/transport'
import { SeededRandom, systemClock, type Clock, type Timer, type TransportValue } from '@torus/core'
import { LoopbackHub, LoopbackTransport, type LoopbackTransportOptions } from '../src/index.js'

const cleanup: (() => Promise<void>)[] = []
afterEach(async () => {
  while (cleanup.length > 0) await cleanup.pop()!()
})

function transport(hub: LoopbackHub, options: Partial<LoopbackTransportOptions> & { peerId: string }): LoopbackTransport {
  const t = new LoopbackTransport({ hub, clusterId: CLUSTER, secret: SECRET, ...options })
  cleanup.push(() => t.close())
  return t
}

const until = async (cond: () => boolean, ms = 5000): Promise<void> => {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting')
    await new Promise((r) => setTimeout(r, 2))
  }
}

/** Real time, but every timer under 5 s is recorded: with no requests in flight, those are the reconnect delays. */
class RecordingClock implements Clock {
  delays: number[] = []
  now = (): number => systemClock.now()
  setTimeout(fn: () => void, ms: number): Timer {
    if (ms < 5000) this.delays.push(ms)
    return systemClock.setTimeout(fn, ms)
  }
  clearTimeout(timer: Timer): void {
    systemClock.clearTimeout(timer)
  }
}

describe('LoopbackHub faults', () => {
  it('isolate() cuts connections to a listener and refuses new ones until restore()', async () => {
    const hub = new LoopbackHub()
    const server = transport(hub, { peerId: SERVER_ID })
    let release!: () => void
    server.handle('hang', () => new Promise<TransportValue>((resolve) => (release = () => resolve(null))))
    server.handle('ping', () => 'pong')
    const address = await server.listen('loopback://replica-1')
    const client = transport(hub, { peerId: CLIENT_ID, reconnectMinDelayMs: 5, reconnectMaxDelayMs: 20 })
    const connection = await client.connect(address)
    const inFlight = connection.request('hang', null).catch((e: unknown) => e)
    await until(() => release !== undefined)
    hub.isolate(address)
    expect(await inFlight).toMatchObject({ code: 'TORUS_UNAVAILABLE' })
    await until(() => connection.state === 'reconnecting')
    await expect(connection.request('ping', null)).rejects.toMatchObject({ code: 'TORUS_UNAVAILABLE' })
    const other = transport(hub, { peerId: 'another-client' })
    await expect(other.connect(address)).rejects.toMatchObject({ code: 'TORUS_UNAVAILABLE' })
    await new Promise((r) => setTimeout(r, 50))
    expect(connection.state).toBe('reconnecting')
    hub.restore(address)
    await connection.ready({ timeoutMs: 2000 })
    expect(await connection.request('ping', null)).toBe('pong')
    release()
  })

  it('draws reconnect delays from the injected Random: doubling ceilings, each in [d/2, d)', async () => {
    const hub = new LoopbackHub()
    const server = transport(hub, { peerId: SERVER_ID })
    const address = await server.listen('loopback://replica-2')
    const clock = new RecordingClock()
    const client = transport(hub, { peerId: CLIENT_ID, clock, random: new SeededRandom(42), reconnectMinDelayMs: 50, reconnectMaxDelayMs: 400 })
    const connection = await client.connect(address)
    clock.delays = []
    hub.isolate(address)
    await until(() => clock.delays.length >= 5, 10_000)
    const ceilings = [50, 100, 200, 400, 400]
    clock.delays.slice(0, 5).forEach((d, i) => {
      expect(d).toBeGreaterThanOrEqual(ceilings[i]! / 2)
      expect(d).toBeLessThan(ceilings[i]!)
    })
    // Same seed, same delays: a simulation replays.
    const replay = new SeededRandom(42)
    expect(clock.delays.slice(0, 5)).toEqual(ceilings.map((c) => c / 2 + replay.next() * (c / 2)))
    await connection.close()
  })
})

describe('LoopbackTransport backpressure', () => {
  it('bounds what a sender holds for a stalled receiver and delivers it all once the receiver moves', async () => {
    const hub = new LoopbackHub()
    let open!: () => void
    const gate = new Promise<void>((resolve) => (open = resolve))
    let handled = 0
    const server = transport(hub, { peerId: SERVER_ID, maxConcurrentHandlers: 1 })
    server.handle('sink', async () => {
      await gate
      handled++
      return null
    })
    const address = await server.listen('loopback://replica-3')
    const limits = { maxBufferedBytes: 256 * 1024, maxQueuedBytes: 512 * 1024 }
    const client = transport(hub, { peerId: CLIENT_ID, ...limits })
    const connection = await client.connect(address)
    const body = new Uint8Array(64 * 1024)
    const outcomes: Promise<string>[] = []
    let peak = 0
    for (let i = 0; i < 64; i++) {
      outcomes.push(connection.request('sink', body).then(() => 'ok', (e: { code: string }) => e.code))
      await new Promise((r) => setImmediate(r))
      peak = Math.max(peak, connection.bufferedBytes)
    }
    expect(peak).toBeLessThanOrEqual(limits.maxBufferedBytes + limits.maxQueuedBytes + 64 * 1024 + 100)
    open()
    const results = await Promise.all(outcomes)
    const ok = results.filter((r) => r === 'ok').length
    expect(results.filter((r) => r === 'TORUS_UNAVAILABLE').length).toBe(64 - ok)
    expect(ok).toBe(handled)
    expect(ok).toBeLessThan(64)
  })
})
