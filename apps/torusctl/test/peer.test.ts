// list-peers and peer add/remove over a MemoryMetadataStore on a ManualClock: peers register
// with real leases as torusd does, time moves by hand so a lease really expires (DOWN), and the
// ring changes go through the store's compare-and-swap. Asserts exact table text and JSON shapes.
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { peerId } from '@torus/core'
import { listPeers, peerAdd, peerForget, peerRemove, LIST_PEERS_HEADER } from '../src/commands/peer.js'
import { UsageError } from '../src/endpoint.js'
import { GiB, MemoryCluster, PEER_A, PEER_B, PEER_C } from './helpers/memory-cluster.js'

let c: MemoryCluster
beforeEach(async () => {
  c = await MemoryCluster.create()
})
afterEach(async () => {
  await c.close()
})

function lines(text: string): string[] {
  return text.trimEnd().split('\n')
}

describe('list-peers', () => {
  it('prints the original header, one row per peer and the Balanced/Usage line', async () => {
    await c.heartbeat(PEER_A, { usedBytes: GiB, rebalanceBytesPerSec: 2 * 1024 * 1024, repairBytesPerSec: 0 })
    c.clock.advance(2000)
    const out = lines(await listPeers(c.backend, c.ctx()))
    expect(out[0]!.split(/\s{2,}/)).toEqual(LIST_PEERS_HEADER)
    expect(out[0]).toBe('ADDRESS              UUID                                  SIZE     USED     MEMBER  UPDATED        REB/REP DATA')
    expect(out[1]!.split(/\s{2,}/)).toEqual(['ws://10.0.0.1:40000', PEER_A, '5.0 GiB', '1.0 GiB', 'Avail', '2 seconds ago', '2.0 MiB/s / 0 B/s'])
    expect(out[2]).toBe('Balanced: false Usage: 20.00%')
    expect(out).toHaveLength(3)
  })

  it('names the volumes with stale copies after the Balanced line, and lists them in JSON', async () => {
    await c.heartbeat(PEER_A)
    const pad = await c.backend.createVolume('pad', GiB)
    await c.backend.createVolume('quiet', GiB)
    expect(lines(await listPeers(c.backend, c.ctx())).at(-1)).toMatch(/^Balanced: /)
    await c.store.addStaleReplicas([
      { volumeId: pad.id, peer: peerId(PEER_A), index: 1, generation: 1 },
      { volumeId: pad.id, peer: peerId(PEER_B), index: 'all', generation: 1 },
    ])
    const out = lines(await listPeers(c.backend, c.ctx()))
    expect(out.at(-2)).toMatch(/^Balanced: /)
    expect(out.at(-1)).toBe('Stale copies in 1 volume(s), repaired in the background: pad (torusctl volume status NAME)')
    const json = JSON.parse(await listPeers(c.backend, c.ctx('json'))) as { degradedVolumes: unknown }
    expect(json.degradedVolumes).toEqual([{ volume: 'pad', peers: 2 }])
  })

  it('shows OK for ring members and Balanced: true once members are current and idle', async () => {
    await c.heartbeat(PEER_A)
    await c.heartbeat(PEER_B)
    await peerAdd(c.backend, { uuids: [PEER_A, PEER_B], allPeers: false }, c.ctx())
    // Members still report ring version 0: not balanced yet.
    expect(lines(await listPeers(c.backend, c.ctx())).at(-1)).toBe('Balanced: false Usage: 0.00%')
    await c.heartbeat(PEER_A, { ringVersion: 1, usedBytes: GiB })
    await c.heartbeat(PEER_B, { ringVersion: 1 })
    const out = lines(await listPeers(c.backend, c.ctx()))
    expect(out.slice(1, 3).map((l) => l.split(/\s{2,}/)[4])).toEqual(['OK', 'OK'])
    expect(out.at(-1)).toBe('Balanced: true Usage: 10.00%')
  })

  it('shows a peer whose lease expired as DOWN instead of hiding it, and drops it from Usage', async () => {
    await c.heartbeat(PEER_A, { usedBytes: GiB }, 10_000)
    await c.heartbeat(PEER_B, { usedBytes: 0 }, 60_000)
    await peerAdd(c.backend, { uuids: [PEER_A, PEER_B], allPeers: false }, c.ctx())
    await c.heartbeat(PEER_A, { usedBytes: GiB, ringVersion: 1 }, 10_000)
    await c.heartbeat(PEER_B, { ringVersion: 1 }, 60_000)
    expect(lines(await listPeers(c.backend, c.ctx())).at(-1)).toBe('Balanced: true Usage: 10.00%')
    c.clock.advance(11_000)
    const out = lines(await listPeers(c.backend, c.ctx()))
    expect(out[1]!.split(/\s{2,}/)).toEqual(['ws://10.0.0.1:40000', PEER_A, '5.0 GiB', '1.0 GiB', 'DOWN', '11 seconds ago', '0 B/s / 0 B/s'])
    expect(out[2]!.split(/\s{2,}/)[4]).toBe('OK')
    expect(out.at(-1)).toBe('Balanced: false Usage: 0.00%')
  })

  it('lists ring members that never reported as DOWN rows', async () => {
    await c.store.setRing({ version: 1, type: 'ketama', replication: 2, members: [{ peer: PEER_C, weight: 1 }] })
    const out = lines(await listPeers(c.backend, c.ctx()))
    expect(out[1]!.split(/\s{2,}/)).toEqual(['-', PEER_C, '-', '-', 'DOWN', 'never', '-'])
    expect(out.at(-1)).toBe('Balanced: false Usage: 0.00%')
  })

  it('prints JSON with the ring, each peer with its member state, balanced and usagePercent', async () => {
    await c.heartbeat(PEER_A, { usedBytes: GiB })
    await c.heartbeat(PEER_B)
    await peerAdd(c.backend, { uuids: [PEER_A], allPeers: false }, c.ctx())
    const json = JSON.parse(await listPeers(c.backend, c.ctx('json'))) as Record<string, unknown>
    expect(json).toEqual({
      ring: { version: 1, type: 'ketama', replication: 2, members: [{ peer: PEER_A, weight: 5 * GiB }] },
      peers: [
        expect.objectContaining({ id: PEER_A, alive: true, usedBytes: GiB, capacityBytes: 5 * GiB, member: 'OK', inRing: true }),
        expect.objectContaining({ id: PEER_B, alive: true, member: 'Avail', inRing: false }),
      ],
      missingMembers: [],
      balanced: false,
      usagePercent: 10,
      degradedVolumes: [],
    })
  })

  it('fails with TORUS_NOT_INITIALIZED before init', async () => {
    const fresh = await MemoryCluster.create({ init: false })
    await expect(listPeers(fresh.backend, fresh.ctx())).rejects.toMatchObject({ code: 'TORUS_NOT_INITIALIZED', message: 'cluster is not initialised; run torusctl init' })
    await fresh.close()
  })
})

describe('peer add', () => {
  it('adds peers weighted by reported capacity and bumps the ring version', async () => {
    await c.heartbeat(PEER_A, { capacityBytes: 5 * GiB })
    await c.heartbeat(PEER_B, { capacityBytes: 2 * GiB })
    const out = await peerAdd(c.backend, { uuids: [PEER_B.toUpperCase(), PEER_A], allPeers: false }, c.ctx())
    expect(out).toBe(`adding peer ${PEER_B} (weight ${2 * GiB}: 2.0 GiB capacity)\nadding peer ${PEER_A} (weight ${5 * GiB}: 5.0 GiB capacity)\nring version 0 -> 1\n`)
    expect(await c.store.getRing()).toEqual({
      version: 1,
      type: 'ketama',
      replication: 2,
      members: [
        { peer: PEER_A, weight: 5 * GiB },
        { peer: PEER_B, weight: 2 * GiB },
      ],
    })
  })

  it('--all-peers adds every alive non-member and skips DOWN peers', async () => {
    await c.heartbeat(PEER_A)
    await c.heartbeat(PEER_B, {}, 5000)
    await c.heartbeat(PEER_C)
    await peerAdd(c.backend, { uuids: [PEER_A], allPeers: false }, c.ctx())
    c.clock.advance(6000)
    const json = JSON.parse(await peerAdd(c.backend, { uuids: [], allPeers: true }, c.ctx('json'))) as Record<string, unknown>
    expect(json).toMatchObject({ changed: true, previousVersion: 1, added: [PEER_C], ring: { version: 2, members: [{ peer: PEER_A }, { peer: PEER_C }] } })
    const again = await peerAdd(c.backend, { uuids: [], allPeers: true }, c.ctx())
    expect(again).toBe('every alive peer is already a ring member\nnothing changed; the ring stays at version 2\n')
  })

  it('says so and changes nothing for a peer that is already a member', async () => {
    await c.heartbeat(PEER_A)
    await peerAdd(c.backend, { uuids: [PEER_A], allPeers: false }, c.ctx())
    expect(await peerAdd(c.backend, { uuids: [PEER_A], allPeers: false }, c.ctx())).toBe(
      `peer ${PEER_A} is already a ring member\nnothing changed; the ring stays at version 1\n`,
    )
    expect((await c.store.getRing())!.version).toBe(1)
  })

  it('refuses an unknown UUID (naming it) and a DOWN peer, changing nothing', async () => {
    await c.heartbeat(PEER_A)
    await c.heartbeat(PEER_B, {}, 5000)
    await expect(peerAdd(c.backend, { uuids: [PEER_A, PEER_C], allPeers: false }, c.ctx())).rejects.toMatchObject({
      code: 'TORUS_NOT_FOUND',
      message: `unknown peer ${PEER_C}: never reported to this cluster (see torusctl list-peers)`,
    })
    c.clock.advance(7000)
    await expect(peerAdd(c.backend, { uuids: [PEER_B], allPeers: false }, c.ctx())).rejects.toMatchObject({
      code: 'TORUS_UNAVAILABLE',
      message: `peer ${PEER_B} (last heartbeat 7 seconds ago) is DOWN; start it before adding to the ring`,
    })
    expect((await c.store.getRing())!.version).toBe(0)
  })

  it('refuses a second member in a single ring with a hint to change the type', async () => {
    const single = await MemoryCluster.create({ init: false })
    await single.backend.initCluster({ ringType: 'single', replication: 1 })
    await single.heartbeat(PEER_A)
    await single.heartbeat(PEER_B)
    await expect(peerAdd(single.backend, { uuids: [PEER_A, PEER_B], allPeers: false }, single.ctx())).rejects.toThrow(
      'a single ring holds one peer (it has 0, adding 2); run torusctl ring set-type ketama first',
    )
    await peerAdd(single.backend, { uuids: [PEER_A], allPeers: false }, single.ctx())
    await expect(peerAdd(single.backend, { uuids: [], allPeers: true }, single.ctx())).rejects.toThrow(/ring set-type ketama/)
    expect((await single.store.getRing())!.members).toEqual([{ peer: PEER_A, weight: 5 * GiB }])
    await single.close()
  })

  it('treats bad UUIDs and contradictory arguments as usage errors', async () => {
    await expect(peerAdd(c.backend, { uuids: ['not-a-uuid'], allPeers: false }, c.ctx())).rejects.toThrow(UsageError)
    await expect(peerAdd(c.backend, { uuids: [PEER_A], allPeers: true }, c.ctx())).rejects.toThrow(UsageError)
    await expect(peerAdd(c.backend, { uuids: [], allPeers: false }, c.ctx())).rejects.toThrow(UsageError)
  })
})

describe('peer remove', () => {
  beforeEach(async () => {
    await c.heartbeat(PEER_A)
    await c.heartbeat(PEER_B)
    await peerAdd(c.backend, { uuids: [PEER_A, PEER_B], allPeers: false }, c.ctx())
  })

  it('removes members (even DOWN ones) and bumps the version', async () => {
    c.clock.advance(20_000)
    const json = JSON.parse(await peerRemove(c.backend, [PEER_B], c.ctx('json'))) as Record<string, unknown>
    expect(json).toMatchObject({ changed: true, previousVersion: 1, removed: [PEER_B], ring: { version: 2, members: [{ peer: PEER_A }] } })
  })

  it('says so for a known peer that is not a member, and refuses a never-seen UUID', async () => {
    await c.heartbeat(PEER_C)
    expect(await peerRemove(c.backend, [PEER_C], c.ctx())).toBe(`peer ${PEER_C} is not a ring member\nnothing changed; the ring stays at version 1\n`)
    await expect(peerRemove(c.backend, ['dddddddd-0000-4000-8000-000000000004'], c.ctx())).rejects.toMatchObject({ code: 'TORUS_NOT_FOUND' })
  })

  it('warns when the ring is left without members', async () => {
    const out = await peerRemove(c.backend, [PEER_A, PEER_B], c.ctx())
    expect(out).toContain('warning: the ring has no members now')
    expect(out.trimEnd().split('\n').at(-1)).toBe('ring version 1 -> 2')
  })
})

describe('peer forget', () => {
  it('drops a DOWN peer that left the ring; refuses a ring member and a live peer', async () => {
    await c.heartbeat(PEER_A)
    await c.heartbeat(PEER_B)
    await peerAdd(c.backend, { uuids: [PEER_A], allPeers: false }, c.ctx())
    await expect(peerForget(c.backend, [PEER_A], c.ctx())).rejects.toMatchObject({ code: 'TORUS_LOCKED' })
    await expect(peerForget(c.backend, [PEER_B], c.ctx())).rejects.toMatchObject({ code: 'TORUS_LOCKED' })
    await peerRemove(c.backend, [PEER_A], c.ctx())
    c.clock.advance(11_000)
    expect(await peerForget(c.backend, [PEER_A], c.ctx())).toBe(`forgot peer ${PEER_A}\n`)
    const remaining = JSON.parse(await listPeers(c.backend, c.ctx('json'))) as { peers: Array<{ id: string }> }
    expect(remaining.peers.map((p) => p.id)).not.toContain(PEER_A)
    await expect(peerForget(c.backend, [PEER_C], c.ctx())).rejects.toMatchObject({ code: 'TORUS_NOT_FOUND' })
    await expect(peerForget(c.backend, ['nope'], c.ctx())).rejects.toBeInstanceOf(UsageError)
  })
})
