import { formatSize } from '@torus/core'
import type { ClusterBackend } from '../backend.js'
import { notInitialised } from '../metadata-backend.js'
import type { DaemonStatus } from '../client.js'
import { renderJson, renderTable, type CommandContext } from '../output.js'
import { describeCluster } from './init.js'

/**
 * A torusd endpoint shows that daemon (peer, addresses, capacity, open volumes). An etcd
 * endpoint has no daemon to ask, so it shows a cluster summary instead: config, ring version
 * and members, peers alive/total, and the number of volumes.
 */
export async function status(backend: ClusterBackend, ctx: CommandContext): Promise<string> {
  if (backend.daemonStatus !== undefined) return daemonStatus(await backend.daemonStatus(), ctx)
  return clusterSummary(backend, ctx)
}

function daemonStatus(s: DaemonStatus, ctx: CommandContext): string {
  if (ctx.output === 'json') return renderJson(s)
  const pct = s.capacityBytes > 0 ? ((100 * s.usedBytes) / s.capacityBytes).toFixed(2) : '0.00'
  const open = Object.entries(s.openVolumes)
  return (
    renderTable(
      ['PEER', 'ADDRESS', 'NBD', 'SIZE', 'USED', 'METADATA'],
      [[s.peer, s.peerAddress, s.addresses?.nbd ?? 'off', formatSize(s.capacityBytes), formatSize(s.usedBytes), s.metadata]],
    ) +
    `Usage: ${pct}%  NBD connections: ${s.nbdConnections}  Open volumes: ${open.length === 0 ? 'none' : open.map(([n, c]) => `${n} (${c})`).join(', ')}\n`
  )
}

async function clusterSummary(backend: ClusterBackend, ctx: CommandContext): Promise<string> {
  const cluster = await backend.getCluster()
  if (cluster === undefined) throw notInitialised(backend)
  const [ring, peers, volumes] = await Promise.all([backend.getRing(), backend.listPeers(), backend.listVolumes()])
  const alive = peers.filter((p) => p.alive).length
  if (ctx.output === 'json') {
    return renderJson({
      endpoint: backend.endpoint,
      cluster,
      ring: { version: ring.version, type: ring.type, replication: ring.replication, members: ring.members.length },
      peers: { alive, total: peers.length },
      volumes: volumes.length,
    })
  }
  return [
    `Cluster at ${backend.endpoint}: ${describeCluster(cluster)}`,
    `Ring: version ${ring.version}, ${ring.type}, replication ${ring.replication}, ${ring.members.length} member${ring.members.length === 1 ? '' : 's'}`,
    `Peers: ${alive} alive, ${peers.length} total`,
    `Volumes: ${volumes.length}`,
    '',
  ].join('\n')
}
