// Shared plumbing for the MetadataStore suite: per-test instances, time control that works on a
// ManualClock or in real time, and the cluster config the tests start from.
import { afterEach, beforeEach } from 'vitest'
import type { ClusterConfig, MetadataStore, MetadataSupports } from '@torus/core'
import type { Harness } from '../harness.js'

export interface SuiteContext {
  harness: Harness<MetadataStore>
  supports: MetadataSupports
  /** A lease TTL the backend can honour: long on a ManualClock, 2 s in real time (etcd's minimum). */
  ttlMs: number
  /** Lets `ms` of store time pass: `harness.advanceTime` when present, otherwise a real sleep. */
  elapse(ms: number): Promise<void>
  /** Lets enough time pass for a lease that was not kept alive to be gone. */
  expireLeases(): Promise<void>
}

/** Real-time backends (etcd) check lease expiry on their own schedule; allow for it. */
const REAL_TIME_EXPIRY_SLACK_MS = 1500

export function createContext(harness: Harness<MetadataStore>, supports: MetadataSupports): SuiteContext {
  const manual = harness.advanceTime !== undefined
  const ttlMs = manual ? 10_000 : 2_000
  const elapse = async (ms: number): Promise<void> => {
    if (harness.advanceTime !== undefined) await harness.advanceTime(ms)
    else await new Promise((resolve) => setTimeout(resolve, ms))
  }
  return {
    harness,
    supports,
    ttlMs,
    elapse,
    expireLeases: () => elapse(ttlMs + (manual ? 1 : REAL_TIME_EXPIRY_SLACK_MS)),
  }
}

/** Creates and opens the store the suite probes for `supports`, then destroys it. */
export async function probeSupports(harness: Harness<MetadataStore>): Promise<MetadataSupports> {
  const probe = await harness.create()
  try {
    return { ...probe.supports }
  } finally {
    await harness.destroy(probe)
  }
}

export interface StoreHandle {
  /** The current instance (replaced by `reopen`). */
  readonly store: MetadataStore
  /** Reopens the store through `harness.reopen` and makes the new instance current. */
  reopen(): Promise<MetadataStore>
}

/** Registers beforeEach/afterEach hooks that give every test a fresh, opened store. */
export function useStore(harness: Harness<MetadataStore>): StoreHandle {
  let current: MetadataStore | undefined
  beforeEach(async () => {
    current = await harness.create()
  })
  afterEach(async () => {
    if (current !== undefined) await harness.destroy(current)
    current = undefined
  })
  return {
    get store(): MetadataStore {
      if (current === undefined) throw new Error('store used outside a test')
      return current
    },
    async reopen(): Promise<MetadataStore> {
      if (harness.reopen === undefined) throw new Error('harness has no reopen()')
      if (current === undefined) throw new Error('store used outside a test')
      // If reopen fails, the old (closed) instance stays current so afterEach still destroys it.
      current = await harness.reopen(current)
      return current
    },
  }
}

export const CLUSTER: ClusterConfig = Object.freeze({
  id: '00000000-0000-4000-8000-0000000000c1',
  blockSizeBytes: 512 * 1024,
  replication: 2,
  ringType: 'ketama',
  createdAt: '2016-06-01T00:00:00.000Z',
})

export const MiB = 1024 * 1024

/** A store with the cluster initialised, ready for volume work. */
export async function initialised(store: MetadataStore, config: ClusterConfig = CLUSTER): Promise<MetadataStore> {
  await store.initCluster(config)
  return store
}

/** A cluster, a volume named `name`, and a fresh lease. */
export async function volumeWithLease(
  store: MetadataStore,
  ttlMs: number,
  name = 'vol',
): Promise<{ leaseId: string }> {
  if ((await store.getClusterConfig()) === undefined) await store.initCluster(CLUSTER)
  await store.createVolume({ name, sizeBytes: 8 * MiB })
  return { leaseId: await store.grantLease(ttlMs) }
}

/** Settles every promise and returns fulfilled values and rejection reasons separately. */
export async function settle<T>(promises: Promise<T>[]): Promise<{ fulfilled: T[]; rejected: unknown[] }> {
  const results = await Promise.allSettled(promises)
  return {
    fulfilled: results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : [])),
    rejected: results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : [])),
  }
}
