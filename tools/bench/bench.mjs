#!/usr/bin/env node
// Side-by-side NBD benchmark: fio's nbd engine against torusd (file block store), nbdkit's file
// plugin and qemu-nbd (raw file), each backed by the same kind of file in the same directory, in
// one run. Prints IOPS, MiB/s, p50/p99 completion latency, torusd's peak RSS and the ratios
// torusd/nbdkit and torusd/qemu-nbd per job. With --cluster it also runs the same jobs through
// node 0's NBD export of a 3-node cluster (real etcd, tools/cluster) at replication 2 and 1, with
// their ratios to single-node torusd and nbdkit and the etcd requests counted during each job.
// Not a test: nothing here asserts a speed.
//
// usage: node tools/bench/bench.mjs [--runtime 10] [--size 1GiB] [--dir /tmp] [--json out.json] [--cluster]
//          [--only torusd,nbdkit,qemu-nbd,cluster-r2,cluster-r1] [--jobs name,...] [--cpu-prof DIR]
//          [--node-flags "--single-threaded-gc ..."]
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { TORUSD_NODE_FLAGS, startCluster } from '../cluster/cluster.mjs'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
const args = parseArgs(process.argv.slice(2))
const runtime = Number(args.runtime ?? 10)
const sizeBytes = parseSize(args.size ?? '1GiB')
const baseDir = args.dir ?? os.tmpdir()
const CLUSTER_NODES = 3
const CLUSTER_LEASE_TTL_S = 10
// Node.js flags for every torusd (single-node and cluster). Default: what bin/torusd uses
// (TORUSD_NODE_FLAGS); --node-flags '' runs them with V8's defaults.
const nodeFlags = (args['node-flags'] ?? TORUSD_NODE_FLAGS.join(' ')).split(/\s+/).filter(Boolean)
const only = (args.only ?? `torusd,nbdkit,qemu-nbd${args.cluster !== undefined ? ',cluster-r2,cluster-r1' : ''}`).split(',')

const JOBS = [
  { name: 'randwrite-4k-qd1', rw: 'randwrite', bs: '4k', iodepth: 1, metric: 'iops' },
  { name: 'randread-4k-qd16', rw: 'randread', bs: '4k', iodepth: 16, metric: 'iops' },
  { name: 'seqwrite-1m-qd8', rw: 'write', bs: '1m', iodepth: 8, metric: 'bw' },
  { name: 'seqread-1m-qd8', rw: 'read', bs: '1m', iodepth: 8, metric: 'bw' },
].filter((j) => args.jobs === undefined || args.jobs.split(',').includes(j.name))

const work = fs.mkdtempSync(path.join(baseDir, 'torus-bench-'))
const children = []
const cleanup = () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
  fs.rmSync(work, { recursive: true, force: true })
}
process.on('exit', cleanup)
process.on('SIGINT', () => process.exit(130))

for (const tool of ['fio', ...(only.includes('nbdkit') ? ['nbdkit'] : []), ...(only.includes('qemu-nbd') ? ['qemu-nbd'] : [])]) {
  if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) die(`${tool} is not installed (apt-get install fio nbdkit qemu-utils)`)
}
if (only.some((n) => n === 'torusd' || n.startsWith('cluster-')) && !fs.existsSync(path.join(root, 'apps/torusd/dist/main.js'))) die('torusd is not built: run pnpm build')
if (only.some((n) => n.startsWith('cluster-')) && spawnSync('sh', ['-c', 'command -v etcd']).status !== 0) die('etcd is not installed (apt-get install etcd-server)')

const servers = {
  async torusd() {
    const ports = { nbd: await freePort(), http: await freePort(), peer: await freePort() }
    const dataDir = path.join(work, 'torusd')
    const nodeArgs = [...nodeFlags, ...(args['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(args['cpu-prof'])}`] : [])]
    const child = spawn(process.execPath, [...nodeArgs, path.join(root, 'apps/torusd/bin/torusd.cjs'), '--data-dir', dataDir, '--size', String(sizeBytes * 2),
      '--nbd-address', `127.0.0.1:${ports.nbd}`, '--port', String(ports.http), '--peer-address', `ws://127.0.0.1:${ports.peer}`, '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'inherit'] })
    children.push(child)
    await waitForPort(ports.nbd)
    const ctl = spawnSync(process.execPath, [path.join(root, 'apps/torusctl/dist/main.js'), '-C', `torus://127.0.0.1:${ports.peer}`, 'volume', 'create-block', 'bench', String(sizeBytes)], { encoding: 'utf8' })
    if (ctl.status !== 0) die(`torusctl failed: ${ctl.stderr}`)
    return { uri: `nbd://127.0.0.1:${ports.nbd}/bench`, child, stop: () => stopChild(child, 'SIGTERM') }
  },
  async nbdkit() {
    const port = await freePort()
    const file = path.join(work, 'nbdkit.raw')
    fs.writeFileSync(file, '')
    fs.truncateSync(file, sizeBytes)
    const child = spawn('nbdkit', ['-f', '-i', '127.0.0.1', '-p', String(port), 'file', file], { stdio: ['ignore', 'ignore', 'inherit'] })
    children.push(child)
    await waitForPort(port)
    return { uri: `nbd://127.0.0.1:${port}/`, child, stop: () => stopChild(child, 'SIGTERM') }
  },
  async 'qemu-nbd'() {
    const port = await freePort()
    const file = path.join(work, 'qemu.raw')
    fs.writeFileSync(file, '')
    fs.truncateSync(file, sizeBytes)
    const child = spawn('qemu-nbd', ['-f', 'raw', '-b', '127.0.0.1', '-p', String(port), '-x', 'bench', '--persistent', '--shared=16', file], { stdio: ['ignore', 'ignore', 'ignore'] })
    children.push(child)
    await waitForPort(port)
    return { uri: `nbd://127.0.0.1:${port}/bench`, child, stop: () => stopChild(child, 'SIGTERM') }
  },
}

for (const replication of [2, 1]) servers[`cluster-r${replication}`] = () => startBenchCluster(`cluster-r${replication}`, replication)

const results = {}
const rss = {}
const etcd = {}
for (const name of only) {
  if (!(name in servers)) die(`unknown server ${name}`)
  log(`== ${name}`)
  const server = await servers[name]()
  const pids = server.pids ?? [server.child.pid]
  log(`   prefill ${fmtBytes(sizeBytes)}`)
  fio(server.uri, { name: 'prefill', rw: 'write', bs: '1m', iodepth: 8 }, { timeBased: false })
  if (server.etcd !== undefined) {
    // The background rate (heartbeats, lease keep-alives) with no client connected, to set the
    // per-job counts against.
    const before = await etcdSample(server.etcd)
    await new Promise((r) => setTimeout(r, runtime * 1000))
    etcd[name] = { idle: etcdDelta(before, await etcdSample(server.etcd)) }
    // The same time with a client attached but (almost) no I/O: one fio run at 1 IOPS. It pays
    // what every job pays besides its I/O: connecting, opening the volume (lock, lookups) and
    // keeping the volume's lock lease alive while it is open.
    const c0 = await etcdSample(server.etcd)
    const base = fio(server.uri, { name: 'open-1iops', rw: 'randread', bs: '4k', iodepth: 1, rateIops: 1 }, { timeBased: true })
    etcd[name].baseline = { ...etcdDelta(c0, await etcdSample(server.etcd)), ios: base.ios }
    log(`   idle ${etcd[name].idle.seconds.toFixed(1)} s: ${etcd[name].idle.total} etcd requests; volume open at 1 IOPS: ${etcd[name].baseline.total}`)
  }
  results[name] = {}
  for (const job of JOBS) {
    const cpu0 = pids.map(cpuSeconds)
    const e0 = server.etcd === undefined ? undefined : await etcdSample(server.etcd)
    const host0 = hostBusySeconds()
    const t0 = process.hrtime.bigint()
    const r = fio(server.uri, job, { timeBased: true })
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9
    // Server CPU (user+system, all threads, every server process) as a share of one core over the whole fio run.
    r.serverCpuPct = (100 * pids.reduce((sum, pid, i) => sum + cpuSeconds(pid) - cpu0[i], 0)) / seconds
    // Everything the host's CPUs did meanwhile, on the same scale (200% = both cores of a 2-vCPU
    // host): what is left after the servers, fio and etcd is other load that skews the numbers.
    r.hostCpuPct = (100 * (hostBusySeconds() - host0)) / seconds
    if (e0 !== undefined) {
      r.etcd = etcdDelta(e0, await etcdSample(server.etcd))
      etcd[name][job.name] = r.etcd
    }
    r.otherCpuPct = r.hostCpuPct - r.serverCpuPct - r.fioCpuPct - (r.etcd?.cpuPct ?? 0)
    results[name][job.name] = r
    const etcdNote = r.etcd === undefined ? '' : `  etcd ${r.etcd.total} req for ${fmtNum(r.ios)} I/Os`
    log(`   ${job.name.padEnd(18)} ${fmtNum(r.iops).padStart(8)} IOPS ${r.mibps.toFixed(1).padStart(8)} MiB/s  p50 ${fmtLat(r.p50us)}  p99 ${fmtLat(r.p99us)}  server cpu ${r.serverCpuPct.toFixed(0)}% other ${r.otherCpuPct.toFixed(0)}%${etcdNote}`)
  }
  rss[name] = pids.map(peakRssBytes)
  await server.stop()
}

const table = render()
process.stdout.write(table)
if (args.json) fs.writeFileSync(args.json, JSON.stringify({ date: new Date().toISOString(), host: hostInfo(), runtimeSeconds: runtime, sizeBytes, results, rss, etcd }, null, 2))

/**
 * A 3-node cluster (real etcd, tools/cluster) initialised with `replication` and a ketama ring,
 * one volume created through torusctl, served by node 0's NBD export: node 0 is the gateway and
 * holds a replica of some blocks; the others are reached over the peer transport.
 */
async function startBenchCluster(name, replication) {
  const profDir = args['cpu-prof'] ? path.resolve(args['cpu-prof'], name) : undefined
  const cluster = await startCluster({
    nodes: CLUSTER_NODES,
    size: String(sizeBytes * 2),
    replication,
    ringType: 'ketama',
    leaseTtl: CLUSTER_LEASE_TTL_S,
    logLevel: 'info', // not warn: startCluster waits for "torusd ready", logged at info (lifecycle only)
    dir: path.join(work, name),
    execArgv: [...nodeFlags, ...(profDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${profDir}`])],
  })
  const ctl = await cluster.torusctl('volume', 'create-block', 'bench', String(sizeBytes))
  if (ctl.code !== 0) {
    await cluster.stop()
    die(`torusctl volume create-block failed: ${ctl.stderr}`)
  }
  const pids = cluster.nodes.map((n) => n.pid)
  return {
    uri: cluster.nodes[0].nbdUri('bench'),
    pids,
    etcd: { url: cluster.etcd.url, pid: cluster.etcd.pid },
    stop: () => cluster.stop(),
  }
}

function render() {
  const lines = []
  const clusters = only.filter((n) => n.startsWith('cluster-'))
  lines.push(`fio nbd engine, ${runtime}s per job, ${fmtBytes(sizeBytes)} export (prefilled), files in ${baseDir}`)
  if (clusters.length > 0) lines.push(`cluster-rN: ${CLUSTER_NODES} torusd + etcd ${etcdVersion()}, replication N, ketama ring, lease TTL ${CLUSTER_LEASE_TTL_S} s, fio through node 0's NBD export; server CPU sums all ${CLUSTER_NODES} torusd`)
  lines.push('')
  lines.push('| job | server | IOPS | MiB/s | p50 | p99 | server CPU | fio CPU | other CPU |')
  lines.push('|---|---|---:|---:|---:|---:|---:|---:|---:|')
  for (const job of JOBS) {
    for (const name of only) {
      const r = results[name][job.name]
      lines.push(`| ${job.name} | ${name} | ${fmtNum(r.iops)} | ${r.mibps.toFixed(1)} | ${fmtLat(r.p50us)} | ${fmtLat(r.p99us)} | ${r.serverCpuPct.toFixed(0)}% | ${r.fioCpuPct.toFixed(0)}% | ${r.otherCpuPct.toFixed(0)}% |`)
    }
  }
  const pairs = [['torusd', 'nbdkit'], ['torusd', 'qemu-nbd'], ['cluster-r2', 'torusd'], ['cluster-r1', 'torusd'], ['cluster-r2', 'nbdkit'], ['cluster-r1', 'nbdkit']]
    .filter(([a, b]) => only.includes(a) && only.includes(b))
  if (pairs.length > 0) {
    lines.push('', 'Throughput ratios (IOPS, equal to MiB/s ratios):', '')
    lines.push(`| job | ${pairs.map(([a, b]) => `${a}/${b}`).join(' | ')} |`)
    lines.push(`|---|${pairs.map(() => '---:').join('|')}|`)
    for (const job of JOBS) lines.push(`| ${job.name} | ${pairs.map(([a, b]) => (results[a][job.name].iops / results[b][job.name].iops).toFixed(2)).join(' | ')} |`)
  }
  const latPairs = pairs.filter(([a]) => a.startsWith('cluster-'))
  if (latPairs.length > 0) {
    lines.push('', 'p50 latency ratios:', '')
    lines.push(`| job | ${latPairs.map(([a, b]) => `${a}/${b}`).join(' | ')} |`)
    lines.push(`|---|${latPairs.map(() => '---:').join('|')}|`)
    for (const job of JOBS) lines.push(`| ${job.name} | ${latPairs.map(([a, b]) => (results[a][job.name].p50us / results[b][job.name].p50us).toFixed(2)).join(' | ')} |`)
  }
  if (clusters.length > 0) {
    lines.push('', 'etcd requests (gRPC messages received by etcd, from its /metrics) while each job ran. Baseline: the same time with fio attached at 1 IOPS (connect, volume lock and its lease keep-alives, node heartbeats); "beyond baseline" is a job\'s count less the baseline scaled to the job\'s window:', '')
    lines.push('| server | window | window s | fio I/Os | etcd req | beyond baseline | req/s | Range | Txn | Put | LeaseKeepAlive | Watch (req/events) | other | raft proposals | etcd CPU | req per 1000 I/Os |')
    lines.push('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
    for (const name of clusters) {
      const base = etcd[name].baseline
      const row = (label, e, ios, perIo = true) => `| ${name} | ${label} | ${e.seconds.toFixed(1)} | ${ios === undefined ? '–' : ios} | ${e.total} | ${perIo ? fmtSigned(excessOf(name, e)) : '–'} | ${(e.total / e.seconds).toFixed(1)} | ${e.range} | ${e.txn} | ${e.put} | ${e.keepAlive} | ${e.watch}/${e.watchEvents} | ${e.other} | ${e.proposals} | ${e.cpuPct.toFixed(1)}% | ${perIo ? ((1000 * e.total) / ios).toFixed(2) : '–'} |`
      lines.push(row('idle, no client', etcd[name].idle, undefined, false))
      lines.push(row('volume open, 1 IOPS', base, base.ios, false))
      for (const job of JOBS) lines.push(row(job.name, results[name][job.name].etcd, results[name][job.name].ios))
    }
  }
  for (const name of clusters) {
    const m = Object.entries(etcd[name].baseline.byMethod).map(([k, v]) => `${k.replace(/^etcdserverpb\./, '')} ${v}`).join(', ')
    lines.push('', `${name} baseline by method: ${m}`)
  }
  const goals = goalLines()
  if (goals.length > 0) lines.push('', 'Goals (issue 4):', '', '| goal | measured | met |', '|---|---|---|', ...goals)
  const rssCells = Object.entries(rss).map(([n, v]) => `${n} ${v.map((b) => (b / 1024 / 1024).toFixed(0)).join('/')}`)
  if (rssCells.length > 0) lines.push('', `peak RSS MiB (per server process): ${rssCells.join(', ')}`)
  return `${lines.join('\n')}\n`
}

function goalLines() {
  const out = []
  const has = (n, job) => results[n]?.[job] !== undefined
  if (has('cluster-r2', 'seqwrite-1m-qd8') && has('torusd', 'seqwrite-1m-qd8')) {
    const x = results['cluster-r2']['seqwrite-1m-qd8'].mibps / results.torusd['seqwrite-1m-qd8'].mibps
    out.push(`| 1 MiB seq write, r2 ≥ 0.5× single-node | ${x.toFixed(2)}× | ${x >= 0.5 ? 'yes' : 'no'} |`)
  }
  if (has('cluster-r2', 'randwrite-4k-qd1') && has('torusd', 'randwrite-4k-qd1')) {
    const x = results['cluster-r2']['randwrite-4k-qd1'].p50us / results.torusd['randwrite-4k-qd1'].p50us
    out.push(`| 4 KiB QD1 write p50, r2 ≤ 3× single-node | ${x.toFixed(2)}× | ${x <= 3 ? 'yes' : 'no'} |`)
  }
  for (const name of only.filter((n) => n.startsWith('cluster-'))) {
    // Per-I/O etcd use would put a job's excess at one request per I/O or more. The allowance is
    // 1 per 100 I/Os plus 10 requests of timing noise (a heartbeat round of 3 nodes is 6).
    const rows = JOBS.map((j) => ({ job: j.name, ios: results[name][j.name].ios, excess: excessOf(name, results[name][j.name].etcd) }))
    const ok = rows.every((r) => r.excess <= 0.01 * r.ios + 10)
    const most = rows.reduce((a, b) => (b.ios > a.ios ? b : a))
    out.push(`| no per-I/O etcd traffic (${name}): requests beyond baseline ≤ I/Os/100 + 10 in every job | ${rows.map((r) => `${fmtSigned(r.excess)} for ${fmtNum(r.ios)}`).join(', ')} I/Os (most: ${(most.excess / most.ios).toFixed(5)}/I/O) | ${ok ? 'yes' : 'no'} |`)
  }
  return out
}

/** etcd's gRPC counters: messages received per service/method (requests; for streams, each keep-alive or watch request), events sent on watches, committed raft proposals. */
async function etcdSample(etcd) {
  const res = await fetch(`${etcd.url}/metrics`, { signal: AbortSignal.timeout(5000) })
  const text = await res.text()
  const received = {}
  let watchSent = 0
  let proposals = 0
  for (const line of text.split('\n')) {
    const m = /^(grpc_server_msg_received_total|grpc_server_msg_sent_total|etcd_server_proposals_committed_total)(?:\{([^}]*)\})? (\S+)$/.exec(line)
    if (m === null) continue
    const labels = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]))
    const value = Number(m[3])
    if (m[1] === 'etcd_server_proposals_committed_total') proposals = value
    else if (m[1] === 'grpc_server_msg_sent_total') { if (labels.grpc_method === 'Watch') watchSent += value }
    else received[`${labels.grpc_service}/${labels.grpc_method}`] = value
  }
  return { at: process.hrtime.bigint(), received, watchSent, proposals, cpuSeconds: cpuSeconds(etcd.pid) }
}

function etcdDelta(a, b) {
  const d = (k) => (b.received[k] ?? 0) - (a.received[k] ?? 0)
  const total = Object.keys(b.received).reduce((sum, k) => sum + d(k), 0)
  const range = d('etcdserverpb.KV/Range')
  const txn = d('etcdserverpb.KV/Txn')
  const put = d('etcdserverpb.KV/Put')
  const keepAlive = d('etcdserverpb.Lease/LeaseKeepAlive')
  const watch = d('etcdserverpb.Watch/Watch')
  const byMethod = Object.fromEntries(Object.keys(b.received).map((k) => [k, d(k)]).filter(([, v]) => v !== 0))
  return {
    seconds: Number(b.at - a.at) / 1e9, cpuPct: (100 * (b.cpuSeconds - a.cpuSeconds)) / (Number(b.at - a.at) / 1e9), total, range, txn, put, keepAlive, watch, watchEvents: b.watchSent - a.watchSent,
    other: total - range - txn - put - keepAlive - watch, proposals: b.proposals - a.proposals, byMethod,
  }
}

/** A window's etcd requests beyond the baseline (fio attached at 1 IOPS), scaled to the window's length. */
function excessOf(name, e) {
  const b = etcd[name].baseline
  return e.total - (b.total * e.seconds) / b.seconds
}

function fmtSigned(n) {
  return `${n >= 0 ? '+' : '−'}${Math.abs(n).toFixed(0)}`
}

function etcdVersion() {
  const r = spawnSync('etcd', ['--version'], { encoding: 'utf8' })
  return /etcd Version: (\S+)/.exec(r.stdout ?? '')?.[1] ?? '?'
}

function fio(uri, job, { timeBased }) {
  const fioArgs = [
    `--name=${job.name}`, '--ioengine=nbd', `--uri=${uri}`, `--size=${sizeBytes}`, `--rw=${job.rw}`, `--bs=${job.bs}`, `--iodepth=${job.iodepth}`,
    '--output-format=json', '--randrepeat=0', '--norandommap',
    ...(timeBased ? ['--time_based', `--runtime=${runtime}`, '--ramp_time=1'] : []),
    ...(job.rateIops === undefined ? [] : [`--rate_iops=${job.rateIops}`]),
  ]
  const r = spawnSync('fio', fioArgs, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 })
  if (r.status !== 0) die(`fio ${job.name} on ${uri} failed: ${r.stderr}`)
  const out = JSON.parse(r.stdout.slice(r.stdout.indexOf('{')))
  const j = out.jobs[0]
  if (j.error !== 0) die(`fio ${job.name} reported error ${j.error}`)
  const side = job.rw.includes('read') ? j.read : j.write
  const pct = side.clat_ns.percentile ?? {}
  return { iops: side.iops, ios: side.total_ios, fioCpuPct: j.usr_cpu + j.sys_cpu, mibps: side.bw_bytes / 1024 / 1024, p50us: (pct['50.000000'] ?? 0) / 1000, p99us: (pct['99.000000'] ?? 0) / 1000 }
}

/** Busy time of all the host's CPUs (everything but idle and iowait in /proc/stat), in seconds. */
function hostBusySeconds() {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number)
  return (f.reduce((a, b) => a + b, 0) - f[3] - f[4]) / 100
}

function cpuSeconds(pid) {
  // /proc/PID/stat fields 14 and 15: utime and stime in clock ticks (100 Hz on Linux).
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  return (Number(fields[11]) + Number(fields[12])) / 100
}

function peakRssBytes(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8')
  const m = /VmHWM:\s+(\d+) kB/.exec(status)
  return m ? Number(m[1]) * 1024 : NaN
}

function hostInfo() {
  return { cpus: os.cpus().length, model: os.cpus()[0]?.model, node: process.version, kernel: os.release() }
}

async function stopChild(child, signal) {
  if (child.exitCode !== null || child.signalCode !== null) return
  child.kill(signal)
  await new Promise((resolve) => {
    const t = setTimeout(() => { child.kill('SIGKILL') }, 15000)
    child.on('exit', () => { clearTimeout(t); resolve() })
  })
}

async function freePort() {
  for (;;) {
    const port = 20000 + Math.floor(Math.random() * 12000)
    const ok = await new Promise((resolve) => {
      const s = net.createServer()
      s.once('error', () => resolve(false))
      s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)))
    })
    if (ok) return port
  }
}

async function waitForPort(port) {
  for (let i = 0; i < 300; i++) {
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1')
      s.once('connect', () => { s.destroy(); resolve(true) })
      s.once('error', () => resolve(false))
    })
    if (ok) return
    await new Promise((r) => setTimeout(r, 100))
  }
  die(`nothing listening on 127.0.0.1:${port}`)
}

function parseArgs(argv) {
  const out = {}
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--help' || a === '-h') {
      const lines = fs.readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').slice(1)
      process.stdout.write(lines.slice(0, lines.findIndex((l) => !l.startsWith('//'))).join('\n').replace(/^\/\/ ?/gm, '') + '\n')
      process.exit(0)
    }
    if (!a.startsWith('--')) die(`unexpected argument ${a}`)
    if (a === '--cluster') out.cluster = true
    else out[a.slice(2)] = argv[++i]
  }
  return out
}

function parseSize(s) {
  const m = /^(\d+)(k|m|g)?i?b?$/i.exec(s)
  if (!m) die(`bad size ${s}`)
  return Number(m[1]) * { undefined: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2]?.toLowerCase()]
}
function fmtBytes(n) { return n >= 1024 ** 3 ? `${n / 1024 ** 3} GiB` : `${n / 1024 ** 2} MiB` }
function fmtNum(n) { return n >= 1000 ? `${(n / 1000).toFixed(1)}k` : n.toFixed(0) }
function fmtLat(us) { return us >= 1000 ? `${(us / 1000).toFixed(2)} ms` : `${us.toFixed(0)} µs` }
function log(s) { process.stderr.write(`${s}\n`) }
function die(msg) { process.stderr.write(`bench: ${msg}\n`); process.exit(1) }
