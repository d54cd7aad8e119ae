import { TorusError, throwIfAborted } from '@torus/core'
import type { AbortOptions, StaleReplica, StaleReplicaClear, VolumeId } from '@torus/core'
import { compareStaleReplicas } from '@torus/metadata'
import type { IKeyValue, Namespace } from 'etcd3'
import { rangeOf, type EtcdRecords } from './etcd-records.js'
import { ETCD_KEYS } from './keys.js'

/**
 * etcd refuses a transaction with more than 128 compares, or 128 operations in a branch
 * (`--max-txn-ops`). An addStaleReplicas transaction compares the volume and each record it
 * writes, so it carries at most this many records of one volume; larger batches take several.
 */
export const STALE_RECORDS_PER_TXN = 100

export interface EtcdStaleReplicasOptions {
  kv: () => Namespace
  /** Runs one etcd call and maps its errors (the store's `#run`). */
  run: <T>(call: () => Promise<T>) => Promise<T>
  get: (key: string) => Promise<IKeyValue | undefined>
  records: EtcdRecords
}

interface VolumeRef {
  key: string
  modRevision: string
}

/**
 * Stale-replica records under `stale/<volumeId>/<peer>/<index|all>`, for EtcdMetadataStore.
 * A write compares the volume's record, so nothing lands for a volume deleted meanwhile, and
 * each record's mod revision, so a concurrent add cannot lower a generation.
 */
export class EtcdStaleReplicas {
  constructor(private readonly options: EtcdStaleReplicasOptions) {}

  async add(records: StaleReplica[], options: AbortOptions): Promise<void> {
    // One record per key (the highest generation), grouped by volume in key order.
    const merged = new Map<string, StaleReplica>()
    for (const r of records) {
      const key = ETCD_KEYS.staleReplica(r)
      const seen = merged.get(key)
      if (seen === undefined || r.generation > seen.generation) merged.set(key, r)
    }
    const byVolume = new Map<VolumeId, StaleReplica[]>()
    for (const r of [...merged.values()].sort(compareStaleReplicas)) byVolume.set(r.volumeId, [...(byVolume.get(r.volumeId) ?? []), r])
    // Every volume must exist before anything is written.
    const volumes = new Map<VolumeId, VolumeRef>()
    for (const id of byVolume.keys()) volumes.set(id, await this.#volumeById(id))
    const recordedAt = new Date().toISOString()
    for (const [id, group] of byVolume) {
      let volume = volumes.get(id)!
      for (let start = 0; start < group.length; start += STALE_RECORDS_PER_TXN) {
        const chunk = group.slice(start, start + STALE_RECORDS_PER_TXN)
        for (;;) {
          throwIfAborted(options.signal)
          if (await this.#putChunk(volume, chunk, recordedAt)) break
          // The volume or one of the records changed since the read: read both again.
          volume = await this.#volumeById(id)
        }
      }
    }
  }

  async list(volumeId: VolumeId): Promise<StaleReplica[]> {
    const ns = this.options.kv()
    const res = await this.options.run(() => ns.getAll().prefix(ETCD_KEYS.staleVolume(volumeId)).exec())
    // Key order is not the promised order (index 10 sorts before 9), so sort the records.
    return res.kvs.map((kv) => this.options.records.staleReplica(kv)).sort(compareStaleReplicas)
  }

  async clear(records: StaleReplicaClear[], lockGeneration?: number, signal?: AbortSignal): Promise<void> {
    const ns = this.options.kv()
    // With lockGeneration, every transaction also compares the volume lock's create revision
    // (its generation): nothing is cleared once the lock is someone else's, or nobody's.
    let lock: { key: string; generation: number } | undefined
    if (lockGeneration !== undefined && records.length > 0) {
      const name = await this.#volumeName(records[0]!.volumeId)
      if (name === undefined) throw this.#lockLost(records[0]!.volumeId, lockGeneration)
      lock = { key: ETCD_KEYS.lock(name), generation: lockGeneration }
      // Checked up front too, so a call with nothing left to delete still fails without the lock.
      const held = await this.options.get(lock.key)
      if (held === undefined || Number(held.create_revision) !== lockGeneration) throw this.#lockLost(records[0]!.volumeId, lockGeneration)
    }
    const guard = (): ReturnType<Namespace['if']> => (lock === undefined ? ns.if(ETCD_KEYS.cluster, 'Version', '>', -1) : ns.if(lock.key, 'Create', '==', lock.generation))
    // The caller (AbstractMetadataStore) passes one clear per key.
    const entries = records.map((r): [string, StaleReplicaClear] => [ETCD_KEYS.staleReplica(r), r])
    for (let start = 0; start < entries.length; start += STALE_RECORDS_PER_TXN) {
      const chunk = entries.slice(start, start + STALE_RECORDS_PER_TXN)
      const unconditional = chunk.filter(([, r]) => r.upToGeneration === undefined).map(([key]) => key)
      const conditional = chunk.filter(([, r]) => r.upToGeneration !== undefined)
      if (unconditional.length > 0) {
        const txn = await this.options.run(() => guard().then(...unconditional.map((key) => ns.delete().key(key))).commit())
        if (!txn.succeeded) throw this.#lockLost(records[0]!.volumeId, lockGeneration!)
      }
      // A conditional clear deletes a record only as it was read: a record raised to a higher
      // generation meanwhile (a later holder's) fails the compare, and is read again.
      while (conditional.length > 0 && !(await this.#clearChunk(conditional, lock))) {
        throwIfAborted(signal)
        if (lock !== undefined) {
          const kv = await this.options.get(lock.key)
          if (kv === undefined || Number(kv.create_revision) !== lock.generation) throw this.#lockLost(records[0]!.volumeId, lock.generation)
        }
      }
    }
  }

  #lockLost(volumeId: VolumeId, generation: number): TorusError {
    return new TorusError('TORUS_LEASE_EXPIRED', `the lock of volume ${volumeId} is not held with generation ${generation}`, { details: { volumeId, generation } })
  }

  async #volumeName(id: VolumeId): Promise<string | undefined> {
    const reservation = await this.options.get(ETCD_KEYS.volumeId(id))
    return reservation === undefined ? undefined : this.options.records.volumeName(reservation)
  }

  async #clearChunk(chunk: [string, StaleReplicaClear][], lock: { key: string; generation: number } | undefined): Promise<boolean> {
    const { run, records } = this.options
    const ns = this.options.kv()
    const read = await run(() =>
      ns
        .if(ETCD_KEYS.cluster, 'Version', '>', -1)
        .then(...chunk.map(([key]) => ns.get(key)))
        .commit(),
    )
    const deletes = chunk.flatMap(([key, r], i) => {
      const kv = rangeOf(read, i)
      if (kv === undefined || records.staleReplica(kv).generation > r.upToGeneration!) return []
      return [{ key, modRevision: kv.mod_revision }]
    })
    if (deletes.length === 0) return true
    const txn = await run(() => {
      let cmp = lock === undefined ? ns.if(deletes[0]!.key, 'Mod', '==', deletes[0]!.modRevision) : ns.if(lock.key, 'Create', '==', lock.generation).and(deletes[0]!.key, 'Mod', '==', deletes[0]!.modRevision)
      for (const d of deletes.slice(1)) cmp = cmp.and(d.key, 'Mod', '==', d.modRevision)
      return cmp.then(...deletes.map((d) => ns.delete().key(d.key))).commit()
    })
    return txn.succeeded
  }

  /**
   * Writes the records of `chunk` that are absent or stored with a lower generation, in one
   * transaction that holds only if the volume and those keys are unchanged since they were read.
   */
  async #putChunk(volume: VolumeRef, chunk: StaleReplica[], recordedAt: string): Promise<boolean> {
    const { run, records } = this.options
    const ns = this.options.kv()
    const read = await run(() =>
      ns
        .if(volume.key, 'Version', '>', -1)
        .then(...chunk.map((r) => ns.get(ETCD_KEYS.staleReplica(r))))
        .commit(),
    )
    const writes = chunk.flatMap((r, i) => {
      const kv = rangeOf(read, i)
      if (kv !== undefined && records.staleReplica(kv).generation >= r.generation) return []
      return [{ key: ETCD_KEYS.staleReplica(r), modRevision: kv?.mod_revision ?? '0', record: { ...r, recordedAt: r.recordedAt ?? recordedAt } }]
    })
    // The stored records already cover these, and they exist only while the volume does.
    if (writes.length === 0) return true
    const txn = await run(() => {
      let cmp = ns.if(volume.key, 'Mod', '==', volume.modRevision)
      for (const w of writes) cmp = cmp.and(w.key, 'Mod', '==', w.modRevision)
      return cmp.then(...writes.map((w) => ns.put(w.key).value(JSON.stringify(w.record)))).commit()
    })
    return txn.succeeded
  }

  /** Finds a volume by id through its `volume-ids/<id>` reservation; TORUS_NOT_FOUND when no volume has it now. */
  async #volumeById(id: VolumeId): Promise<VolumeRef> {
    const { get, records } = this.options
    const missing = new TorusError('TORUS_NOT_FOUND', `no volume has id ${id}`, { details: { volumeId: id } })
    const reservation = await get(ETCD_KEYS.volumeId(id))
    if (reservation === undefined) throw missing
    const name = records.volumeName(reservation)
    const key = ETCD_KEYS.volume(name)
    const kv = await get(key)
    // The name may since have been deleted, or given to a new volume with another id.
    if (kv === undefined || records.volume(kv, name).id !== id) throw missing
    return { key, modRevision: kv.mod_revision }
  }
}
