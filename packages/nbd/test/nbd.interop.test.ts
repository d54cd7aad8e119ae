/**
 * Interop with real NBD clients (libnbd's nbdinfo, nbdcopy and nbdsh; qemu-io and qemu-img)
 * against NbdServer on 127.0.0.1:0 serving in-memory devices. Each group is skipped when its
 * binary is missing. nbdsh runs with /usr/bin first on PATH (see ENVIRONMENT.md §3).
 */
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { NbdServer } from '../src/index.js'
import { MemoryDevice } from './helpers/memory-device.js'
import { until } from './helpers/raw-client.js'
import { canRun, hasCommand } from '@torus/testing'

const MiB = 1024 * 1024
const PATH_WITH_SYSTEM_PYTHON = `/usr/bin${delimiter}${process.env.PATH ?? ''}`

/** Skips when a client is missing, unless CI demands every interop test (TORUS_REQUIRE_INTEROP=1). */
function has(binary: string): boolean {
  return canRun(hasCommand(binary, PATH_WITH_SYSTEM_PYTHON), binary)
}

interface Run {
  code: number
  stdout: string
  stderr: string
}

function run(cmd: string, args: string[], timeoutMs = 60_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env: { ...process.env, PATH: PATH_WITH_SYSTEM_PYTHON }, timeout: timeoutMs, maxBuffer: 16 * MiB }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1
      resolve({ code, stdout, stderr })
    })
  })
}

/** Delays requests by offset so that pipelined requests complete out of order. */
class JitterDevice extends MemoryDevice {
  readonly completions: number[] = []
  override async read(offset: number, target: Uint8Array): Promise<void> {
    await new Promise((r) => setTimeout(r, ((offset / 4096) % 4) * 3))
    await super.read(offset, target)
    this.completions.push(offset)
  }
  override async write(offset: number, data: Uint8Array): Promise<void> {
    await new Promise((r) => setTimeout(r, (3 - ((offset / 4096) % 4)) * 3))
    await super.write(offset, data)
    this.completions.push(offset)
  }
}

let server: NbdServer
let base: string
let dir: string
const disk = new MemoryDevice(64 * MiB)
const copyDisk = new MemoryDevice(8 * MiB)
const jitter = new JitterDevice(MiB)
const ro = new MemoryDevice(MiB, { supports: { readOnly: true } })
ro.bytes.fill(0x5a)

beforeAll(async () => {
  const devices: Record<string, MemoryDevice> = { disk, copy: copyDisk, jitter, ro }
  server = new NbdServer({
    resolveExport: (name) => devices[name],
    listExports: () => Object.keys(devices).map((name) => ({ name, description: `test export ${name}` })),
    defaultExport: 'disk',
  })
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 })
  base = `nbd://127.0.0.1:${port}`
  dir = await mkdtemp(join(tmpdir(), 'torus-nbd-interop-'))
})

afterAll(async () => {
  await server?.close()
  if (dir !== undefined) await rm(dir, { recursive: true, force: true })
})

describe.skipIf(!has('nbdinfo'))('nbdinfo', () => {
  it('shows size and capabilities as JSON', async () => {
    const r = await run('nbdinfo', ['--json', `${base}/disk`])
    expect(r.code, r.stderr).toBe(0)
    const info = JSON.parse(r.stdout) as { protocol: string; exports: Array<Record<string, unknown>> }
    expect(info.protocol).toBe('newstyle-fixed')
    expect(info.exports[0]).toMatchObject({
      'export-name': 'disk',
      'export-size': 64 * MiB,
      is_read_only: false,
      can_flush: true,
      can_fua: true,
      can_trim: true,
      can_zero: true,
      can_fast_zero: true,
      can_multi_conn: true,
      block_size_minimum: 1,
      block_size_preferred: 4096,
      block_size_maximum: 32 * MiB,
    })
  })

  it('reports a read-only export', async () => {
    const r = await run('nbdinfo', ['--is', 'read-only', `${base}/ro`])
    expect(r.code).toBe(0)
  })

  it('lists exports with descriptions', async () => {
    const r = await run('nbdinfo', ['--list', '--json', base])
    expect(r.code, r.stderr).toBe(0)
    const info = JSON.parse(r.stdout) as { exports: Array<Record<string, unknown>> }
    expect(info.exports.map((e) => e['export-name']).sort()).toEqual(['copy', 'disk', 'jitter', 'ro'])
    expect(info.exports.find((e) => e['export-name'] === 'ro')).toMatchObject({ description: 'test export ro', is_read_only: true })
  })

  it('fails cleanly for an unknown export', async () => {
    const r = await run('nbdinfo', [`${base}/nope`])
    expect(r.code).not.toBe(0)
    expect(r.stderr).toMatch(/nope|No such file/)
  })
})

describe.skipIf(!has('qemu-io'))('qemu-io', () => {
  it('writes and verifies patterns, zeroes, discards and flushes', async () => {
    const r = await run('qemu-io', [
      '-f', 'raw', `${base}/disk`,
      '-c', 'write -P 0xab 0 1M',
      '-c', 'read -P 0xab 0 1M',
      '-c', 'write -P 0xcd 1M 1M',
      '-c', 'write -z 1M 512k',
      '-c', 'read -P 0 1M 512k',
      '-c', 'read -P 0xcd 1536k 512k',
      '-c', 'write -P 0x11 3M 4k',
      '-c', 'write -P 0x22 3M 4k -f',
      '-c', 'read -P 0x22 3M 4k',
      '-c', 'discard 2M 1M',
      '-c', 'flush',
      '-c', 'read -P 0xab 4095 1',
    ])
    expect(r.code, r.stdout + r.stderr).toBe(0)
    expect(r.stdout).not.toMatch(/verification failed|error/i)
    expect(disk.bytes[0]).toBe(0xab)
    expect(disk.bytes[3 * MiB]).toBe(0x22)
    expect(disk.flushes).toBeGreaterThan(0)
  })

  it('detects a wrong pattern (the client really reads our bytes)', async () => {
    const r = await run('qemu-io', ['-f', 'raw', `${base}/disk`, '-c', 'read -P 0x99 0 4k'])
    expect(r.stdout + r.stderr).toMatch(/Pattern verification failed/)
  })

  it('reads a read-only export and is refused writes', async () => {
    const ok = await run('qemu-io', ['-r', '-f', 'raw', `${base}/ro`, '-c', 'read -P 0x5a 0 64k'])
    expect(ok.code, ok.stdout + ok.stderr).toBe(0)
    const denied = await run('qemu-io', ['-f', 'raw', `${base}/ro`, '-c', 'write -P 1 0 4k'])
    expect(denied.code).not.toBe(0)
  })
})

describe.skipIf(!has('qemu-img'))('qemu-img', () => {
  it('shows the virtual size', async () => {
    const r = await run('qemu-img', ['info', '--output=json', '-f', 'raw', `${base}/disk`])
    expect(r.code, r.stderr).toBe(0)
    expect(JSON.parse(r.stdout)).toMatchObject({ 'virtual-size': 64 * MiB, format: 'raw' })
  })
})

describe.skipIf(!has('nbdcopy'))('nbdcopy', () => {
  it('round-trips a few MiB of random data', async () => {
    const data = randomBytes(8 * MiB)
    const src = join(dir, 'src.bin')
    const dst = join(dir, 'dst.bin')
    await writeFile(src, data)
    const up = await run('nbdcopy', [src, `${base}/copy`])
    expect(up.code, up.stderr).toBe(0)
    expect(Buffer.from(copyDisk.bytes).equals(data)).toBe(true)
    const down = await run('nbdcopy', [`${base}/copy`, dst])
    expect(down.code, down.stderr).toBe(0)
    expect((await readFile(dst)).equals(data)).toBe(true)
  })
})

describe.skipIf(!has('nbdsh'))('nbdsh', () => {
  it('runs pipelined aio writes and reads that complete out of order', async () => {
    const script = `
N = 64
cs = []
for i in range(N):
    cs.append(h.aio_pwrite(nbd.Buffer.from_bytearray(bytearray([i + 1]) * 4096), i * 4096))
while h.aio_in_flight() > 0:
    h.poll(-1)
assert all(h.aio_command_completed(c) for c in cs)
bufs = []
for i in reversed(range(N)):
    b = nbd.Buffer(4096)
    bufs.append((i, b, h.aio_pread(b, i * 4096)))
while h.aio_in_flight() > 0:
    h.poll(-1)
for i, b, c in bufs:
    assert h.aio_command_completed(c)
    assert b.to_bytearray() == bytearray([i + 1]) * 4096, i
h.flush()
print("ok", N)
`
    const r = await run('nbdsh', ['-u', `${base}/jitter`, '-c', script])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout.trim()).toBe('ok 64')
    // The device finished requests in a different order than they were issued.
    const writes = jitter.completions.slice(0, 64)
    expect(writes).not.toEqual([...writes].sort((a, b) => a - b))
  })

  it('fails an unknown export cleanly and the server keeps serving', async () => {
    const bad = await run('nbdsh', ['-u', `${base}/nope`, '-c', 'print(h.get_size())'])
    expect(bad.code).not.toBe(0)
    expect(bad.stderr).toMatch(/no export named 'nope'|No such file/)
    const good = await run('nbdsh', ['-u', `${base}/disk`, '-c', 'print(h.get_size())'])
    expect(good.code, good.stderr).toBe(0)
    expect(good.stdout.trim()).toBe(String(64 * MiB))
    await until(() => server.connections === 0)
  })
})
