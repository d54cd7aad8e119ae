import path from 'node:path'
import { normalizeEtcdPrefix, parseSize, readSmallFileSync, type LogLevel } from '@torus/core'

/** Everything `torusblk nbdserver` needs, after flags and env vars are merged and validated. */
export interface NbdServerConfig {
  /** etcd endpoints, `host:port` each. */
  etcd: string[]
  /** Key prefix of the cluster in etcd. */
  etcdPrefix: string
  /** Where NBD clients connect. */
  nbd: { host: string; port: number }
  /** NBD connections served at once; more are refused at accept. */
  nbdMaxConnections: number
  /** The cluster's transport secret, and where it came from (for messages). */
  clusterSecret: { bytes: Uint8Array; source: string }
  leaseTtlMs: number
  /** How long open volumes keep serving past their lease while etcd is unreachable. */
  lockGraceMs: number
  /** Bytes per second repair may copy to stale replicas of the volumes served here; 0: off. */
  repairRateBytes: number
  logLevel: LogLevel
}

/** A usage or configuration problem the operator must fix; torusblk exits 2 with this message. */
export class UsageError extends Error {
  override readonly name = 'UsageError'
}

export interface RawNbdServerOptions {
  endpoint?: string | undefined
  etcdPrefix?: string | undefined
  nbdAddress?: string | undefined
  nbdMaxConnections?: string | number | undefined
  clusterSecretFile?: string | undefined
  leaseTtl?: string | number | undefined
  lockGrace?: string | number | undefined
  repairRate?: string | undefined
  logLevel?: string | undefined
}

export const DEFAULTS = {
  etcdPrefix: 'torus/',
  nbdAddress: '127.0.0.1:10809',
  nbdMaxConnections: 64,
  leaseTtlSeconds: 10,
  lockGraceSeconds: 60,
  repairRate: '64MiB',
  logLevel: 'info' as LogLevel,
}

/** Shorter secrets are refused, as torusd refuses them: `torusctl init` writes 64 hex characters. */
const MIN_SECRET_CHARS = 32
/** A secret file is a line of hex; anything this long is the wrong file (and /dev/zero never ends). */
const MAX_SECRET_FILE_BYTES = 4096

const ENDPOINT_FORMS = 'HOST:PORT[,HOST:PORT...] or etcd://HOST:PORT[,...] (the cluster\'s etcd)'

/**
 * Merges flags over env vars over defaults, the way torusd and torusctl read the same settings
 * (`TORUS_ENDPOINT`, `TORUS_ETCD_PREFIX`, `TORUS_CLUSTER_SECRET_FILE`, `TORUS_CLUSTER_SECRET`,
 * `TORUS_NBD_ADDRESS`, `TORUS_LEASE_TTL`, `TORUS_LOCK_GRACE`, `TORUS_LOG_LEVEL`). Throws
 * UsageError naming the flag and the bad value.
 */
export function resolveNbdServerConfig(flags: RawNbdServerOptions, env: NodeJS.ProcessEnv = process.env): NbdServerConfig {
  const pick = <T>(flag: T | undefined, envName: string): T | string | undefined => flag ?? nonEmpty(env[envName])

  const endpoint = pick(flags.endpoint, 'TORUS_ENDPOINT')
  if (endpoint === undefined) {
    throw new UsageError(`nbdserver needs the cluster's etcd: pass -C/--endpoint ${ENDPOINT_FORMS}, or set TORUS_ENDPOINT`)
  }
  const etcd = parseEtcdEndpoint(endpoint)

  let etcdPrefix: string
  try {
    etcdPrefix = normalizeEtcdPrefix(String(pick(flags.etcdPrefix, 'TORUS_ETCD_PREFIX') ?? DEFAULTS.etcdPrefix))
  } catch (err) {
    throw new UsageError(`--etcd-prefix/TORUS_ETCD_PREFIX: ${(err as Error).message}`)
  }

  const nbd = hostPort('--nbd-address/TORUS_NBD_ADDRESS', String(pick(flags.nbdAddress, 'TORUS_NBD_ADDRESS') ?? DEFAULTS.nbdAddress))

  const maxRaw = pick(flags.nbdMaxConnections, 'TORUS_NBD_MAX_CONNECTIONS') ?? DEFAULTS.nbdMaxConnections
  const nbdMaxConnections = typeof maxRaw === 'number' ? maxRaw : /^\s*[0-9]+\s*$/.test(maxRaw) ? Number(maxRaw) : Number.NaN
  if (!Number.isSafeInteger(nbdMaxConnections) || nbdMaxConnections < 1 || nbdMaxConnections > 65536) {
    throw new UsageError(`--nbd-max-connections/TORUS_NBD_MAX_CONNECTIONS must be a whole number from 1 to 65536, got ${formatRaw(maxRaw)}`)
  }

  const ttlRaw = pick(flags.leaseTtl, 'TORUS_LEASE_TTL') ?? DEFAULTS.leaseTtlSeconds
  const ttl = Number(ttlRaw)
  if (!Number.isFinite(ttl) || ttl < 1 || ttl > 3600 || String(ttlRaw).trim() === '') {
    throw new UsageError(`--lease-ttl/TORUS_LEASE_TTL must be 1 to 3600 seconds, got ${formatRaw(ttlRaw)}`)
  }

  const graceRaw = pick(flags.lockGrace, 'TORUS_LOCK_GRACE') ?? DEFAULTS.lockGraceSeconds
  const grace = Number(graceRaw)
  if (!Number.isFinite(grace) || grace < 0 || grace > 86400 || String(graceRaw).trim() === '') {
    throw new UsageError(`--lock-grace/TORUS_LOCK_GRACE must be 0 to 86400 seconds, got ${formatRaw(graceRaw)}`)
  }

  // A size per second: `64MiB` or `64MiB/s`; 0 turns repair off.
  const repairRaw = String(pick(flags.repairRate, 'TORUS_REPAIR_RATE') ?? DEFAULTS.repairRate).trim().replace(/\/s$/i, '')
  let repairRateBytes = 0
  if (repairRaw !== '0') {
    try {
      repairRateBytes = parseSize(repairRaw)
    } catch {
      throw new UsageError(`--repair-rate/TORUS_REPAIR_RATE: invalid rate ${JSON.stringify(repairRaw)}: give bytes per second, e.g. 64MiB or 64MiB/s; 0 turns repair off`)
    }
  }

  const logLevel = String(pick(flags.logLevel, 'TORUS_LOG_LEVEL') ?? DEFAULTS.logLevel)
  if (!['debug', 'info', 'warn', 'error'].includes(logLevel)) throw new UsageError(`--log-level must be debug, info, warn or error, got ${formatRaw(logLevel)}`)

  const clusterSecret = readClusterSecret(flags.clusterSecretFile ?? nonEmpty(env.TORUS_CLUSTER_SECRET_FILE), nonEmpty(env.TORUS_CLUSTER_SECRET))

  return {
    etcd,
    etcdPrefix,
    nbd,
    nbdMaxConnections,
    clusterSecret,
    leaseTtlMs: Math.round(ttl * 1000),
    lockGraceMs: Math.round(grace * 1000),
    repairRateBytes,
    logLevel: logLevel as LogLevel,
  }
}

/**
 * `HOST:PORT[,HOST:PORT...]`, optionally behind `etcd://` (torusctl's forms). A `torus://`
 * endpoint names a single torusd with embedded metadata, which has no peers to dial: that torusd
 * serves NBD itself.
 */
export function parseEtcdEndpoint(raw: string): string[] {
  const text = raw.trim()
  const invalid = (why: string): UsageError => new UsageError(`-C/--endpoint: invalid endpoint ${formatRaw(raw)}: ${why}`)
  if (text === '') throw invalid(`empty; expected ${ENDPOINT_FORMS}`)
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(text)?.[1]?.toLowerCase()
  if (scheme === 'torus') {
    throw invalid('torus:// names a single torusd with embedded metadata, which serves its volumes over NBD itself; a gateway needs a cluster in etcd')
  }
  if (scheme !== undefined && scheme !== 'etcd') throw invalid(`unknown scheme ${scheme}://; expected ${ENDPOINT_FORMS}`)
  const rest = (scheme === 'etcd' ? text.slice('etcd://'.length) : text).replace(/\/+$/, '')
  return rest.split(',').map((part) => {
    const entry = part.trim()
    if (entry === '') throw invalid(`empty host entry; expected ${ENDPOINT_FORMS}`)
    let parsed: { host: string; port: number }
    try {
      parsed = hostPort('', entry, false)
    } catch {
      throw invalid(`${formatRaw(entry)} is not HOST:PORT (write an IPv6 address in brackets: [::1]:2379)`)
    }
    if (parsed.port === 0) throw invalid(`port 0 in ${formatRaw(entry)} is not an etcd endpoint`)
    return `${parsed.host.includes(':') ? `[${parsed.host}]` : parsed.host}:${parsed.port}`
  })
}

/** `HOST:PORT` or `[v6]:PORT`; with `defaultHost`, `:PORT` means 127.0.0.1. */
export function hostPort(what: string, raw: string, defaultHost = true): { host: string; port: number } {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]*)):(\d{1,5})$/.exec(raw.trim())
  const host = m?.[1] ?? (m?.[2] === '' ? (defaultHost ? '127.0.0.1' : undefined) : m?.[2])
  const port = Number(m?.[3])
  if (m === null || host === undefined) throw new UsageError(`${what}: expected HOST:PORT, got ${formatRaw(raw)}`)
  if (port > 65535) throw new UsageError(`${what}: invalid port ${formatRaw(m[3])} in ${formatRaw(raw)} (use 0-65535)`)
  return { host, port }
}

/** `--cluster-secret-file`/TORUS_CLUSTER_SECRET_FILE wins over TORUS_CLUSTER_SECRET; surrounding whitespace is dropped. */
function readClusterSecret(file: string | undefined, value: string | undefined): NbdServerConfig['clusterSecret'] {
  let text: string
  let source: string
  if (file !== undefined) {
    try {
      text = readSmallFileSync(file, MAX_SECRET_FILE_BYTES)
    } catch (err) {
      throw new UsageError(`--cluster-secret-file: cannot read ${formatRaw(file)}: ${(err as Error).message}`)
    }
    source = path.resolve(file)
  } else if (value !== undefined) {
    text = value
    source = 'TORUS_CLUSTER_SECRET'
  } else {
    throw new UsageError(
      'nbdserver needs the cluster secret that torusctl init wrote, to talk to the peers: pass --cluster-secret-file PATH (or set TORUS_CLUSTER_SECRET_FILE, or the secret itself in TORUS_CLUSTER_SECRET)',
    )
  }
  const secret = text.trim()
  if (secret.length < MIN_SECRET_CHARS) {
    throw new UsageError(`the cluster secret from ${source} is ${secret.length} characters; it must be at least ${MIN_SECRET_CHARS} (use the file torusctl init wrote)`)
  }
  return { bytes: new TextEncoder().encode(secret), source }
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v === '' ? undefined : v
}

function formatRaw(v: unknown): string {
  return JSON.stringify(v ?? '')
}
