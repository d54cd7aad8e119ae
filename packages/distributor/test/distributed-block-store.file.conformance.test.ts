// Goal: the distributed store meets the BlockStore contract over real file-backed replicas too.
// Method: the shared suite against node 0 of a 3-peer loopback cluster whose peers keep their
// replicas in FileBlockStores under one temporary directory, removed by destroy(). No `reopen`:
// usage() counts what this gateway saw since it opened, so the suite's "recomputes usage after a
// reopen" cannot hold; restarts are covered in distributed-block-store.test.ts instead.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { FileBlockStore } from '@torus/blockstore'
import { describeBlockStore } from '@torus/conformance/blockstore'
import type { BlockStore } from '@torus/core'
import type { DistributedBlockStore } from '../src/index.js'
import { clusters, startCluster } from './helpers/cluster.js'

const dirs = new WeakMap<BlockStore, string>()

async function start(dir: string): Promise<BlockStore> {
  const cluster = await startCluster({
    local: (i, blockSizeBytes) => new FileBlockStore({ dir: join(dir, `peer-${i}`), blockSizeBytes, capacityBytes: 2 ** 30 }),
  })
  const gateway = cluster.nodes[0]!.store
  clusters.set(gateway, cluster)
  dirs.set(gateway, dir)
  return gateway
}

describeBlockStore({
  name: 'DistributedBlockStore over FileBlockStore (3 peers, replication 2)',
  async create() {
    return start(await mkdtemp(join(tmpdir(), 'torus-distributor-')))
  },
  async destroy(store: BlockStore) {
    await clusters.get(store as DistributedBlockStore)?.close()
    const dir = dirs.get(store)
    if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  },
})
