import { isTorusError } from '@torus/core'
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

  listPeers(): Promise<PeerStatus[]> {
    return this.client.listPeers()
  }

  getRing(): Promise<RingDescriptor> {
    return this.client.getRing()
  }

  setRing(next: RingDescriptor): Promise<RingDescriptor> {
    return this.client.setRing(next)
  }

  daemonStatus(): Promise<DaemonStatus> {
    return this.client.status()
  }

  async close(): Promise<void> {}
}
