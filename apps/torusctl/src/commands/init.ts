import { formatSize, isTorusError, parseSize, TorusError, validateBlockSize } from '@torus/core'
import type { ClusterConfig, RingType } from '@torus/core'
import { makeSecretCheck } from '@torus/metadata'
import type { ClusterBackend, InitRequest } from '../backend.js'
import { prepareSecret, SECRET_FILE_ENV, type PreparedSecret } from '../cluster-secret.js'
import { parseReplication, usage } from '../endpoint.js'
import { renderJson, type CommandContext } from '../output.js'

export interface InitOptions {
  blockSize?: string | undefined
  replication?: string | number | undefined
  ringType?: RingType | undefined
  /**
   * Where the cluster's transport secret lives (absolute). When set, init reads it, or generates
   * one and saves it there once the config is written, and stores its verifier as
   * `secretCheck`. Unset for a single torusd (no peers, no secret).
   */
  secretFile?: string | undefined
}

/**
 * Writes the cluster config once. Defaults come from the backend: an etcd cluster takes 512KiB,
 * replication 2, ketama; a torusd its own (a single node formats itself with replication 1).
 * A second init changes nothing and fails (exit 1) with the settings already in force; nor does
 * it create or change the secret file.
 */
export async function init(backend: ClusterBackend, options: InitOptions, ctx: CommandContext): Promise<string> {
  const request: InitRequest = {}
  if (options.blockSize !== undefined) request.blockSizeBytes = usage('--block-size', () => validateBlockSize(parseSize(options.blockSize!)))
  if (options.replication !== undefined) request.replication = parseReplication('--replication', options.replication)
  if (options.ringType !== undefined) request.ringType = options.ringType
  let secret: PreparedSecret | undefined
  if (options.secretFile !== undefined) {
    secret = prepareSecret(options.secretFile)
    request.secretCheck = makeSecretCheck(secret.secret)
  }
  let config: ClusterConfig
  try {
    config = await backend.initCluster(request)
  } catch (err) {
    if (isTorusError(err, 'TORUS_ALREADY_EXISTS')) {
      secret?.discard()
      const current = await backend.getCluster().catch(() => undefined)
      const what = current === undefined ? '' : ` (${describeCluster(current)})`
      throw new TorusError('TORUS_ALREADY_EXISTS', `cluster already initialised${what}; nothing changed`, { cause: err })
    }
    if (secret?.tempPath === undefined) throw err
    config = await adoptIfWritten(backend, request, secret, err)
  }
  secret?.install()
  if (ctx.output === 'json') return renderJson(secret === undefined ? config : { ...config, secretFile: secret.path })
  const secretLine = secret === undefined ? '' : `cluster secret: ${secret.path} (give it to every torusd: --cluster-secret-file ${secret.path}, or ${SECRET_FILE_ENV})\n`
  return `initialised cluster: ${describeCluster(config)}\n${secretLine}`
}

/**
 * An init call can fail after etcd applied it (a timeout after the commit). A new secret must not
 * be thrown away then: the stored config is read back, and if it carries this secret's verifier
 * the init happened and its config is returned. Otherwise the new secret is discarded and `err`
 * rethrown; when the config cannot be read either, the secret is kept and the error says where.
 */
async function adoptIfWritten(backend: ClusterBackend, request: InitRequest, secret: PreparedSecret, err: unknown): Promise<ClusterConfig> {
  let stored: ClusterConfig | undefined
  try {
    stored = await backend.getCluster()
  } catch {
    throw new TorusError(
      isTorusError(err) ? err.code : 'TORUS_INTERNAL',
      `${(err as Error).message}; if the cluster was initialised nonetheless, its secret is in ${secret.tempPath}: move it to ${secret.path}`,
      { cause: err },
    )
  }
  if (stored !== undefined && stored.secretCheck === request.secretCheck) return stored
  secret.discard()
  throw err
}

export function describeCluster(config: ClusterConfig): string {
  return `block size ${formatSize(config.blockSizeBytes)}, replication ${config.replication}, ring ${config.ringType}`
}
