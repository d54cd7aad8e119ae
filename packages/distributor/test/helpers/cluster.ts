import { MemoryBlockStore } from '@torus/blockstore'
import { peerId, type BlockStore, type PeerId, type RingDescriptor, type VolumeId } from '@torus/core'
import { createRing } from '@torus/ring'
import { LoopbackHub, LoopbackTransport } from '@torus/transport'
import { DistributedBlockStore, type DegradedHook } from '../../src/index.js'

export interface ClusterNode {
  peer: PeerId
  address: string
  transport: LoopbackTransport
  local: BlockStore
  store: DistributedBlockStore
}

export interface Cluster {
  hub: LoopbackHub
  nodes: ClusterNode[]
  byPeer(peer: PeerId): ClusterNode
  isolate(node: ClusterNode): void
  restore(node: ClusterNode): void
  close(): Promise<void>
}

export interface ClusterOptions {
  peers?: number
  replication?: number
  blockSizeBytes?: number
  capacityBytes?: number
  onDegraded?: DegradedHook
  onStaleFound?: (volumeId: VolumeId) => void
  /** The transports' reconnect back-off (default 5-20 ms). */
  reconnectDelayMs?: number
  requestTimeoutMs?: number
  /** Each peer's local store (default: a MemoryBlockStore). */
  local?: (index: number, blockSizeBytes: number) => BlockStore
}

const SECRET = 'distributor-test-secret-0123456789'

/** Peer ids are fixed so placement is the same on every run. */
export function testPeer(i: number): PeerId {
  return peerId(`00000000-0000-4000-8000-00000000000${i + 1}`)
}

/**
 * An in-process cluster: one MemoryBlockStore, LoopbackTransport and DistributedBlockStore per
 * peer, all on one LoopbackHub and one `mod` ring. Every store is open on return.
 */
export async function startCluster(options: ClusterOptions = {}): Promise<Cluster> {
  const hub = new LoopbackHub()
  const count = options.peers ?? 3
  const peers = Array.from({ length: count }, (_, i) => testPeer(i))
  const descriptor: RingDescriptor = { version: 1, type: 'mod', replication: options.replication ?? 2, members: peers.map((peer) => ({ peer, weight: 1 })) }
  const ring = createRing(descriptor)
  const addresses = new Map<PeerId, string>()
  const nodes: ClusterNode[] = []
  for (const [i, peer] of peers.entries()) {
    const address = `loopback://node-${i}`
    addresses.set(peer, address)
    const transport = new LoopbackTransport({
      hub,
      clusterId: 'test-cluster',
      peerId: peer,
      secret: SECRET,
      requestTimeoutMs: options.requestTimeoutMs ?? 2_000,
      reconnectMinDelayMs: options.reconnectDelayMs ?? 5,
      reconnectMaxDelayMs: Math.max(options.reconnectDelayMs ?? 20, 20),
    })
    await transport.listen(address)
    const blockSizeBytes = options.blockSizeBytes ?? 4096
    const local =
      options.local?.(i, blockSizeBytes) ??
      new MemoryBlockStore({ blockSizeBytes, ...(options.capacityBytes === undefined ? {} : { capacityBytes: options.capacityBytes }) })
    const store = new DistributedBlockStore({
      peerId: peer,
      ring,
      local,
      transport,
      peerAddress: (p) => addresses.get(p),
      ...(options.onDegraded === undefined ? {} : { onDegraded: options.onDegraded }),
      ...(options.onStaleFound === undefined ? {} : { onStaleFound: options.onStaleFound }),
      ...(options.requestTimeoutMs === undefined ? {} : { requestTimeoutMs: options.requestTimeoutMs }),
    })
    await store.open()
    nodes.push({ peer, address, transport, local, store })
  }
  return {
    hub,
    nodes,
    byPeer: (peer) => nodes.find((n) => n.peer === peer)!,
    isolate: (node) => hub.isolate(node.address),
    restore: (node) => hub.restore(node.address),
    async close() {
      for (const n of nodes) await n.store.close()
      for (const n of nodes) await n.transport.close()
    },
  }
}

/** Closes the whole cluster a conformance harness handed out, by its gateway. */
export const clusters = new WeakMap<DistributedBlockStore, Cluster>()
