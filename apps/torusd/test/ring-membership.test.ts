// Goal: --auto-join adds a peer to the ring, but not once volumes exist (their blocks would not
// move to it: rebalance is not built, and their data would read as missing).
// Method: joinRing over a MemoryMetadataStore, with a logger that records what it says.
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { silentLogger, type Logger } from '@torus/core'
import { MemoryMetadataStore } from '@torus/metadata'
import { joinRing } from '../src/ring-membership.js'

const A = '00000000-0000-4000-8000-00000000000a'
const B = '00000000-0000-4000-8000-00000000000b'
let store: MemoryMetadataStore
const errors: string[] = []
const logger: Logger = { ...silentLogger, error: (msg: string) => void errors.push(msg), child: () => logger }

beforeEach(async () => {
  errors.length = 0
  store = new MemoryMetadataStore()
  await store.open()
  await store.initCluster({ blockSizeBytes: 512 * 1024, replication: 2, ringType: 'ketama', createdAt: new Date().toISOString() })
})
afterEach(async () => {
  await store.close()
})

describe('joinRing', () => {
  it('joins while no volume exists, and refuses (logging why) once one does', async () => {
    expect(await joinRing(store, A, 5, logger)).toBe('joined')
    await store.createVolume({ name: 'pad', sizeBytes: 1024 * 1024 })
    expect(await joinRing(store, B, 5, logger)).toBe('refused')
    expect(errors).toEqual([expect.stringMatching(/not joining the ring: the cluster already has volumes.*rebalance/)])
    expect((await store.getRing())?.members.map((m) => m.peer)).toEqual([A])
    expect(await joinRing(store, A, 5, logger)).toBe('already-member')
  })
})
