import { MAX_VOLUME_ID, normalizeRingDescriptor, TorusError, UUID_RE, VOLUME_NAME_RE, volumeId } from '@torus/core'
import type { ClusterConfig, PeerInfo, RingDescriptor, StaleReplica, VolumeInfo, VolumeLock } from '@torus/core'
import { MetadataModel } from './metadata-model.js'
import { normalizePeerInfo } from './peer-info.js'
import { compareStaleReplicas, normalizeStaleReplica, staleReplicaPath } from './records.js'
import { SECRET_CHECK_RE } from './secret-check.js'

/** The only format version this code reads and writes. Bump it on any incompatible change. */
export const METADATA_FORMAT_VERSION = 1
export const METADATA_FORMAT = 'torus-metadata'

/** The JSON document stored in `<dir>/metadata.json`. See README.md, "Embedded file format". */
export interface MetadataFileV1 {
  format: typeof METADATA_FORMAT
  version: typeof METADATA_FORMAT_VERSION
  revision: number
  nextVolumeId: number
  leaseSeq: number
  cluster: ClusterConfig | null
  volumes: VolumeInfo[]
  /** Deadlines are not stored: after a restart every lease gets a full TTL again. */
  leases: { id: string; ttlMs: number }[]
  locks: VolumeLock[]
  /** Added after the first release; absent means none (so older files still read). */
  peers?: { info: PeerInfo; leaseId: string }[]
  ring?: RingDescriptor | null
  /** Stale-replica records, sorted by volume, peer, index; absent means none. */
  stale?: StaleReplica[]
}

export function encodeMetadataFile(model: MetadataModel): string {
  const doc: MetadataFileV1 = {
    format: METADATA_FORMAT,
    version: METADATA_FORMAT_VERSION,
    revision: model.revision,
    nextVolumeId: model.nextVolumeId,
    leaseSeq: model.leaseSeq,
    cluster: model.cluster ?? null,
    volumes: model.listVolumes(),
    leases: [...model.leases.values()].map(({ id, ttlMs }) => ({ id, ttlMs })),
    locks: [...model.locks.values()].sort((a, b) => a.generation - b.generation),
    peers: [...model.peers.values()].sort((a, b) => (a.info.id < b.info.id ? -1 : 1)).map((r) => ({ info: r.info, leaseId: r.leaseId })),
    ring: model.ring ?? null,
    stale: [...model.stale.values()].sort(compareStaleReplicas),
  }
  return `${JSON.stringify(doc, null, 2)}\n`
}

/**
 * Parses and validates a metadata file. Every lease is given a fresh deadline of `nowMs + ttlMs`.
 * Anything unexpected throws TORUS_CORRUPT naming `file`; nothing from the file is trusted
 * before it has been checked.
 */
export function decodeMetadataFile(text: string, file: string, nowMs: number): MetadataModel {
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch (err) {
    throw corrupt(file, 'not valid JSON', err)
  }
  try {
    return toModel(raw, file, nowMs)
  } catch (err) {
    if (err instanceof ShapeError) throw corrupt(file, err.message)
    throw err
  }
}

class ShapeError extends Error {}

function corrupt(file: string, reason: string, cause?: unknown, details: Record<string, unknown> = {}): TorusError {
  return new TorusError('TORUS_CORRUPT', `metadata file ${file} is unreadable: ${reason}`, {
    cause,
    details: { file, ...details },
  })
}

function toModel(raw: unknown, file: string, nowMs: number): MetadataModel {
  const doc = record(raw, '$')
  if (doc['format'] !== METADATA_FORMAT) throw new ShapeError(`$.format: expected "${METADATA_FORMAT}"`)
  if (doc['version'] !== METADATA_FORMAT_VERSION) {
    throw corrupt(file, `format version ${JSON.stringify(doc['version'])} is not supported (this build reads version ${METADATA_FORMAT_VERSION})`, undefined, {
      version: doc['version'],
      supportedVersion: METADATA_FORMAT_VERSION,
    })
  }
  const model = new MetadataModel()
  model.revision = count(doc['revision'], '$.revision')
  model.nextVolumeId = count(doc['nextVolumeId'], '$.nextVolumeId')
  model.leaseSeq = count(doc['leaseSeq'], '$.leaseSeq')
  if (model.nextVolumeId < 1 || model.nextVolumeId > MAX_VOLUME_ID + 1) throw new ShapeError('$.nextVolumeId: out of range')

  model.cluster = doc['cluster'] === null ? undefined : cluster(doc['cluster'], '$.cluster')

  const ids = new Set<number>()
  for (const [i, v] of array(doc['volumes'], '$.volumes').entries()) {
    const info = volume(v, `$.volumes[${i}]`)
    if (model.volumes.has(info.name)) throw new ShapeError(`$.volumes[${i}].name: duplicate ${info.name}`)
    if (ids.has(info.id) || info.id >= model.nextVolumeId) throw new ShapeError(`$.volumes[${i}].id: duplicate or not below nextVolumeId`)
    ids.add(info.id)
    model.volumes.set(info.name, info)
  }

  for (const [i, l] of array(doc['leases'], '$.leases').entries()) {
    const path = `$.leases[${i}]`
    const lease = record(l, path)
    const id = string(lease['id'], `${path}.id`)
    const ttlMs = count(lease['ttlMs'], `${path}.ttlMs`)
    if (ttlMs < 1) throw new ShapeError(`${path}.ttlMs: must be positive`)
    if (model.leases.has(id)) throw new ShapeError(`${path}.id: duplicate ${id}`)
    model.leases.set(id, { id, ttlMs, expiresAtMs: nowMs + ttlMs })
  }

  for (const [i, l] of array(doc['locks'], '$.locks').entries()) {
    const path = `$.locks[${i}]`
    const lock = record(l, path)
    const parsed: VolumeLock = Object.freeze({
      volume: string(lock['volume'], `${path}.volume`),
      holder: string(lock['holder'], `${path}.holder`),
      leaseId: string(lock['leaseId'], `${path}.leaseId`),
      generation: count(lock['generation'], `${path}.generation`),
    })
    if (!model.volumes.has(parsed.volume)) throw new ShapeError(`${path}.volume: no such volume ${parsed.volume}`)
    if (!model.leases.has(parsed.leaseId)) throw new ShapeError(`${path}.leaseId: no such lease ${parsed.leaseId}`)
    if (parsed.generation > model.revision) throw new ShapeError(`${path}.generation: above revision`)
    if (model.locks.has(parsed.volume)) throw new ShapeError(`${path}.volume: locked twice`)
    model.locks.set(parsed.volume, parsed)
  }

  // A peer whose lease is not in the file was down when the file was written; keep it as down.
  for (const [i, p] of (doc['peers'] === undefined ? [] : array(doc['peers'], '$.peers')).entries()) {
    const path = `$.peers[${i}]`
    const rec = record(p, path)
    let info: PeerInfo
    try {
      info = normalizePeerInfo(rec['info'])
    } catch (err) {
      throw new ShapeError(`${path}.info: ${(err as Error).message}`)
    }
    if (model.peers.has(info.id)) throw new ShapeError(`${path}.info.id: duplicate ${info.id}`)
    model.peers.set(info.id, Object.freeze({ info, leaseId: string(rec['leaseId'], `${path}.leaseId`) }))
  }
  if (doc['ring'] !== undefined && doc['ring'] !== null) {
    try {
      model.ring = normalizeRingDescriptor(doc['ring'] as RingDescriptor, { allowEmpty: true })
    } catch (err) {
      throw new ShapeError(`$.ring: ${(err as Error).message}`)
    }
    if (model.cluster === undefined) throw new ShapeError('$.ring: present without a cluster')
  }
  const volumeIds = new Set([...model.volumes.values()].map((v) => v.id))
  for (const [i, raw] of (doc['stale'] === undefined ? [] : array(doc['stale'], '$.stale')).entries()) {
    const path = `$.stale[${i}]`
    let r: StaleReplica
    try {
      r = normalizeStaleReplica(raw)
    } catch (err) {
      throw new ShapeError(`${path}: ${(err as Error).message}`)
    }
    if (r.recordedAt === undefined) throw new ShapeError(`${path}.recordedAt: missing`)
    // deleteVolume drops a volume's records in the same write, so an orphan means tampering.
    if (!volumeIds.has(r.volumeId)) throw new ShapeError(`${path}.volumeId: no such volume ${r.volumeId}`)
    if (model.stale.has(staleReplicaPath(r))) throw new ShapeError(`${path}: duplicate ${staleReplicaPath(r)}`)
    model.stale.set(staleReplicaPath(r), r)
  }
  return model
}

function cluster(raw: unknown, path: string): ClusterConfig {
  const c = record(raw, path)
  const ringType = c['ringType']
  if (ringType !== 'ketama' && ringType !== 'mod' && ringType !== 'single') throw new ShapeError(`${path}.ringType: unknown`)
  const id = c['id']
  if (id !== undefined && (typeof id !== 'string' || !UUID_RE.test(id))) throw new ShapeError(`${path}.id: expected a UUID`)
  const secretCheck = c['secretCheck']
  if (secretCheck !== undefined && (typeof secretCheck !== 'string' || !SECRET_CHECK_RE.test(secretCheck))) throw new ShapeError(`${path}.secretCheck: expected "<32 hex>:<64 hex>"`)
  return Object.freeze({
    ...(id === undefined ? {} : { id: id as string }),
    ...(secretCheck === undefined ? {} : { secretCheck: secretCheck as string }),
    blockSizeBytes: count(c['blockSizeBytes'], `${path}.blockSizeBytes`),
    replication: count(c['replication'], `${path}.replication`),
    ringType,
    createdAt: string(c['createdAt'], `${path}.createdAt`),
  })
}

function volume(raw: unknown, path: string): VolumeInfo {
  const v = record(raw, path)
  const name = string(v['name'], `${path}.name`)
  if (!VOLUME_NAME_RE.test(name)) throw new ShapeError(`${path}.name: invalid volume name`)
  if (v['type'] !== 'block') throw new ShapeError(`${path}.type: expected "block"`)
  const id = count(v['id'], `${path}.id`)
  if (id < 1 || id > MAX_VOLUME_ID) throw new ShapeError(`${path}.id: out of range`)
  return Object.freeze({
    name,
    id: volumeId(id),
    type: 'block',
    sizeBytes: count(v['sizeBytes'], `${path}.sizeBytes`),
    blockSizeBytes: count(v['blockSizeBytes'], `${path}.blockSizeBytes`),
    replication: count(v['replication'], `${path}.replication`),
    createdAt: string(v['createdAt'], `${path}.createdAt`),
  })
}

function record(raw: unknown, path: string): Record<string, unknown> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ShapeError(`${path}: expected an object`)
  return raw as Record<string, unknown>
}

function array(raw: unknown, path: string): unknown[] {
  if (!Array.isArray(raw)) throw new ShapeError(`${path}: expected an array`)
  return raw
}

function string(raw: unknown, path: string): string {
  if (typeof raw !== 'string' || raw.length === 0) throw new ShapeError(`${path}: expected a non-empty string`)
  return raw
}

function count(raw: unknown, path: string): number {
  if (typeof raw !== 'number' || !Number.isSafeInteger(raw) || raw < 0) throw new ShapeError(`${path}: expected a non-negative integer`)
  return raw
}
