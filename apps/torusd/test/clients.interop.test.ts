// Real, unmodified NBD clients against a real torusd on the file block store: nbdinfo,
// qemu-io, nbdcopy + qemu-img compare, fio with crc32c verification. Each check is what a
// user would run; any wrong byte makes the client exit non-zero.
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { hasCommand, run } from '@torus/testing'
import { canRun, Torusd } from './helpers/torusd.js'

const tools = ['nbdinfo', 'qemu-io', 'qemu-img', 'nbdcopy', 'fio']
const missing = tools.filter((t) => !hasCommand(t))

describe.skipIf(!canRun(missing.length === 0, missing.join(', ')))(`real NBD clients (needs ${tools.join(', ')})`, () => {
  let d: Torusd
  let tmp: string

  beforeAll(async () => {
    d = await Torusd.start({ size: '2GiB' })
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'torus-interop-'))
    for (const [name, size] of [['info', '256MiB'], ['qio', '64MiB'], ['copy', '128MiB'], ['fio', '128MiB']]) {
      const r = await d.ctl('volume', 'create-block', name!, size!)
      expect(r.code, r.stderr).toBe(0)
    }
  })
  afterAll(async () => {
    await d?.destroy()
    if (tmp !== undefined) fs.rmSync(tmp, { recursive: true, force: true })
  })

  it('nbdinfo shows the export, its size and flush/trim/zero/fua/multi-conn', async () => {
    const r = await run('nbdinfo', ['--json', d.uri('info')])
    expect(r.code, r.stderr).toBe(0)
    const info = JSON.parse(r.stdout) as { protocol: string; exports: Array<Record<string, unknown>> }
    expect(info.protocol).toBe('newstyle-fixed')
    const exp = info.exports[0]!
    expect(exp['export-name']).toBe('info')
    expect(exp['export-size']).toBe(256 * 1024 * 1024)
    expect(exp).toMatchObject({ is_read_only: false, can_flush: true, can_trim: true, can_zero: true, can_fua: true, can_multi_conn: true })
    expect(exp['block_size_preferred']).toBe(4096)

    for (const cap of ['flush', 'trim', 'zero', 'fua']) {
      expect((await run('nbdinfo', ['--can', cap, d.uri('info')])).code, cap).toBe(0)
    }
    const list = await run('nbdinfo', ['--list', '--json', `nbd://127.0.0.1:${d.ports.nbd}`])
    expect(list.code, list.stderr).toBe(0)
    const names = (JSON.parse(list.stdout) as { exports: Array<{ 'export-name': string }> }).exports.map((e) => e['export-name'])
    expect(names.sort()).toEqual(['copy', 'fio', 'info', 'qio'])
  })

  it('nbdinfo fails cleanly for an unknown export', async () => {
    const r = await run('nbdinfo', ['--size', d.uri('nosuch')])
    expect(r.code).not.toBe(0)
    expect(r.stderr).toMatch(/nosuch|unknown|not found|export/i)
  })

  it('qemu-io writes patterns and reads them back, zeroes and discards', async () => {
    const r = await run('qemu-io', [
      '-f', 'raw', d.uri('qio'),
      '-c', 'write -P 0xab 0 1M',
      '-c', 'write -P 0xcd 1M 4k',
      '-c', 'write -P 0x17 3000 777',
      '-c', 'read -P 0xab 0 3000',
      '-c', 'read -P 0x17 3000 777',
      '-c', 'read -P 0xcd 1M 4k',
      '-c', 'write -z 2M 1M',
      '-c', 'read -P 0 2M 1M',
      '-c', 'read -P 0 40M 1M',
      '-c', 'discard 4M 1M',
      '-c', 'write -P 0x99 -f 63M 1M',
      '-c', 'read -P 0x99 63M 1M',
      '-c', 'flush',
    ])
    expect(r.code, r.stdout + r.stderr).toBe(0)
    expect(r.stdout).not.toMatch(/Pattern verification failed/)
    // A wrong pattern is reported: the check above can fail.
    const wrong = await run('qemu-io', ['-f', 'raw', d.uri('qio'), '-c', 'read -P 0xee 0 4k'])
    expect(wrong.stdout + wrong.stderr).toMatch(/Pattern verification failed/)
  })

  it('nbdcopy of 64 MiB of random data matches (qemu-img compare, rest of the export zero)', async () => {
    const src = path.join(tmp, 'src.bin')
    fs.writeFileSync(src, crypto.randomBytes(64 * 1024 * 1024))
    const copy = await run('nbdcopy', [src, d.uri('copy')])
    expect(copy.code, copy.stderr).toBe(0)
    const cmp = await run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', src, d.uri('copy')])
    expect(cmp.code, cmp.stdout + cmp.stderr).toBe(0)
    expect(cmp.stdout).toMatch(/Images are identical/)
    // And back out, byte for byte.
    const back = path.join(tmp, 'back.bin')
    expect((await run('nbdcopy', [d.uri('copy'), back])).code).toBe(0)
    const a = fs.readFileSync(src)
    const b = fs.readFileSync(back)
    expect(b.length).toBe(128 * 1024 * 1024)
    expect(a.equals(b.subarray(0, a.length))).toBe(true)
    expect(b.subarray(a.length).every((x) => x === 0)).toBe(true)
  })

  it('fio random writes verify with crc32c', async () => {
    const r = await run(
      'fio',
      ['--name=verify', '--ioengine=nbd', `--uri=${d.uri('fio')}`, '--size=64m', '--rw=randwrite', '--bs=4k', '--iodepth=16', '--verify=crc32c', '--do_verify=1', '--verify_state_save=0', '--output-format=json'],
      { timeoutMs: 300_000 },
    )
    expect(r.code, r.stderr).toBe(0)
    const job = (JSON.parse(r.stdout.slice(r.stdout.indexOf('{'))) as { jobs: Array<{ error: number; write: { io_bytes: number }; read: { io_bytes: number } }> }).jobs[0]!
    expect(job.error).toBe(0)
    expect(job.write.io_bytes).toBe(64 * 1024 * 1024)
    expect(job.read.io_bytes).toBe(64 * 1024 * 1024)
  })
})
