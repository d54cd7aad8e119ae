// Goal: IdleRepair opens a volume nobody holds only when it should — on the ring member with the
// lowest id, only while every member is alive, only for a volume with stale records and no lock
// holder — and lets it go once its stale marks are gone.
// Method: a MemoryMetadataStore with peers registered under leases (a revoked lease is a dead
// peer), a real VolumeManager over a MemoryBlockStore, and the stale-mark count the repair loop
// would report, counted down by the test.
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { MemoryBlockStore } from '@torus/blockstore'
import { silentLogger, type LeaseId, type PeerId, type RingDescriptor } from '@torus/core'
import { MemoryMetadataStore } from '@torus/metadata'
import { VolumeManager } from '@torus/volume'
import { IdleRepair } from '../src/idle-repair.js'

const B = 4096
const PEERS = ['00000000-0000-4000-8000-00000000000a', '00000000-0000-4000-8000-00000000000b'] as const
let metadata: MemoryMetadataStore
let store: MemoryBlockStore
let volumes: VolumeManager
let leases: LeaseId[]
let volumeId: number

beforeEach(async () => {
  metadata = new MemoryMetadataStore()
  await metadata.open()
  await metadata.initCluster({ blockSizeBytes: B, replication: 2, ringType: 'mod', createdAt: new Date().toISOString() })
  volumeId = (await metadata.createVolume({ name: 'pad', sizeBytes: 1024 * 1024 })).id
  leases = []
  for (const id of PEERS) {
    const lease = await metadata.grantLease(60_000)
    leases.push(lease)
    await metadata.putPeer({ id, address: 'ws://127.0.0.1:1', capacityBytes: 1, usedBytes: 0, rebalanceBytesPerSec: 0, repairBytesPerSec: 0, ringVersion: 1, version: 't', updatedAt: new Date().toISOString() }, lease)
  }
  store = new MemoryBlockStore({ blockSizeBytes: B })
  await store.open()
  volumes = new VolumeManager({ metadata, store, holder: 'torusd/test', leaseTtlMs: 10_000, logger: silentLogger })
})

afterEach(async () => {
  await volumes.closeAll()
  await store.close()
  await metadata.close()
})

const ring: RingDescriptor = { version: 1, type: 'mod', replication: 2, members: PEERS.map((peer) => ({ peer: peer as PeerId, weight: 1 })) }

function idle(peerId: string, marks: () => number): IdleRepair {
  return new IdleRepair({ metadata, volumes, staleMarks: marks, ring: () => ring, peerId, stallMs: 2_000, logger: silentLogger })
}

async function staleRecord(): Promise<void> {
  await metadata.addStaleReplicas([{ volumeId: volumeId as never, peer: PEERS[1] as PeerId, index: 3, generation: 1 }])
}

describe('IdleRepair', () => {
  it('holds a volume with stale records while its marks go down, then lets it go', async () => {
    await staleRecord()
    let marks = 3
    const seen: (string | undefined)[] = []
    const repair = idle(PEERS[0], () => {
      seen.push(volumes.held().map((v) => v.name).join())
      return marks > 0 ? marks-- : 0
    })
    await repair.runOnce()
    expect(seen).toContain('pad')
    expect(marks).toBe(0)
    expect(volumes.held()).toEqual([])
    expect(await metadata.getVolumeLock('pad')).toBeUndefined()
  })

  it('leaves it alone on a member that is not the lowest id, while a member is down, or without stale records', async () => {
    let asked = 0
    const count = (): number => (asked++, 0)
    await idle(PEERS[0], count).runOnce()
    expect(asked).toBe(0) // no stale records
    await staleRecord()
    await idle(PEERS[1], count).runOnce()
    expect(asked).toBe(0) // not the lowest id
    await metadata.revokeLease(leases[1]!)
    await idle(PEERS[0], count).runOnce()
    expect(asked).toBe(0) // a member is down: opening now would record it stale for the whole volume
  })

  it('leaves it alone when a member is alive in etcd but cannot be reached', async () => {
    await staleRecord()
    let asked = 0
    const seen: string[][] = []
    await new IdleRepair({
      metadata,
      volumes,
      staleMarks: () => (asked++, 0),
      ring: () => ring,
      peerId: PEERS[0],
      reachable: async (peers) => (seen.push([...peers]), false),
      logger: silentLogger,
    }).runOnce()
    expect(seen).toEqual([[...PEERS]])
    expect(asked).toBe(0)
  })

  it('keeps holding while repair copies (a whole-volume rejoin) though the marks stay, and stops when they go', async () => {
    await staleRecord()
    let copied = 0
    let calls = 0
    const repair = new IdleRepair({
      metadata,
      volumes,
      // One mark for ~1.5 s (well past stallMs) while bytes keep landing, then none. Without
      // counting the bytes, the hold would end as stalled after about a second (5 calls).
      staleMarks: () => (++calls < 8 ? 1 : 0),
      progress: () => (copied += 1024),
      ring: () => ring,
      peerId: PEERS[0],
      stallMs: 600,
      logger: silentLogger,
    })
    await repair.runOnce()
    expect(calls).toBe(8)
  })

  it('checks before each volume that every member is still up, and skips records on peers outside the ring', async () => {
    const second = (await metadata.createVolume({ name: 'second', sizeBytes: 1024 * 1024 })).id
    const outsider = '00000000-0000-4000-8000-0000000000ff' as PeerId
    await metadata.addStaleReplicas([
      { volumeId: volumeId as never, peer: PEERS[1] as PeerId, index: 3, generation: 1 },
      { volumeId: second as never, peer: PEERS[1] as PeerId, index: 3, generation: 1 },
    ])
    const opened: string[] = []
    let marks = 1
    await new IdleRepair({
      metadata,
      volumes,
      staleMarks: () => {
        const name = volumes.held().map((v) => v.name).join()
        if (!opened.includes(name)) opened.push(name)
        // While the first volume is held, member b dies.
        if (marks === 1) void metadata.revokeLease(leases[1]!)
        return marks-- > 0 ? 1 : 0
      },
      ring: () => ring,
      peerId: PEERS[0],
      logger: silentLogger,
    }).runOnce()
    expect(opened).toHaveLength(1)
    // A record on a peer that is not a ring member alone: nothing to open for.
    await metadata.clearStaleReplicas([{ volumeId: volumeId as never, peer: PEERS[1] as PeerId, index: 3 }, { volumeId: second as never, peer: PEERS[1] as PeerId, index: 3 }])
    await metadata.addStaleReplicas([{ volumeId: second as never, peer: outsider, index: 0, generation: 1 }])
    const lease = await metadata.grantLease(60_000)
    await metadata.putPeer({ id: PEERS[1], address: 'ws://127.0.0.1:1', capacityBytes: 1, usedBytes: 0, rebalanceBytesPerSec: 0, repairBytesPerSec: 0, ringVersion: 1, version: 't', updatedAt: new Date().toISOString() }, lease)
    let asked = 0
    await idle(PEERS[0], () => (asked++, 0)).runOnce()
    expect(asked).toBe(0)
  })

  it('does not take a volume someone holds, and gives up on one whose repair stalls', async () => {
    await staleRecord()
    const held = await volumes.acquire('pad')
    const other = new VolumeManager({ metadata, store, holder: 'torusd/other', leaseTtlMs: 10_000, logger: silentLogger })
    let asked = 0
    await new IdleRepair({ metadata, volumes: other, staleMarks: () => (asked++, 1), ring: () => ring, peerId: PEERS[0], stallMs: 1_000, logger: silentLogger }).runOnce()
    expect(asked).toBe(0)
    await held!.release()
    // Marks that never go down: the hold ends after stallMs and the lock is released.
    const started = Date.now()
    await new IdleRepair({ metadata, volumes: other, staleMarks: () => (asked++, 1), ring: () => ring, peerId: PEERS[0], stallMs: 1_000, logger: silentLogger }).runOnce()
    expect(asked).toBeGreaterThan(0)
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_000)
    expect(await metadata.getVolumeLock('pad')).toBeUndefined()
    await other.closeAll()
  })
})
