import { formatSize, parseSize, validateVolumeSize, VOLUME_NAME_RE } from '@torus/core'
import type { TorusClient } from '../client.js'
import { UsageError } from '../endpoint.js'
import { renderJson, renderTable, type OutputFormat } from '../output.js'

export async function volumeList(client: TorusClient, output: OutputFormat): Promise<string> {
  const volumes = await client.listVolumes()
  if (output === 'json') return renderJson(volumes)
  return renderTable(
    ['VOLUME NAME', 'SIZE', 'TYPE'],
    volumes.map((v) => [v.name, formatSize(v.sizeBytes), v.type]),
  )
}

export async function volumeCreateBlock(client: TorusClient, name: string, size: string, output: OutputFormat): Promise<string> {
  checkName(name)
  let sizeBytes: number
  try {
    sizeBytes = validateVolumeSize(parseSize(size))
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
  const info = await client.createVolume(name, sizeBytes)
  return output === 'json' ? renderJson(info) : `created block volume ${info.name} (${formatSize(info.sizeBytes)})\n`
}

export async function volumeDelete(client: TorusClient, name: string, output: OutputFormat): Promise<string> {
  checkName(name)
  const info = await client.deleteVolume(name)
  return output === 'json' ? renderJson(info) : `deleted volume ${info.name}\n`
}

function checkName(name: string): void {
  if (!VOLUME_NAME_RE.test(name)) {
    throw new UsageError(`invalid volume name ${JSON.stringify(name)}: use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit`)
  }
}
