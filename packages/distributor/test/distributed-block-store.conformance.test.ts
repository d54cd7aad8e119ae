// Goal: DistributedBlockStore meets the BlockStore contract when its blocks live on other peers.
// Method: run the shared conformance suite against node 0 of a fresh 3-peer in-process cluster
// (MemoryBlockStore per peer, LoopbackHub transport, one mod ring with replication 2).
import { describeBlockStore } from '@torus/conformance/blockstore'
import type { BlockStore } from '@torus/core'
import type { DistributedBlockStore } from '../src/index.js'
import { clusters, startCluster } from './helpers/cluster.js'

describeBlockStore({
  name: 'DistributedBlockStore (3 peers, replication 2)',
  async create() {
    const cluster = await startCluster()
    const gateway = cluster.nodes[0]!.store
    clusters.set(gateway, cluster)
    return gateway
  },
  async destroy(store: BlockStore) {
    await clusters.get(store as DistributedBlockStore)?.close()
  },
})
