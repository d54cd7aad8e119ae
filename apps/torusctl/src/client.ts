import type { ClusterConfig, VolumeInfo } from '@torus/core'
import type { Endpoint } from './endpoint.js'

/** An error reported by torusd (carries its stable code) or by the network. */
export class ApiError extends Error {
  override readonly name = 'ApiError'
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message)
  }
}

/** The control API torusd serves on its peer port (see docs/control-api.md). */
export class TorusClient {
  constructor(
    readonly endpoint: Endpoint,
    readonly timeoutMs = 15_000,
  ) {}

  getCluster(): Promise<ClusterConfig> {
    return this.#call('GET', '/v1/cluster')
  }

  initCluster(body: { blockSizeBytes?: number; replication?: number; ringType?: string }): Promise<ClusterConfig> {
    return this.#call('POST', '/v1/cluster', body)
  }

  listVolumes(): Promise<VolumeInfo[]> {
    return this.#call('GET', '/v1/volumes')
  }

  createVolume(name: string, sizeBytes: number): Promise<VolumeInfo> {
    return this.#call('POST', '/v1/volumes', { name, sizeBytes })
  }

  deleteVolume(name: string): Promise<VolumeInfo> {
    return this.#call('DELETE', `/v1/volumes/${encodeURIComponent(name)}`)
  }

  async #call<T>(method: string, path: string, body?: unknown): Promise<T> {
    let res: Response
    try {
      res = await fetch(`${this.endpoint.baseUrl}${path}`, {
        method,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(this.timeoutMs),
      })
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause
      const why = cause?.code === 'ECONNREFUSED' ? 'connection refused' : (err as Error).name === 'TimeoutError' ? `no answer in ${this.timeoutMs / 1000}s` : (cause?.code ?? (err as Error).message)
      throw new ApiError(`cannot reach torusd at ${this.endpoint.raw} (${why}); is torusd running? Set -C/--endpoint or TORUS_ENDPOINT`, 'TORUS_UNAVAILABLE')
    }
    const text = await res.text()
    let json: unknown
    try {
      json = JSON.parse(text)
    } catch {
      throw new ApiError(`unexpected reply from ${this.endpoint.raw} (HTTP ${res.status}); is that a torusd peer address?`, 'TORUS_PROTOCOL')
    }
    if (!res.ok) {
      const e = (json as { error?: { code?: string; message?: string } }).error
      throw new ApiError(e?.message ?? `HTTP ${res.status}`, e?.code ?? 'TORUS_PROTOCOL')
    }
    return json as T
  }
}
