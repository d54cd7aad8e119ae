import http from 'node:http'
import type { ClusterConfig, VolumeInfo } from '@torus/core'
import type { Endpoint } from './endpoint.js'

/** What `GET /v1/status` returns (see docs/control-api.md). */
export interface DaemonStatus {
  peer: string
  peerAddress: string
  addresses?: { http: string; peer: string; nbd?: string }
  metadata: string
  capacityBytes: number
  usedBytes: number
  openVolumes: Record<string, number>
  nbdConnections: number
}

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

  status(): Promise<DaemonStatus> {
    return this.#call('GET', '/v1/status')
  }

  deleteVolume(name: string): Promise<VolumeInfo> {
    return this.#call('DELETE', `/v1/volumes/${encodeURIComponent(name)}`)
  }

  // node:http rather than fetch: fetch refuses "bad ports" (1, 6000, 10080, …) that an
  // operator may well have given torusd.
  #call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const payload = body === undefined ? undefined : JSON.stringify(body)
    const url = new URL(`${this.endpoint.baseUrl}${path}`)
    return new Promise<T>((resolve, reject) => {
      const req = http.request(
        url,
        {
          method,
          headers: payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
          timeout: this.timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = []
          res.on('data', (c: Buffer) => chunks.push(c))
          res.on('error', (err) => reject(this.#unreachable(err)))
          res.on('end', () => {
            const status = res.statusCode ?? 0
            let json: unknown
            try {
              json = JSON.parse(Buffer.concat(chunks).toString('utf8'))
            } catch {
              reject(new ApiError(`unexpected reply from ${this.endpoint.raw} (HTTP ${status}); is that a torusd peer address?`, 'TORUS_PROTOCOL'))
              return
            }
            if (status < 200 || status >= 300) {
              const e = (json as { error?: { code?: string; message?: string } } | null)?.error
              reject(new ApiError(e?.message ?? `HTTP ${status}`, e?.code ?? 'TORUS_PROTOCOL'))
              return
            }
            resolve(json as T)
          })
        },
      )
      req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })))
      req.on('error', (err) => reject(this.#unreachable(err)))
      req.end(payload)
    })
  }

  #unreachable(err: Error): ApiError {
    const code = (err as NodeJS.ErrnoException).code
    const why =
      code === 'ECONNREFUSED' ? 'connection refused' : code === 'ETIMEDOUT' ? `no answer in ${this.timeoutMs / 1000}s` : code === 'ENOTFOUND' ? 'unknown host' : (code ?? err.message)
    return new ApiError(`cannot reach torusd at ${this.endpoint.raw} (${why}); is torusd running? Set -C/--endpoint or TORUS_ENDPOINT`, 'TORUS_UNAVAILABLE')
  }
}
