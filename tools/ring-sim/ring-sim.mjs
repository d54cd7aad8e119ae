#!/usr/bin/env node
// Ring simulator (like the original's cmd/ringtool): for N peers and each ring type, how even
// the primary placement of many blocks is, and what fraction of blocks changes primary when one
// peer joins or leaves. Uses the built @torus/ring (run `pnpm build` first). Deterministic.
//
// usage: node tools/ring-sim/ring-sim.mjs [--peers 3,10,100,1000] [--blocks 100000] [--types mod,ketama]
//                                         [--weights equal|mixed] [--markdown]
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
const dist = path.join(root, 'packages/ring/dist/index.js')
if (!fs.existsSync(dist)) {
  process.stderr.write('ring-sim: packages/ring is not built; run pnpm build\n')
  process.exit(1)
}
const { blockKey, createRing } = await import(pathToFileURL(dist).href)

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]?.startsWith('--') || all[i + 1] === undefined ? 'true' : all[i + 1]]] : acc), []),
)
const peerCounts = (args.peers ?? '3,10,100,1000').split(',').map(Number)
const blocks = Number(args.blocks ?? 100000)
const types = (args.types ?? 'mod,ketama').split(',')
const mixed = args.weights === 'mixed'

// Deterministic UUID-shaped peer ids.
const peerId = (n) => {
  const h = createHash('sha256').update(`peer-${n}`).digest('hex')
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`
}
const weightOf = (n) => (mixed ? [1, 2, 5][n % 3] : 1) * 5 * 2 ** 30
const members = (n) => Array.from({ length: n }, (_, i) => ({ peer: peerId(i), weight: weightOf(i) }))
const keys = Array.from({ length: blocks }, (_, i) => blockKey(1 + (i % 7), Math.floor(i / 7)))

function primaries(ring) {
  return keys.map((k) => ring.peersFor(k, 1)[0])
}

const rows = []
for (const type of types) {
  for (const n of peerCounts) {
    const base = members(n)
    const t0 = performance.now()
    const ring = createRing({ version: 1, type, replication: Math.min(2, n), members: base })
    const buildMs = performance.now() - t0
    const p = primaries(ring)
    const totalWeight = base.reduce((s, m) => s + m.weight, 0)
    const counts = new Map(base.map((m) => [m.peer, 0]))
    for (const x of p) counts.set(x, counts.get(x) + 1)
    // Worst deviation of any peer from its weighted fair share, and the spread (max/min of count/share).
    let worst = 0
    let lo = Infinity
    let hi = 0
    for (const m of base) {
      const expected = (blocks * m.weight) / totalWeight
      const ratio = counts.get(m.peer) / expected
      worst = Math.max(worst, Math.abs(ratio - 1))
      lo = Math.min(lo, ratio)
      hi = Math.max(hi, ratio)
    }
    const joined = createRing({ version: 2, type, replication: Math.min(2, n + 1), members: [...base, { peer: peerId(n), weight: weightOf(n) }] })
    const pj = primaries(joined)
    const moveJoin = pj.filter((x, i) => x !== p[i]).length / blocks
    const left = n > 1 ? createRing({ version: 2, type, replication: Math.min(2, n - 1), members: base.slice(1) }) : undefined
    const moveLeave = left === undefined ? NaN : primaries(left).filter((x, i) => x !== p[i]).length / blocks
    rows.push({ type, peers: n, worst, lo, hi, moveJoin, idealJoin: weightOf(n) / (totalWeight + weightOf(n)), moveLeave, idealLeave: base[0].weight / totalWeight, buildMs })
  }
}

const pct = (x) => (Number.isNaN(x) ? '—' : `${(100 * x).toFixed(1)}%`)
const header = ['type', 'peers', 'worst peer vs share', 'min/max of share', 'moved on join (ideal)', 'moved on leave (ideal)', 'build']
const lines = rows.map((r) => [r.type, String(r.peers), `±${pct(r.worst)}`, `${r.lo.toFixed(2)} / ${r.hi.toFixed(2)}`, `${pct(r.moveJoin)} (${pct(r.idealJoin)})`, `${pct(r.moveLeave)} (${pct(r.idealLeave)})`, `${r.buildMs.toFixed(0)} ms`])
if (args.markdown === 'true') {
  console.log(`| ${header.join(' | ')} |`)
  console.log(`|${header.map(() => '---').join('|')}|`)
  for (const l of lines) console.log(`| ${l.join(' | ')} |`)
} else {
  const w = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)))
  console.log(header.map((h, i) => h.padEnd(w[i])).join('  '))
  for (const l of lines) console.log(l.map((c, i) => c.padEnd(w[i])).join('  '))
}
console.log(`\n${blocks} blocks, ${mixed ? 'mixed weights (1:2:5)' : 'equal weights'}; "moved" counts blocks whose primary changed.`)
