import http from 'node:http'
import { isTorusErrorCode, TorusError } from '@torus/core'
import type { ClusterConfig, PeerStatus, RingDescriptor, VolumeInfo } from '@torus/core'
import type { TorusEndpoint } from './endpoint.js'

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

/**
 * The control API torusd serves on its peer port (see docs/control-api.md). Failures are
 * TorusErrors: the daemon's own code and message, TORUS_UNAVAILABLE when it cannot be reached,
 * TORUS_PROTOCOL when the reply is not the API's JSON.
 */
export class TorusClient {
  constructor(
    readonly endpoint: TorusEndpoint,
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

  /** Every peer that ever reported, with liveness. */
  forgetPeer(id: string): Promise<unknown> {
    return this.#call('DELETE', `/v1/peers/${encodeURIComponent(id)}`)
  }

  listPeers(): Promise<PeerStatus[]> {
    return this.#call('GET', '/v1/peers')
  }

  /** The current ring (version 0 with no members before the first change). */
  getRing(): Promise<RingDescriptor> {
    return this.#call('GET', '/v1/ring')
  }

  /**
   * Compare-and-swap: TORUS_CONFLICT (HTTP 409) unless `next.version` is the current one + 1.
   * While volumes exist the daemon refuses a change of placement unless `force`.
   */
  setRing(next: RingDescriptor, { force = false }: { force?: boolean } = {}): Promise<RingDescriptor> {
    return this.#call('PUT', force ? '/v1/ring?force=true' : '/v1/ring', next)
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
              reject(new TorusError('TORUS_PROTOCOL', `unexpected reply from ${this.endpoint.raw} (HTTP ${status}); is that a torusd peer address?`))
              return
            }
            if (status < 200 || status >= 300) {
              reject(this.#apiError(status, path, json))
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

  #apiError(status: number, path: string, json: unknown): TorusError {
    const e = (json as { error?: { code?: unknown; message?: unknown; details?: unknown } } | null)?.error
    const message = typeof e?.message === 'string' ? e.message : `HTTP ${status}`
    const details = typeof e?.details === 'object' && e.details !== null ? (e.details as Record<string, unknown>) : undefined
    // The router's answer for a path it does not know: torusd's HTTP port (--port, which serves
    // /healthz, /metrics and /api/v1/status) rather than its peer address, or an older torusd.
    if (status === 404 && message.startsWith('no such endpoint')) {
      return new TorusError(
        'TORUS_NOT_SUPPORTED',
        `the torusd at ${this.endpoint.raw} does not serve ${path}: point -C at its peer address (--peer-address; the HTTP --port is for health and metrics), or it is older than this torusctl`,
      )
    }
    const code = isTorusErrorCode(e?.code) ? e.code : 'TORUS_PROTOCOL'
    return new TorusError(code, message, details === undefined ? {} : { details })
  }

  #unreachable(err: Error): TorusError {
    const code = (err as NodeJS.ErrnoException).code
    const why =
      code === 'ECONNREFUSED'
        ? 'connection refused'
        : code === 'ETIMEDOUT'
          ? `no answer in ${this.timeoutMs / 1000}s`
          : code === 'ENOTFOUND'
            ? 'unknown host'
            : code?.startsWith('HPE_') === true
              ? 'it does not speak HTTP; an NBD port?' // llhttp's parse errors: something else listens there
              : (code ?? err.message)
    return new TorusError('TORUS_UNAVAILABLE', `cannot reach torusd at ${this.endpoint.raw} (${why}); is torusd running? Set -C/--endpoint or TORUS_ENDPOINT`, { cause: err })
  }
}
