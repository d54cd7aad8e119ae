import { formatSize } from '@torus/core'
import type { TorusClient } from '../client.js'
import { renderJson, renderTable, type OutputFormat } from '../output.js'

export async function status(client: TorusClient, output: OutputFormat): Promise<string> {
  const s = await client.status()
  if (output === 'json') return renderJson(s)
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
