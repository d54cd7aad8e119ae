import type { BlockStore, MetadataStore } from '@torus/core'
import type { NbdServer } from '@torus/nbd'
import type { RepairStats } from '@torus/distributor'
import type { VolumeManager } from '@torus/volume'
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client'

export interface Metrics {
  registry: Registry
}

/** Prometheus metrics, read from the components at scrape time (nothing on the I/O path). */
export function createMetrics(parts: {
  store: BlockStore
  volumes: VolumeManager
  nbd: NbdServer | undefined
  metadata: MetadataStore
  /** Cluster presence, once known: ring version and the time of the last accepted heartbeat. */
  presence?: () => { ringVersion: number | undefined; lastHeartbeatMs: number | undefined } | undefined
  /** Background repair's counters, when this node repairs (a cluster node with --repair-rate above 0). */
  repair?: () => RepairStats | undefined
}): Metrics {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  const { store, volumes, nbd, metadata, presence, repair } = parts
  new Gauge({
    name: 'torus_ring_version',
    help: 'Version of the ring this peer places blocks by (-1 before it has read one)',
    registers: [registry],
    collect() {
      this.set(presence?.()?.ringVersion ?? -1)
    },
  })
  new Gauge({
    name: 'torus_heartbeat_age_seconds',
    help: 'Seconds since the metadata store last accepted this peer\'s heartbeat (-1 before the first)',
    registers: [registry],
    collect() {
      const last = presence?.()?.lastHeartbeatMs
      this.set(last === undefined ? -1 : (Date.now() - last) / 1000)
    },
  })
  new Gauge({ name: 'torus_storage_capacity_bytes', help: 'Capacity of the local block store', registers: [registry], collect() { this.set(store.usage().capacityBytes) } })
  new Gauge({ name: 'torus_storage_used_bytes', help: 'Bytes held by allocated blocks', registers: [registry], collect() { this.set(store.usage().usedBytes) } })
  new Gauge({ name: 'torus_storage_blocks', help: 'Allocated blocks', registers: [registry], collect() { this.set(store.usage().blocks) } })
  new Gauge({
    name: 'torus_volumes',
    help: 'Volumes in the cluster',
    registers: [registry],
    async collect() {
      this.set((await metadata.listVolumes()).length)
    },
  })
  new Gauge({ name: 'torus_open_volumes', help: 'Volumes open for NBD clients', registers: [registry], collect() { this.set(volumes.openVolumes().size) } })
  new Gauge({ name: 'torus_nbd_connections', help: 'Open NBD connections', registers: [registry], collect() { this.set(nbd?.connections ?? 0) } })
  // Counters mirror the NBD server's own monotonic counters at scrape time.
  const requests = new Counter({
    name: 'torus_nbd_requests_total',
    help: 'NBD requests served, by command',
    labelNames: ['command'],
    registers: [registry],
    collect() {
      if (nbd === undefined) return
      requests.reset()
      for (const [command, n] of Object.entries(nbd.stats.requests as Record<string, number>)) requests.inc({ command }, n)
    },
  })
  const mirror = (name: string, help: string, read: () => number): void => {
    const c: Counter = new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        c.reset()
        c.inc(read())
      },
    })
  }
  mirror('torus_nbd_read_bytes_total', 'Bytes read by NBD clients', () => nbd?.stats.bytesRead ?? 0)
  mirror('torus_nbd_written_bytes_total', 'Bytes written by NBD clients', () => nbd?.stats.bytesWritten ?? 0)
  mirror('torus_nbd_errors_total', 'NBD requests answered with an error', () => nbd?.stats.errors ?? 0)
  mirror('torus_repair_blocks_total', 'Stale-replica records cleared by repair (a replica caught up on a block)', () => repair?.()?.repairedBlocks ?? 0)
  mirror('torus_repair_rejoined_peers_total', 'Peers stale for a whole volume that repair made replicas of it again', () => repair?.()?.rejoinedPeers ?? 0)
  mirror('torus_repair_bytes_total', 'Bytes repair copied to stale replicas', () => repair?.()?.bytes ?? 0)
  new Gauge({
    name: 'torus_stale_replicas',
    help: 'Stale replica marks left, after the last repair pass, on the volumes this node serves',
    registers: [registry],
    collect() {
      this.set(repair?.()?.remaining ?? 0)
    },
  })
  return { registry }
}
