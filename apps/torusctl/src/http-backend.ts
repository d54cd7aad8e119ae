import { isTorusError, normalizeRingDescriptor, TorusError } from '@torus/core'
import type { ClusterConfig, PeerStatus, RingDescriptor, VolumeInfo } from '@torus/core'
import type { ClusterBackend, InitRequest } from './backend.js'
import type { DaemonStatus, TorusClient } from './client.js'

/**
 * The backend of a `torus://` endpoint: a single torusd's control API. Defaults for `init` are
 * the daemon's (it knows whether it runs alone).
 */
export class HttpBackend implements ClusterBackend {
  constructor(readonly client: TorusClient) {}

  get endpoint(): string {
    return this.client.endpoint.raw
  }

  async getCluster(): Promise<ClusterConfig | undefined> {
    try {
      return await this.client.getCluster()
    } catch (err) {
      if (isTorusError(err, 'TORUS_NOT_INITIALIZED')) return undefined
      throw err
    }
  }

  initCluster(request: InitRequest): Promise<ClusterConfig> {
    return this.client.initCluster(request)
  }

  listVolumes(): Promise<VolumeInfo[]> {
    return this.client.listVolumes()
  }

  createVolume(name: string, sizeBytes: number): Promise<VolumeInfo> {
    return this.client.createVolume(name, sizeBytes)
  }

  deleteVolume(name: string): Promise<VolumeInfo> {
    return this.client.deleteVolume(name)
  }

  async listPeers(): Promise<PeerStatus[]> {
    const peers = await this.client.listPeers()
    if (!Array.isArray(peers)) throw new TorusError('TORUS_PROTOCOL', `the torusd at ${this.endpoint} sent a malformed peer list`)
    return peers
  }

  async getRing(): Promise<RingDescriptor> {
    return this.#ring(await this.client.getRing())
  }

  async forgetPeer(id: string): Promise<void> {
    await this.client.forgetPeer(id)
  }

  async setRing(next: RingDescriptor, options: { force?: boolean } = {}): Promise<RingDescriptor> {
    return this.#ring(await this.client.setRing(next, options))
  }

  /** Rings from the wire are checked before a command builds on them. */
  #ring(raw: RingDescriptor): RingDescriptor {
    try {
      return normalizeRingDescriptor(raw, { allowEmpty: true })
    } catch (err) {
      throw new TorusError('TORUS_PROTOCOL', `the torusd at ${this.endpoint} sent a malformed ring: ${(err as Error).message}`, { cause: err })
    }
  }

  daemonStatus(): Promise<DaemonStatus> {
    return this.client.status()
  }

  async close(): Promise<void> {}
}
