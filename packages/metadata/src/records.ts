import { MAX_VOLUME_ID, RING_TYPES, TorusError, UUID_RE, VOLUME_NAME_RE, validateBlockSize, validateReplication, validateVolumeSize, volumeId } from '@torus/core'
import type { ClusterConfig, PeerId, RingType, StaleReplica, StaleReplicaClear, StaleReplicaKey, VolumeId, VolumeInfo } from '@torus/core'
import { SECRET_CHECK_RE } from './secret-check.js'


/**
 * Checks of records read back from a backend (etcd, a metadata file): anything that came from
 * outside this process is checked field by field before use. They throw TORUS_INVALID_ARGUMENT
 * with the field at fault; backends rethrow as TORUS_CORRUPT naming the key or file.
 */
function invalid(what: string, message: string): TorusError {
  return new TorusError('TORUS_INVALID_ARGUMENT', `invalid ${what}: ${message}`)
}

function object(raw: unknown, what: string): Record<string, unknown> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw invalid(what, 'not an object')
  return raw as Record<string, unknown>
}

function isoTime(raw: unknown, what: string, field: string): string {
  if (typeof raw !== 'string' || raw.length > 64 || Number.isNaN(Date.parse(raw))) throw invalid(what, `${field} must be an ISO 8601 time`)
  return raw
}

export function normalizeClusterConfig(raw: unknown): ClusterConfig {
  const c = object(raw, 'cluster config')
  if (c['id'] !== undefined && (typeof c['id'] !== 'string' || !UUID_RE.test(c['id']))) throw invalid('cluster config', 'id must be a lowercase UUID')
  if (typeof c['ringType'] !== 'string' || !(RING_TYPES as readonly string[]).includes(c['ringType'])) throw invalid('cluster config', `ringType ${JSON.stringify(c['ringType'])} is not ketama, mod or single`)
  const secretCheck = c['secretCheck']
  if (secretCheck !== undefined && (typeof secretCheck !== 'string' || !SECRET_CHECK_RE.test(secretCheck))) {
    throw invalid('cluster config', 'secretCheck must be 32 lowercase hex digits, a colon and 64 lowercase hex digits')
  }
  return Object.freeze({
    ...(c['id'] === undefined ? {} : { id: c['id'] as string }),
    blockSizeBytes: validateBlockSize(c['blockSizeBytes']),
    replication: validateReplication(c['replication']),
    ringType: c['ringType'] as RingType,
    createdAt: isoTime(c['createdAt'], 'cluster config', 'createdAt'),
    ...(secretCheck === undefined ? {} : { secretCheck: secretCheck as string }),
  })
}

export function normalizeVolumeInfo(raw: unknown): VolumeInfo {
  const v = object(raw, 'volume record')
  const name = v['name']
  if (typeof name !== 'string' || !VOLUME_NAME_RE.test(name)) throw invalid('volume record', `name ${JSON.stringify(name)} is not a valid volume name`)
  if (v['type'] !== 'block') throw invalid('volume record', `type ${JSON.stringify(v['type'])} is not "block"`)
  const id = v['id']
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 1 || id > MAX_VOLUME_ID) throw invalid('volume record', `id ${JSON.stringify(id)} is out of range`)
  return Object.freeze({
    name,
    id: volumeId(id),
    type: 'block',
    sizeBytes: validateVolumeSize(v['sizeBytes']),
    blockSizeBytes: validateBlockSize(v['blockSizeBytes']),
    replication: validateReplication(v['replication']),
    createdAt: isoTime(v['createdAt'], 'volume record', 'createdAt'),
  })
}


export function validateVolumeId(raw: unknown, what = 'volume id'): VolumeId {
  if (typeof raw !== 'number' || !Number.isSafeInteger(raw) || raw < 1 || raw > MAX_VOLUME_ID) throw invalid(what, `${JSON.stringify(raw)} is not an integer from 1 to ${MAX_VOLUME_ID}`)
  return volumeId(raw)
}

/** Checks the (volumeId, peer, index) of a stale-replica record or key; other fields are ignored. */
export function normalizeStaleReplicaKey(raw: unknown): StaleReplicaKey {
  const r = object(raw, 'stale replica')
  const peer = r['peer']
  if (typeof peer !== 'string' || !UUID_RE.test(peer)) throw invalid('stale replica', `peer ${JSON.stringify(peer)} is not a lowercase UUID`)
  const index = r['index']
  if (index !== 'all' && (typeof index !== 'number' || !Number.isSafeInteger(index) || index < 0)) {
    throw invalid('stale replica', `index ${JSON.stringify(index)} is not a block index or "all"`)
  }
  return Object.freeze({ volumeId: validateVolumeId(r['volumeId'], 'stale replica'), peer: peer as PeerId, index: index as number | 'all' })
}

/** Checks a key to clear: a stale-replica key, with `upToGeneration` when given. */
export function normalizeStaleReplicaClear(raw: unknown): StaleReplicaClear {
  const key = normalizeStaleReplicaKey(raw)
  const upTo = (raw as Record<string, unknown>)['upToGeneration']
  if (upTo === undefined) return key
  if (typeof upTo !== 'number' || !Number.isSafeInteger(upTo) || upTo < 0) {
    throw invalid('stale replica', `upToGeneration ${JSON.stringify(upTo)} is not a non-negative integer`)
  }
  return Object.freeze({ ...key, upToGeneration: upTo })
}

/** Checks a stale-replica record; `recordedAt` stays absent when absent. */
export function normalizeStaleReplica(raw: unknown): StaleReplica {
  const key = normalizeStaleReplicaKey(raw)
  const r = raw as Record<string, unknown>
  const generation = r['generation']
  if (typeof generation !== 'number' || !Number.isSafeInteger(generation) || generation < 0) {
    throw invalid('stale replica', `generation ${JSON.stringify(generation)} is not a non-negative integer`)
  }
  return Object.freeze({
    ...key,
    generation,
    ...(r['recordedAt'] === undefined ? {} : { recordedAt: isoTime(r['recordedAt'], 'stale replica', 'recordedAt') }),
  })
}

/** The order listStaleReplicas promises: by volume, then peer, then index with 'all' first. */
export function compareStaleReplicas(a: StaleReplicaKey, b: StaleReplicaKey): number {
  if (a.volumeId !== b.volumeId) return a.volumeId - b.volumeId
  if (a.peer !== b.peer) return a.peer < b.peer ? -1 : 1
  if (a.index === b.index) return 0
  if (a.index === 'all') return -1
  if (b.index === 'all') return 1
  return a.index - b.index
}

/** `<volumeId>/<peer>/<index|all>`: one record's identity, as a map key (and etcd key suffix). */
export function staleReplicaPath(key: StaleReplicaKey): string {
  return `${key.volumeId}/${key.peer}/${key.index}`
}
