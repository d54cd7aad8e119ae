import type { BlockStore, MetadataStore } from '@torus/core'
import type { NbdServer } from '@torus/nbd'
import { collectDefaultMetrics, Gauge, Registry } from 'prom-client'
import type { VolumeManager } from './volume-manager.js'

export interface Metrics {
  registry: Registry
}

/** Prometheus metrics, read from the components at scrape time (nothing on the I/O path). */
export function createMetrics(parts: { store: BlockStore; volumes: VolumeManager; nbd: NbdServer | undefined; metadata: MetadataStore }): Metrics {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  const { store, volumes, nbd, metadata } = parts
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
  const requests = new Gauge({
    name: 'torus_nbd_requests_total',
    help: 'NBD requests served, by command',
    labelNames: ['command'],
    registers: [registry],
    collect() {
      if (nbd === undefined) return
      for (const [command, n] of Object.entries(nbd.stats.requests as Record<string, number>)) requests.set({ command }, n)
    },
  })
  new Gauge({ name: 'torus_nbd_read_bytes_total', help: 'Bytes read by NBD clients', registers: [registry], collect() { this.set(nbd?.stats.bytesRead ?? 0) } })
  new Gauge({ name: 'torus_nbd_written_bytes_total', help: 'Bytes written by NBD clients', registers: [registry], collect() { this.set(nbd?.stats.bytesWritten ?? 0) } })
  new Gauge({ name: 'torus_nbd_errors_total', help: 'NBD requests answered with an error', registers: [registry], collect() { this.set(nbd?.stats.errors ?? 0) } })
  return { registry }
}
