// Goal: openVolume enforces one writer per volume through a leased lock, keeps the lease alive, and fences
// itself once the lease is lost. Method: MemoryMetadataStore on a ManualClock, advanced in small steps.
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { MemoryBlockStore } from '@torus/blockstore'
import { ManualClock, TorusError, type MetadataStore } from '@torus/core'
import { MemoryMetadataStore } from '@torus/metadata'
import { openVolume, type OpenVolumeOptions, type Volume } from '../src/index.js'

const B = 4096
const TTL = 3000

let clock: ManualClock
let metadata: MemoryMetadataStore
let store: MemoryBlockStore
const opened: Volume[] = []

beforeEach(async () => {
  clock = new ManualClock()
  metadata = new MemoryMetadataStore({ clock })
  await metadata.open()
  await metadata.initCluster({ blockSizeBytes: B, replication: 1, ringType: 'single', createdAt: new Date(clock.now()).toISOString() })
  await metadata.createVolume({ name: 'pad', sizeBytes: 1024 * 1024 })
  store = new MemoryBlockStore({ blockSizeBytes: B })
  await store.open()
})

afterEach(async () => {
  for (const v of opened.splice(0)) await v.close().catch(() => {})
  await store.close()
  await metadata.close()
})

async function open(overrides: Partial<OpenVolumeOptions> = {}): Promise<Volume> {
  const volume = await openVolume({ metadata, store, name: 'pad', holder: 'torusd@a:4321', leaseTtlMs: TTL, clock, ...overrides })
  opened.push(volume)
  return volume
}

/** Moves the clock in small steps, letting keep-alive promises settle between them. */
async function advance(ms: number, stepMs = 100): Promise<void> {
  for (let done = 0; done < ms; done += stepMs) {
    clock.advance(Math.min(stepMs, ms - done))
    await new Promise((resolve) => setImmediate(resolve))
  }
}

async function rejection(fn: () => Promise<unknown>): Promise<unknown> {
  try {
    await fn()
  } catch (err) {
    return err
  }
  throw new Error('expected a rejection')
}

/** A metadata store whose keepAlive fails with `code` while `failing` is set. */
function flaky(inner: MetadataStore, code: 'TORUS_UNAVAILABLE'): { store: MetadataStore; setFailing(on: boolean): void } {
  let failing = false
  const store = new Proxy(inner, {
    get(target, prop) {
      if (prop === 'keepAlive' && failing) return async () => Promise.reject(new TorusError(code, 'etcd unreachable'))
      const value = Reflect.get(target, prop, target) as unknown
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value
    },
  })
  return { store, setFailing: (on) => (failing = on) }
}

describe('openVolume', () => {
  it('fails with TORUS_NOT_FOUND for a volume that does not exist', async () => {
    expect(await rejection(() => open({ name: 'nope' }))).toMatchObject({ code: 'TORUS_NOT_FOUND' })
  })

  it('takes the write lock and exposes its generation', async () => {
    const volume = await open()
    expect(volume.generation).toBeTypeOf('number')
    expect(await metadata.getVolumeLock('pad')).toMatchObject({ holder: 'torusd@a:4321', generation: volume.generation })
    await volume.write(0, new Uint8Array([1, 2, 3]))
  })

  it('fails a second open with TORUS_LOCKED naming the holder', async () => {
    await open()
    const err = await rejection(() => open({ holder: 'torusd@b:4321' }))
    expect(err).toMatchObject({ code: 'TORUS_LOCKED' })
    expect((err as Error).message).toContain('torusd@a:4321')
  })

  it('keeps the lock across many lease lifetimes', async () => {
    const volume = await open()
    await advance(TTL * 5)
    expect(volume.lost).toBeUndefined()
    await volume.write(0, new Uint8Array([1]))
    expect(await metadata.getVolumeLock('pad')).toMatchObject({ generation: volume.generation })
    expect(await rejection(() => open({ holder: 'torusd@b:4321' }))).toMatchObject({ code: 'TORUS_LOCKED' })
  })

  it('releases the lock on close, so the next open gets a higher generation', async () => {
    const first = await open()
    await first.write(0, new Uint8Array([7]))
    await first.close()
    expect(await metadata.getVolumeLock('pad')).toBeUndefined()
    const second = await open({ holder: 'torusd@b:4321' })
    expect(second.generation).toBeGreaterThan(first.generation!)
    const byte = new Uint8Array(1)
    await second.read(0, byte)
    expect(byte[0]).toBe(7)
  })

  it('opens read-only without a lock while someone else holds it', async () => {
    await open()
    const reader = await open({ holder: 'torusctl', readOnly: true })
    expect(reader.generation).toBeUndefined()
    expect(reader.supports.readOnly).toBe(true)
    expect(await rejection(() => reader.write(0, new Uint8Array(1)))).toMatchObject({ code: 'TORUS_READ_ONLY' })
  })

  it('fails writes, trims, zeroes and flushes with TORUS_LEASE_EXPIRED once the lease is gone, and fires onLost', async () => {
    const lost: TorusError[] = []
    const volume = await open({ onLost: (err) => lost.push(err) })
    await volume.write(0, new Uint8Array([5]))
    // Someone (an operator, or etcd after a partition) revokes the lease behind our back.
    await metadata.revokeLease(volume.lock!.leaseId)
    await advance(TTL / 3 + 100)
    expect(lost).toHaveLength(1)
    expect(lost[0]).toMatchObject({ code: 'TORUS_LEASE_EXPIRED' })
    expect(volume.lost).toBe(lost[0])
    for (const op of [
      () => volume.write(0, new Uint8Array(1)),
      () => volume.trim(0, B),
      () => volume.writeZeroes(0, B),
      () => volume.flush(),
    ]) {
      expect(await rejection(op)).toMatchObject({ code: 'TORUS_LEASE_EXPIRED' })
    }
    const byte = new Uint8Array(1)
    await volume.read(0, byte)
    expect(byte[0]).toBe(5)
    await volume.close()
    // A new holder can take over.
    const next = await open({ holder: 'torusd@b:4321' })
    expect(next.generation).toBeGreaterThan(volume.generation!)
  })

  it('rides out keep-alive failures shorter than the lease', async () => {
    const { store: flakyMeta, setFailing } = flaky(metadata, 'TORUS_UNAVAILABLE')
    const lost: TorusError[] = []
    const volume = await open({ metadata: flakyMeta, onLost: (err) => lost.push(err) })
    setFailing(true)
    await advance(TTL / 2)
    setFailing(false)
    await advance(TTL * 3)
    expect(lost).toHaveLength(0)
    await volume.write(0, new Uint8Array(1))
  })

  it('stops writing on its own when keep-alives fail for a whole lease', async () => {
    const { store: flakyMeta, setFailing } = flaky(metadata, 'TORUS_UNAVAILABLE')
    const lost: TorusError[] = []
    const volume = await open({ metadata: flakyMeta, onLost: (err) => lost.push(err) })
    setFailing(true)
    await advance(TTL + 200)
    expect(lost).toHaveLength(1)
    expect(await rejection(() => volume.write(0, new Uint8Array(1)))).toMatchObject({ code: 'TORUS_LEASE_EXPIRED' })
    setFailing(false)
    await advance(TTL)
    // Losing is final: a recovered metadata store does not bring the lock back.
    expect(await rejection(() => volume.write(0, new Uint8Array(1)))).toMatchObject({ code: 'TORUS_LEASE_EXPIRED' })
    expect(lost).toHaveLength(1)
  })

  it('keeps serving past the lapse while the store is unreachable, within unreachableGraceMs', async () => {
    // etcd renews every lease when it comes back, so after an outage the lease is still there.
    // Model that: keep-alives reach the store, but the holder only ever sees UNAVAILABLE.
    let failing = false
    const flakyMeta = new Proxy(metadata, {
      get(target, prop) {
        if (prop === 'keepAlive') {
          return async (leaseId: string) => {
            await target.keepAlive(leaseId)
            if (failing) throw new TorusError('TORUS_UNAVAILABLE', 'injected: reply lost')
          }
        }
        const value = Reflect.get(target, prop, target) as unknown
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value
      },
    })
    const setFailing = (on: boolean): void => {
      failing = on
    }
    const lost: TorusError[] = []
    const volume = await open({ metadata: flakyMeta, onLost: (err) => lost.push(err), unreachableGraceMs: 3 * TTL })
    setFailing(true)
    await advance(2 * TTL)
    expect(lost).toHaveLength(0)
    await volume.write(0, new Uint8Array([7]))
    setFailing(false)
    await advance(TTL * 3)
    expect(lost).toHaveLength(0)
    await volume.write(0, new Uint8Array([8]))
  })

  it('loses the lock once the unreachable grace runs out', async () => {
    const { store: flakyMeta, setFailing } = flaky(metadata, 'TORUS_UNAVAILABLE')
    const lost: TorusError[] = []
    const volume = await open({ metadata: flakyMeta, onLost: (err) => lost.push(err), unreachableGraceMs: TTL })
    setFailing(true)
    await advance(2 * TTL + 400)
    expect(lost).toHaveLength(1)
    expect(await rejection(() => volume.write(0, new Uint8Array(1)))).toMatchObject({ code: 'TORUS_LEASE_EXPIRED' })
  })

  it('gives no grace when the store says the lease is gone', async () => {
    const lost: TorusError[] = []
    const volume = await open({ onLost: (err) => lost.push(err), unreachableGraceMs: 10 * TTL })
    await metadata.revokeLease(volume.lock!.leaseId)
    await advance(TTL)
    expect(lost).toHaveLength(1)
    expect(await rejection(() => volume.write(0, new Uint8Array(1)))).toMatchObject({ code: 'TORUS_LEASE_EXPIRED' })
  })

  it('stops keep-alives after close', async () => {
    const volume = await open()
    const leaseId = volume.lock!.leaseId
    await volume.close()
    await advance(TTL * 2)
    expect(await rejection(() => metadata.keepAlive(leaseId))).toMatchObject({ code: 'TORUS_LEASE_EXPIRED' })
  })
})
