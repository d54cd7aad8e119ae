// Goal: the record checks every backend applies to what it reads back accept exactly the
// documented shapes. Method: normalise good and malformed records and compare codes and results.
import { describe, expect, it } from 'vitest'
import { compareStaleReplicas, makeSecretCheck, normalizeClusterConfig, normalizeStaleReplica, normalizeStaleReplicaKey } from '../src/index.js'

const CONFIG = { id: '00000000-0000-4000-8000-0000000000c1', blockSizeBytes: 512 * 1024, replication: 2, ringType: 'ketama', createdAt: '2016-06-01T00:00:00.000Z' }
const PEER = '00000000-0000-4000-8000-00000000000a'

describe('normalizeClusterConfig', () => {
  it('keeps a well-formed secretCheck, and leaves it absent when absent', () => {
    const secretCheck = makeSecretCheck('s3cret')
    expect(normalizeClusterConfig({ ...CONFIG, secretCheck })).toEqual({ ...CONFIG, secretCheck })
    expect(normalizeClusterConfig(CONFIG)).not.toHaveProperty('secretCheck')
  })

  it('rejects a malformed secretCheck with TORUS_INVALID_ARGUMENT', () => {
    const salt = '0f'.repeat(16)
    const mac = 'a1'.repeat(32)
    for (const bad of ['', `${salt}${mac}`, `${salt.toUpperCase()}:${mac}`, `${salt}:${mac}0`, `${salt.slice(2)}:${mac}`, ` ${salt}:${mac}`, `${salt}:${mac}\n`, 7, null]) {
      expect(() => normalizeClusterConfig({ ...CONFIG, secretCheck: bad })).toThrow(expect.objectContaining({ code: 'TORUS_INVALID_ARGUMENT', message: expect.stringContaining('secretCheck') }))
    }
  })
})

describe('normalizeStaleReplica', () => {
  const good = { volumeId: 3, peer: PEER, index: 5, generation: 2 }

  it('keeps the known fields of a record, with or without recordedAt', () => {
    expect(normalizeStaleReplica({ ...good, extra: true })).toEqual(good)
    expect(normalizeStaleReplica({ ...good, index: 'all', recordedAt: '2026-01-01T00:00:00.000Z' })).toEqual({ ...good, index: 'all', recordedAt: '2026-01-01T00:00:00.000Z' })
    expect(normalizeStaleReplicaKey({ ...good, generation: 'ignored' })).toEqual({ volumeId: 3, peer: PEER, index: 5 })
  })

  it('rejects malformed records with TORUS_INVALID_ARGUMENT', () => {
    for (const bad of [null, [], { ...good, volumeId: 0 }, { ...good, volumeId: 2 ** 32 }, { ...good, peer: 'a' }, { ...good, index: 'ALL' }, { ...good, index: 0.5 }, { ...good, generation: -1 }, { ...good, recordedAt: 5 }]) {
      expect(() => normalizeStaleReplica(bad)).toThrow(expect.objectContaining({ code: 'TORUS_INVALID_ARGUMENT' }))
    }
  })

  it('orders by volume, then peer, then index with all first', () => {
    const other = '00000000-0000-4000-8000-00000000000b'
    const records = [
      { volumeId: 2, peer: PEER, index: 0 },
      { volumeId: 1, peer: other, index: 'all' as const },
      { volumeId: 1, peer: PEER, index: 10 },
      { volumeId: 1, peer: PEER, index: 9 },
      { volumeId: 1, peer: PEER, index: 'all' as const },
    ].map(normalizeStaleReplicaKey)
    expect(records.sort(compareStaleReplicas).map((r) => `${r.volumeId}/${r.peer.slice(-1)}/${r.index}`)).toEqual(['1/a/all', '1/a/9', '1/a/10', '1/b/all', '2/a/0'])
  })
})
