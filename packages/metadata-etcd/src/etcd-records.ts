import { MAX_VOLUME_ID, TorusError, VOLUME_NAME_RE } from '@torus/core'
import type { LeaseId, StaleReplica, VolumeInfo, VolumeLock } from '@torus/core'
import { normalizeStaleReplica, normalizeVolumeInfo } from '@torus/metadata'
import type { IKeyValue, ITxnResponse } from 'etcd3'
import { ETCD_KEYS } from './keys.js'

/** What the lock key holds; the generation is the key's create revision, not stored. */
export interface LockRecord {
  holder: string
  leaseId: LeaseId
}

/**
 * Reads records out of etcd key-values under one prefix. etcd contents are external input:
 * every record is parsed and checked here, and anything wrong is TORUS_CORRUPT naming the full
 * key and how to fix it.
 */
export class EtcdRecords {
  constructor(readonly prefix: string) {}

  /**
   * A key relative to the prefix. etcd3's namespace strips the prefix from plain range
   * responses but not from ranges inside a transaction, so accept both.
   */
  relKey(kv: IKeyValue): string {
    const key = kv.key.toString('utf8')
    return key.startsWith(this.prefix) ? key.slice(this.prefix.length) : key
  }

  checked<T>(kv: IKeyValue, normalize: (raw: unknown) => T): T {
    let raw: unknown
    try {
      raw = JSON.parse(kv.value.toString('utf8'))
    } catch (err) {
      throw this.corrupt(kv, 'it does not hold JSON', err)
    }
    try {
      return normalize(raw)
    } catch (err) {
      throw this.corrupt(kv, (err as Error).message, err)
    }
  }

  corrupt(kv: IKeyValue, why: string, cause?: unknown): TorusError {
    const rel = this.relKey(kv)
    const key = this.prefix + rel
    // Removing a key is a fix only where the key is disposable. The cluster record, a volume
    // record or an id key going away would lose the cluster's identity, a volume (and, through
    // the deleted-volume sweep, its blocks) or the promise that ids are never reused.
    const precious = rel === ETCD_KEYS.cluster || rel.startsWith(ETCD_KEYS.volumes) || rel.startsWith('volume-ids/')
    // A stale-replica key is what keeps a replica that missed writes from serving old data.
    const fix = rel.startsWith(ETCD_KEYS.stale)
      ? 'rewrite it as JSON {volumeId, peer, index, generation, recordedAt} matching its key, or restore it from a backup of etcd (do not delete it: it marks a replica that missed writes, and without it that replica may serve old data)'
      : precious
        ? 'restore it from a backup of etcd (do not delete it)'
        : `restore it from a backup or remove it (etcdctl del ${key})`
    return new TorusError('TORUS_CORRUPT', `etcd key ${key} is malformed (${why}); ${fix}`, { ...(cause === undefined ? {} : { cause }), details: { key } })
  }

  volume(kv: IKeyValue, name: string): VolumeInfo {
    const info = this.checked(kv, normalizeVolumeInfo)
    if (info.name !== name) throw this.corrupt(kv, `it holds the record of volume ${info.name}`)
    return info
  }

  lock(volume: string, kv: IKeyValue): VolumeLock {
    if (kv.lease === '0' || kv.lease === '') throw this.corrupt(kv, 'a volume lock must be bound to a lease, or it never ends')
    const record = this.checked(kv, (raw) => {
      const r = raw as Partial<LockRecord> | null
      if (typeof r?.holder !== 'string' || r.holder.length === 0 || typeof r.leaseId !== 'string') throw new Error('holder and leaseId must be strings')
      return { holder: r.holder, leaseId: r.leaseId }
    })
    return Object.freeze({ volume, holder: record.holder, leaseId: record.leaseId, generation: revision(kv.create_revision) })
  }

  /** A `stale/<volumeId>/<peer>/<index|all>` record; its value must match its key. */
  staleReplica(kv: IKeyValue): StaleReplica {
    const record = this.checked(kv, normalizeStaleReplica)
    if (record.recordedAt === undefined) throw this.corrupt(kv, 'recordedAt is missing')
    if (this.relKey(kv) !== ETCD_KEYS.staleReplica(record)) throw this.corrupt(kv, `it holds the record ${ETCD_KEYS.staleReplica(record)}`)
    return record
  }

  /**
   * A volume record's id must be reserved for it (`volume-ids/<id>` holds its name): else two
   * records could share one id, and with it the blocks every replica keeps under that id.
   */
  checkVolumeId(volumeKv: IKeyValue, info: VolumeInfo, reservation: IKeyValue | undefined): void {
    const idKey = `${this.prefix}${ETCD_KEYS.volumeId(info.id)}`
    if (reservation === undefined) throw this.corrupt(volumeKv, `its id ${info.id} was never given to it: ${idKey} is absent`)
    const owner = this.volumeName(reservation)
    if (owner !== info.name) throw this.corrupt(volumeKv, `its id ${info.id} belongs to volume ${owner} (${idKey})`)
  }

  /** The `volume-ids/<id>` reservation: the name of the volume that got the id. */
  volumeName(kv: IKeyValue): string {
    const name = kv.value.toString('utf8')
    if (!VOLUME_NAME_RE.test(name)) throw this.corrupt(kv, `${JSON.stringify(name.slice(0, 80))} is not a volume name`)
    return name
  }

  /** The `volume-ids/next` counter. */
  counter(kv: IKeyValue): number {
    const text = kv.value.toString('utf8')
    // Strictly decimal: Number() would also take "0x10", " 7 " or "1e3".
    const next = /^[1-9][0-9]{0,15}$/.test(text) ? Number(text) : Number.NaN
    if (!Number.isSafeInteger(next) || next > MAX_VOLUME_ID + 1) throw this.corrupt(kv, `${JSON.stringify(text.slice(0, 40))} is not a volume id counter`)
    return next
  }
}

export function revision(value: string): number {
  const n = Number(value)
  if (!Number.isSafeInteger(n)) throw new TorusError('TORUS_CORRUPT', `etcd revision ${value} is not a safe integer`)
  return n
}

/** The first key-value of the `index`-th range response in a transaction, if any. */
export function rangeOf(txn: ITxnResponse, index: number): IKeyValue | undefined {
  return txn.responses[index]?.response_range?.kvs[0]
}
