import { join } from 'node:path'
import { AbstractBlockStore, FileBlockStore } from '@torus/blockstore'
import {
  SeededRandom,
  TorusError,
  type AbortOptions,
  type BlockRef,
  type BlockStore,
  type BlockStoreSupports,
  type BlockStoreUsage,
  type PeerId,
  type Ring,
  type RingDescriptor,
  type VolumeId,
} from '@torus/core'
import { createRing } from '@torus/ring'
import { LoopbackHub, LoopbackTransport } from '@torus/transport'
import { DistributedBlockStore, type DegradedHook } from '../../src/index.js'
import { testPeer } from './cluster.js'

/** Never settles: what a killed process's pending work turns into. */
const never = <T>(): Promise<T> => new Promise<T>(() => {})

/**
 * A fault-injecting layer for simulations. Until {@link crash} it forwards to `inner`, failing a
 * read or write now and then (`faultRate`, as TORUS_CORRUPT: what the file store makes of EIO).
 * After `crash()` it behaves like a process killed with SIGKILL: calls already inside `inner`
 * still complete there (a pwrite in the kernel lands), but none reports back, and no new call
 * reaches `inner`. The `fdatasync` handed to `inner` (through the factory) fails after the crash,
 * so a flush cut by it between its data sync and its index pages writes no index pages; before
 * the crash it is a no-op (a killed process keeps the page cache, so a real sync would prove
 * nothing here and cost time).
 */
export class CrashableBlockStore extends AbstractBlockStore {
  readonly supports: BlockStoreSupports
  readonly inner: BlockStore
  /** Probability that a read, write or put fails with an injected error. */
  faultRate = 0
  /** Blocks (`ref.toString()`) that got an injected fault since the caller last cleared this. */
  readonly faulted = new Set<string>()
  readonly #random: SeededRandom
  #crashed = false
  #inflight = 0
  #idle: (() => void)[] = []

  constructor(make: (fdatasync: (fd: number) => Promise<void>) => BlockStore, random: SeededRandom) {
    let self!: CrashableBlockStore
    const inner = make(async () => {
      if (self.#crashed) throw new Error('process crashed')
    })
    super({ blockSizeBytes: inner.blockSizeBytes })
    self = this
    this.inner = inner
    this.#random = random
    this.supports = { ...inner.supports }
  }

  get crashed(): boolean {
    return this.#crashed
  }

  crash(): void {
    this.#crashed = true
  }

  /** Resolves once no call is running inside `inner`. */
  idle(): Promise<void> {
    if (this.#inflight === 0) return Promise.resolve()
    return new Promise((resolve) => this.#idle.push(resolve))
  }

  #call<T>(fn: () => Promise<T>, fault?: BlockRef): Promise<T> {
    if (this.#crashed) return never()
    if (fault !== undefined && this.faultRate > 0 && this.#random.next() < this.faultRate) {
      this.faulted.add(fault.toString())
      return Promise.reject(new TorusError('TORUS_CORRUPT', 'injected i/o error', { details: { volumeId: fault.volumeId, index: fault.index } }))
    }
    this.#inflight++
    const done = (): void => {
      if (--this.#inflight === 0) for (const resolve of this.#idle.splice(0)) resolve()
    }
    return fn().then(
      (value) => {
        done()
        return this.#crashed ? never<T>() : value
      },
      (err: unknown) => {
        done()
        return this.#crashed ? never<T>() : Promise.reject(err)
      },
    )
  }

  protected override _open(options?: AbortOptions): Promise<void> {
    return this.inner.open(options)
  }

  protected override async _close(): Promise<void> {
    if (!this.#crashed) await this.inner.close()
  }

  protected _get(ref: BlockRef): Promise<Uint8Array | undefined> {
    return this.#call(() => this.inner.get(ref), ref)
  }

  protected _put(ref: BlockRef, block: Uint8Array): Promise<void> {
    return this.#call(() => this.inner.put(ref, block), ref)
  }

  protected _read(ref: BlockRef, offsetBytes: number, target: Uint8Array): Promise<boolean> {
    return this.#call(() => this.inner.read(ref, offsetBytes, target), ref)
  }

  protected _write(ref: BlockRef, offsetBytes: number, data: Uint8Array): Promise<void> {
    return this.#call(() => this.inner.write(ref, offsetBytes, data), ref)
  }

  protected _has(ref: BlockRef): Promise<boolean> {
    return this.#call(() => this.inner.has(ref))
  }

  protected _delete(ref: BlockRef): Promise<void> {
    return this.#call(() => this.inner.delete(ref))
  }

  protected _deleteVolume(volumeId: VolumeId): Promise<void> {
    return this.#call(() => this.inner.deleteVolume(volumeId))
  }

  protected override _flush(): Promise<void> {
    return this.#call(() => this.inner.flush())
  }

  protected _usage(): BlockStoreUsage {
    return this.inner.usage()
  }

  protected override _refs(volumeId: VolumeId | undefined): AsyncIterable<BlockRef> {
    return this.inner.refs(volumeId)
  }
}

/** One process of a {@link SimCluster}: a storage peer (ring member) or a storage-less gateway. */
export interface SimPeer {
  readonly peer: PeerId
  readonly name: string
  readonly address: string
  /** `dir/blocks` (FileBlockStore) and `dir/replica` (replica state); unused without storage. */
  readonly dir: string
  readonly storage: boolean
  /** Bumped by every restart. */
  incarnation: number
  /** False between `crash()` and `restart()`. */
  up: boolean
  isolated: boolean
  transport: LoopbackTransport
  /** The crash and fault layer over this incarnation's FileBlockStore; undefined without storage. */
  local: CrashableBlockStore | undefined
  store: DistributedBlockStore
}

export interface SimClusterOptions {
  /** Where the peers keep their files; the caller creates and removes it. */
  dir: string
  peers: number
  replication: number
  blockSizeBytes: number
  capacityBytes: number
  /** Adds a storage-less gateway (never a ring member) after the storage peers. */
  storagelessGateway?: boolean
  requestTimeoutMs?: number
  /** Every incarnation's `onDegraded`; it never settles once that incarnation crashed. */
  onDegraded?: (peer: SimPeer) => DegradedHook
  /** Seeds the transports' reconnect jitter and the fault layers. */
  seed: number
}

const SECRET = 'distributor-sim-secret-0123456789abcdef'

/**
 * An in-process cluster whose peers can crash and restart: each storage peer keeps its blocks in
 * a FileBlockStore and its replica state (generations, checksums) in a `replicaStateDir`, both
 * under its own directory, behind a {@link CrashableBlockStore}. `crash(p)` is a SIGKILL: the
 * peer's DistributedBlockStore is abandoned without close, its transport is closed (its
 * connections drop), its gateway hook goes silent. `restart(p)` builds a new FileBlockStore,
 * Replica state and transport over the same directories and loopback address.
 */
export class SimCluster {
  readonly hub = new LoopbackHub()
  readonly ring: Ring
  /** Storage peers first, in ring order of creation; then the storage-less gateway, if any. */
  readonly peers: SimPeer[] = []
  readonly #options: SimClusterOptions
  readonly #random: SeededRandom

  private constructor(options: SimClusterOptions) {
    this.#options = options
    this.#random = new SeededRandom(options.seed ^ 0x5eed)
    const members = Array.from({ length: options.peers }, (_, i) => ({ peer: testPeer(i), weight: 1 }))
    const descriptor: RingDescriptor = { version: 1, type: 'mod', replication: options.replication, members }
    this.ring = createRing(descriptor)
  }

  static async start(options: SimClusterOptions): Promise<SimCluster> {
    const cluster = new SimCluster(options)
    const count = options.peers + (options.storagelessGateway === true ? 1 : 0)
    for (let i = 0; i < count; i++) {
      const storage = i < options.peers
      const name = storage ? `peer-${i}` : 'gateway'
      const p = {
        peer: storage ? testPeer(i) : testPeer(8),
        name,
        address: `loopback://sim-${name}`,
        dir: join(options.dir, name),
        storage,
        incarnation: 0,
        up: false,
        isolated: false,
      } as SimPeer
      cluster.peers.push(p)
      await cluster.#boot(p)
    }
    return cluster
  }

  get storagePeers(): SimPeer[] {
    return this.peers.filter((p) => p.storage)
  }

  byPeer(peer: PeerId): SimPeer {
    return this.peers.find((p) => p.peer === peer)!
  }

  /** Cuts every connection to `p` and refuses new ones (a partition), until `restore`. */
  isolate(p: SimPeer): void {
    p.isolated = true
    this.hub.isolate(p.address)
  }

  restore(p: SimPeer): void {
    p.isolated = false
    this.hub.restore(p.address)
  }

  /**
   * Kills `p`: nothing it started reports back, its connections drop. Resolves once its last
   * store call has finished inside the file store, so a restart never races the dead process.
   */
  async crash(p: SimPeer): Promise<void> {
    if (!p.up) throw new Error(`${p.name} is already down`)
    p.up = false
    p.local?.crash()
    await p.transport.close()
    if (p.local !== undefined) {
      await p.local.idle()
      // Checksum-file I/O the replica had already started (one pread or pwrite each) finishes too.
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
  }

  /**
   * Starts a new incarnation of a crashed `p` over its directories and address. The dead one's
   * file descriptors stay open, unused, until the test process ends: closing its FileBlockStore
   * would run a final flush, writing index pages a killed process never wrote.
   */
  async restart(p: SimPeer): Promise<void> {
    if (p.up) throw new Error(`${p.name} is up`)
    p.incarnation++
    await this.#boot(p)
  }

  async #boot(p: SimPeer): Promise<void> {
    const o = this.#options
    const transport = new LoopbackTransport({
      hub: this.hub,
      clusterId: 'sim-cluster',
      peerId: p.peer,
      secret: SECRET,
      requestTimeoutMs: o.requestTimeoutMs ?? 2_000,
      reconnectMinDelayMs: 2,
      reconnectMaxDelayMs: 10,
      random: new SeededRandom(this.#random.int(2 ** 32)),
    })
    if (p.storage) await transport.listen(p.address)
    const local = p.storage
      ? new CrashableBlockStore(
          (fdatasync) => new FileBlockStore({ dir: join(p.dir, 'blocks'), blockSizeBytes: o.blockSizeBytes, capacityBytes: o.capacityBytes, fdatasync }),
          new SeededRandom(this.#random.int(2 ** 32)),
        )
      : undefined
    const hook = o.onDegraded?.(p)
    const incarnation = p.incarnation
    const onDegraded: DegradedHook | undefined =
      hook === undefined ? undefined : (ref, stale, info) => (p.incarnation !== incarnation || !p.up ? never() : hook(ref, stale, info))
    const store = new DistributedBlockStore({
      peerId: p.peer,
      ring: this.ring,
      transport,
      peerAddress: (peer) => this.peers.find((q) => q.storage && q.peer === peer)?.address,
      ...(local === undefined ? { blockSizeBytes: o.blockSizeBytes } : { local, replicaStateDir: join(p.dir, 'replica') }),
      ...(onDegraded === undefined ? {} : { onDegraded }),
      ...(o.requestTimeoutMs === undefined ? {} : { requestTimeoutMs: o.requestTimeoutMs }),
    })
    await store.open()
    Object.assign(p, { transport, local, store, up: true })
  }

  /** Closes every live incarnation. */
  async close(): Promise<void> {
    for (const p of this.peers) {
      if (!p.up) continue
      p.up = false
      await p.store.close().catch(() => undefined)
      await p.transport.close().catch(() => undefined)
    }
  }
}
