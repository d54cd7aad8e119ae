import { ManualClock, parseSize } from '@torus/core'
import type { LeaseId, PeerInfo } from '@torus/core'
import { MemoryMetadataStore } from '@torus/metadata'
import { MetadataBackend } from '../../src/metadata-backend.js'
import type { CommandContext, OutputFormat } from '../../src/output.js'

export const GiB = parseSize('1GiB')

/** Peer UUIDs that sort in this order (list-peers sorts by id). */
export const PEER_A = 'aaaaaaaa-0000-4000-8000-000000000001'
export const PEER_B = 'bbbbbbbb-0000-4000-8000-000000000002'
export const PEER_C = 'cccccccc-0000-4000-8000-000000000003'

/** A cluster held in a MemoryMetadataStore on a ManualClock, with torusctl's backend over it. */
export class MemoryCluster {
  readonly clock = new ManualClock()
  readonly store = new MemoryMetadataStore({ clock: this.clock })
  readonly backend = new MetadataBackend(this.store, { endpoint: 'memory', now: () => this.clock.now() })

  static async create(options: { init?: boolean } = {}): Promise<MemoryCluster> {
    const c = new MemoryCluster()
    await c.store.open()
    if (options.init !== false) await c.backend.initCluster({})
    return c
  }

  ctx(output: OutputFormat = 'table'): CommandContext {
    return { output, now: () => this.clock.now() }
  }

  /** Registers a heartbeat the way torusd does: under a lease of `ttlMs`; returns the lease. */
  async heartbeat(id: string, fields: Partial<PeerInfo> = {}, ttlMs = 10_000): Promise<LeaseId> {
    const lease = await this.store.grantLease(ttlMs)
    await this.store.putPeer(this.peerInfo(id, fields), lease)
    return lease
  }

  peerInfo(id: string, fields: Partial<PeerInfo> = {}): PeerInfo {
    return {
      id,
      address: `ws://10.0.0.${id.charCodeAt(0) - 96}:40000`,
      capacityBytes: 5 * GiB,
      usedBytes: 0,
      rebalanceBytesPerSec: 0,
      repairBytesPerSec: 0,
      ringVersion: 0,
      version: '0.1.0',
      updatedAt: new Date(this.clock.now()).toISOString(),
      ...fields,
    }
  }

  async close(): Promise<void> {
    await this.backend.close()
  }
}
