#!/usr/bin/env node
// Side-by-side NBD benchmark: fio's nbd engine against torusd (file block store), nbdkit's file
// plugin and qemu-nbd (raw file), each backed by the same kind of file in the same directory, in
// one run. Prints IOPS, MiB/s, p50/p99 completion latency, torusd's peak RSS and the ratios
// torusd/nbdkit and torusd/qemu-nbd per job. Not a test: nothing here asserts a speed.
//
// usage: node tools/bench/bench.mjs [--runtime 10] [--size 1GiB] [--dir /tmp] [--json out.json]
//                                   [--only torusd,nbdkit,qemu-nbd] [--jobs name,...] [--cpu-prof DIR]
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
const args = parseArgs(process.argv.slice(2))
const runtime = Number(args.runtime ?? 10)
const sizeBytes = parseSize(args.size ?? '1GiB')
const baseDir = args.dir ?? os.tmpdir()
const only = (args.only ?? 'torusd,nbdkit,qemu-nbd').split(',')

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
if (only.includes('torusd') && !fs.existsSync(path.join(root, 'apps/torusd/dist/main.js'))) die('torusd is not built: run pnpm build')

const servers = {
  async torusd() {
    const ports = { nbd: await freePort(), http: await freePort(), peer: await freePort() }
    const dataDir = path.join(work, 'torusd')
    const nodeArgs = args['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(args['cpu-prof'])}`] : []
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

const results = {}
const rss = {}
for (const name of only) {
  if (!(name in servers)) die(`unknown server ${name}`)
  log(`== ${name}`)
  const server = await servers[name]()
  log(`   prefill ${fmtBytes(sizeBytes)}`)
  fio(server.uri, { name: 'prefill', rw: 'write', bs: '1m', iodepth: 8 }, { timeBased: false })
  results[name] = {}
  for (const job of JOBS) {
    const cpu0 = cpuSeconds(server.child.pid)
    const t0 = process.hrtime.bigint()
    const r = fio(server.uri, job, { timeBased: true })
    // Server CPU (user+system, all threads) as a share of one core over the whole fio run.
    r.serverCpuPct = (100 * (cpuSeconds(server.child.pid) - cpu0)) / (Number(process.hrtime.bigint() - t0) / 1e9)
    results[name][job.name] = r
    log(`   ${job.name.padEnd(18)} ${fmtNum(r.iops).padStart(8)} IOPS ${r.mibps.toFixed(1).padStart(8)} MiB/s  p50 ${fmtLat(r.p50us)}  p99 ${fmtLat(r.p99us)}  server cpu ${r.serverCpuPct.toFixed(0)}%`)
  }
  if (name === 'torusd') rss.torusd = peakRssBytes(server.child.pid)
  await server.stop()
}

const table = render()
process.stdout.write(table)
if (args.json) fs.writeFileSync(args.json, JSON.stringify({ date: new Date().toISOString(), host: hostInfo(), runtimeSeconds: runtime, sizeBytes, results, rss }, null, 2))

function render() {
  const lines = []
  lines.push(`fio nbd engine, ${runtime}s per job, ${fmtBytes(sizeBytes)} export (prefilled), files in ${baseDir}`)
  lines.push('')
  lines.push('| job | server | IOPS | MiB/s | p50 | p99 | server CPU |')
  lines.push('|---|---|---:|---:|---:|---:|---:|')
  for (const job of JOBS) {
    for (const name of only) {
      const r = results[name][job.name]
      lines.push(`| ${job.name} | ${name} | ${fmtNum(r.iops)} | ${r.mibps.toFixed(1)} | ${fmtLat(r.p50us)} | ${fmtLat(r.p99us)} | ${r.serverCpuPct.toFixed(0)}% |`)
    }
  }
  if (only.includes('torusd') && only.length > 1) {
    lines.push('')
    lines.push(`| job | ${only.filter((n) => n !== 'torusd').map((n) => `torusd/${n}`).join(' | ')} |`)
    lines.push(`|---|${only.filter((n) => n !== 'torusd').map(() => '---:').join('|')}|`)
    for (const job of JOBS) {
      const t = results.torusd[job.name]
      const cells = only.filter((n) => n !== 'torusd').map((n) => (t.iops / results[n][job.name].iops).toFixed(2))
      lines.push(`| ${job.name} | ${cells.join(' | ')} |`)
    }
  }
  if (rss.torusd !== undefined) lines.push('', `torusd peak RSS: ${(rss.torusd / 1024 / 1024).toFixed(0)} MiB`)
  return `${lines.join('\n')}\n`
}

function fio(uri, job, { timeBased }) {
  const fioArgs = [
    `--name=${job.name}`, '--ioengine=nbd', `--uri=${uri}`, `--size=${sizeBytes}`, `--rw=${job.rw}`, `--bs=${job.bs}`, `--iodepth=${job.iodepth}`,
    '--output-format=json', '--randrepeat=0', '--norandommap',
    ...(timeBased ? ['--time_based', `--runtime=${runtime}`, '--ramp_time=1'] : []),
  ]
  const r = spawnSync('fio', fioArgs, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 })
  if (r.status !== 0) die(`fio ${job.name} on ${uri} failed: ${r.stderr}`)
  const out = JSON.parse(r.stdout.slice(r.stdout.indexOf('{')))
  const j = out.jobs[0]
  if (j.error !== 0) die(`fio ${job.name} reported error ${j.error}`)
  const side = job.rw.includes('read') ? j.read : j.write
  const pct = side.clat_ns.percentile ?? {}
  return { iops: side.iops, mibps: side.bw_bytes / 1024 / 1024, p50us: (pct['50.000000'] ?? 0) / 1000, p99us: (pct['99.000000'] ?? 0) / 1000 }
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
      process.stdout.write(fs.readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').slice(1, 9).join('\n').replace(/^\/\/ ?/gm, '') + '\n')
      process.exit(0)
    }
    if (!a.startsWith('--')) die(`unexpected argument ${a}`)
    out[a.slice(2)] = argv[++i]
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
