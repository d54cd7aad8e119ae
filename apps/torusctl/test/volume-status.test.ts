// torusctl volume status over a MemoryMetadataStore: the lock holder and the stale copies repair
// works through, as a table and as JSON; refused through a single torusd's control API.
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { peerId } from '@torus/core'
import { volumeStatus } from '../src/commands/volume.js'
import { UsageError } from '../src/endpoint.js'
import { GiB, MemoryCluster, PEER_A, PEER_B } from './helpers/memory-cluster.js'

let c: MemoryCluster
beforeEach(async () => {
  c = await MemoryCluster.create()
})
afterEach(async () => {
  await c.close()
})

describe('volume status', () => {
  it('says nobody serves a fresh volume and every copy is there', async () => {
    await c.backend.createVolume('pad', GiB)
    const out = await volumeStatus(c.backend, 'pad', c.ctx())
    expect(out).toMatch(/^VOLUME {5}pad \(id \d+, 1\.0 GiB, replication 2\)$/m)
    expect(out).toMatch(/^SERVED BY {2}nobody \(not open\)$/m)
    expect(out).toMatch(/^REPLICAS {3}complete: no stale copies$/m)
    expect(JSON.parse(await volumeStatus(c.backend, 'pad', c.ctx('json')))).toMatchObject({ lock: null, complete: true, staleReplicas: [] })
  })

  it('names the holder and its generation, and each peer with stale copies', async () => {
    const info = await c.backend.createVolume('pad', GiB)
    await c.heartbeat(PEER_A)
    const lock = await c.store.lockVolume('pad', 'torusd/x@10.0.0.9:40000', await c.store.grantLease(10_000))
    await c.store.addStaleReplicas([
      { volumeId: info.id, peer: peerId(PEER_A), index: 3, generation: lock.generation },
      { volumeId: info.id, peer: peerId(PEER_A), index: 7, generation: lock.generation },
      { volumeId: info.id, peer: peerId(PEER_B), index: 'all', generation: lock.generation },
    ])
    const out = await volumeStatus(c.backend, 'pad', c.ctx())
    expect(out).toContain(`SERVED BY  torusd/x@10.0.0.9:40000 (generation ${lock.generation})`)
    expect(out).toContain('REPLICAS   degraded: 2 peer(s) hold stale copies')
    expect(out).toContain(`  ${PEER_A} ws://10.0.0.1:40000: 2 block(s)`)
    expect(out).toContain(`  ${PEER_B}: the whole volume`)
    const json = JSON.parse(await volumeStatus(c.backend, 'pad', c.ctx('json')))
    expect(json).toMatchObject({ lock: { holder: 'torusd/x@10.0.0.9:40000', generation: lock.generation }, complete: false })
    expect(json.staleReplicas).toEqual([
      { peer: PEER_A, address: 'ws://10.0.0.1:40000', alive: true, wholeVolume: false, blocks: 2 },
      { peer: PEER_B, wholeVolume: true, blocks: 0 },
    ])
  })

  it('says no cluster is there (wrong endpoint or prefix) rather than "not found"', async () => {
    const empty = await MemoryCluster.create({ init: false })
    try {
      await expect(volumeStatus(empty.backend, 'pad', empty.ctx())).rejects.toMatchObject({ code: 'TORUS_NOT_INITIALIZED' })
    } finally {
      await empty.close()
    }
  })

  it('fails for an unknown volume or a bad name, and needs a cluster', async () => {
    await expect(volumeStatus(c.backend, 'nope', c.ctx())).rejects.toMatchObject({ code: 'TORUS_NOT_FOUND' })
    await expect(volumeStatus(c.backend, 'bad/name', c.ctx())).rejects.toThrow(UsageError)
    // A torusd's control API (HttpBackend) has no volumeHealth.
    const { HttpBackend } = await import('../src/http-backend.js')
    expect(HttpBackend.prototype).not.toHaveProperty('volumeHealth')
    const single = { endpoint: 'torus://127.0.0.1:40000' } as Parameters<typeof volumeStatus>[0]
    await expect(volumeStatus(single, 'pad', c.ctx())).rejects.toThrow(/single torusd/)
  })
})
