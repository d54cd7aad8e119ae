import { normalizeEtcdPrefix, readSmallFileSync, validateReplication } from '@torus/core'
import os from 'node:os'
import path from 'node:path'

export const DEFAULT_ENDPOINT = 'torus://127.0.0.1:40000'
/** Key prefix of a cluster in etcd; the same default as torusd and `EtcdMetadataStore`. */
export const DEFAULT_ETCD_PREFIX = 'torus/'

/** A usage problem: exit 2 with this message. */
export class UsageError extends Error {
  override readonly name = 'UsageError'
}

/** Runs a validator of user input; its failure becomes a usage error naming the option. */
/** A replication count as typed: whole decimal digits only (`abc`, `1e1`, `0x2` and `` are refused), 1-16. */
export function parseReplication(option: string, raw: string | number): number {
  const text = String(raw).trim()
  if (!/^[0-9]{1,3}$/.test(text)) throw new UsageError(`${option}: invalid replication ${JSON.stringify(String(raw))}: use a whole number from 1 to 16`)
  return usage(option, () => validateReplication(Number(text)))
}

export function usage<T>(option: string, check: () => T): T {
  try {
    return check()
  } catch (err) {
    throw new UsageError(`${option}: ${(err as Error).message}`)
  }
}

/** A torusd's HTTP control API (a single node running the embedded metadata store). */
export interface TorusEndpoint {
  kind: 'torus'
  /** As the user gave it (for messages). */
  raw: string
  baseUrl: string
}

/** One or more etcd client endpoints of a multi-node cluster. */
export interface EtcdEndpoint {
  kind: 'etcd'
  /** As the user gave it (for messages). */
  raw: string
  /** `host:port` each (IPv6 hosts in brackets), in the order given. */
  hosts: string[]
}

export type Endpoint = TorusEndpoint | EtcdEndpoint

export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.TORUSCTL_CONFIG ?? path.join(env.HOME ?? os.homedir(), '.torus', 'config.json')
}

/**
 * Where torusctl talks to: `-C` first, then `$TORUS_ENDPOINT`, then the config file's current
 * profile, then the local daemon. `torus://HOST:PORT` is a torusd (embedded metadata);
 * `HOST:PORT[,HOST:PORT]` and `etcd://HOST:PORT[,HOST:PORT]` name etcd.
 */
export function resolveEndpoint(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): Endpoint {
  const raw = flag ?? nonEmpty(env.TORUS_ENDPOINT) ?? fromConfigFile(configPath(env)) ?? DEFAULT_ENDPOINT
  return parseEndpoint(raw)
}

const FORMS = 'torus://HOST:PORT (a torusd), or HOST:PORT[,HOST:PORT...] or etcd://HOST:PORT[,...] (etcd)'

export function parseEndpoint(raw: string): Endpoint {
  const text = raw.trim()
  const invalid = (why: string): UsageError => new UsageError(`invalid endpoint ${JSON.stringify(raw)}: ${why}`)
  if (text === '') throw invalid(`empty; expected ${FORMS}`)
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(text)?.[1]?.toLowerCase()
  if (scheme === 'torus') {
    const rest = text.slice('torus://'.length).replace(/\/+$/, '')
    if (rest.includes(',')) throw invalid('a torus:// endpoint names one torusd; list several HOST:PORT only for etcd')
    const hostPort = parseHostPort(rest, invalid, 'torus://HOST:PORT')
    return { kind: 'torus', raw: text, baseUrl: `http://${hostPort}` }
  }
  if (scheme === 'etcd' || scheme === undefined) {
    const rest = scheme === 'etcd' ? text.slice('etcd://'.length).replace(/\/+$/, '') : text
    const form = scheme === 'etcd' ? 'etcd://HOST:PORT[,HOST:PORT...]' : 'HOST:PORT[,HOST:PORT...]'
    if (scheme === undefined && !rest.includes(':')) throw invalid(`expected ${FORMS}`)
    const hosts = rest.split(',').map((part) => parseHostPort(part.trim(), invalid, form))
    return { kind: 'etcd', raw: text, hosts }
  }
  throw invalid(`unknown scheme ${scheme}://; expected ${FORMS}`)
}

/**
 * Checks one `HOST:PORT` (HOST a DNS name, an IPv4 address or a bracketed IPv6 address; PORT
 * 1-65535) and returns it as given.
 */
function parseHostPort(text: string, invalid: (why: string) => UsageError, form: string): string {
  if (text === '') throw invalid(`empty host entry; expected ${form}`)
  const m = /^(\[[^\]]*\]|[^:/[\]]*)(?::([^:]*))?$/.exec(text)
  if (m === null) throw invalid(`${JSON.stringify(text)} is not HOST:PORT (write an IPv6 address in brackets: [::1]:2379)`)
  const host = m[1]!
  const port = m[2]
  if (host === '' || host === '[]') throw invalid(`${JSON.stringify(text)} has no host; expected ${form}`)
  if (host.startsWith('[')) {
    if (!/^\[[0-9A-Fa-f:.]+\]$/.test(host) || !host.includes(':')) throw invalid(`${JSON.stringify(host)} is not an IPv6 address`)
  } else if (!/^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*\.?$/.test(host)) {
    throw invalid(`${JSON.stringify(host)} is not a valid host name or address`)
  }
  if (port === undefined || port === '') throw invalid(`${JSON.stringify(text)} has no port; expected ${form}`)
  if (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) throw invalid(`port ${JSON.stringify(port)} in ${JSON.stringify(text)} is not a number from 1 to 65535`)
  return `${host}:${Number(port)}`
}

/**
 * The etcd key prefix: `--etcd-prefix`, then `$TORUS_ETCD_PREFIX`, then `torus/`, checked by the
 * same rule torusd uses (core's normalizeEtcdPrefix: a trailing `/` is added when missing).
 */
export function resolveEtcdPrefix(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  const fromFlag = flag !== undefined
  const prefix = flag ?? nonEmpty(env.TORUS_ETCD_PREFIX) ?? DEFAULT_ETCD_PREFIX
  const what = fromFlag ? '--etcd-prefix' : 'TORUS_ETCD_PREFIX'
  try {
    return normalizeEtcdPrefix(prefix)
  } catch (err) {
    throw new UsageError(`${what}: ${(err as Error).message}`)
  }
}

/** torusctl's config holds endpoints and profiles: a megabyte is far more than any needs. */
const MAX_CONFIG_FILE_BYTES = 1024 * 1024

interface ConfigFile {
  endpoint?: string
  currentProfile?: string
  profiles?: Record<string, { endpoint?: string }>
}

function fromConfigFile(file: string): string | undefined {
  let text: string
  try {
    text = readSmallFileSync(file, MAX_CONFIG_FILE_BYTES)
  } catch (err) {
    // Only a missing file means "no config"; an unreadable one must not silently send commands
    // to the default endpoint (which may be some other cluster).
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new UsageError(`cannot read ${file}: ${(err as Error).message}`)
  }
  let config: ConfigFile
  try {
    config = JSON.parse(text) as ConfigFile
  } catch {
    throw new UsageError(`${file} is not valid JSON`)
  }
  if (typeof config !== 'object' || config === null || Array.isArray(config)) throw new UsageError(`${file} must hold a JSON object`)
  if (config.profiles !== undefined && (typeof config.profiles !== 'object' || config.profiles === null || Array.isArray(config.profiles))) {
    throw new UsageError(`${file}: profiles must be an object`)
  }
  const profile =
    config.currentProfile === undefined || !Object.hasOwn(config.profiles ?? {}, config.currentProfile) ? undefined : config.profiles![config.currentProfile]
  if (config.currentProfile !== undefined && profile === undefined) throw new UsageError(`${file}: profile ${JSON.stringify(config.currentProfile)} not found`)
  const endpoint = profile?.endpoint ?? config.endpoint
  if (endpoint !== undefined && typeof endpoint !== 'string') throw new UsageError(`${file}: endpoint must be a string`)
  return endpoint
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v.trim() === '' ? undefined : v
}
