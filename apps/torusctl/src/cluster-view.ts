import type { PeerStatus, RingDescriptor } from '@torus/core'

/**
 * A peer's standing, as the MEMBER column of `list-peers` shows it (the original's words):
 * `OK` alive and in the ring, `Avail` alive but not in the ring, `DOWN` its heartbeat lease
 * expired (in the ring or not).
 */
export type MemberState = 'OK' | 'Avail' | 'DOWN'

export function memberState(peer: Pick<PeerStatus, 'id' | 'alive'>, ring: RingDescriptor): MemberState {
  if (!peer.alive) return 'DOWN'
  return ring.members.some((m) => m.peer === peer.id) ? 'OK' : 'Avail'
}

/**
 * Balanced: the ring has members, and every member is alive, places blocks by the current ring
 * version, and moves no data (zero rebalance and repair rates). A member that never reported
 * counts as not alive.
 */
export function isBalanced(ring: RingDescriptor, peers: readonly PeerStatus[]): boolean {
  if (ring.members.length === 0) return false
  const byId = new Map(peers.map((p) => [p.id, p]))
  return ring.members.every((m) => {
    const p = byId.get(m.peer)
    return p !== undefined && p.alive && p.ringVersion === ring.version && p.rebalanceBytesPerSec === 0 && p.repairBytesPerSec === 0
  })
}

/** Used bytes over capacity of the alive peers, in percent rounded to two decimals (0 with no capacity). */
export function usagePercent(peers: readonly PeerStatus[]): number {
  let used = 0
  let capacity = 0
  for (const p of peers) {
    if (!p.alive) continue
    used += p.usedBytes
    capacity += p.capacityBytes
  }
  return capacity > 0 ? Math.round((10_000 * used) / capacity) / 100 : 0
}

/** Ring members with no peer record (never reported, or forgotten). */
export function missingMembers(ring: RingDescriptor, peers: readonly PeerStatus[]): string[] {
  const known = new Set(peers.map((p) => p.id))
  return ring.members.filter((m) => !known.has(m.peer)).map((m) => m.peer)
}

const UNITS: Array<[name: string, ms: number]> = [
  ['day', 86_400_000],
  ['hour', 3_600_000],
  ['minute', 60_000],
  ['second', 1000],
]

/** `now`, `1 second ago`, `5 minutes ago`, `2 days ago`; a time ahead of `nowMs` (clock skew) reads `3 seconds from now`. */
export function relativeAge(iso: string, nowMs: number): string {
  const at = Date.parse(iso)
  if (Number.isNaN(at)) return 'unknown'
  const delta = nowMs - at
  const abs = Math.abs(delta)
  for (const [name, ms] of UNITS) {
    if (abs < ms && name !== 'second') continue
    const n = Math.floor(abs / ms)
    if (n === 0) return 'now'
    return `${n} ${name}${n === 1 ? '' : 's'} ${delta >= 0 ? 'ago' : 'from now'}`
  }
  return 'now'
}
