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
  if (ctx.output === 'json') return renderJson(info)
  const created = `created block volume ${info.name} (${formatSize(info.sizeBytes)})\n`
  // Writes to it would fail with EIO until some peer is in the ring: say so now.
  const ring = await backend.getRing().catch(() => undefined)
  if (ring === undefined || ring.members.length > 0) return created
  return `${created}note: the ring has no members yet, so ${info.name} cannot store data: add peers with \`torusctl peer add --all-peers\` (or start torusd with --auto-join)\n`
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
