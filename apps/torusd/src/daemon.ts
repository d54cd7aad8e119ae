import fs from 'node:fs/promises'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import {
  formatSize,
  isTorusError,
  TorusError,
  validateReplication,
  type BlockStore,
  type ClusterConfig,
  type Logger,
  type MetadataStore,
  type PeerId,
  type RingDescriptor,
  type RingType,
  type VolumeId,
} from '@torus/core'
import { ClusterView, crc32cNative, DistributedBlockStore, fenceVolume, recordStaleInMetadata, RepairLoop } from '@torus/distributor'
import { verifySecretCheck } from '@torus/metadata'
import { NbdServer } from '@torus/nbd'
import { WsTransport } from '@torus/transport'
import { VolumeManager } from '@torus/volume'
import { ConfigError, type DaemonConfig } from './config.js'
import { clusterIdentity, createDataDir, loadOrCreatePeerId, lockDataDir, PendingDeletes, readClusterBinding, writeClusterBinding } from './data-dir.js'
import { IdleRepair } from './idle-repair.js'
import { createRouter, readJson, sendJson } from './http-util.js'
import { createMetrics, type Metrics } from './metrics.js'
import { PeerPresence } from './peer-presence.js'
import { joinRing } from './ring-membership.js'
import { VERSION } from './version.js'
import { blockStores, metadataStores } from './wiring.js'

/**
 * A ring member that does not answer a takeover's announcement is tried twice more, a second
 * apart (a peer restarting), before it is marked stale for the whole volume.
 */
const FENCE_RETRIES = { retries: 2, retryDelayMs: 1000 }

/** How often an etcd-backed daemon drops local blocks of volumes deleted elsewhere. */
const DELETED_VOLUME_SWEEP_MS = 5 * 60_000

/**
 * Small JSON requests only: a client that trickles its headers or body is cut off (408) rather
 * than holding a socket for Node's default five minutes. Upgraded peer sockets are not affected.
 */
const HTTP_SERVER_OPTIONS: http.ServerOptions = { headersTimeout: 10_000, requestTimeout: 30_000, connectionsCheckingInterval: 5_000 }

export interface DaemonAddresses {
  http: string
  peer: string
  nbd: string | undefined
}

/**
 * Composition root of torusd: opens the metadata and block stores, serves volumes over NBD,
 * the control API (for torusctl) on the peer port, and /healthz and /metrics on the HTTP port.
 */
export class Daemon {
  readonly config: DaemonConfig
  readonly #log: Logger
  #metadata: MetadataStore | undefined
  /** This peer's own blocks (its replicas). */
  #store: BlockStore | undefined
  /** With etcd: the replicated store volumes are served from (it owns `#store`). */
  #distributor: DistributedBlockStore | undefined
  #repair: RepairLoop | undefined
  #idleRepair: IdleRepair | undefined
  #transport: WsTransport | undefined
  #view: ClusterView | undefined
  #volumes: VolumeManager | undefined
  #nbd: NbdServer | undefined
  #httpServer: http.Server | undefined
  #peerServer: http.Server | undefined
  #metrics: Metrics | undefined
  #unlockDataDir: (() => Promise<void>) | undefined
  #peerId: PeerId | undefined
  #presence: PeerPresence | undefined
  #sweepTimer: NodeJS.Timeout | undefined
  #stopping: Promise<void> | undefined
  /** The data dir's cluster.json names this cluster (so deleted volumes' blocks may be dropped). */
  #boundToCluster = false
  /** This start formatted a new cluster (there was no metadata). */
  #formattedNow = false
  /** Whether DATA_DIR/metadata was there before this start (embedded metadata creates it). */
  #metadataDirExisted = true
  addresses: DaemonAddresses | undefined

  constructor(config: DaemonConfig, logger: Logger) {
    this.config = config
    this.#log = logger
  }

  async start(): Promise<DaemonAddresses> {
    const { config } = this
    await createDataDir(config.dataDir)
    this.#unlockDataDir = await lockDataDir(config.dataDir)
    this.#peerId = await loadOrCreatePeerId(config.dataDir)
    this.#log.info('starting', { peer: this.#peerId, dataDir: config.dataDir, size: config.sizeBytes, metadata: config.etcd === undefined ? 'embedded' : 'etcd' })

    if (config.etcd === undefined) this.#metadataDirExisted = await fs.stat(path.join(config.dataDir, 'metadata')).then(() => true, () => false)
    const metadata =
      config.etcd === undefined
        ? metadataStores.embedded({ dir: path.join(config.dataDir, 'metadata'), logger: this.#log.child({ component: 'metadata' }) })
        : metadataStores.etcd({ hosts: config.etcd, prefix: config.etcdPrefix, logger: this.#log.child({ component: 'metadata:etcd' }) })
    try {
      await metadata.open()
    } catch (err) {
      if (config.etcd !== undefined && isTorusError(err) && (err.code === 'TORUS_UNAVAILABLE' || err.code === 'TORUS_TIMEOUT')) {
        throw new TorusError('TORUS_UNAVAILABLE', `cannot reach etcd at ${config.etcd.join(',')}: ${err.message}`, { cause: err })
      }
      throw err
    }
    this.#metadata = metadata
    const cluster = config.etcd === undefined ? await this.#ensureCluster(metadata) : await this.#etcdCluster(metadata)
    // Before the data dir is bound to the cluster or gets a block store: a start refused for
    // its secret leaves the data dir as it found it.
    if (config.etcd !== undefined) this.#checkClusterSecret(cluster)
    const where = config.etcd === undefined ? `embedded metadata in ${config.dataDir}` : `etcd ${config.etcd.join(',')} prefix ${config.etcdPrefix}`
    const binding = await readClusterBinding(config.dataDir)
    // A binding written before clusters had ids names the creation time; both mean this cluster.
    const matches = binding !== undefined && (binding.cluster === clusterIdentity(cluster) || binding.cluster === `created:${cluster.createdAt}`)
    // A just-formatted embedded cluster means metadata.json was lost: the block check below
    // explains that better than a cluster mismatch would — unless the data dir served a cluster
    // in etcd, and this start merely forgot --etcd.
    const servedEtcd = binding === undefined ? undefined : /^etcd (\S+) prefix (\S+)$/.exec(binding.metadata)
    if (binding !== undefined && !matches && (!this.#formattedNow || (config.etcd === undefined && servedEtcd !== null))) {
      if (this.#formattedNow) await this.#discardFormattedMetadata()
      const fix =
        config.etcd === undefined && servedEtcd != null
          ? `it serves a cluster in etcd: start torusd with --etcd ${servedEtcd[1]} --etcd-prefix ${servedEtcd[2]} --cluster-secret-file FILE (the file torusctl init wrote)`
          : 'point torusd at the right --etcd/--etcd-prefix, or give it an empty data dir'
      const found = this.#formattedNow ? 'a new single-node cluster would be formatted here' : `${where} holds cluster ${clusterIdentity(cluster)}`
      throw new TorusError('TORUS_CORRUPT', `data dir ${config.dataDir} belongs to another cluster (${binding.cluster}, metadata in ${binding.metadata}), but ${found}; ${fix}`, {
        details: { dataDir: config.dataDir, bound: binding.cluster, found: clusterIdentity(cluster) },
      })
    }
    // Only a data dir known to belong to this cluster may drop blocks the cluster no longer lists.
    this.#boundToCluster = matches

    const store = blockStores.file({
      dir: path.join(config.dataDir, 'blocks'),
      blockSizeBytes: cluster.blockSizeBytes,
      capacityBytes: config.sizeBytes,
      logger: this.#log.child({ component: 'blockstore:file' }),
    })
    await store.open()
    this.#store = store
    const usage = store.usage()
    this.#log.info('block store open', { used: usage.usedBytes, capacity: usage.capacityBytes, blocks: usage.blocks })

    if (binding === undefined && config.etcd !== undefined && usage.blocks > 0) {
      // Blocks but no binding (a data dir from before bindings existed): every cluster numbers
      // volumes from 1, so matching ids prove nothing. Bind only if this cluster already knows
      // this peer, i.e. this data dir has served it before.
      const known = (await metadata.listPeers()).some((p) => p.id === this.#peerId)
      if (!known) {
        throw new TorusError(
          'TORUS_CORRUPT',
          `data dir ${config.dataDir} holds blocks but records no cluster, and ${where} has never seen its peer ${this.#peerId}: it may belong to another cluster. Start it against the cluster it served, or, if you are sure it belongs to this one, write {"cluster":"${clusterIdentity(cluster)}","metadata":"manual"} to ${path.join(config.dataDir, 'cluster.json')}`,
          { details: { dataDir: config.dataDir, peer: this.#peerId } },
        )
      }
      this.#boundToCluster = true
    }

    const pendingDeletes = new PendingDeletes(config.dataDir)
    await this.#checkBlocksAgainstMetadata(metadata, store, pendingDeletes)
    if (binding?.cluster !== clusterIdentity(cluster)) {
      await writeClusterBinding(config.dataDir, { cluster: clusterIdentity(cluster), metadata: where })
      this.#boundToCluster = true
    }
    const holder = `torusd/${this.#peerId}@${config.peerListen.host}:${config.peerListen.port}`
    await this.#releaseOwnStaleLocks(metadata)
    this.#peerServer = http.createServer(HTTP_SERVER_OPTIONS, this.#guardControlApi(this.#controlApi()))
    let peer: string | undefined
    if (config.etcd !== undefined) {
      // Listen first: the transport shares the control API's port.
      peer = await listen(this.#peerServer, config.peerListen, '--peer-address/PEER_ADDRESS')
      this.#distributor = await this.#startDataPath(metadata, cluster, store)
    }
    const distributor = this.#distributor
    this.#volumes = new VolumeManager({
      metadata,
      store: distributor ?? store,
      holder,
      pendingDeletes,
      ...(distributor === undefined
        ? {}
        : {
            prepare: async (volume) => {
              await fenceVolume(distributor, metadata, volume.info.id, volume.generation ?? 0, this.#log.child({ component: 'fencing', volume: volume.info.name }), FENCE_RETRIES)
            },
            // A volume opened with stale replicas gets them repaired at once, not at the next pass.
            onOpened: (info) => {
              if (distributor.hasStaleReplicas(info.id)) this.#repair?.kick()
            },
            // Marks only this holder knows (a corrupt copy a read found) are recorded while it still holds the lock.
            beforeClose: async (volume) => {
              await distributor.recordOwedStale(volume.info.id, metadata)
            },
            // Its repair stops with the tenure: only the lock holder may repair.
            onClosed: (info) => distributor.endTenure(info.id),
            // Peers that cannot be reached now drop their blocks at their next sweep.
            dropBlocks: async (id) => {
              await store.deleteVolume(id)
              await store.flush()
              await distributor.deleteVolume(id).catch((err: unknown) => this.#log.warn('some peers could not drop the deleted volume yet; they will at their next sweep', { id, err }))
            },
          }),
      leaseTtlMs: config.leaseTtlMs,
      // Only etcd can be unreachable; the embedded store is in process.
      unreachableGraceMs: config.etcd === undefined ? 0 : config.lockGraceMs,
      logger: this.#log.child({ component: 'volume' }),
    })

    if (distributor !== undefined && config.repairRateBytes > 0) {
      const volumes = this.#volumes
      this.#repair = new RepairLoop({ store: distributor, metadata, volumes: () => volumes.held(), bytesPerSecond: config.repairRateBytes, logger: this.#log })
      this.#repair.start()
      const view = this.#view
      if (view !== undefined && config.idleRepairIntervalMs > 0) {
        this.#idleRepair = new IdleRepair({
          metadata,
          volumes,
          staleMarks: (id) => distributor.staleMarkCount(id),
          progress: () => {
            const stats = this.#repair?.stats
            return stats === undefined ? 0 : stats.bytes + stats.repairedBlocks + stats.rejoinedPeers
          },
          reachable: (peers) => distributor.reachesAll(peers),
          ring: () => view.ring.descriptor,
          peerId: this.#peerId!,
          intervalMs: config.idleRepairIntervalMs,
          logger: this.#log,
        })
        this.#idleRepair.start()
      }
    }

    const nbdAddress = await this.#startNbd()
    this.#metrics = createMetrics({
      repair: () => this.#repair?.stats,
      store,
      volumes: this.#volumes,
      nbd: this.#nbd,
      metadata,
      presence: () => this.#presence && { ringVersion: this.#presence.ring?.version, lastHeartbeatMs: this.#presence.lastHeartbeatMs },
    })
    peer ??= await listen(this.#peerServer, config.peerListen, '--peer-address/PEER_ADDRESS')
    if (!isLoopback(config.peerListen.host)) {
      if (config.etcd === undefined) this.#log.warn('control API listens beyond loopback without authentication; anyone who reaches it can create and delete volumes', { peer })
      else this.#log.info('peer port listens beyond loopback: peers must authenticate with the cluster secret; the control API answers loopback clients only', { peer })
    }
    const httpAddr = await listen((this.#httpServer = http.createServer(HTTP_SERVER_OPTIONS, this.#httpApi())), config.http, '--host/--port (LISTEN_HOST, LISTEN_HTTP_PORT)')
    this.addresses = { http: httpAddr, peer, nbd: nbdAddress }

    await this.#joinCluster(metadata, store)
    if (config.etcd !== undefined) this.#scheduleDeletedVolumeSweep()
    this.#log.info('torusd ready', { peerId: this.#peerId, ...this.addresses })
    return this.addresses
  }

  /**
   * The replicated data path (etcd clusters): the peer transport on the control API's port,
   * authenticated by the cluster secret; a view of the ring and the peers' addresses; and the
   * distributor, which serves this peer's replicas and places every volume's blocks.
   */
  async #startDataPath(metadata: MetadataStore, cluster: ClusterConfig, local: BlockStore): Promise<DistributedBlockStore> {
    const { config } = this
    const secret = config.clusterSecret! // start() checked it against the cluster (#checkClusterSecret)
    if (cluster.id === undefined) throw new TorusError('TORUS_CORRUPT', 'the cluster config has no id; it was written by an older torusctl: run torusctl init on a fresh prefix')
    const log = this.#log
    const transport = new WsTransport({
      clusterId: cluster.id,
      peerId: this.#peerId!,
      secret: secret.bytes,
      server: this.#peerServer!,
      requestTimeoutMs: 10_000,
      logger: log.child({ component: 'transport' }),
    })
    this.#transport = transport
    const view = new ClusterView({ metadata, logger: log.child({ component: 'ring' }) })
    this.#view = view
    const ring = await view.start()
    const distributor = new DistributedBlockStore({
      peerId: this.#peerId!,
      ring,
      local,
      replicaStateDir: path.join(config.dataDir, 'replica'),
      transport,
      peerAddress: (peer) => view.peerAddress(peer),
      onDegraded: recordStaleInMetadata(metadata),
      // A corrupt copy or a lost write found outside a write: repair records it at once.
      onStaleFound: () => this.#repair?.kick(),
      requestTimeoutMs: 10_000,
      logger: log,
    })
    view.onRing((next) => distributor.setRing(next))
    // Handlers before listening: a peer that dials at once finds them.
    await distributor.open()
    const address = await transport.listen(this.#advertisedPeerAddress())
    log.info('data path ready', {
      peerAddress: address,
      ringVersion: ring.descriptor.version,
      replication: ring.descriptor.replication,
      members: ring.descriptor.members.length,
      checksums: crc32cNative ? 'crc32c (native)' : 'crc32c (portable, slower)',
    })
    return distributor
  }

  /** The cluster secret, checked against the verifier `torusctl init` stored (ConfigError: exit 2). */
  #checkClusterSecret(cluster: ClusterConfig): NonNullable<DaemonConfig['clusterSecret']> {
    const secret = this.config.clusterSecret
    if (secret === undefined) {
      throw new ConfigError(
        'a cluster member needs the cluster secret that torusctl init wrote: pass --cluster-secret-file PATH (or TORUS_CLUSTER_SECRET_FILE, or the secret in TORUS_CLUSTER_SECRET)',
      )
    }
    if (cluster.secretCheck === undefined) {
      this.#log.warn('the cluster records no secret check (initialised by an older torusctl); peers with another secret will be refused only at connect time')
    } else if (!verifySecretCheck(secret.bytes, cluster.secretCheck)) {
      throw new ConfigError(`the cluster secret from ${secret.source} is not the one this cluster was initialised with; use the file torusctl init wrote`)
    }
    return secret
  }

  /** The configured peer address, with the bound port when it asked for port 0. */
  #advertisedPeerAddress(): string {
    const { config } = this
    const bound = this.#peerServer?.address()
    if (config.peerListen.port !== 0 || bound === null || bound === undefined || typeof bound === 'string') return config.peerAddress
    const url = new URL(config.peerAddress)
    url.port = String(bound.port)
    return url.href.replace(/\/$/, '')
  }

  /** Heartbeats, the ring watch, and (with --auto-join, or always on an embedded node) ring membership. */
  async #joinCluster(metadata: MetadataStore, store: BlockStore): Promise<void> {
    const { config } = this
    const peerId = this.#peerId!
    const presence = new PeerPresence({
      metadata,
      ttlMs: config.leaseTtlMs,
      logger: this.#log.child({ component: 'peer' }),
      report: () => {
        const usage = store.usage()
        return {
          id: peerId,
          address: this.#advertisedPeerAddress(),
          ...(this.addresses?.nbd === undefined ? {} : { nbdAddress: this.addresses.nbd }),
          capacityBytes: usage.capacityBytes,
          usedBytes: usage.usedBytes,
          // Rebalance is not built; repair copies only for the volumes this node serves.
          rebalanceBytesPerSec: 0,
          repairBytesPerSec: this.#repair?.stats.bytesPerSec ?? 0,
          version: VERSION,
        }
      },
    })
    await presence.start()
    this.#presence = presence
    if (config.autoJoin || config.etcd === undefined) {
      const result = await joinRing(metadata, peerId, config.sizeBytes, this.#log.child({ component: 'ring' }))
      if (result === 'joined') await presence.beatNow()
    }
  }

  /** An etcd cluster must have been initialised by `torusctl init`, unless --debug-init. */
  async #etcdCluster(metadata: MetadataStore): Promise<ClusterConfig> {
    const { config } = this
    const existing = await metadata.getClusterConfig()
    if (existing !== undefined) {
      this.#log.info('cluster found in etcd', { prefix: config.etcdPrefix, blockSize: existing.blockSizeBytes, replication: existing.replication, ringType: existing.ringType })
      return existing
    }
    const where = `etcd ${config.etcd!.join(',')} (prefix ${config.etcdPrefix})`
    if (!config.debugInit) {
      throw new TorusError(
        'TORUS_NOT_INITIALIZED',
        `no Torus cluster in ${where}; run \`torusctl -C ${config.etcd![0]} --etcd-prefix ${config.etcdPrefix} init\` first, check --etcd and --etcd-prefix, or start torusd with --debug-init (DEBUG_INIT=1) to initialise one with defaults`,
      )
    }
    const fresh: ClusterConfig = { blockSizeBytes: config.blockSizeBytes, replication: 2, ringType: 'ketama', createdAt: new Date().toISOString() }
    try {
      await metadata.initCluster(fresh)
      this.#log.warn('initialised a new cluster because of --debug-init', { prefix: config.etcdPrefix, blockSize: fresh.blockSizeBytes, replication: 2, ringType: 'ketama' })
      return (await metadata.getClusterConfig())!
    } catch (err) {
      if (!isTorusError(err, 'TORUS_ALREADY_EXISTS')) throw err
      return (await metadata.getClusterConfig())!
    }
  }

  /**
   * With etcd, volumes are deleted by torusctl directly in etcd; each daemon drops its blocks of
   * deleted volumes on its own, at start-up and then now and again.
   */
  #scheduleDeletedVolumeSweep(): void {
    this.#sweepTimer = setTimeout(() => {
      void this.#sweepDeletedVolumes()
        .catch((err: unknown) => this.#log.warn('sweep of deleted volumes failed; will retry', { err }))
        .finally(() => {
          if (this.#stopping === undefined) this.#scheduleDeletedVolumeSweep()
        })
    }, DELETED_VOLUME_SWEEP_MS)
    this.#sweepTimer.unref()
  }

  async #sweepDeletedVolumes(): Promise<void> {
    if (!this.#store!.supports.iterate || !this.#boundToCluster) return
    const { unknown, nextId } = await this.#unknownLocalVolumes(this.#metadata!, this.#store!)
    await this.#dropDeletedVolumes(this.#store!, unknown, nextId)
  }

  /** Local volume ids the metadata does not list, the metadata's volume ids, and its id watermark. */
  async #unknownLocalVolumes(metadata: MetadataStore, store: BlockStore): Promise<{ unknown: Set<VolumeId>; known: Set<number>; nextId: number }> {
    // The id watermark first: a volume created between the two reads is then listed, never
    // mistaken for a deleted one.
    const nextId = await metadata.nextVolumeId()
    const known = new Set<number>((await metadata.listVolumes()).map((v) => v.id))
    const unknown = new Set<VolumeId>()
    for await (const ref of store.refs()) if (!known.has(ref.volumeId)) unknown.add(ref.volumeId)
    return { unknown, known, nextId }
  }

  /**
   * With etcd, torusctl deletes volumes in etcd directly: an id the metadata has handed out
   * (below nextVolumeId) but no longer lists was deleted, and its blocks can go. Removes the
   * dropped ids from `unknown`.
   */
  async #dropDeletedVolumes(store: BlockStore, unknown: Set<VolumeId>, nextId: number): Promise<void> {
    for (const id of [...unknown]) {
      if (id >= nextId) continue
      await store.deleteVolume(id)
      await store.flush()
      // The replica's checksums of that volume (Replica stateDir: <volume id>.crc) go with it.
      await fs.rm(path.join(this.config.dataDir, 'replica', `${id}.crc`), { force: true })
      unknown.delete(id)
      this.#log.info('dropped blocks of a deleted volume', { id })
    }
  }

  /** Stops serving, flushes every volume and closes the stores. Safe to call twice. */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop()
    return this.#stopping
  }

  async #stop(): Promise<void> {
    this.#log.info('stopping')
    clearTimeout(this.#sweepTimer)
    // The peer lease goes first: from now on other nodes see this one down, rather than alive
    // with its peer port closed (a takeover meanwhile would record it stale for whole volumes).
    await this.#presence?.stop()
    // The peer port stops taking connections now, but it closes only once the transport has
    // closed the peer connections upgraded on it (an HTTP server waits for those too).
    const peerServerClosed = closeServer(this.#peerServer)
    await closeServer(this.#httpServer)
    await this.#nbd?.close()
    await this.#idleRepair?.stop()
    await this.#repair?.stop()
    await this.#volumes?.closeAll()
    await this.#view?.stop()
    await this.#distributor?.close()
    await this.#transport?.close()
    await peerServerClosed
    await this.#store?.close()
    await this.#metadata?.close()
    await this.#unlockDataDir?.()
    this.#log.info('stopped')
  }

  /** A single embedded node formats its own one-node cluster on first start. */
  async #ensureCluster(metadata: MetadataStore): Promise<ClusterConfig> {
    const existing = await metadata.getClusterConfig()
    if (existing !== undefined) return existing
    const config: ClusterConfig = { blockSizeBytes: this.config.blockSizeBytes, replication: 1, ringType: 'single', createdAt: new Date().toISOString() }
    try {
      await metadata.initCluster(config)
      this.#formattedNow = true
      this.#log.info('initialised one-node cluster', { blockSize: config.blockSizeBytes, replication: 1 })
      // Read back: the store assigns the cluster id.
      return (await metadata.getClusterConfig())!
    } catch (err) {
      if (!isTorusError(err, 'TORUS_ALREADY_EXISTS')) throw err
      return (await metadata.getClusterConfig())!
    }
  }

  /**
   * Blocks must belong to volumes the metadata knows. Deletes interrupted by a crash are
   * finished (their ids are journalled). Any other unknown id means the metadata and the block
   * store disagree — a lost or replaced metadata file — and torusd refuses to start rather than
   * guess: deleting could destroy the only copy of a volume, and keeping them could hand their
   * bytes to a new volume that gets the same id.
   */
  async #checkBlocksAgainstMetadata(metadata: MetadataStore, store: BlockStore, pending: PendingDeletes): Promise<void> {
    if (!store.supports.iterate) return
    const { unknown, known, nextId } = await this.#unknownLocalVolumes(metadata, store)
    if (this.config.etcd !== undefined && this.#boundToCluster) await this.#dropDeletedVolumes(store, unknown, nextId)
    const journalled = new Set(await pending.read())
    for (const id of journalled) {
      if (known.has(id)) {
        // The crash came before the metadata delete: the volume is still there; keep it.
        await pending.remove(id)
        continue
      }
      await store.deleteVolume(id as VolumeId)
      await store.flush()
      await pending.remove(id)
      unknown.delete(id as VolumeId)
      this.#log.warn('finished an interrupted volume delete', { id })
    }
    if (unknown.size === 0) return
    const ids = [...unknown].sort((a, b) => a - b)
    const blocks = path.join(this.config.dataDir, 'blocks')
    const discard = `remove ${ids.map((id) => path.join(blocks, String(id))).join(', ')} to discard those blocks`
    let message: string
    if (this.config.etcd !== undefined) {
      message = `${blocks} holds blocks of volume id(s) ${ids.join(', ')} that the cluster in etcd (prefix ${this.config.etcdPrefix}) never allocated: is this data dir from another cluster? Start it against its own cluster, or ${discard}`
    } else if (this.#formattedNow) {
      // Do not keep the metadata this start just formatted: the next start must again see that
      // metadata.json is missing, rather than a cluster that does not match the data dir.
      await this.#discardFormattedMetadata()
      message = `${blocks} holds blocks of volume id(s) ${ids.join(', ')} but metadata/metadata.json is missing; restore it from a backup, or ${discard}`
    } else {
      message = `${blocks} holds blocks of volume id(s) ${ids.join(', ')} but the metadata does not know them; restore metadata/metadata.json from a backup, or ${discard}`
    }
    throw new TorusError('TORUS_CORRUPT', message, { details: { ids } })
  }

  /** Undoes this start's formatting of embedded metadata (a start that is refused keeps none). */
  async #discardFormattedMetadata(): Promise<void> {
    await this.#metadata?.close()
    const dir = path.join(this.config.dataDir, 'metadata')
    await fs.rm(path.join(dir, 'metadata.json'), { force: true })
    // Only a directory this start made, and only when empty: the rest is not ours to remove.
    if (!this.#metadataDirExisted) await fs.rmdir(dir).catch(() => {})
  }

  /**
   * Locks held under our own holder name belong to an earlier run of this very daemon (we hold
   * the data dir lock, so no other process of ours is alive): release them instead of waiting
   * out their leases, so a restart after a crash serves its volumes at once.
   */
  async #releaseOwnStaleLocks(metadata: MetadataStore): Promise<void> {
    // Holder names are `torusd/<peer id>@<address>`; the address may have changed since.
    const ours = (holder: string): boolean => holder === `torusd/${this.#peerId}` || holder.startsWith(`torusd/${this.#peerId}@`)
    for (const info of await metadata.listVolumes()) {
      const lock = await metadata.getVolumeLock(info.name)
      if (lock !== undefined && ours(lock.holder)) {
        await metadata.unlockVolume(lock)
        await metadata.revokeLease(lock.leaseId)
        this.#log.info('released stale lock from previous run', { volume: info.name, generation: lock.generation })
      }
    }
  }

  async #startNbd(): Promise<string | undefined> {
    const { nbd } = this.config
    if (nbd === undefined) return undefined
    const volumes = this.#volumes!
    const metadata = this.#metadata!
    this.#nbd = new NbdServer({
      logger: this.#log.child({ component: 'nbd' }),
      maxConnections: this.config.nbdMaxConnections,
      listExports: async () => (await metadata.listVolumes()).map((v) => ({ name: v.name, description: `torus block volume, ${formatSize(v.sizeBytes)}` })),
      openExport: async (name: string) => {
        const handle = await volumes.acquire(name)
        if (handle === undefined) return undefined
        return { device: handle.volume, close: () => handle.release() }
      },
      // NBD_OPT_INFO (nbdinfo, nbdinfo --list) takes no lock: it must work while another node
      // holds the volume, and must not fence anything.
      describeExport: (name: string) => volumes.describe(name),
    })
    const addr = await this.#nbd.listen({ host: nbd.host, port: nbd.port }).catch((err: unknown) => {
      throw listenError(err, '--nbd-address/TORUS_NBD_ADDRESS', nbd)
    })
    return `${formatHost(addr.address)}:${addr.port}`
  }

  /**
   * In a cluster the peer port must be reachable by every peer, but the control API has no
   * authentication (torusctl talks to etcd there anyway): it answers loopback clients only, and
   * nothing until start-up has finished.
   */
  #guardControlApi(api: http.RequestListener): http.RequestListener {
    return (req, res) => {
      if (this.#volumes === undefined || this.addresses === undefined) {
        sendJson(res, 503, { error: { code: 'TORUS_UNAVAILABLE', message: 'torusd is starting' } })
        return
      }
      if (this.config.etcd !== undefined && !isLoopback(req.socket.remoteAddress ?? '')) {
        sendJson(res, 403, {
          error: { code: 'TORUS_NOT_SUPPORTED', message: `the control API answers loopback clients only in a cluster; use torusctl -C ${this.config.etcd[0]} (etcd) instead` },
        })
        return
      }
      api(req, res)
    }
  }

  #controlApi(): http.RequestListener {
    const metadata = (): MetadataStore => this.#metadata!
    return createRouter([
      {
        method: 'GET',
        pattern: /^\/v1\/cluster$/,
        handler: async (_req, res) => {
          const config = await metadata().getClusterConfig()
          if (config === undefined) throw new TorusError('TORUS_NOT_INITIALIZED', 'cluster is not initialised; run torusctl init')
          sendJson(res, 200, config)
        },
      },
      {
        method: 'POST',
        pattern: /^\/v1\/cluster$/,
        handler: async (req, res) => {
          const body = await readJson(req)
          const config: ClusterConfig = {
            blockSizeBytes: numberField(body, 'blockSizeBytes', this.config.blockSizeBytes),
            replication: validateReplication(numberField(body, 'replication', 1)),
            ringType: ringTypeField(body),
            createdAt: new Date().toISOString(),
          }
          await metadata().initCluster(config)
          sendJson(res, 201, config)
        },
      },
      { method: 'GET', pattern: /^\/v1\/volumes$/, handler: async (_req, res) => sendJson(res, 200, await metadata().listVolumes()) },
      {
        method: 'POST',
        pattern: /^\/v1\/volumes$/,
        handler: async (req, res) => {
          const body = await readJson(req)
          const info = await metadata().createVolume({ name: body.name as string, sizeBytes: body.sizeBytes as number })
          this.#log.info('volume created', { volume: info.name, id: info.id, size: info.sizeBytes })
          sendJson(res, 201, info)
        },
      },
      {
        method: 'GET',
        pattern: /^\/v1\/volumes\/([^/]+)$/,
        handler: async (_req, res, [name]) => {
          const info = await metadata().getVolume(name!)
          if (info === undefined) throw new TorusError('TORUS_NOT_FOUND', `volume ${name} not found`)
          sendJson(res, 200, info)
        },
      },
      { method: 'DELETE', pattern: /^\/v1\/volumes\/([^/]+)$/, handler: async (_req, res, [name]) => sendJson(res, 200, await this.#volumes!.delete(name!)) },
      { method: 'GET', pattern: /^\/v1\/peers$/, handler: async (_req, res) => sendJson(res, 200, await metadata().listPeers()) },
      {
        method: 'DELETE',
        pattern: /^\/v1\/peers\/([^/]+)$/,
        handler: async (_req, res, [id]) => {
          const peer = decodeURIComponent(id!)
          const ring = await metadata().getRing()
          if (ring?.members.some((m) => m.peer === peer) === true) {
            throw new TorusError('TORUS_LOCKED', `peer ${peer} is still in the ring (version ${ring.version}); remove it from the ring first`, { details: { peer } })
          }
          await metadata().forgetPeer(peer)
          sendJson(res, 200, { forgotten: id })
        },
      },
      {
        method: 'GET',
        pattern: /^\/v1\/ring$/,
        handler: async (_req, res) => {
          const ring = await metadata().getRing()
          if (ring === undefined) throw new TorusError('TORUS_NOT_INITIALIZED', 'cluster is not initialised; run torusctl init')
          sendJson(res, 200, ring)
        },
      },
      {
        method: 'PUT',
        pattern: /^\/v1\/ring$/,
        handler: async (req, res) => {
          const body = (await readJson(req)) as unknown as RingDescriptor
          const force = new URL(req.url ?? '/', 'http://localhost').searchParams.get('force') === 'true'
          if (!force) await refusePlacementChangeWithVolumes(metadata(), body)
          await metadata().setRing(body)
          const stored = await metadata().getRing()
          this.#log.info('ring set through the control API', { version: stored?.version, type: stored?.type, members: stored?.members.length })
          sendJson(res, 200, stored)
        },
      },
      { method: 'GET', pattern: /^\/v1\/status$/, handler: (_req, res) => sendJson(res, 200, this.status()) },
    ])
  }

  #httpApi(): http.RequestListener {
    return createRouter([
      { method: 'GET', pattern: /^\/healthz$/, handler: (_req, res) => sendJson(res, 200, { status: 'ok' }) },
      {
        method: 'GET',
        pattern: /^\/metrics$/,
        handler: async (_req, res) => {
          const body = await this.#metrics!.registry.metrics()
          res.writeHead(200, { 'content-type': this.#metrics!.registry.contentType })
          res.end(body)
        },
      },
      { method: 'GET', pattern: /^\/api\/v1\/status$/, handler: (_req, res) => sendJson(res, 200, this.status()) },
      { method: 'GET', pattern: /^\/api\/v1\/volumes$/, handler: async (_req, res) => sendJson(res, 200, await this.#metadata!.listVolumes()) },
      { method: 'GET', pattern: /^\/api\/v1\/peers$/, handler: async (_req, res) => sendJson(res, 200, await this.#metadata!.listPeers()) },
    ])
  }

  status(): Record<string, unknown> {
    const usage = this.#store?.usage()
    return {
      peer: this.#peerId,
      peerAddress: this.config.peerAddress,
      addresses: this.addresses,
      metadata: this.config.etcd === undefined ? 'embedded' : `etcd ${this.config.etcd.join(',')} (prefix ${this.config.etcdPrefix})`,
      ringVersion: this.#presence?.ring?.version,
      lastHeartbeat: this.#presence?.lastHeartbeatMs === undefined ? undefined : new Date(this.#presence.lastHeartbeatMs).toISOString(),
      capacityBytes: usage?.capacityBytes,
      usedBytes: usage?.usedBytes,
      openVolumes: Object.fromEntries(this.#volumes?.openVolumes() ?? []),
      lockGenerations: Object.fromEntries(this.#volumes?.generations() ?? []),
      nbdConnections: this.#nbd?.connections ?? 0,
    }
  }
}

/**
 * Rebalance is not built: a ring whose placement differs (type, replication, members or weights)
 * moves existing blocks' homes to peers that do not hold them. torusctl refuses that while
 * volumes exist unless --force, and so does the API, for any other client (`?force=true`).
 */
async function refusePlacementChangeWithVolumes(metadata: MetadataStore, next: RingDescriptor): Promise<void> {
  const current = await metadata.getRing()
  // An empty ring placed nothing, so no volume can have data to lose yet.
  if (current !== undefined && (samePlacement(current, next) || current.members.length === 0)) return
  const volumes = await metadata.listVolumes()
  if (volumes.length === 0) return
  throw new TorusError(
    'TORUS_NOT_SUPPORTED',
    `the cluster has ${volumes.length} volume(s), and moving their blocks to new owners (rebalance) is not built yet: after this ring change their data would read as missing. Retry with ?force=true if their contents do not matter`,
    { details: { volumes: volumes.length } },
  )
}

function samePlacement(a: RingDescriptor, b: RingDescriptor): boolean {
  if (a.type !== b.type || a.replication !== b.replication || !Array.isArray(b.members) || a.members.length !== b.members.length) return false
  const weights = new Map(a.members.map((m) => [m.peer, m.weight]))
  return b.members.every((m) => weights.get(m?.peer) === m?.weight)
}

function numberField(body: Record<string, unknown>, key: string, fallback: number): number {
  const v = body[key] ?? fallback
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw new TorusError('TORUS_INVALID_ARGUMENT', `${key} must be an integer`)
  return v
}

function ringTypeField(body: Record<string, unknown>): RingType {
  const v = body.ringType ?? 'single'
  if (v !== 'ketama' && v !== 'mod' && v !== 'single') throw new TorusError('TORUS_INVALID_ARGUMENT', `ringType must be ketama, mod or single, got ${JSON.stringify(v)}`)
  return v
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.') || host.startsWith('::ffff:127.')
}

function formatHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host
}

/**
 * A listen that failed, naming the setting: a host that does not resolve or is not this
 * machine's is a configuration mistake (exit 2); a port in use or not allowed is a failure to
 * run (exit 1) that names the port to change.
 */
function listenError(err: unknown, what: string, at: { host: string; port: number }): Error {
  const e = err as NodeJS.ErrnoException
  const where = `${formatHost(at.host)}:${at.port}`
  switch (e.code) {
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EAI_NONAME':
      return new ConfigError(`${what}: cannot listen on ${where}: host ${JSON.stringify(at.host)} does not resolve`)
    case 'EADDRNOTAVAIL':
      return new ConfigError(`${what}: cannot listen on ${where}: ${at.host} is not an address of this machine`)
    case 'EADDRINUSE':
      return Object.assign(new Error(`${what}: cannot listen on ${where}: the port is in use (another torusd? pick another port)`, { cause: err }), { code: e.code })
    case 'EACCES':
      return Object.assign(new Error(`${what}: cannot listen on ${where}: permission denied (ports below 1024 need root)`, { cause: err }), { code: e.code })
    default:
      return err instanceof Error ? err : new Error(String(err))
  }
}

function listen(server: http.Server, at: { host: string; port: number }, what: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(listenError(err, what, at))
    server.once('error', onError)
    server.listen(at.port, at.host, () => {
      server.off('error', onError)
      const addr = server.address() as AddressInfo
      resolve(`${formatHost(addr.address)}:${addr.port}`)
    })
  })
}

function closeServer(server: http.Server | undefined): Promise<void> {
  if (server === undefined || !server.listening) return Promise.resolve()
  return new Promise((resolve) => {
    server.close(() => resolve())
    server.closeAllConnections()
  })
}
