import { formatSize, isTorusError, parseSize, TorusError, validateBlockSize } from '@torus/core'
import type { ClusterConfig, RingType } from '@torus/core'
import type { ClusterBackend, InitRequest } from '../backend.js'
import { parseReplication, usage } from '../endpoint.js'
import { renderJson, type CommandContext } from '../output.js'

export interface InitOptions {
  blockSize?: string | undefined
  replication?: string | number | undefined
  ringType?: RingType | undefined
}

/**
 * Writes the cluster config once. Defaults come from the backend: an etcd cluster takes 512KiB,
 * replication 2, ketama; a torusd its own (a single node formats itself with replication 1).
 * A second init changes nothing and fails (exit 1) with the settings already in force.
 */
export async function init(backend: ClusterBackend, options: InitOptions, ctx: CommandContext): Promise<string> {
  const request: InitRequest = {}
  if (options.blockSize !== undefined) request.blockSizeBytes = usage('--block-size', () => validateBlockSize(parseSize(options.blockSize!)))
  if (options.replication !== undefined) request.replication = parseReplication('--replication', options.replication)
  if (options.ringType !== undefined) request.ringType = options.ringType
  try {
    const config = await backend.initCluster(request)
    return ctx.output === 'json' ? renderJson(config) : `initialised cluster: ${describeCluster(config)}\n`
  } catch (err) {
    if (isTorusError(err, 'TORUS_ALREADY_EXISTS')) {
      const current = await backend.getCluster().catch(() => undefined)
      const what = current === undefined ? '' : ` (${describeCluster(current)})`
      throw new TorusError('TORUS_ALREADY_EXISTS', `cluster already initialised${what}; nothing changed`, { cause: err })
    }
    throw err
  }
}

export function describeCluster(config: ClusterConfig): string {
  return `block size ${formatSize(config.blockSizeBytes)}, replication ${config.replication}, ring ${config.ringType}`
}
