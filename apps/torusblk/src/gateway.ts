import { randomUUID } from 'node:crypto'
import os from 'node:os'
import { formatSize, isTorusError, TorusError, type ClusterConfig, type Logger, type MetadataStore } from '@torus/core'
import { ClusterView, DistributedBlockStore, fenceVolume, recordStaleInMetadata, RepairLoop } from '@torus/distributor'
import { verifySecretCheck } from '@torus/metadata'
import { EtcdMetadataStore } from '@torus/metadata-etcd'
import { NbdServer } from '@torus/nbd'
import { WsTransport } from '@torus/transport'
import { VolumeManager } from '@torus/volume'
import type { NbdServerConfig } from './config.js'

/**
 * Composition root of `torusblk nbdserver`: the same NBD gateway torusd runs, with no local
 * storage. It reads the cluster from etcd, dials the peers that hold the replicas (it never
 * listens for peers and is never a ring member), and serves every volume over NBD under the
 * volume's write lock, fencing the replicas before a volume serves anything.
 */
export class Gateway {
  readonly config: NbdServerConfig
  /** This run's identity: the transport peer id, and part of the lock holder name. */
  readonly id: string = randomUUID()
  readonly holder: string
  readonly #log: Logger
  #metadata: MetadataStore | undefined
  #transport: WsTransport | undefined
  #view: ClusterView | undefined
  #distributor: DistributedBlockStore | undefined
  #volumes: VolumeManager | undefined
  #repair: RepairLoop | undefined
  #nbd: NbdServer | undefined
  #stopping: Promise<void> | undefined
  /** `host:port` NBD clients connect to, once listening. */
  address: string | undefined

  constructor(config: NbdServerConfig, logger: Logger) {
    this.config = config
    this.#log = logger
    this.holder = `torusblk/${this.id}@${os.hostname()}`
  }

  async start(): Promise<string> {
    const { config } = this
    const log = this.#log
    const where = `etcd ${config.etcd.join(',')} (prefix ${config.etcdPrefix})`
    log.info('starting', { gateway: this.id, holder: this.holder, etcd: config.etcd, prefix: config.etcdPrefix })

    const metadata = new EtcdMetadataStore({ hosts: config.etcd, prefix: config.etcdPrefix, logger: log.child({ component: 'metadata:etcd' }), dialTimeoutMs: 3000, callTimeoutMs: 5000 })
    try {
      await metadata.open()
    } catch (err) {
      if (isTorusError(err) && (err.code === 'TORUS_UNAVAILABLE' || err.code === 'TORUS_TIMEOUT')) {
        throw new TorusError('TORUS_UNAVAILABLE', `cannot reach etcd at ${config.etcd.join(',')}: ${err.message}`, { cause: err })
      }
      throw err
    }
    this.#metadata = metadata
    const cluster = await this.#cluster(metadata, where)

    const transport = new WsTransport({
      clusterId: cluster.id!,
      peerId: this.id,
      secret: config.clusterSecret.bytes,
      requestTimeoutMs: 10_000,
      logger: log.child({ component: 'transport' }),
    })
    this.#transport = transport
    const view = new ClusterView({ metadata, logger: log.child({ component: 'ring' }) })
    this.#view = view
    const ring = await view.start()
    if (ring.descriptor.members.length === 0) log.warn('the ring has no members yet; volumes cannot be read or written until peers join', { ringVersion: ring.descriptor.version })
    const distributor = new DistributedBlockStore({
      peerId: this.id,
      ring,
      blockSizeBytes: cluster.blockSizeBytes,
      transport,
      peerAddress: (peer) => view.peerAddress(peer),
      onDegraded: recordStaleInMetadata(metadata),
      // A corrupt copy or a lost write found outside a write: repair records it at once.
      onStaleFound: () => this.#repair?.kick(),
      requestTimeoutMs: 10_000,
      logger: log.child({ component: 'distributor' }),
    })
    view.onRing((next) => distributor.setRing(next))
    await distributor.open()
    this.#distributor = distributor

    const volumes = new VolumeManager({
      metadata,
      store: distributor,
      holder: this.holder,
      leaseTtlMs: config.leaseTtlMs,
      unreachableGraceMs: config.lockGraceMs,
      prepare: async (volume) => {
        await fenceVolume(distributor, metadata, volume.info.id, volume.generation ?? 0, log.child({ component: 'fencing', volume: volume.info.name }), { retries: 2, retryDelayMs: 1000 })
      },
      onOpened: (info) => {
        if (distributor.hasStaleReplicas(info.id)) this.#repair?.kick()
      },
      // Marks only this holder knows (a corrupt copy a read found) are recorded while it still holds the lock.
      beforeClose: async (volume) => {
        await distributor.recordOwedStale(volume.info.id, metadata)
      },
      onClosed: (info) => distributor.endTenure(info.id),
      logger: log.child({ component: 'volume' }),
    })
    this.#volumes = volumes
    if (config.repairRateBytes > 0) {
      this.#repair = new RepairLoop({ store: distributor, metadata, volumes: () => volumes.held(), bytesPerSecond: config.repairRateBytes, logger: log })
      this.#repair.start()
    }
    this.#nbd = new NbdServer({
      logger: log.child({ component: 'nbd' }),
      maxConnections: config.nbdMaxConnections,
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
    const bound = await this.#nbd.listen(config.nbd)
    this.address = `${bound.address.includes(':') ? `[${bound.address}]` : bound.address}:${bound.port}`
    log.info('nbdserver ready', {
      address: this.address,
      gateway: this.id,
      ringVersion: ring.descriptor.version,
      replication: ring.descriptor.replication,
      members: ring.descriptor.members.length,
    })
    return this.address
  }

  /** The cluster must exist (torusctl init) and the secret must be the one it was initialised with. */
  async #cluster(metadata: MetadataStore, where: string): Promise<ClusterConfig> {
    const cluster = await metadata.getClusterConfig()
    if (cluster === undefined) {
      throw new TorusError('TORUS_NOT_INITIALIZED', `no Torus cluster in ${where}; run \`torusctl -C ${this.config.etcd[0]} --etcd-prefix ${this.config.etcdPrefix} init\` first, or check -C and --etcd-prefix`)
    }
    const secret = this.config.clusterSecret
    if (cluster.secretCheck === undefined) {
      this.#log.warn('the cluster records no secret check (initialised by an older torusctl); a wrong secret shows only when peers refuse the gateway')
    } else if (!verifySecretCheck(secret.bytes, cluster.secretCheck)) {
      throw new TorusError('TORUS_INVALID_ARGUMENT', `the cluster secret from ${secret.source} is not the one the cluster in ${where} was initialised with; use the file torusctl init wrote`)
    }
    if (cluster.id === undefined) throw new TorusError('TORUS_CORRUPT', 'the cluster config has no id; it was written by an older torusctl: run torusctl init on a fresh prefix')
    this.#log.info('cluster found in etcd', { prefix: this.config.etcdPrefix, blockSize: cluster.blockSizeBytes, replication: cluster.replication, ringType: cluster.ringType })
    return cluster
  }

  /** Stops accepting NBD clients, then flushes and unlocks every open volume. Safe to call twice. */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop()
    return this.#stopping
  }

  async #stop(): Promise<void> {
    this.#log.info('stopping')
    await this.#nbd?.close()
    await this.#repair?.stop()
    await this.#volumes?.closeAll()
    await this.#view?.stop()
    await this.#distributor?.close()
    await this.#transport?.close()
    await this.#metadata?.close()
    this.#log.info('stopped')
  }
}
