import { isTorusError, TorusError } from '@torus/core'
import type { ClusterBackend } from './backend.js'
import { TorusClient } from './client.js'
import type { Endpoint } from './endpoint.js'
import { HttpBackend } from './http-backend.js'
import { MetadataBackend, unreachable } from './metadata-backend.js'

/** A CLI call should fail in seconds, not hang, when etcd is down or a host is a black hole. */
export const ETCD_DIAL_TIMEOUT_MS = 3000
export const ETCD_CALL_TIMEOUT_MS = 5000

export interface ConnectOptions {
  /** Key prefix of the cluster in etcd. */
  etcdPrefix: string
}

/**
 * Opens the backend an endpoint names: a torusd's HTTP API for `torus://`, the cluster's etcd
 * (an `EtcdMetadataStore` under `etcdPrefix`) otherwise. The caller closes it.
 */
export async function connect(endpoint: Endpoint, options: ConnectOptions): Promise<ClusterBackend> {
  if (endpoint.kind === 'torus') return new HttpBackend(new TorusClient(endpoint))
  // Loaded only for etcd endpoints: etcd3 and grpc take about half a second to load, which
  // torus:// commands, --help and --version should not pay.
  const { EtcdMetadataStore } = await import('@torus/metadata-etcd')
  const store = new EtcdMetadataStore({
    hosts: endpoint.hosts,
    prefix: options.etcdPrefix,
    dialTimeoutMs: ETCD_DIAL_TIMEOUT_MS,
    callTimeoutMs: ETCD_CALL_TIMEOUT_MS,
  })
  try {
    await store.open()
  } catch (err) {
    const where = endpoint.hosts.join(',')
    const down = unreachable(err, 'etcd', where)
    if (down !== undefined) throw down
    // Something answered, but not as etcd's v3 gRPC API does (a proxy, a torusd, an HTTP server).
    if (isTorusError(err, 'TORUS_INTERNAL')) {
      throw new TorusError('TORUS_UNAVAILABLE', `cannot talk to etcd at ${where} (${err.message.replace(/^unexpected etcd error: /, '')}); is that an etcd client port?`, {
        cause: err,
      })
    }
    throw err
  }
  return new MetadataBackend(store, { endpoint: endpoint.hosts.join(','), prefix: options.etcdPrefix })
}
