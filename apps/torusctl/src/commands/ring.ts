import { formatSize, TorusError } from '@torus/core'
import type { RingType } from '@torus/core'
import type { ClusterBackend } from '../backend.js'
import { parseReplication } from '../endpoint.js'
import { renderJson, renderTable, type CommandContext } from '../output.js'
import { updateRing, type RingUpdate } from '../ring-update.js'

/**
 * `ring get`: version, type, replication, then one row per member with its weight (bytes of
 * capacity, shown like every other size; raw in JSON), address and state.
 */
export async function ringGet(backend: ClusterBackend, ctx: CommandContext): Promise<string> {
  const [ring, peers] = await Promise.all([backend.getRing(), backend.listPeers()])
  const byId = new Map(peers.map((p) => [p.id, p]))
  const members = ring.members.map((m) => {
    const p = byId.get(m.peer)
    return { peer: m.peer, weight: m.weight, address: p?.address ?? null, state: p?.alive === true ? 'OK' : 'DOWN' }
  })
  if (ctx.output === 'json') return renderJson({ version: ring.version, type: ring.type, replication: ring.replication, members })
  const lines = [`Version: ${ring.version}`, `Type: ${ring.type}`, `Replication: ${ring.replication}`]
  let text = `${lines.join('\n')}\n` + renderTable(['UUID', 'WEIGHT', 'ADDRESS', 'STATE'], members.map((m) => [m.peer, formatSize(m.weight), m.address ?? '-', m.state]))
  if (members.length === 0) text += 'The ring has no members; add peers with: torusctl peer add --all-peers\n'
  return text
}

/** `ring set-type TYPE`; `single` holds at most one member. */
export async function ringSetType(backend: ClusterBackend, type: RingType, ctx: CommandContext, force = false): Promise<string> {
  const update = await updateRing(backend, (ring) => {
    if (ring.type === type) return { notes: [`the ring is already ${type}`] }
    if (type === 'single' && ring.members.length > 1) {
      throw new TorusError(
        'TORUS_INVALID_ARGUMENT',
        `a single ring holds one peer and this ring has ${ring.members.length}; remove all but one with torusctl peer remove first`,
      )
    }
    return { type, notes: [`type ${ring.type} -> ${type}`] }
  }, { force })
  return renderUpdate(update, ctx)
}

/** `ring set-replication N` (1-16): how many distinct peers hold each block. */
export async function ringSetReplication(backend: ClusterBackend, replication: string | number, ctx: CommandContext, force = false): Promise<string> {
  const n = parseReplication('set-replication', replication)
  const update = await updateRing(backend, (ring) => {
    if (ring.replication === n) return { notes: [`replication is already ${n}`] }
    const notes = [`replication ${ring.replication} -> ${n}`]
    if (ring.members.length > 0 && n > ring.members.length) {
      notes.push(`note: the ring has ${ring.members.length} member(s), so each block is stored ${ring.members.length} time(s) until more peers are added`)
    }
    return { replication: n, notes }
  }, { force })
  return renderUpdate(update, ctx)
}

/**
 * The result of a ring change: the notes, then `ring version A -> B`, or that nothing changed.
 * JSON: `{ changed, previousVersion, ring, notes, ...extra }`.
 */
export function renderUpdate(update: RingUpdate, ctx: CommandContext, extra: Record<string, unknown> = {}): string {
  if (ctx.output === 'json') {
    return renderJson({ changed: update.changed, previousVersion: update.previousVersion, ring: update.ring, notes: update.notes, ...extra })
  }
  const last = update.changed
    ? `ring version ${update.previousVersion} -> ${update.ring.version}${update.attempts > 1 ? ` (after ${update.attempts - 1} concurrent change(s), re-read and applied again)` : ''}`
    : `nothing changed; the ring stays at version ${update.ring.version}`
  return [...update.notes, last, ''].join('\n')
}

