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

/**
 * `volume status NAME`: who serves it (the write lock and its generation) and whether every
 * block has all its copies — the stale-replica records repair works through.
 */
export async function volumeStatus(backend: ClusterBackend, name: string, ctx: CommandContext): Promise<string> {
  checkName(name)
  if (backend.volumeHealth === undefined) {
    throw new UsageError(`volume status needs a cluster's etcd endpoint: ${backend.endpoint} is a single torusd, which keeps one copy of each block`)
  }
  const { info, lock, stale } = await backend.volumeHealth(name)
  const peers = new Map((await backend.listPeers().catch(() => [])).map((p) => [p.id, p]))
  const byPeer = new Map<string, { wholeVolume: boolean; blocks: number }>()
  for (const r of stale) {
    const e = byPeer.get(r.peer) ?? { wholeVolume: false, blocks: 0 }
    if (r.index === 'all') e.wholeVolume = true
    else e.blocks++
    byPeer.set(r.peer, e)
  }
  const staleReplicas = [...byPeer].map(([peer, e]) => ({ peer, address: peers.get(peer)?.address, alive: peers.get(peer)?.alive, wholeVolume: e.wholeVolume, blocks: e.blocks }))
  if (ctx.output === 'json') {
    return renderJson({
      volume: info,
      lock: lock === undefined ? null : { holder: lock.holder, generation: lock.generation },
      complete: staleReplicas.length === 0,
      staleReplicas,
    })
  }
  const lines = [
    `VOLUME     ${info.name} (id ${info.id}, ${formatSize(info.sizeBytes)}, replication ${info.replication})`,
    `SERVED BY  ${lock === undefined ? 'nobody (not open)' : `${lock.holder} (generation ${lock.generation})`}`,
    `REPLICAS   ${staleReplicas.length === 0 ? 'complete: no stale copies' : `degraded: ${staleReplicas.length} peer(s) hold stale copies; repair replaces them where the volume is served, or once every peer is up`}`,
  ]
  for (const r of staleReplicas) {
    const who = `${r.peer}${r.address === undefined ? '' : ` ${r.address}`}${r.alive === false ? ' (down)' : ''}`
    lines.push(`  ${who}: ${r.wholeVolume ? 'the whole volume' : `${r.blocks} block(s)`}${r.wholeVolume && r.blocks > 0 ? `, and ${r.blocks} block(s) recorded before` : ''}`)
  }
  return `${lines.join('\n')}\n`
}
