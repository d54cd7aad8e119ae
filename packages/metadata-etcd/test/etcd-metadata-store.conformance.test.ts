// Runs the MetadataStore conformance suite over EtcdMetadataStore against the real etcd named by
// TORUS_ETCD_ENDPOINTS (comma-separated), each instance under its own random key prefix; `reopen`
// closes the store's client and opens a new one on the same prefix, as a process restart would.
import { randomUUID } from 'node:crypto'
import { Etcd3 } from 'etcd3'
import { describe, it } from 'vitest'
import type { MetadataStore } from '@torus/core'
import { describeMetadataStore } from '@torus/conformance/metadata'
import { EtcdMetadataStore } from '../src/index.js'

const endpoints = process.env.TORUS_ETCD_ENDPOINTS

describe.skipIf(endpoints === undefined || endpoints === '')('EtcdMetadataStore against etcd', () => {
  const hosts = (endpoints ?? '').split(',').map((h) => h.trim()).filter((h) => h !== '')

  async function openStore(prefix: string): Promise<EtcdMetadataStore> {
    const store = new EtcdMetadataStore({ hosts, prefix, dialTimeoutMs: 2000 })
    await store.open()
    return store
  }

  // Vitest still runs a skipped describe's body to collect it, and the suite opens a probe store
  // while collecting; without an endpoint, register one skipped test instead.
  if (hosts.length === 0) {
    it.skipIf(hosts.length === 0)('runs the MetadataStore conformance suite (set TORUS_ETCD_ENDPOINTS)', () => {})
    return
  }

  describeMetadataStore({
    name: 'EtcdMetadataStore',
    async create() {
      return openStore(`torus-test/${randomUUID()}/`)
    },
    async destroy(store: MetadataStore) {
      const { prefix } = store as EtcdMetadataStore
      await store.close()
      const client = new Etcd3({ hosts })
      try {
        await client.delete().prefix(prefix)
      } finally {
        client.close()
      }
    },
    async reopen(store: MetadataStore) {
      await store.close()
      return openStore((store as EtcdMetadataStore).prefix)
    },
  })
})
