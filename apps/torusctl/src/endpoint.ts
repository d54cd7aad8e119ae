import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

export const DEFAULT_ENDPOINT = 'torus://127.0.0.1:40000'

/** A usage problem: exit 2 with this message. */
export class UsageError extends Error {
  override readonly name = 'UsageError'
}

export interface Endpoint {
  kind: 'torus'
  /** As the user gave it (for messages). */
  raw: string
  baseUrl: string
}

export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.TORUSCTL_CONFIG ?? path.join(env.HOME ?? os.homedir(), '.torus', 'config.json')
}

/**
 * Where torusctl talks to: `-C` first, then `$TORUS_ENDPOINT`, then the config file's current
 * profile, then the local daemon. `torus://HOST:PORT` is a torusd (embedded metadata);
 * `HOST:PORT[,HOST:PORT]` and `etcd://…` name etcd.
 */
export function resolveEndpoint(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): Endpoint {
  const raw = flag ?? nonEmpty(env.TORUS_ENDPOINT) ?? fromConfigFile(configPath(env)) ?? DEFAULT_ENDPOINT
  return parseEndpoint(raw)
}

export function parseEndpoint(raw: string): Endpoint {
  const text = raw.trim()
  if (text.startsWith('torus://')) {
    const rest = text.slice('torus://'.length).replace(/\/+$/, '')
    const m = /^(\[[^\]]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(rest)
    if (m === null || Number(m[2]) > 65535) throw new UsageError(`invalid endpoint ${JSON.stringify(raw)}: expected torus://HOST:PORT`)
    return { kind: 'torus', raw: text, baseUrl: `http://${m[1]}:${m[2]}` }
  }
  if (text.startsWith('etcd://') || /^[^/]+:\d+(,[^/]+:\d+)*$/.test(text)) {
    const hint = text.startsWith('etcd://') ? 'torus://HOST:PORT' : `torus://${text.split(',')[0]}`
    throw new UsageError(
      `endpoint ${JSON.stringify(raw)} means etcd, and etcd-backed clusters are not available in this version; to reach a torusd use ${hint}`,
    )
  }
  throw new UsageError(`invalid endpoint ${JSON.stringify(raw)}: expected torus://HOST:PORT (a torusd) or HOST:PORT (etcd)`)
}

interface ConfigFile {
  endpoint?: string
  currentProfile?: string
  profiles?: Record<string, { endpoint?: string }>
}

function fromConfigFile(file: string): string | undefined {
  let text: string
  try {
    text = fs.readFileSync(file, 'utf8')
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
