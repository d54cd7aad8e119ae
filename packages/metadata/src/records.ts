import { MAX_VOLUME_ID, normalizeRingDescriptor, RING_TYPES, TorusError, UUID_RE, VOLUME_NAME_RE, validateBlockSize, validateReplication, validateVolumeSize, volumeId } from '@torus/core'
import type { ClusterConfig, RingType, VolumeInfo } from '@torus/core'


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
  return Object.freeze({
    ...(c['id'] === undefined ? {} : { id: c['id'] as string }),
    blockSizeBytes: validateBlockSize(c['blockSizeBytes']),
    replication: validateReplication(c['replication']),
    ringType: c['ringType'] as RingType,
    createdAt: isoTime(c['createdAt'], 'cluster config', 'createdAt'),
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

