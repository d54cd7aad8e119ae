// ring get / set-type / set-replication and the compare-and-swap loop behind every ring change,
// over a MemoryMetadataStore. Concurrent admins are simulated by a backend whose setRing lets
// another writer win first, so the conflict is the store's real TORUS_CONFLICT.
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { TorusError, type RingDescriptor } from '@torus/core'
import type { ClusterBackend } from '../src/backend.js'
import { peerAdd } from '../src/commands/peer.js'
import { ringGet, ringSetReplication, ringSetType } from '../src/commands/ring.js'
import { UsageError } from '../src/endpoint.js'
import { MAX_RING_ATTEMPTS, updateRing } from '../src/ring-update.js'
import { GiB, MemoryCluster, PEER_A, PEER_B, PEER_C } from './helpers/memory-cluster.js'

let c: MemoryCluster
beforeEach(async () => {
  c = await MemoryCluster.create()
})
afterEach(async () => {
  await c.close()
})

/** A plain object forwarding every call to `inner`, so a test can replace one method. */
function delegate(inner: ClusterBackend): ClusterBackend {
  return {
    endpoint: inner.endpoint,
    getCluster: () => inner.getCluster(),
    initCluster: (r) => inner.initCluster(r),
    listVolumes: () => inner.listVolumes(),
    createVolume: (n, s) => inner.createVolume(n, s),
    deleteVolume: (n) => inner.deleteVolume(n),
    listPeers: () => inner.listPeers(),
    forgetPeer: (id) => inner.forgetPeer(id),
    getRing: () => inner.getRing(),
    setRing: (next) => inner.setRing(next),
    close: () => inner.close(),
  }
}

/** A backend whose next `races` setRing calls are each beaten by `rival` (another admin). */
function racingBackend(inner: ClusterBackend, races: number, rival: (ring: RingDescriptor) => RingDescriptor): ClusterBackend & { setRingCalls: number } {
  let left = races
  const b = Object.assign(delegate(inner), { setRingCalls: 0 })
  b.setRing = async (next) => {
    b.setRingCalls++
    if (left-- > 0) {
      const current = await inner.getRing()
      await inner.setRing({ ...rival(current), version: current.version + 1 })
    }
    return inner.setRing(next)
  }
  return b
}

describe('ring get', () => {
  it('prints version, type, replication and a member table with human weight, address and state (raw bytes in JSON)', async () => {
    await c.heartbeat(PEER_A)
    await c.heartbeat(PEER_B, {}, 5000)
    await peerAdd(c.backend, { uuids: [PEER_A, PEER_B], allPeers: false }, c.ctx())
    c.clock.advance(6000)
    expect(await ringGet(c.backend, c.ctx())).toBe(
      [
        'Version: 1',
        'Type: ketama',
        'Replication: 2',
        'UUID                                  WEIGHT   ADDRESS              STATE',
        `${PEER_A}  5.0 GiB  ws://10.0.0.1:40000  OK`,
        `${PEER_B}  5.0 GiB  ws://10.0.0.2:40000  DOWN`,
        '',
      ].join('\n'),
    )
    expect(JSON.parse(await ringGet(c.backend, c.ctx('json')))).toEqual({
      version: 1,
      type: 'ketama',
      replication: 2,
      members: [
        { peer: PEER_A, weight: 5 * GiB, address: 'ws://10.0.0.1:40000', state: 'OK' },
        { peer: PEER_B, weight: 5 * GiB, address: 'ws://10.0.0.2:40000', state: 'DOWN' },
      ],
    })
  })

  it('shows the version-0 ring of a fresh cluster with a hint', async () => {
    const out = await ringGet(c.backend, c.ctx())
    expect(out).toContain('Version: 0\nType: ketama\nReplication: 2\n')
    expect(out).toContain('torusctl peer add --all-peers')
  })
})

describe('ring set-type / set-replication', () => {
  it('changes the type and prints old -> new version', async () => {
    expect(await ringSetType(c.backend, 'mod', c.ctx())).toBe('type ketama -> mod\nring version 0 -> 1\n')
    expect(await ringSetType(c.backend, 'mod', c.ctx())).toBe('the ring is already mod\nnothing changed; the ring stays at version 1\n')
    expect(await c.store.getRing()).toMatchObject({ version: 1, type: 'mod' })
  })

  it('refuses single while the ring has more than one member', async () => {
    await c.heartbeat(PEER_A)
    await c.heartbeat(PEER_B)
    await peerAdd(c.backend, { uuids: [], allPeers: true }, c.ctx())
    await expect(ringSetType(c.backend, 'single', c.ctx())).rejects.toMatchObject({ code: 'TORUS_INVALID_ARGUMENT', message: expect.stringContaining('peer remove') })
  })

  it('changes replication, notes when members are fewer, and rejects 0 or 17 as usage errors', async () => {
    await c.heartbeat(PEER_A)
    await peerAdd(c.backend, { uuids: [PEER_A], allPeers: false }, c.ctx())
    const json = JSON.parse(await ringSetReplication(c.backend, 3, c.ctx('json'))) as Record<string, unknown>
    expect(json).toMatchObject({ changed: true, previousVersion: 1, ring: { version: 2, replication: 3 } })
    expect(json.notes).toEqual(['replication 2 -> 3', 'note: the ring has 1 member(s), so each block is stored 1 time(s) until more peers are added'])
    for (const bad of [0, 17, 1.5, 'abc', '1e1', '0x2', '', '-1']) await expect(ringSetReplication(c.backend, bad, c.ctx()), String(bad)).rejects.toThrow(UsageError)
    await expect(ringSetReplication(c.backend, 'abc', c.ctx())).rejects.toThrow('invalid replication "abc"')
    expect(JSON.parse(await ringSetReplication(c.backend, ' 2 ', c.ctx('json')))).toMatchObject({ ring: { replication: 2 } })
  })
})

describe('ring changes while volumes exist', () => {
  it('are refused (rebalance is not built: their data would read as missing) unless --force', async () => {
    await c.heartbeat(PEER_A)
    await c.heartbeat(PEER_B)
    await peerAdd(c.backend, { uuids: [PEER_A], allPeers: false }, c.ctx())
    await c.store.createVolume({ name: 'pad', sizeBytes: GiB })
    const refused = { code: 'TORUS_NOT_SUPPORTED', message: expect.stringMatching(/1 volume\(s\) \(pad\).*rebalance\) is not built yet.*--force/) }
    await expect(peerAdd(c.backend, { uuids: [PEER_B], allPeers: false }, c.ctx())).rejects.toMatchObject(refused)
    await expect(ringSetType(c.backend, 'mod', c.ctx())).rejects.toMatchObject(refused)
    await expect(ringSetReplication(c.backend, 3, c.ctx())).rejects.toMatchObject(refused)
    expect(await c.store.getRing()).toMatchObject({ version: 1, type: 'ketama', replication: 2 })
    // A request that changes nothing is still answered.
    expect(await peerAdd(c.backend, { uuids: [PEER_A], allPeers: false }, c.ctx())).toContain('already a ring member')
    expect(await peerAdd(c.backend, { uuids: [PEER_B], allPeers: false, force: true }, c.ctx())).toContain('ring version 1 -> 2')
  })
})

describe('updateRing (compare-and-swap)', () => {
  it('re-reads and re-applies its change when another writer wins the race', async () => {
    await c.heartbeat(PEER_A)
    await c.heartbeat(PEER_B)
    await c.heartbeat(PEER_C)
    await peerAdd(c.backend, { uuids: [PEER_A], allPeers: false }, c.ctx())
    // Another admin adds PEER_B between our read and our write.
    const racing = racingBackend(c.backend, 1, (r) => ({ ...r, members: [...r.members, { peer: PEER_B, weight: 1 }] }))
    const out = await peerAdd(racing, { uuids: [PEER_C], allPeers: false }, c.ctx())
    expect(out.trimEnd().split('\n').at(-1)).toBe('ring version 2 -> 3 (after 1 concurrent change(s), re-read and applied again)')
    expect(racing.setRingCalls).toBe(2)
    expect((await c.store.getRing())!.members.map((m) => m.peer)).toEqual([PEER_A, PEER_B, PEER_C])
  })

  it('decides again on the fresh ring: a rival that already made the change leaves nothing to do', async () => {
    const racing = racingBackend(c.backend, 1, (r) => ({ ...r, type: 'mod' }))
    const update = await updateRing(racing, (ring) => (ring.type === 'mod' ? { notes: ['already mod'] } : { type: 'mod', notes: [] }))
    expect(update).toMatchObject({ changed: false, attempts: 2, notes: ['already mod'], ring: { version: 1, type: 'mod' } })
  })

  it(`gives up with TORUS_CONFLICT after ${MAX_RING_ATTEMPTS} lost races`, async () => {
    const racing = racingBackend(c.backend, Infinity, (r) => ({ ...r, replication: r.replication === 2 ? 3 : 2 }))
    await expect(updateRing(racing, (ring) => ({ replication: ring.replication === 5 ? 4 : 5, notes: [] }))).rejects.toMatchObject({
      code: 'TORUS_CONFLICT',
      message: expect.stringContaining(`gave up after ${MAX_RING_ATTEMPTS} attempts`),
    })
    expect(racing.setRingCalls).toBe(MAX_RING_ATTEMPTS)
  })

  it('passes other errors through without retrying', async () => {
    let calls = 0
    const failing = delegate(c.backend)
    failing.setRing = async () => {
      calls++
      throw new TorusError('TORUS_UNAVAILABLE', 'boom')
    }
    await expect(updateRing(failing, () => ({ type: 'mod', notes: [] }))).rejects.toThrow('boom')
    expect(calls).toBe(1)
  })
})
