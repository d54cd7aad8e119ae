// torusctl against a real torusd process: volume life cycle, output formats, and every kind of
// bad input giving a one-line error and the documented exit code (0 ok, 1 failed, 2 usage).
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { freePort, hasCommand, run, Service } from '@torus/testing'
import { canRun, HAVE_PYTHON_LIBNBD, TORUSCTL_MAIN, TORUSD_LAUNCHER, TORUSD_MAIN, Torusd } from './helpers/torusd.js'

let d: Torusd

beforeAll(async () => {
  d = await Torusd.start({ size: '1GiB' })
})
afterAll(async () => {
  await d?.destroy()
})

describe('torusctl volume', () => {
  it('creates, lists (table and json) and deletes a block volume', async () => {
    const created = await d.ctl('volume', 'create-block', 'pad', '1GiB')
    expect(created.code, created.stderr).toBe(0)
    expect(created.stdout).toContain('created block volume pad (1.0 GiB)')

    const list = await d.ctl('volume', 'list')
    expect(list.code).toBe(0)
    const lines = list.stdout.trimEnd().split('\n')
    expect(lines[0]).toMatch(/^VOLUME NAME\s+SIZE\s+TYPE$/)
    expect(lines).toContainEqual(expect.stringMatching(/^pad\s+1\.0 GiB\s+block$/))

    const json = await d.ctlJson<Array<{ name: string; sizeBytes: number; type: string; id: number }>>('volume', 'list')
    expect(json).toEqual([expect.objectContaining({ name: 'pad', sizeBytes: 1024 ** 3, type: 'block' })])

    const del = await d.ctl('volume', 'delete', 'pad')
    expect(del.code, del.stderr).toBe(0)
    expect(await d.ctlJson('volume', 'list')).toEqual([])
  })

  it('refuses a duplicate name with exit 1 and a one-line message', async () => {
    expect((await d.ctl('volume', 'create-block', 'dup', '16MiB')).code).toBe(0)
    const again = await d.ctl('volume', 'create-block', 'dup', '16MiB')
    expect(again.code).toBe(1)
    expect(again.stderr.trim().split('\n')).toHaveLength(1)
    expect(again.stderr).toMatch(/^torusctl: .*dup.*exists/)
    expect((await d.ctl('volume', 'delete', 'dup')).code).toBe(0)
  })

  it('rejects bad sizes and names as usage errors (exit 2) without calling the daemon', async () => {
    for (const [name, size] of [
      ['v1', 'lots'],
      ['v1', '-5GiB'],
      ['v1', '1XB'],
      ['bad/name', '1GiB'],
      ['a@b', '1GiB'],
    ] as const) {
      const r = await d.ctl('volume', 'create-block', name, size)
      expect(r.code, `${name} ${size}: ${r.stderr}`).toBe(2)
      expect(r.stderr).toMatch(/^torusctl: /)
    }
    expect(await d.ctlJson('volume', 'list')).toEqual([])
  })

  it('rejects volume sizes below 1 MiB or not in 512-byte sectors as usage errors (exit 2)', async () => {
    for (const size of ['1000', '1KiB', '1048577']) {
      const r = await d.ctl('volume', 'create-block', 'tiny', size)
      expect(r.code, size).toBe(2)
      expect(r.stderr).toMatch(/invalid volume size/)
    }
  })

  it('fails to delete a missing volume with exit 1', async () => {
    const r = await d.ctl('volume', 'delete', 'nope')
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/nope/)
  })

  it('says the single node is already initialised and changes nothing', async () => {
    const r = await d.ctl('init', '--replication', '3')
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/already initialised.*replication 1/)
  })

  it('refuses a placement change while volumes exist, through torusctl and through the control API, unless forced', async () => {
    expect((await d.ctl('volume', 'create-block', 'placed', '16MiB')).code).toBe(0)
    try {
      const refused = await d.ctl('ring', 'set-replication', '2')
      expect(refused.code, refused.stderr).toBe(1)
      expect(refused.stderr).toMatch(/rebalance\) is not built yet.*pass --force/)
      const ringUrl = `http://127.0.0.1:${d.ports.peer}/v1/ring`
      const ring = (await (await fetch(ringUrl)).json()) as { version: number; replication: number }
      const put = (query: string, body: object): Promise<Response> => fetch(`${ringUrl}${query}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
      const direct = await put('', { ...ring, version: ring.version + 1, replication: 2 })
      expect(direct.status).toBe(501)
      expect(((await direct.json()) as { error: { code: string; message: string } }).error).toMatchObject({ code: 'TORUS_NOT_SUPPORTED', message: expect.stringContaining('?force=true') })
      expect(((await (await fetch(ringUrl)).json()) as { version: number }).version).toBe(ring.version)
      // Forced, both ways; then back to one copy.
      const forced = await d.ctl('ring', 'set-replication', '2', '--force')
      expect(forced.code, forced.stderr).toBe(0)
      const back = await put('?force=true', { ...ring, version: ring.version + 2 })
      expect(back.status, await back.clone().text()).toBe(200)
      expect(await back.json()).toMatchObject({ version: ring.version + 2, replication: ring.replication })
    } finally {
      await d.ctl('volume', 'delete', 'placed')
    }
  })

  it('prints usage errors for unknown commands and missing arguments (exit 2)', async () => {
    for (const args of [['frobnicate'], ['volume'], ['volume', 'create-block', 'x'], ['--output', 'yaml', 'volume', 'list']]) {
      const r = await d.ctl(...args)
      expect(r.code, args.join(' ')).toBe(2)
    }
  })
})

describe('torusctl endpoints', () => {
  it('explains an unreachable daemon (exit 1)', async () => {
    const r = await run(process.execPath, [TORUSCTL_MAIN, '-C', 'torus://127.0.0.1:1', 'volume', 'list'])
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/cannot reach torusd at torus:\/\/127\.0\.0\.1:1 \(connection refused\)/)
  })

  it('explains an unreachable etcd endpoint (exit 1)', async () => {
    const port = await freePort()
    const r = await run(process.execPath, [TORUSCTL_MAIN, '-C', `127.0.0.1:${port}`, 'volume', 'list'], { timeoutMs: 30_000 })
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(new RegExp(`cannot reach etcd at 127\\.0\\.0\\.1:${port}`))
  })

  it('uses $TORUS_ENDPOINT when -C is absent', async () => {
    const r = await run(process.execPath, [TORUSCTL_MAIN, 'volume', 'list', '-o', 'json'], { env: { ...process.env, TORUS_ENDPOINT: d.endpoint } })
    expect(r.code, r.stderr).toBe(0)
    expect(JSON.parse(r.stdout)).toBeInstanceOf(Array)
  })
})

describe('torusd', () => {
  it('serves /healthz and Prometheus /metrics', async () => {
    const health = await d.http('/healthz')
    expect(health.status).toBe(200)
    expect(await health.json()).toEqual({ status: 'ok' })
    const metrics = await (await d.http('/metrics')).text()
    expect(metrics).toMatch(/^torus_storage_capacity_bytes 1073741824$/m)
    expect(metrics).toMatch(/^torus_nbd_connections 0$/m)
    expect(metrics).toMatch(/process_resident_memory_bytes/)
    expect(metrics).toMatch(/^# TYPE torus_nbd_written_bytes_total counter$/m)
  })

  it.skipIf(!canRun(hasCommand('qemu-io'), 'qemu-io'))('frees the space of a deleted volume', async () => {
    expect((await d.ctl('volume', 'create-block', 'space', '64MiB')).code).toBe(0)
    const w = await run('qemu-io', ['-f', 'raw', d.uri('space'), '-c', 'write -P 0x5a 0 8M', '-c', 'flush'])
    expect(w.code, w.stderr + w.stdout).toBe(0)
    const used = async (): Promise<number> => ((await (await d.http('/api/v1/status')).json()) as { usedBytes: number }).usedBytes
    expect(await used()).toBe(8 * 1024 * 1024)
    expect((await d.ctl('volume', 'delete', 'space')).code).toBe(0)
    expect(await used()).toBe(0)
  })

  it('answers malformed HTTP requests with 400 and keeps running', async () => {
    const bad = await fetch(`http://127.0.0.1:${d.ports.peer}/v1/volumes/%E0%A4%A`)
    expect(bad.status).toBe(400)
    expect(await bad.json()).toMatchObject({ error: { code: 'TORUS_INVALID_ARGUMENT' } })
    const raw = await new Promise<string>((resolve, reject) => {
      const s = net.connect(d.ports.peer, '127.0.0.1', () => s.end('GET http://[ HTTP/1.1\r\nHost: x\r\n\r\n'))
      let out = ''
      s.on('data', (c: Buffer) => (out += c.toString()))
      s.on('end', () => resolve(out))
      s.on('error', reject)
    })
    expect(raw).toMatch(/^HTTP\/1\.1 400/)
    for (const body of ['{', '[]', '{"name": 5, "sizeBytes": "1GiB"}', '{"name": "x", "sizeBytes": -1}', '{"name": "../x", "sizeBytes": 1048576}', `{"name": "big", "sizeBytes": ${2 ** 60}}`]) {
      const r = await fetch(`http://127.0.0.1:${d.ports.peer}/v1/volumes`, { method: 'POST', body, headers: { 'content-type': 'application/json' } })
      expect(r.status, body).toBe(400)
      expect(await r.json()).toMatchObject({ error: { code: 'TORUS_INVALID_ARGUMENT' } })
    }
    const big = await fetch(`http://127.0.0.1:${d.ports.peer}/v1/volumes`, { method: 'POST', body: `{"name": "${'x'.repeat(70_000)}"}`, headers: { 'content-type': 'application/json' } })
    expect(big.status).toBe(413)
    expect(await big.json()).toMatchObject({ error: { code: 'TORUS_INVALID_ARGUMENT', message: 'request body larger than 65536 bytes' } })
    expect((await d.http('/healthz')).status).toBe(200)
    expect(d.service!.running).toBe(true)
  })

  it.skipIf(!canRun(HAVE_PYTHON_LIBNBD, 'python3-libnbd'))('refuses to delete a volume while an NBD client uses it', async () => {
    expect((await d.ctl('volume', 'create-block', 'busy', '16MiB')).code).toBe(0)
    const client = new Service('/usr/bin/python3', ['-c', `import nbd, sys, time\nh = nbd.NBD()\nh.connect_uri("${d.uri('busy')}")\nprint("CONNECTED", flush=True)\ntime.sleep(60)`])
    try {
      await client.waitFor(/^CONNECTED$/)
      const r = await d.ctl('volume', 'delete', 'busy')
      expect(r.code).toBe(1)
      expect(r.stderr).toMatch(/volume busy is in use by 1 NBD connection/)
    } finally {
      await client.stop('SIGKILL')
    }
    // Once the client is gone the delete goes through.
    for (let i = 0; i < 50 && (await d.ctl('volume', 'delete', 'busy')).code !== 0; i++) await new Promise((r) => setTimeout(r, 100))
    expect(await d.ctlJson<Array<{ name: string }>>('volume', 'list')).not.toContainEqual(expect.objectContaining({ name: 'busy' }))
  })

  it.skipIf(!canRun(hasCommand('qemu-io'), 'qemu-io'))('finishes a delete interrupted between metadata and blocks at the next start', async () => {
    expect((await d.ctl('volume', 'create-block', 'orphan', '16MiB')).code).toBe(0)
    const id = (await d.ctlJson<Array<{ name: string; id: number }>>('volume', 'list')).find((v) => v.name === 'orphan')!.id
    const w = await run('qemu-io', ['-f', 'raw', d.uri('orphan'), '-c', 'write -P 0x11 0 4M', '-c', 'flush'])
    expect(w.code, w.stderr).toBe(0)
    // The state a crash leaves after the journal entry and the metadata delete, before the blocks go.
    expect((await d.kill('SIGTERM')).code).toBe(0)
    const file = path.join(d.dataDir, 'metadata', 'metadata.json')
    const meta = JSON.parse(fs.readFileSync(file, 'utf8')) as { volumes: Array<{ name: string }> }
    meta.volumes = meta.volumes.filter((v) => v.name !== 'orphan')
    fs.writeFileSync(file, JSON.stringify(meta))
    fs.writeFileSync(path.join(d.dataDir, 'pending-deletes.json'), JSON.stringify([id]))
    await d.restart()
    expect(d.service!.lines.some((l) => l.includes('finished an interrupted volume delete'))).toBe(true)
    const status = (await (await d.http('/api/v1/status')).json()) as { usedBytes: number }
    expect(status.usedBytes).toBe(0)
    expect(fs.existsSync(path.join(d.dataDir, 'pending-deletes.json'))).toBe(false)
  })

  it.skipIf(!canRun(hasCommand('qemu-io'), 'qemu-io'))('refuses to start when the metadata file is lost but blocks remain', async () => {
    expect((await d.ctl('volume', 'create-block', 'keep', '16MiB')).code).toBe(0)
    const w = await run('qemu-io', ['-f', 'raw', d.uri('keep'), '-c', 'write -P 0x22 0 1M', '-c', 'flush'])
    expect(w.code, w.stderr).toBe(0)
    expect((await d.kill('SIGTERM')).code).toBe(0)
    const file = path.join(d.dataDir, 'metadata', 'metadata.json')
    const saved = fs.readFileSync(file)
    fs.rmSync(file)
    const r = await run(process.execPath, [TORUSD_MAIN, ...d.args()], { timeoutMs: 30_000 })
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/holds blocks of volume id\(s\) \d+ but metadata\/metadata\.json is missing/)
    // Still the same diagnosis on the next try: the failed start kept no freshly formatted metadata.
    const again = await run(process.execPath, [TORUSD_MAIN, ...d.args()], { timeoutMs: 30_000 })
    expect(again.code).toBe(1)
    expect(again.stderr).toMatch(/but metadata\/metadata\.json is missing/)
    expect(fs.existsSync(file)).toBe(false)
    // Blocks untouched: restoring the metadata brings the volume back with its data.
    fs.writeFileSync(file, saved)
    await d.restart()
    const back = await run('qemu-io', ['-f', 'raw', '-r', d.uri('keep'), '-c', 'read -P 0x22 0 1M'])
    expect(back.code, back.stdout + back.stderr).toBe(0)
    expect(back.stdout).not.toMatch(/Pattern verification failed/)
    expect((await d.ctl('volume', 'delete', 'keep')).code).toBe(0)
  })

  it('refuses a second daemon on the same data dir', async () => {
    const r = await run(process.execPath, [TORUSD_MAIN, '--data-dir', d.dataDir, '--nbd-address', '127.0.0.1:0', '--port', '0', '--peer-address', 'ws://127.0.0.1:0'], { timeoutMs: 20_000 })
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(new RegExp(`in use by another torusd \\(pid ${d.service!.pid}\\)`))
  })

  it('runs with single-threaded GC from bin/torusd and from torusd.cjs itself, and with V8\'s default when TORUS_NODE_FLAGS is empty', async () => {
    // Each start is refused (the data dir is in use) right after its "torusd starting" line.
    const args = ['--data-dir', d.dataDir, '--nbd-address', '127.0.0.1:0', '--port', '0', '--peer-address', 'ws://127.0.0.1:0']
    const gcOf = async (cmd: string, env: NodeJS.ProcessEnv): Promise<unknown> => {
      const r = await run(cmd, args, { timeoutMs: 20_000, env })
      expect(r.code, r.stderr).toBe(1)
      const line = r.stderr.split('\n').find((l) => l.includes('"msg":"torusd starting"'))
      expect(line, r.stderr).toBeDefined()
      return (JSON.parse(line!) as { gc?: unknown }).gc
    }
    const { TORUS_NODE_FLAGS: _, ...env } = process.env
    expect(await gcOf(TORUSD_LAUNCHER, env)).toBe('single-threaded')
    expect(await gcOf(TORUSD_MAIN, env)).toBe('single-threaded') // the shebang
    expect(await gcOf(TORUSD_LAUNCHER, { ...env, TORUS_NODE_FLAGS: '' })).toBe('parallel')
  })

  it('names the setting and the address when it cannot listen, and refuses an unreadable UV_THREADPOOL_SIZE', async () => {
    const dataDir = `${d.dataDir}-listen`
    try {
      // The running daemon holds its NBD port: a port in use is a failure to run (exit 1).
      const inUse = await run(process.execPath, [TORUSD_MAIN, '--data-dir', dataDir, '--nbd-address', `127.0.0.1:${d.ports.nbd}`, '--port', '0', '--peer-address', 'ws://127.0.0.1:0'], { timeoutMs: 20_000 })
      expect(inUse.code, inUse.stderr).toBe(1)
      expect(inUse.stderr).toContain(`torusd: --nbd-address/TORUS_NBD_ADDRESS: cannot listen on 127.0.0.1:${d.ports.nbd}: the port is in use`)
      // An address that is not this machine's is a configuration mistake (exit 2).
      const notMine = await run(process.execPath, [TORUSD_MAIN, '--data-dir', dataDir, '--nbd-address', '127.0.0.1:0', '--port', '0', '--peer-address', 'ws://192.0.2.1:0'], { timeoutMs: 20_000 })
      expect(notMine.code, notMine.stderr).toBe(2)
      expect(notMine.stderr).toContain('torusd: --peer-address/PEER_ADDRESS: cannot listen on 192.0.2.1:0: 192.0.2.1 is not an address of this machine')
      const pool = await run(TORUSD_MAIN, ['--data-dir', dataDir], { timeoutMs: 20_000, env: { ...process.env, UV_THREADPOOL_SIZE: 'lots' } })
      expect(pool.code, pool.stderr).toBe(2)
      expect(pool.stderr).toBe('torusd: UV_THREADPOOL_SIZE must be an integer from 1 to 1024, got "lots"\n')
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true })
    }
  })

  it('exits 2 with a clear message on bad flags', async () => {
    for (const args of [['--size', 'huge'], ['--nbd-address', 'nowhere'], ['--peer-address', 'http://x'], ['--block-size', '3KiB'], ['--bogus']]) {
      const r = await run(process.execPath, [TORUSD_MAIN, '--data-dir', `${d.dataDir}-never`, ...args], { timeoutMs: 20_000 })
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2)
      expect(r.stderr).toMatch(/^torusd: /)
    }
    const twice = await run(process.execPath, [TORUSD_MAIN, '--data-dir', `${d.dataDir}-never`, '--nbd-address', '127.0.0.1:18811', '--nbd-address', 'nope'], { timeoutMs: 20_000 })
    expect(twice.code, twice.stderr).toBe(2)
    expect(twice.stderr).toMatch(/^torusd: --nbd-address given more than once\n/)
  })
})
