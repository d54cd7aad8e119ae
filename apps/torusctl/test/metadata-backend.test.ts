// init, volume and status commands over MetadataBackend (the etcd path) with a MemoryMetadataStore
// in place of etcd: defaults, the refused second init, the volume life cycle with the same output
// as the torus:// path, a locked volume's refusal, and how unreachable-backend errors read.
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { TorusError } from '@torus/core'
import { init } from '../src/commands/init.js'
import { status } from '../src/commands/status.js'
import { volumeCreateBlock, volumeDelete, volumeList } from '../src/commands/volume.js'
import { UsageError } from '../src/endpoint.js'
import { unreachable } from '../src/metadata-backend.js'
import { GiB, MemoryCluster, PEER_A, PEER_B } from './helpers/memory-cluster.js'

let c: MemoryCluster
beforeEach(async () => {
  c = await MemoryCluster.create({ init: false })
})
afterEach(async () => {
  await c.close()
})

describe('init', () => {
  it('writes the etcd defaults once: 512KiB blocks, replication 2, ketama', async () => {
    expect(await init(c.backend, {}, c.ctx())).toBe('initialised cluster: block size 512.0 KiB, replication 2, ring ketama\n')
    expect(await c.store.getClusterConfig()).toEqual({ id: expect.any(String), blockSizeBytes: 512 * 1024, replication: 2, ringType: 'ketama', createdAt: new Date(c.clock.now()).toISOString() })
  })

  it('takes options, and prints the config as JSON', async () => {
    const json = JSON.parse(await init(c.backend, { blockSize: '1MiB', replication: 3, ringType: 'mod' }, c.ctx('json'))) as Record<string, unknown>
    expect(json).toMatchObject({ blockSizeBytes: 1024 * 1024, replication: 3, ringType: 'mod' })
    expect(await c.store.getRing()).toEqual({ version: 0, type: 'mod', replication: 3, members: [] })
  })

  it('refuses a second init with the settings in force and changes nothing', async () => {
    await init(c.backend, {}, c.ctx())
    await expect(init(c.backend, { replication: 5 }, c.ctx())).rejects.toMatchObject({
      code: 'TORUS_ALREADY_EXISTS',
      message: 'cluster already initialised (block size 512.0 KiB, replication 2, ring ketama); nothing changed',
    })
    expect((await c.store.getClusterConfig())!.replication).toBe(2)
  })

  it('rejects bad block sizes and replication as usage errors before writing', async () => {
    for (const options of [{ blockSize: 'lots' }, { blockSize: '1000' }, { replication: 0 }, { replication: 17 }]) {
      await expect(init(c.backend, options, c.ctx()), JSON.stringify(options)).rejects.toThrow(UsageError)
    }
    expect(await c.store.getClusterConfig()).toBeUndefined()
  })
})

describe('volume', () => {
  beforeEach(async () => {
    await init(c.backend, {}, c.ctx())
  })

  it('creates, lists (table and JSON) and deletes like the torus:// path', async () => {
    // This cluster's ring is still empty, which the output points out.
    expect(await volumeCreateBlock(c.backend, 'pad', '1GiB', c.ctx())).toMatch(/^created block volume pad \(1\.0 GiB\)\nnote: the ring has no members yet/)
    expect(JSON.parse(await volumeCreateBlock(c.backend, 'pad2', '1GiB', c.ctx('json')))).toMatchObject({ name: 'pad2' })
    await volumeDelete(c.backend, 'pad2', c.ctx())
    expect(await volumeList(c.backend, c.ctx())).toBe('VOLUME NAME  SIZE     TYPE\npad          1.0 GiB  block\n')
    expect(JSON.parse(await volumeList(c.backend, c.ctx('json')))).toEqual([
      expect.objectContaining({ name: 'pad', sizeBytes: GiB, type: 'block', blockSizeBytes: 512 * 1024, replication: 2, id: 1 }),
    ])
    expect(await volumeDelete(c.backend, 'pad', c.ctx())).toBe('deleted volume pad\n')
    expect(await volumeList(c.backend, c.ctx())).toBe('VOLUME NAME  SIZE  TYPE\n')
  })

  it('refuses to delete a locked volume with the store message', async () => {
    await volumeCreateBlock(c.backend, 'pad', '1GiB', c.ctx())
    const lease = await c.store.grantLease(10_000)
    await c.store.lockVolume('pad', 'torusd@node-a', lease)
    await expect(volumeDelete(c.backend, 'pad', c.ctx())).rejects.toMatchObject({ code: 'TORUS_LOCKED', message: 'volume pad is locked by torusd@node-a' })
    c.clock.advance(11_000)
    expect(await volumeDelete(c.backend, 'pad', c.ctx())).toBe('deleted volume pad\n')
  })

  it('reports duplicates and missing volumes with their codes', async () => {
    await volumeCreateBlock(c.backend, 'dup', '16MiB', c.ctx())
    await expect(volumeCreateBlock(c.backend, 'dup', '16MiB', c.ctx())).rejects.toMatchObject({ code: 'TORUS_ALREADY_EXISTS' })
    await expect(volumeDelete(c.backend, 'nope', c.ctx())).rejects.toMatchObject({ code: 'TORUS_NOT_FOUND', message: 'volume nope does not exist' })
  })
})

describe('volume before init', () => {
  it('says to run torusctl init', async () => {
    await expect(volumeCreateBlock(c.backend, 'pad', '1GiB', c.ctx())).rejects.toMatchObject({
      code: 'TORUS_NOT_INITIALIZED',
      message: 'cluster is not initialised; run torusctl init',
    })
  })
})

describe('status without a daemon', () => {
  it('prints a cluster summary: config, ring, peers alive/total, volumes', async () => {
    await init(c.backend, {}, c.ctx())
    await c.heartbeat(PEER_A)
    await c.heartbeat(PEER_B, {}, 1000)
    c.clock.advance(2000)
    await volumeCreateBlock(c.backend, 'pad', '1GiB', c.ctx())
    expect(await status(c.backend, c.ctx())).toBe(
      'Cluster at memory: block size 512.0 KiB, replication 2, ring ketama\nRing: version 0, ketama, replication 2, 0 members\nPeers: 1 alive, 2 total\nVolumes: 1\n',
    )
    expect(JSON.parse(await status(c.backend, c.ctx('json')))).toMatchObject({
      cluster: { blockSizeBytes: 512 * 1024, replication: 2, ringType: 'ketama' },
      ring: { version: 0, type: 'ketama', replication: 2, members: 0 },
      peers: { alive: 1, total: 2 },
      volumes: 1,
    })
  })

  it('fails with TORUS_NOT_INITIALIZED on a fresh cluster', async () => {
    await expect(status(c.backend, c.ctx())).rejects.toMatchObject({ code: 'TORUS_NOT_INITIALIZED' })
  })
})

describe('unreachable', () => {
  it('turns etcd transport errors into one clear line, and leaves others alone', () => {
    const refused = new TorusError('TORUS_UNAVAILABLE', 'etcd is unavailable: 14 UNAVAILABLE: No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:1. Resolution note: ')
    expect(unreachable(refused, 'etcd', '127.0.0.1:1')?.message).toBe('cannot reach etcd at 127.0.0.1:1 (connection refused); is etcd running? Set -C/--endpoint or TORUS_ENDPOINT')
    expect(unreachable(new TorusError('TORUS_UNAVAILABLE', 'etcd is unavailable: 14 UNAVAILABLE: Name resolution failed for target dns:x:1'), 'etcd', 'x:1')?.message).toMatch(/\(unknown host\)/)
    expect(unreachable(new TorusError('TORUS_TIMEOUT', 'etcd did not answer in time: 4 DEADLINE_EXCEEDED'), 'etcd', 'h:1')?.message).toMatch(/\(no answer in time\)/)
    expect(unreachable(new TorusError('TORUS_LOCKED', 'x'), 'etcd', 'h:1')).toBeUndefined()
  })
})
