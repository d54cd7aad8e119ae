import { formatSize, parseSize, validateVolumeSize, VOLUME_NAME_RE } from '@torus/core'
import type { ClusterBackend } from '../backend.js'
import { UsageError } from '../endpoint.js'
import { renderJson, renderTable, type CommandContext } from '../output.js'

export async function volumeList(backend: ClusterBackend, ctx: CommandContext): Promise<string> {
  const volumes = await backend.listVolumes()
  if (ctx.output === 'json') return renderJson(volumes)
  return renderTable(
    ['VOLUME NAME', 'SIZE', 'TYPE'],
    volumes.map((v) => [v.name, formatSize(v.sizeBytes), v.type]),
  )
}

export async function volumeCreateBlock(backend: ClusterBackend, name: string, size: string, ctx: CommandContext): Promise<string> {
  checkName(name)
  let sizeBytes: number
  try {
    sizeBytes = validateVolumeSize(parseSize(size))
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
  const info = await backend.createVolume(name, sizeBytes)
  return ctx.output === 'json' ? renderJson(info) : `created block volume ${info.name} (${formatSize(info.sizeBytes)})\n`
}

export async function volumeDelete(backend: ClusterBackend, name: string, ctx: CommandContext): Promise<string> {
  checkName(name)
  const info = await backend.deleteVolume(name)
  return ctx.output === 'json' ? renderJson(info) : `deleted volume ${info.name}\n`
}

function checkName(name: string): void {
  if (!VOLUME_NAME_RE.test(name)) {
    throw new UsageError(`invalid volume name ${JSON.stringify(name)}: use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit`)
  }
}
