// Goal: MemoryMetadataStore details the contract suite does not pin down: lease timers for very
// long TTLs, and reopening the same instance. Method: a ManualClock wrapped to count timers.
import { describe, expect, it } from 'vitest'
import { ManualClock } from '@torus/core'
import type { Clock } from '@torus/core'
import { MemoryMetadataStore } from '../src/index.js'

const DAY_MS = 24 * 60 * 60 * 1000

function countingClock(): { clock: Clock; manual: ManualClock; timers: () => number } {
  const manual = new ManualClock()
  let count = 0
  const clock: Clock = {
    now: () => manual.now(),
    setTimeout: (fn, ms) => {
      count += 1
      return manual.setTimeout(fn, ms)
    },
    clearTimeout: (timer) => manual.clearTimeout(timer),
  }
  return { clock, manual, timers: () => count }
}

describe('MemoryMetadataStore', () => {
  it('keeps a lease with a TTL beyond the 2^31 ms timer limit until its deadline, re-arming rarely', async () => {
    const { clock, manual, timers } = countingClock()
    const store = new MemoryMetadataStore({ clock })
    await store.open()
    const lease = await store.grantLease(30 * DAY_MS)
    manual.advance(29 * DAY_MS)
    await store.keepAlive(lease)
    manual.advance(29 * DAY_MS)
    await store.keepAlive(lease)
    manual.advance(31 * DAY_MS)
    await expect(store.keepAlive(lease)).rejects.toMatchObject({ code: 'TORUS_LEASE_EXPIRED' })
    expect(timers()).toBeLessThan(10)
    await store.close()
  })

  it('keeps its state and expires leases again after close and open', async () => {
    const manual = new ManualClock()
    const store = new MemoryMetadataStore({ clock: manual })
    await store.open()
    await store.initCluster({ blockSizeBytes: 4096, replication: 1, ringType: 'single', createdAt: new Date(0).toISOString() })
    await store.createVolume({ name: 'pad', sizeBytes: 1024 * 1024 })
    await store.lockVolume('pad', 'node-a', await store.grantLease(1000))
    await store.close()
    await store.open()
    expect(await store.getVolumeLock('pad')).toMatchObject({ holder: 'node-a' })
    manual.advance(1000)
    expect(await store.getVolumeLock('pad')).toBeUndefined()
    await store.close()
  })
})
