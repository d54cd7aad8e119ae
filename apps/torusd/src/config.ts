import os from 'node:os'
import path from 'node:path'
import { normalizeEtcdPrefix, parseSize, readSmallFileSync, validateBlockSize, type LogLevel } from '@torus/core'

/** Everything torusd needs to start, after flags and env vars are merged and validated. */
export interface DaemonConfig {
  dataDir: string
  sizeBytes: number
  /** HTTP: /healthz, /metrics, /api/v1. */
  http: { host: string; port: number }
  /** Advertised peer address (`ws://host:port`); torusctl's control API listens here. */
  peerAddress: string
  peerListen: { host: string; port: number }
  nbd: { host: string; port: number } | undefined
  /** NBD connections served at once; more are refused at accept. */
  nbdMaxConnections: number
  /** Block size used when this node initialises a fresh one-node cluster. */
  blockSizeBytes: number
  leaseTtlMs: number
  logLevel: LogLevel
  /** etcd endpoints (`host:port`, comma-separated); undefined = embedded metadata. */
  etcd: string[] | undefined
  /** Key prefix of this cluster in etcd. */
  etcdPrefix: string
  debugInit: boolean
  /** Add this peer to the ring at start-up (an embedded single node always does). */
  autoJoin: boolean
  /** How long open volumes keep serving past their lease while etcd is unreachable. */
  lockGraceMs: number
  /** The cluster's transport secret (peers prove they know it), and where it came from. */
  clusterSecret: { bytes: Uint8Array; source: string } | undefined
  /** Bytes per second repair may copy to stale replicas of the volumes this node serves; 0 turns repair off. */
  repairRateBytes: number
  /** How often to look for volumes nobody has open that have stale copies (see IdleRepair); 0 turns that off. */
  idleRepairIntervalMs: number
}

/** A configuration problem the operator must fix; torusd exits 2 with this message. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError'
}

export interface RawOptions {
  dataDir?: string | undefined
  size?: string | undefined
  host?: string | undefined
  port?: string | number | undefined
  peerAddress?: string | undefined
  nbdAddress?: string | undefined
  nbdMaxConnections?: string | number | undefined
  blockSize?: string | undefined
  leaseTtl?: string | number | undefined
  logLevel?: string | undefined
  etcd?: string | undefined
  etcdPrefix?: string | undefined
  debugInit?: boolean | undefined
  autoJoin?: boolean | undefined
  lockGrace?: string | number | undefined
  clusterSecretFile?: string | undefined
  repairRate?: string | undefined
  idleRepairInterval?: string | number | undefined
}

export const DEFAULTS = {
  size: '2GiB',
  host: '127.0.0.1',
  port: 4321,
  peerAddress: 'ws://127.0.0.1:40000',
  nbdAddress: '127.0.0.1:10809',
  nbdMaxConnections: 64,
  blockSize: '512KiB',
  leaseTtlSeconds: 10,
  logLevel: 'info' as LogLevel,
  etcdPrefix: 'torus/',
  lockGraceSeconds: 60,
  repairRate: '64MiB',
  idleRepairIntervalSeconds: 10,
}

export function defaultDataDir(): string {
  return path.join(os.homedir(), '.torus', 'data')
}

/**
 * Merges flags over env vars (the original container image's names) over defaults.
 * Throws ConfigError with a message that names the flag and the bad value.
 */
export function resolveConfig(flags: RawOptions, env: NodeJS.ProcessEnv = process.env): DaemonConfig {
  const pick = <T>(flag: T | undefined, envName: string): T | string | undefined => flag ?? nonEmpty(env[envName])

  const dataDir = path.resolve(pick(flags.dataDir, 'TORUS_DATA_DIR') ?? defaultDataDir())
  const sizeBytes = size('--size/STORAGE_SIZE', pick(flags.size, 'STORAGE_SIZE') ?? DEFAULTS.size)
  if (sizeBytes < 16 * 1024 * 1024) throw new ConfigError(`--size ${formatRaw(flags.size ?? env.STORAGE_SIZE)} is too small: use at least 16MiB`)

  const httpHost = pick(flags.host, 'LISTEN_HOST') ?? DEFAULTS.host
  const httpPort = port('--port/LISTEN_HTTP_PORT', pick(flags.port, 'LISTEN_HTTP_PORT') ?? DEFAULTS.port)

  const peerAddress = String(pick(flags.peerAddress, 'PEER_ADDRESS') ?? DEFAULTS.peerAddress)
  const peerListen = parsePeerAddress(peerAddress)

  const nbdRaw = pick(flags.nbdAddress, 'TORUS_NBD_ADDRESS') ?? DEFAULTS.nbdAddress
  const nbd = nbdRaw === 'none' || nbdRaw === 'off' ? undefined : hostPort('--nbd-address', String(nbdRaw))

  const nbdMaxConnections = maxConnections(pick(flags.nbdMaxConnections, 'TORUS_NBD_MAX_CONNECTIONS') ?? DEFAULTS.nbdMaxConnections, (m) => new ConfigError(m))

  let blockSizeBytes: number
  try {
    blockSizeBytes = validateBlockSize(size('--block-size', flags.blockSize ?? DEFAULTS.blockSize))
  } catch (err) {
    throw new ConfigError(`--block-size: ${(err as Error).message}`)
  }

  const ttlRaw = pick(flags.leaseTtl, 'TORUS_LEASE_TTL') ?? DEFAULTS.leaseTtlSeconds
  const ttl = Number(ttlRaw)
  if (!Number.isFinite(ttl) || ttl < 1 || ttl > 3600) throw new ConfigError(`--lease-ttl/TORUS_LEASE_TTL must be 1 to 3600 seconds, got ${formatRaw(ttlRaw)}`)

  const logLevel = String(pick(flags.logLevel, 'TORUS_LOG_LEVEL') ?? DEFAULTS.logLevel)
  if (!['debug', 'info', 'warn', 'error'].includes(logLevel)) throw new ConfigError(`--log-level must be debug, info, warn or error, got ${formatRaw(logLevel)}`)

  const etcdHost = nonEmpty(env.ETCD_HOST)
  // ETCD_PORT alone would silently start an embedded single node instead of joining etcd.
  if (flags.etcd === undefined && etcdHost === undefined && nonEmpty(env.ETCD_PORT) !== undefined) {
    throw new ConfigError(`ETCD_PORT=${formatRaw(env.ETCD_PORT)} is set without ETCD_HOST: set ETCD_HOST too (or give --etcd HOST:PORT), or unset ETCD_PORT for an embedded single node`)
  }
  const etcdRaw = flags.etcd ?? (etcdHost === undefined ? undefined : `${etcdHost}:${nonEmpty(env.ETCD_PORT) ?? '2379'}`)
  const etcd = etcdRaw === undefined ? undefined : etcdEndpoints(etcdRaw)

  let etcdPrefix: string
  try {
    etcdPrefix = normalizeEtcdPrefix(String(pick(flags.etcdPrefix, 'TORUS_ETCD_PREFIX') ?? DEFAULTS.etcdPrefix))
  } catch (err) {
    throw new ConfigError(`--etcd-prefix/TORUS_ETCD_PREFIX: ${(err as Error).message}`)
  }

  const graceRaw = pick(flags.lockGrace, 'TORUS_LOCK_GRACE') ?? DEFAULTS.lockGraceSeconds
  const grace = Number(graceRaw)
  if (!Number.isFinite(grace) || grace < 0 || grace > 86400 || String(graceRaw).trim() === '') {
    throw new ConfigError(`--lock-grace/TORUS_LOCK_GRACE must be 0 to 86400 seconds, got ${formatRaw(graceRaw)}`)
  }

  const repairRaw = String(pick(flags.repairRate, 'TORUS_REPAIR_RATE') ?? DEFAULTS.repairRate)
  // A size per second: `64MiB` or `64MiB/s`; 0 turns repair off.
  const repairRate = repairRaw.trim().replace(/\/s$/i, '')
  let repairRateBytes = 0
  if (repairRate !== '0') {
    try {
      repairRateBytes = parseSize(repairRate)
    } catch {
      throw new ConfigError(`--repair-rate/TORUS_REPAIR_RATE: invalid rate ${JSON.stringify(repairRaw)}: give bytes per second, e.g. 64MiB or 64MiB/s; 0 turns repair off`)
    }
  }

  const idleRaw = pick(flags.idleRepairInterval, 'TORUS_IDLE_REPAIR_INTERVAL') ?? DEFAULTS.idleRepairIntervalSeconds
  const idle = Number(idleRaw)
  if (!Number.isFinite(idle) || idle < 0 || idle > 86400 || String(idleRaw).trim() === '') {
    throw new ConfigError(`--idle-repair-interval/TORUS_IDLE_REPAIR_INTERVAL must be 0 (off) to 86400 seconds, got ${formatRaw(idleRaw)}`)
  }

  const clusterSecret = readClusterSecret(flags.clusterSecretFile ?? nonEmpty(env.TORUS_CLUSTER_SECRET_FILE), nonEmpty(env.TORUS_CLUSTER_SECRET))

  return {
    dataDir,
    sizeBytes,
    http: { host: String(httpHost), port: httpPort },
    peerAddress,
    peerListen,
    nbd,
    nbdMaxConnections,
    blockSizeBytes,
    leaseTtlMs: Math.round(ttl * 1000),
    logLevel: logLevel as LogLevel,
    etcd,
    etcdPrefix,
    debugInit: flags.debugInit ?? truthy(env.DEBUG_INIT),
    autoJoin: flags.autoJoin ?? truthy(env.AUTO_JOIN),
    lockGraceMs: Math.round(grace * 1000),
    clusterSecret,
    repairRateBytes,
    idleRepairIntervalMs: Math.round(idle * 1000),
  }
}

/** Shorter secrets are refused: the transport needs 16 bytes, and `torusctl init` writes 64 hex characters. */
const MIN_SECRET_CHARS = 32
/** A secret file is a line of hex; anything this long is the wrong file (and /dev/zero never ends). */
const MAX_SECRET_FILE_BYTES = 4096

/** `--cluster-secret-file`/TORUS_CLUSTER_SECRET_FILE wins over TORUS_CLUSTER_SECRET; trailing whitespace is dropped. */
function readClusterSecret(file: string | undefined, value: string | undefined): DaemonConfig['clusterSecret'] {
  let text: string
  let source: string
  if (file !== undefined) {
    try {
      text = readSmallFileSync(file, MAX_SECRET_FILE_BYTES)
    } catch (err) {
      throw new ConfigError(`--cluster-secret-file: cannot read ${formatRaw(file)}: ${(err as Error).message}`)
    }
    source = path.resolve(file)
  } else if (value !== undefined) {
    text = value
    source = 'TORUS_CLUSTER_SECRET'
  } else {
    return undefined
  }
  const secret = text.trim()
  if (secret.length < MIN_SECRET_CHARS) {
    throw new ConfigError(`the cluster secret from ${source} is ${secret.length} characters; it must be at least ${MIN_SECRET_CHARS} (use the file torusctl init wrote)`)
  }
  return { bytes: new TextEncoder().encode(secret), source }
}

function truthy(v: string | undefined): boolean {
  return ['1', 'true', 'yes', 'on'].includes(String(v ?? '').trim().toLowerCase())
}

/** `HOST:PORT[,HOST:PORT…]`, each optionally with `http://`. */
function etcdEndpoints(raw: string): string[] {
  const parts = raw.split(',').map((p) => p.trim())
  if (parts.length === 0 || parts.some((p) => p === '')) throw new ConfigError(`--etcd: expected HOST:PORT[,HOST:PORT…], got ${formatRaw(raw)}`)
  return parts.map((p) => {
    const bare = p.replace(/^https?:\/\//, '').replace(/\/+$/, '')
    const { host, port } = hostPort('--etcd/ETCD_HOST/ETCD_PORT', bare)
    if (port === 0) throw new ConfigError(`--etcd: port 0 is not an etcd endpoint (${formatRaw(p)})`)
    return `${host.includes(':') ? `[${host}]` : host}:${port}`
  })
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v === '' ? undefined : v
}

function formatRaw(v: unknown): string {
  return JSON.stringify(v ?? '')
}

function size(what: string, raw: string | number): number {
  try {
    return parseSize(raw)
  } catch (err) {
    throw new ConfigError(`${what}: ${(err as Error).message}`)
  }
}

function port(what: string, raw: string | number): number {
  const n = Number(raw)
  if (!Number.isInteger(n) || n < 0 || n > 65535 || String(raw).trim() === '') throw new ConfigError(`${what}: invalid port ${formatRaw(raw)} (use 0-65535)`)
  return n
}

/** `HOST:PORT`, `[v6]:PORT` or `:PORT` (host defaults to 127.0.0.1). */
export function hostPort(what: string, raw: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d+)$/.exec(raw.trim())
  if (m === null) throw new ConfigError(`${what}: expected HOST:PORT, got ${formatRaw(raw)}`)
  const host = m[1] ?? (m[2] === '' || m[2] === undefined ? '127.0.0.1' : m[2])
  return { host, port: port(what, m[3]!) }
}

function parsePeerAddress(raw: string): { host: string; port: number } {
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    throw new ConfigError(`--peer-address: expected ws://HOST:PORT, got ${formatRaw(raw)}`)
  }
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:') throw new ConfigError(`--peer-address: expected a ws:// or wss:// URL, got ${formatRaw(raw)}`)
  const host = url.hostname.replace(/^\[|\]$/g, '')
  const p = url.port === '' ? 40000 : Number(url.port)
  return { host, port: p }
}

/** `--nbd-max-connections`: a whole number of connections, 1 to 65536. */
export function maxConnections(raw: string | number, error: (message: string) => Error): number {
  const n = typeof raw === 'number' ? raw : /^\s*[0-9]+\s*$/.test(raw) ? Number(raw) : Number.NaN
  if (!Number.isSafeInteger(n) || n < 1 || n > 65536) throw error(`--nbd-max-connections/TORUS_NBD_MAX_CONNECTIONS must be a whole number from 1 to 65536, got ${formatRaw(raw)}`)
  return n
}
