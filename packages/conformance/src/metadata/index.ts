/**
 * The MetadataStore conformance suite. Every implementation (memory, embedded, etcd) and every
 * wrapper runs it through a {@link Harness}; tests are gated on `supports.*` and on the harness's
 * capabilities (`advanceTime`, `reopen`), never on names.
 */
import { describe } from 'vitest'
import type { MetadataStore } from '@torus/core'
import type { Harness } from '../harness.js'
import { describeCluster } from './cluster.js'
import { describeConcurrency } from './concurrency.js'
import { createContext, probeSupports } from './context.js'
import { describeLeases } from './leases.js'
import { describeLifecycle } from './lifecycle.js'
import { describeLocks } from './locks.js'
import { describePeers } from './peers.js'
import { describePersistence } from './persistence.js'
import { describeRing } from './ring.js'
import { describeStaleReplicas } from './stale.js'
import { describeVolumes } from './volumes.js'

export type { SuiteContext } from './context.js'

export function describeMetadataStore(harness: Harness<MetadataStore>): void {
  // Async so the suite can read `supports` from a probe instance before registering tests.
  describe(`MetadataStore conformance: ${harness.name}`, async () => {
    const context = createContext(harness, await probeSupports(harness))
    describeCluster(context)
    describeVolumes(context)
    describeLeases(context)
    describeLocks(context)
    describeLifecycle(context)
    describeConcurrency(context)
    describePeers(context)
    describeRing(context)
    describePersistence(context)
    describeStaleReplicas(context)
  })
}
