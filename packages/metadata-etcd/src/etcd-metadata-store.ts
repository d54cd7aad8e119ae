import { MAX_VOLUME_ID, normalizeRingDescriptor, TorusError, silentLogger, throwIfAborted, volumeId } from '@torus/core'
import type {
  AbortOptions,
  ClusterConfig,
  CreateVolumeRequest,
  LeaseId,
  Logger,
  MetadataSupports,
  MetadataWatch,
  PeerInfo,
  PeerStatus,
  RingDescriptor,
  StaleReplica,
  StaleReplicaClear,
  ClearStaleReplicasOptions,
  VolumeId,
  VolumeInfo,
  VolumeLock,
  WatchRingOptions,
} from '@torus/core'
import { AbstractMetadataStore, normalizeClusterConfig, normalizePeerInfo, ringConflict } from '@torus/metadata'
import { Etcd3 } from 'etcd3'
import type { IKeyValue, Namespace } from 'etcd3'
import { mapEtcdError } from './map-etcd-error.js'
import { EtcdRecords, rangeOf, revision, type LockRecord } from './etcd-records.js'
import { ETCD_KEYS } from './keys.js'
import { KeyWatch } from './key-watch.js'
import { EtcdStaleReplicas } from './etcd-stale-replicas.js'

export const DEFAULT_PREFIX = 'torus/'

export { ETCD_KEYS }

/** Unary calls that get no answer within this fail with TORUS_TIMEOUT instead of hanging. */
export const DEFAULT_CALL_TIMEOUT_MS = 5000
/** A ring watch re-reads the ring this often even when etcd reports nothing (belt and braces). */
export const DEFAULT_RING_RESYNC_MS = 30_000

/**
 * A createVolume that lost the race for the id counter reads it again and retries. Each round
 * has at least one winner, so N concurrent creators finish within N rounds; this bound only
 * stops a livelock that should never happen.
 */
const MAX_COUNTER_ATTEMPTS = 1000

interface EtcdMetadataStoreCommonOptions {
  /** Every key lives under this prefix. Default: `torus/`. */
  prefix?: string
  logger?: Logger
  /** How long the client waits for a connection before a call fails (only with `hosts`). */
  dialTimeoutMs?: number
  /** Deadline for each unary call and lease keep-alive (only with `hosts`). Default 5 s. */
  callTimeoutMs?: number
  /** How often a ring watch re-reads the ring regardless of events. Default 30 s. */
  ringResyncMs?: number
}

export type EtcdMetadataStoreOptions = EtcdMetadataStoreCommonOptions &
  (
    | { /** A client owned by the caller: close() leaves it open. */ client: Etcd3; hosts?: never }
    | { /** `host:port` or `http://host:port`, one or many. The store owns its client. */ hosts: string | string[]; client?: never }
  )

/** What `peers/<id>` holds: the last heartbeat, kept after the peer's lease ends. */
interface PeerRecord {
  info: PeerInfo
  leaseId: LeaseId
}

/**
 * A metadata store in etcd v3. Each mutation is one etcd transaction whose compares carry the
 * preconditions the memory store checks in process (absent name, unchanged id counter, no lock,
 * same lock generation), so concurrent stores on one etcd stay linearisable. Leases are etcd
 * leases and locks are keys bound to them, so etcd itself drops a dead holder's lock.
 */
export class EtcdMetadataStore extends AbstractMetadataStore {
  readonly supports: MetadataSupports = Object.freeze({ persistent: true, leases: true, watch: true })
  readonly prefix: string
  protected readonly logger: Logger
  readonly #options: EtcdMetadataStoreOptions
  #client: Etcd3 | undefined
  #ns: Namespace | undefined
  readonly #watches = new Set<KeyWatch>()
  readonly #records: EtcdRecords
  readonly #stale: EtcdStaleReplicas

  constructor(options: EtcdMetadataStoreOptions) {
    super()
    if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object')
    if (options.client === undefined && options.hosts === undefined) throw new TypeError('options need a client or hosts')
    const prefix = options.prefix ?? DEFAULT_PREFIX
    if (typeof prefix !== 'string' || prefix.length === 0) throw new TypeError('prefix must be a non-empty string')
    this.prefix = prefix
    this.#records = new EtcdRecords(prefix)
    this.#stale = new EtcdStaleReplicas({ kv: () => this.#kv, run: (call) => this.#run(call), get: (key) => this.#get(key), records: this.#records })
    this.logger = options.logger ?? silentLogger
    this.#options = options
  }

  get #kv(): Namespace {
    if (this.#ns === undefined) throw new TorusError('TORUS_NOT_OPEN', 'metadata store is closed')
    return this.#ns
  }

  protected override async _open(_options: AbortOptions): Promise<void> {
    const { client, hosts, dialTimeoutMs } = this.#options
    const owned = client === undefined
    const callTimeoutMs = this.#callTimeoutMs
    const etcd =
      client ??
      new Etcd3({
        hosts: hosts ?? [],
        ...(dialTimeoutMs === undefined ? {} : { dialTimeout: dialTimeoutMs }),
        // Without a deadline a call made while etcd is down waits for the connection forever.
        defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + callTimeoutMs }),
      })
    const ns = etcd.namespace(this.prefix)
    try {
      // One read proves etcd answers, so open() fails fast instead of the first real call.
      await ns.get(ETCD_KEYS.cluster).exec()
    } catch (err) {
      if (owned) etcd.close()
      throw mapEtcdError(err)
    }
    this.#client = owned ? etcd : undefined
    this.#ns = ns
    this.logger.info('metadata store open', { prefix: this.prefix })
  }

  get #callTimeoutMs(): number {
    return this.#options.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS
  }

  protected override async _close(): Promise<void> {
    await Promise.all([...this.#watches].map((w) => w.close()))
    this.#watches.clear()
    this.#client?.close()
    this.#client = undefined
    this.#ns = undefined
  }

  protected async _getClusterConfig(): Promise<ClusterConfig | undefined> {
    const kv = await this.#get(ETCD_KEYS.cluster)
    return kv === undefined ? undefined : this.#records.checked(kv, normalizeClusterConfig)
  }

  protected async _initCluster(config: ClusterConfig): Promise<void> {
    const ns = this.#kv
    await this.#refuseNestedPrefix()
    const txn = await this.#run(() =>
      ns
        .if(ETCD_KEYS.cluster, 'Create', '==', 0)
        .then(ns.put(ETCD_KEYS.cluster).value(JSON.stringify(config)))
        .commit(),
    )
    if (!txn.succeeded) throw new TorusError('TORUS_ALREADY_EXISTS', 'cluster is already initialised')
  }

  protected async _createVolume(request: CreateVolumeRequest, options: AbortOptions): Promise<VolumeInfo> {
    const cluster = await this._getClusterConfig()
    if (cluster === undefined) {
      throw new TorusError('TORUS_NOT_INITIALIZED', 'cluster metadata is not initialised (run torusctl init)')
    }
    const ns = this.#kv
    const key = ETCD_KEYS.volume(request.name)
    for (let attempt = 0; attempt < MAX_COUNTER_ATTEMPTS; attempt++) {
      throwIfAborted(options.signal)
      const counter = await this.#get(ETCD_KEYS.nextVolumeId)
      const next = counter === undefined ? 1 : this.#records.counter(counter)
      if (next > MAX_VOLUME_ID) throw new TorusError('TORUS_OUT_OF_SPACE', 'volume ids are exhausted')
      const info: VolumeInfo = Object.freeze({
        name: request.name,
        id: volumeId(next),
        type: 'block',
        sizeBytes: request.sizeBytes,
        blockSizeBytes: request.blockSizeBytes ?? cluster.blockSizeBytes,
        replication: request.replication ?? cluster.replication,
        createdAt: new Date().toISOString(),
      })
      // A missing counter compares as mod revision 0, so the first create needs no set-up.
      const txn = await this.#run(() =>
        ns
          .if(key, 'Create', '==', 0)
          .and(ETCD_KEYS.nextVolumeId, 'Mod', '==', counter?.mod_revision ?? 0)
          .and(ETCD_KEYS.volumeId(next), 'Create', '==', 0)
          .then(
            ns.put(key).value(JSON.stringify(info)),
            ns.put(ETCD_KEYS.nextVolumeId).value(String(next + 1)),
            ns.put(ETCD_KEYS.volumeId(next)).value(request.name),
          )
          .else(ns.get(key), ns.get(ETCD_KEYS.volumeId(next)), ns.get(ETCD_KEYS.nextVolumeId))
          .commit(),
      )
      if (txn.succeeded) return info
      if (rangeOf(txn, 0) !== undefined) {
        throw new TorusError('TORUS_ALREADY_EXISTS', `volume ${request.name} already exists`, { details: { volume: request.name } })
      }
      const taken = rangeOf(txn, 1)
      const counterNow = rangeOf(txn, 2)
      // A taken id with an unchanged counter is not contention (that would have moved the counter).
      if (taken !== undefined && (counterNow?.mod_revision ?? '0') === (counter?.mod_revision ?? '0')) {
        // Only a counter moved back by hand (or a restore of part of the keys) gets here.
        throw new TorusError(
          'TORUS_CORRUPT',
          `${this.prefix}${ETCD_KEYS.nextVolumeId} says the next id is ${next}, but id ${next} was already given to volume ${taken.value.toString('utf8')}; set it above every id in ${this.prefix}volume-ids/`,
          { details: { id: next } },
        )
      }
      // Another create took this id first: read the counter again.
    }
    throw new TorusError('TORUS_CONFLICT', `could not allocate a volume id for ${request.name}: too much contention`)
  }

  protected async _getVolume(name: string): Promise<VolumeInfo | undefined> {
    const key = ETCD_KEYS.volume(name)
    const kv = await this.#get(key)
    if (kv === undefined) return undefined
    const info = this.#records.volume(kv, name)
    // The id names the volume's blocks on every replica: a record whose id was never reserved
    // for it (a hand-written or restored key) would serve, and overwrite, another volume's data.
    // Reservations are written with the volume and never deleted, so reading it second is safe.
    this.#records.checkVolumeId(kv, info, await this.#get(ETCD_KEYS.volumeId(info.id)))
    return info
  }

  protected async _listVolumes(): Promise<VolumeInfo[]> {
    const ns = this.#kv
    const res = await this.#run(() => ns.getAll().prefix(ETCD_KEYS.volumes).sort('Key', 'Ascend').exec())
    // etcd sorts by key bytes, which is the order listVolumes promises for the ASCII names allowed.
    const volumes = res.kvs.map((kv) => this.#records.volume(kv, this.#records.relKey(kv).slice(ETCD_KEYS.volumes.length)))
    if (volumes.length === 0) return volumes
    // After the volumes (see _getVolume): every reservation of a volume just read is there.
    const ids = await this.#run(() => ns.getAll().prefix(ETCD_KEYS.volumeIds).exec())
    const byId = new Map(ids.kvs.map((kv) => [this.#records.relKey(kv), kv]))
    volumes.forEach((info, i) => this.#records.checkVolumeId(res.kvs[i]!, info, byId.get(ETCD_KEYS.volumeId(info.id))))
    return volumes
  }

  protected async _deleteVolume(name: string, options: AbortOptions): Promise<VolumeInfo> {
    const ns = this.#kv
    const key = ETCD_KEYS.volume(name)
    const lockKey = ETCD_KEYS.lock(name)
    for (;;) {
      throwIfAborted(options.signal)
      const current = await this.#get(key)
      if (current === undefined) throw notFound(name)
      const info = this.#records.volume(current, name)
      const txn = await this.#run(() =>
        ns
          .if(key, 'Mod', '==', current.mod_revision)
          .and(lockKey, 'Create', '==', 0)
          .then(ns.delete().key(key), ns.delete().prefix(ETCD_KEYS.staleVolume(info.id)))
          .else(ns.get(key), ns.get(lockKey))
          .commit(),
      )
      if (txn.succeeded) return info
      const lock = rangeOf(txn, 1)
      if (lock !== undefined) throw lockedError(this.#records.lock(name, lock))
      if (rangeOf(txn, 0) === undefined) throw notFound(name)
      // The volume was deleted and created again between the read and the transaction.
    }
  }

  protected async _grantLease(ttlMs: number): Promise<LeaseId> {
    const ns = this.#kv
    // etcd leases count whole seconds (and stretch anything under its minimum, about 2 s).
    const res = await this.#run(() => ns.leaseClient.leaseGrant({ TTL: Math.ceil(ttlMs / 1000), ID: 0 }))
    if (res.error) throw new TorusError('TORUS_INTERNAL', `etcd refused the lease: ${res.error}`)
    return res.ID
  }

  protected async _keepAlive(leaseId: LeaseId): Promise<void> {
    const id = etcdLeaseId(leaseId)
    if (id === undefined) throw leaseExpired(leaseId)
    const ns = this.#kv
    const res = await this.#run(async () => {
      // etcd3's Lease class can only renew leases it granted itself, so renew by id over the raw
      // keep-alive stream: one request, one response, then close the stream.
      const stream = await ns.leaseClient.leaseKeepAlive()
      let timer: NodeJS.Timeout | undefined
      try {
        return await new Promise<{ TTL: string }>((resolve, reject) => {
          // Streams get no call deadline, and one opened while etcd is down never answers.
          timer = setTimeout(
            () => reject(new TorusError('TORUS_TIMEOUT', `etcd did not answer a lease keep-alive within ${this.#callTimeoutMs} ms`)),
            this.#callTimeoutMs,
          )
          stream.on('data', resolve)
          stream.on('error', reject)
          stream.on('end', () => reject(new Error('keep-alive stream ended without a response')))
          stream.write({ ID: id })
        })
      } finally {
        clearTimeout(timer)
        stream.end()
      }
    }, leaseId)
    // etcd answers a keep-alive for an unknown lease with TTL 0 rather than an error.
    if (!(Number(res.TTL) > 0)) throw leaseExpired(leaseId)
  }

  protected async _revokeLease(leaseId: LeaseId): Promise<void> {
    const id = etcdLeaseId(leaseId)
    if (id === undefined) return
    const ns = this.#kv
    try {
      await this.#run(() => ns.leaseClient.leaseRevoke({ ID: id }), leaseId)
    } catch (err) {
      if (err instanceof TorusError && err.code === 'TORUS_LEASE_EXPIRED') return
      throw err
    }
  }

  protected async _lockVolume(name: string, holder: string, leaseId: LeaseId, options: AbortOptions): Promise<VolumeLock> {
    const id = etcdLeaseId(leaseId)
    const ns = this.#kv
    const key = ETCD_KEYS.volume(name)
    const lockKey = ETCD_KEYS.lock(name)
    if (id === undefined) {
      if ((await this.#get(key)) === undefined) throw notFound(name)
      throw leaseExpired(leaseId)
    }
    const record: LockRecord = { holder, leaseId }
    for (;;) {
      // A put bound to a lease etcd no longer has fails the whole transaction with "requested
      // lease not found", which #run maps to TORUS_LEASE_EXPIRED.
      const txn = await this.#run(
        () =>
          ns
            .if(key, 'Create', '>', 0)
            .and(lockKey, 'Create', '==', 0)
            .then(ns.put(lockKey).value(JSON.stringify(record)).lease(id))
            .else(ns.get(key), ns.get(lockKey))
            .commit(),
        leaseId,
      )
      if (txn.succeeded) {
        // Every write in one transaction gets the transaction's revision, so this is the lock
        // key's create revision: the fencing generation.
        return Object.freeze({ volume: name, holder, leaseId, generation: revision(txn.header.revision) })
      }
      if (rangeOf(txn, 0) === undefined) throw notFound(name)
      const lock = rangeOf(txn, 1)
      if (lock !== undefined) throw lockedError(this.#records.lock(name, lock))
      // The lock that made the compare fail vanished before the else-branch read it (its lease
      // expired or it was released): try again.
      throwIfAborted(options.signal)
    }
  }

  protected async _getVolumeLock(name: string): Promise<VolumeLock | undefined> {
    const kv = await this.#get(ETCD_KEYS.lock(name))
    return kv === undefined ? undefined : this.#records.lock(name, kv)
  }

  protected async _unlockVolume(lock: VolumeLock): Promise<void> {
    const ns = this.#kv
    const lockKey = ETCD_KEYS.lock(lock.volume)
    await this.#run(() =>
      ns
        .if(lockKey, 'Create', '==', lock.generation)
        .then(ns.delete().key(lockKey))
        .commit(),
    )
  }

  protected async _nextVolumeId(): Promise<number> {
    const counter = await this.#get(ETCD_KEYS.nextVolumeId)
    return counter === undefined ? 1 : this.#records.counter(counter)
  }

  protected async _putPeer(info: PeerInfo, leaseId: LeaseId): Promise<void> {
    const id = etcdLeaseId(leaseId)
    if (id === undefined) throw leaseExpired(leaseId)
    const ns = this.#kv
    const record: PeerRecord = { info, leaseId }
    // One transaction: the lasting record and the lease-bound liveness key. A dead lease fails
    // the whole transaction ("requested lease not found"), so nothing is half-written.
    await this.#run(
      () =>
        ns
          .if(ETCD_KEYS.peer(info.id), 'Version', '>', -1)
          .then(ns.put(ETCD_KEYS.peer(info.id)).value(JSON.stringify(record)), ns.put(ETCD_KEYS.alivePeer(info.id)).value(leaseId).lease(id))
          .commit(),
      leaseId,
    )
  }

  protected async _listPeers(): Promise<PeerStatus[]> {
    const ns = this.#kv
    // Both ranges in one transaction, so they come from one revision.
    const txn = await this.#run(() =>
      ns
        .if(ETCD_KEYS.peers, 'Version', '>', -1)
        .then(ns.getAll().prefix(ETCD_KEYS.peers), ns.getAll().prefix(ETCD_KEYS.alivePeers))
        .commit(),
    )
    const records = txn.responses[0]?.response_range?.kvs ?? []
    const alive = new Set((txn.responses[1]?.response_range?.kvs ?? []).map((kv) => this.#records.relKey(kv).slice(ETCD_KEYS.alivePeers.length)))
    const peers = records.map((kv) => {
      const info = this.#records.checked(kv, (raw) => normalizePeerInfo((raw as Partial<PeerRecord> | null)?.info))
      if (this.#records.relKey(kv) !== ETCD_KEYS.peer(info.id)) throw this.#records.corrupt(kv, `it holds the record of peer ${info.id}`)
      return Object.freeze({ ...info, alive: alive.has(info.id) })
    })
    return peers.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  }

  protected async _forgetPeer(id: string): Promise<void> {
    const ns = this.#kv
    const txn = await this.#run(() =>
      ns
        .if(ETCD_KEYS.peer(id), 'Create', '>', 0)
        .and(ETCD_KEYS.alivePeer(id), 'Create', '==', 0)
        .then(ns.delete().key(ETCD_KEYS.peer(id)))
        .else(ns.get(ETCD_KEYS.peer(id)))
        .commit(),
    )
    if (txn.succeeded) return
    if (rangeOf(txn, 0) === undefined) throw new TorusError('TORUS_NOT_FOUND', `peer ${id} is not known`, { details: { peer: id } })
    throw new TorusError('TORUS_LOCKED', `peer ${id} is alive; stop it before forgetting it`, { details: { peer: id } })
  }

  protected async _getRing(): Promise<RingDescriptor | undefined> {
    return (await this.#readRing()).ring
  }

  /** The ring, its key's mod revision (0 when never set) and the store revision of the read. */
  async #readRing(): Promise<{ ring: RingDescriptor | undefined; modRevision: string; revision: string }> {
    const ns = this.#kv
    const txn = await this.#run(() =>
      ns
        .if(ETCD_KEYS.ring, 'Version', '>', -1)
        .then(ns.get(ETCD_KEYS.ring), ns.get(ETCD_KEYS.cluster))
        .commit(),
    )
    const ringKv = rangeOf(txn, 0)
    const clusterKv = rangeOf(txn, 1)
    if (ringKv !== undefined) {
      const ring = this.#records.checked(ringKv, (raw) => normalizeRingDescriptor(raw as RingDescriptor, { allowEmpty: true }))
      return { ring, modRevision: ringKv.mod_revision, revision: txn.header.revision }
    }
    if (clusterKv === undefined) return { ring: undefined, modRevision: '0', revision: txn.header.revision }
    const cluster = this.#records.checked(clusterKv, normalizeClusterConfig)
    return {
      ring: Object.freeze({ version: 0, type: cluster.ringType, replication: cluster.replication, members: Object.freeze([]) }),
      modRevision: '0',
      revision: txn.header.revision,
    }
  }

  protected async _setRing(next: RingDescriptor): Promise<void> {
    const ns = this.#kv
    const current = await this.#readRing()
    if (current.ring === undefined) throw new TorusError('TORUS_NOT_INITIALIZED', 'cluster metadata is not initialised (run torusctl init)')
    if (next.version !== current.ring.version + 1) throw ringConflict(current.ring.version, next.version)
    const txn = await this.#run(() =>
      ns
        .if(ETCD_KEYS.ring, 'Mod', '==', current.modRevision)
        .and(ETCD_KEYS.cluster, 'Create', '>', 0)
        .then(ns.put(ETCD_KEYS.ring).value(JSON.stringify(next)))
        .commit(),
    )
    if (txn.succeeded) return
    const now = await this.#readRing()
    throw ringConflict(now.ring?.version ?? 0, next.version)
  }

  protected async _watchRing(onRing: (ring: RingDescriptor) => void, options: WatchRingOptions): Promise<MetadataWatch> {
    const ns = this.#kv
    let last: { version: number; json: string } | undefined
    const watch = new KeyWatch({
      ns,
      keys: [ETCD_KEYS.ring, ETCD_KEYS.cluster],
      resyncMs: this.#options.ringResyncMs ?? DEFAULT_RING_RESYNC_MS,
      logger: this.logger,
      // Every event (or reconnect) just triggers a fresh read: the ring is small and changes
      // rarely, and reading it whole is what makes skipped events harmless.
      read: async () => {
        const { ring, revision } = await this.#readRing()
        const json = ring === undefined ? undefined : JSON.stringify(ring)
        if (ring !== undefined && json !== last?.json) {
          if (last !== undefined && ring.version <= last.version) {
            // Only a restore or a hand edit moves the ring back. etcd holds the truth, so adopt it,
            // but loudly: peers may briefly place blocks by different rings.
            this.logger.warn('ring in etcd went back or changed without a new version; adopting it', { from: last.version, to: ring.version })
          }
          last = { version: ring.version, json: json! }
          try {
            onRing(ring)
          } catch (err) {
            this.logger.warn('ring watcher threw', { err })
          }
        }
        return revision
      },
      onError: (err) => {
        const mapped = mapEtcdError(err)
        // The caller's onError decides how loudly to report it.
        this.logger.debug('ring watch interrupted; resynchronising', { code: mapped.code, err })
        options.onError?.(mapped)
      },
    })
    this.#watches.add(watch)
    await watch.start()
    return {
      close: async () => {
        this.#watches.delete(watch)
        await watch.close()
      },
    }
  }

  protected async _addStaleReplicas(records: StaleReplica[], options: AbortOptions): Promise<void> {
    await this.#stale.add(records, options)
  }

  protected async _listStaleReplicas(volumeId: VolumeId): Promise<StaleReplica[]> {
    return this.#stale.list(volumeId)
  }

  protected async _clearStaleReplicas(records: StaleReplicaClear[], options: ClearStaleReplicasOptions): Promise<void> {
    await this.#stale.clear(records, options.lockGeneration, options.signal)
  }

  /**
   * A cluster whose prefix lies inside another cluster's (`torus/volumes/` in `torus/`), or
   * contains one, would read the other's keys as its own records. Refuse to create it.
   */
  async #refuseNestedPrefix(): Promise<void> {
    const client = this.#options.client ?? this.#client
    if (client === undefined) return
    const parts = this.prefix.split('/').filter((p) => p !== '')
    const ancestors = parts.slice(0, -1).map((_, i) => `${parts.slice(0, i + 1).join('/')}/`)
    for (const ancestor of ancestors) {
      const found = await this.#run(() => client.get(`${ancestor}${ETCD_KEYS.cluster}`).exec())
      if (found.kvs.length > 0) {
        throw new TorusError('TORUS_INVALID_ARGUMENT', `prefix ${this.prefix} lies inside the cluster at prefix ${ancestor}; choose a prefix outside it`, {
          details: { prefix: this.prefix, cluster: ancestor },
        })
      }
    }
    const keys = await this.#run(() => client.getAll().prefix(this.prefix).limit(10_000).keys())
    const inner = keys.find((k) => k.endsWith(`/${ETCD_KEYS.cluster}`) && k !== `${this.prefix}${ETCD_KEYS.cluster}` && !k.startsWith(`${this.prefix}${ETCD_KEYS.volumes}`))
    // A key like <prefix>volumes/cluster is a volume named "cluster"; anything else ending in
    // /cluster below the prefix is another cluster's record.
    if (inner !== undefined) {
      const other = inner.slice(0, -ETCD_KEYS.cluster.length)
      throw new TorusError('TORUS_INVALID_ARGUMENT', `prefix ${this.prefix} contains the cluster at prefix ${other}; choose a prefix that does not contain it`, {
        details: { prefix: this.prefix, cluster: other },
      })
    }
  }

  /** Parses and checks a record read from etcd; anything wrong is TORUS_CORRUPT naming the key. */
  async #get(key: string): Promise<IKeyValue | undefined> {
    const ns = this.#kv
    const res = await this.#run(() => ns.get(key).exec())
    return res.kvs[0]
  }

  /** Runs one etcd call and maps whatever it throws, once. */
  async #run<T>(call: () => Promise<T>, leaseId?: LeaseId): Promise<T> {
    try {
      return await call()
    } catch (err) {
      const mapped = mapEtcdError(err, leaseId === undefined ? {} : { leaseId })
      // Outages are the caller's to report (it knows whether it will retry); only surprises
      // are logged here at error level.
      if (mapped.code === 'TORUS_INTERNAL') this.logger.error('etcd call failed', { prefix: this.prefix, code: mapped.code, err })
      else if (mapped.code === 'TORUS_UNAVAILABLE' || mapped.code === 'TORUS_TIMEOUT') this.logger.debug('etcd call failed', { prefix: this.prefix, code: mapped.code, err })
      throw mapped
    }
  }
}

/** etcd lease ids are int64s that the client carries as decimal strings. */
function etcdLeaseId(leaseId: LeaseId): string | undefined {
  return /^[1-9][0-9]{0,18}$/.test(leaseId) ? leaseId : undefined
}

function notFound(name: string): TorusError {
  return new TorusError('TORUS_NOT_FOUND', `volume ${name} does not exist`, { details: { volume: name } })
}

function lockedError(lock: VolumeLock): TorusError {
  return new TorusError('TORUS_LOCKED', `volume ${lock.volume} is locked by ${lock.holder}`, {
    details: { volume: lock.volume, holder: lock.holder, generation: lock.generation },
  })
}

function leaseExpired(leaseId: LeaseId): TorusError {
  return new TorusError('TORUS_LEASE_EXPIRED', `lease ${leaseId} has expired or was revoked`, { details: { leaseId } })
}
