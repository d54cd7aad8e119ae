import { formatSize, TorusError, UUID_RE } from '@torus/core'
import type { PeerStatus, RingMember } from '@torus/core'
import type { ClusterBackend } from '../backend.js'
import { isBalanced, memberState, missingMembers, relativeAge, usagePercent } from '../cluster-view.js'
import { UsageError } from '../endpoint.js'
import { renderJson, renderTable, type CommandContext } from '../output.js'
import { updateRing } from '../ring-update.js'
import { renderUpdate } from './ring.js'

/** The original torusctl's columns, in its order. */
export const LIST_PEERS_HEADER = ['ADDRESS', 'UUID', 'SIZE', 'USED', 'MEMBER', 'UPDATED', 'REB/REP DATA']

/**
 * `list-peers`: every peer that ever reported (a dead one shows as DOWN, it is not hidden), ring
 * members that never reported, then `Balanced: … Usage: …%`.
 */
export async function listPeers(backend: ClusterBackend, ctx: CommandContext): Promise<string> {
  const [ring, peers, degraded] = await Promise.all([backend.getRing(), backend.listPeers(), degradedVolumes(backend)])
  const balanced = isBalanced(ring, peers)
  const usage = usagePercent(peers)
  const missing = missingMembers(ring, peers)
  if (ctx.output === 'json') {
    return renderJson({
      ring,
      peers: peers.map((p) => ({ ...p, member: memberState(p, ring), inRing: ring.members.some((m) => m.peer === p.id) })),
      missingMembers: missing,
      balanced,
      usagePercent: usage,
      degradedVolumes: degraded,
    })
  }
  const rows = peers.map((p) => [
    p.address,
    p.id,
    formatSize(p.capacityBytes),
    formatSize(p.usedBytes),
    memberState(p, ring),
    relativeAge(p.updatedAt, ctx.now()),
    `${formatSize(p.rebalanceBytesPerSec)}/s / ${formatSize(p.repairBytesPerSec)}/s`,
  ])
  for (const id of missing) rows.push(['-', id, '-', '-', 'DOWN', 'never', '-'])
  const footer = `Balanced: ${balanced} Usage: ${usage.toFixed(2)}%\n`
  if (degraded.length === 0) return renderTable(LIST_PEERS_HEADER, rows) + footer
  const names = degraded.map((d) => d.volume)
  const shown = names.length > 5 ? `${names.slice(0, 5).join(', ')} and ${names.length - 5} more` : names.join(', ')
  return renderTable(LIST_PEERS_HEADER, rows) + footer + `Stale copies in ${degraded.length} volume(s), repaired in the background: ${shown} (torusctl volume status NAME)\n`
}

/**
 * Volumes with stale-replica records (copies repair has yet to replace), for clusters whose
 * metadata has them; nothing for a single torusd. One request per volume: list-peers is an
 * admin's command, not a hot path.
 */
async function degradedVolumes(backend: ClusterBackend): Promise<{ volume: string; peers: number }[]> {
  if (backend.volumeHealth === undefined) return []
  const volumes = await backend.listVolumes().catch(() => [])
  const health = await Promise.all(volumes.map((v) => backend.volumeHealth!(v.name).catch(() => undefined)))
  return health.flatMap((h) => (h === undefined || h.stale.length === 0 ? [] : [{ volume: h.info.name, peers: new Set(h.stale.map((r) => r.peer)).size }]))
}

export interface PeerAddOptions {
  uuids: readonly string[]
  allPeers: boolean
  /** Change the ring although volumes exist (their data would read as missing; no rebalance yet). */
  force?: boolean
}

/**
 * `peer add`: puts peers into the ring, weighted by the capacity they report. Only alive peers
 * that reported at least once can join; one already in the ring is noted and left alone.
 */
export async function peerAdd(backend: ClusterBackend, options: PeerAddOptions, ctx: CommandContext): Promise<string> {
  if (options.allPeers && options.uuids.length > 0) throw new UsageError('peer add: give peer UUIDs or --all-peers, not both')
  if (!options.allPeers && options.uuids.length === 0) throw new UsageError('peer add: name at least one peer UUID, or use --all-peers')
  const ids = parsePeerIds(options.uuids)
  const peers = await backend.listPeers()
  const byId = new Map(peers.map((p) => [p.id, p]))
  let added: string[] = []
  const update = await updateRing(backend, (ring) => {
    const inRing = new Set(ring.members.map((m) => m.peer))
    const wanted = options.allPeers ? peers.filter((p) => p.alive && !inRing.has(p.id)).map((p) => p.id) : ids
    const notes: string[] = []
    const add: RingMember[] = []
    const unknown: string[] = []
    const down: PeerStatus[] = []
    const empty: string[] = []
    for (const id of wanted) {
      const p = byId.get(id)
      if (inRing.has(id)) notes.push(`peer ${id} is already a ring member`)
      else if (p === undefined) unknown.push(id)
      else if (!p.alive) down.push(p)
      else if (!(p.capacityBytes > 0)) empty.push(id)
      else add.push({ peer: id, weight: p.capacityBytes })
    }
    if (unknown.length > 0) {
      throw new TorusError('TORUS_NOT_FOUND', `unknown peer${plural(unknown)} ${unknown.join(', ')}: never reported to this cluster (see torusctl list-peers)`, {
        details: { peers: unknown },
      })
    }
    if (down.length > 0) {
      const what = down.map((p) => `${p.id} (last heartbeat ${relativeAge(p.updatedAt, ctx.now())})`).join(', ')
      throw new TorusError('TORUS_UNAVAILABLE', `peer${plural(down)} ${what} ${down.length === 1 ? 'is' : 'are'} DOWN; start ${down.length === 1 ? 'it' : 'them'} before adding to the ring`)
    }
    if (empty.length > 0) throw new TorusError('TORUS_INVALID_ARGUMENT', `peer${plural(empty)} ${empty.join(', ')} report${empty.length === 1 ? 's' : ''} no storage capacity`)
    if (ring.type === 'single' && ring.members.length + add.length > 1) {
      throw new TorusError(
        'TORUS_INVALID_ARGUMENT',
        `a single ring holds one peer (it has ${ring.members.length}, adding ${add.length}); run torusctl ring set-type ketama first`,
      )
    }
    if (options.allPeers && wanted.length === 0) notes.push('every alive peer is already a ring member')
    for (const m of add) notes.push(`adding peer ${m.peer} (weight ${m.weight}: ${formatSize(m.weight)} capacity)`)
    added = add.map((m) => m.peer)
    return add.length === 0 ? { notes } : { members: [...ring.members, ...add], notes }
  }, { force: options.force === true })
  return renderUpdate(update, ctx, { added: update.changed ? added : [] })
}

/** `peer remove`: takes peers out of the ring (their data moves to the others). */
export async function peerRemove(backend: ClusterBackend, uuids: readonly string[], ctx: CommandContext, force = false): Promise<string> {
  if (uuids.length === 0) throw new UsageError('peer remove: name at least one peer UUID')
  const ids = parsePeerIds(uuids)
  const peers = await backend.listPeers()
  const known = new Set(peers.map((p) => p.id))
  let removed: string[] = []
  const update = await updateRing(backend, (ring) => {
    const inRing = new Set(ring.members.map((m) => m.peer))
    const unknown = ids.filter((id) => !inRing.has(id) && !known.has(id))
    if (unknown.length > 0) {
      throw new TorusError('TORUS_NOT_FOUND', `unknown peer${plural(unknown)} ${unknown.join(', ')}: not a ring member and never reported to this cluster`, {
        details: { peers: unknown },
      })
    }
    const notes = ids.filter((id) => !inRing.has(id)).map((id) => `peer ${id} is not a ring member`)
    removed = ids.filter((id) => inRing.has(id))
    for (const id of removed) notes.push(`removing peer ${id}`)
    if (removed.length === 0) return { notes }
    const members = ring.members.filter((m) => !removed.includes(m.peer))
    if (members.length === 0) notes.push('warning: the ring has no members now; no block has a home until peers are added again')
    return { members, notes }
  }, { force })
  return renderUpdate(update, ctx, { removed: update.changed ? removed : [] })
}

/**
 * `peer forget`: drops the records of decommissioned peers, so `list-peers` stops showing them.
 * Only a DOWN peer that is no longer a ring member can be forgotten.
 */
export async function peerForget(backend: ClusterBackend, uuids: readonly string[], ctx: CommandContext): Promise<string> {
  if (uuids.length === 0) throw new UsageError('peer forget: name at least one peer UUID')
  const ids = parsePeerIds(uuids)
  const ring = await backend.getRing()
  const members = ids.filter((id) => ring.members.some((m) => m.peer === id))
  if (members.length > 0) {
    throw new TorusError('TORUS_LOCKED', `peer${plural(members)} ${members.join(', ')} still in the ring (version ${ring.version}); run torusctl peer remove first`, {
      details: { peers: members },
    })
  }
  for (const id of ids) await backend.forgetPeer(id)
  return ctx.output === 'json' ? renderJson({ forgotten: ids }) : ids.map((id) => `forgot peer ${id}\n`).join('')
}


/** Peer UUIDs as typed (any case) to the lowercase form peers report; duplicates dropped. */
export function parsePeerIds(input: readonly string[]): string[] {
  const ids: string[] = []
  for (const raw of input) {
    const id = String(raw).trim().toLowerCase()
    if (!UUID_RE.test(id)) throw new UsageError(`invalid peer UUID ${JSON.stringify(raw)}: expected xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx (see torusctl list-peers)`)
    if (!ids.includes(id)) ids.push(id)
  }
  return ids
}

function plural(list: readonly unknown[]): string {
  return list.length === 1 ? '' : 's'
}
