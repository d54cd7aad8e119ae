import { formatSize, parseSize } from '@torus/core'
import { ApiError, type TorusClient } from '../client.js'
import { UsageError } from '../endpoint.js'
import { renderJson, type OutputFormat } from '../output.js'

export interface InitOptions {
  blockSize?: string | undefined
  replication?: number | undefined
  ringType?: string | undefined
}

export async function init(client: TorusClient, options: InitOptions, output: OutputFormat): Promise<string> {
  let blockSizeBytes: number | undefined
  if (options.blockSize !== undefined) {
    try {
      blockSizeBytes = parseSize(options.blockSize)
    } catch (err) {
      throw new UsageError(`--block-size: ${(err as Error).message}`)
    }
  }
  try {
    const config = await client.initCluster({
      ...(blockSizeBytes === undefined ? {} : { blockSizeBytes }),
      ...(options.replication === undefined ? {} : { replication: options.replication }),
      ...(options.ringType === undefined ? {} : { ringType: options.ringType }),
    })
    return output === 'json' ? renderJson(config) : `initialised cluster: block size ${formatSize(config.blockSizeBytes)}, replication ${config.replication}, ring ${config.ringType}\n`
  } catch (err) {
    if (err instanceof ApiError && err.code === 'TORUS_ALREADY_EXISTS') {
      const current = await client.getCluster().catch(() => undefined)
      const what = current === undefined ? '' : ` (block size ${formatSize(current.blockSizeBytes)}, replication ${current.replication}, ring ${current.ringType})`
      throw new ApiError(`cluster already initialised${what}; nothing changed`, err.code)
    }
    throw err
  }
}
