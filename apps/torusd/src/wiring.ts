import type { BlockStore, Logger, MetadataStore } from '@torus/core'
import { FileBlockStore, MemoryBlockStore } from '@torus/blockstore'
import { EmbeddedMetadataStore, MemoryMetadataStore } from '@torus/metadata'
import { EtcdMetadataStore } from '@torus/metadata-etcd'

/**
 * The named implementations torusd can run on. Built here, in the composition root, so that
 * nothing registers itself on import.
 */
export const blockStores = {
  memory: (o: { blockSizeBytes: number; capacityBytes: number }): BlockStore => new MemoryBlockStore(o),
  file: (o: { dir: string; blockSizeBytes: number; capacityBytes: number; logger: Logger }): BlockStore => new FileBlockStore(o),
} satisfies Record<string, (options: never) => BlockStore>

export const metadataStores = {
  memory: (): MetadataStore => new MemoryMetadataStore(),
  embedded: (o: { dir: string; logger: Logger }): MetadataStore => new EmbeddedMetadataStore(o),
  etcd: (o: { hosts: string[]; prefix: string; logger: Logger }): MetadataStore => new EtcdMetadataStore({ ...o, dialTimeoutMs: 3000, callTimeoutMs: 5000 }),
} satisfies Record<string, (options: never) => MetadataStore>
