// A real ext4 filesystem on a torusd volume: made and written through qemu-storage-daemon's
// FUSE export and a loop mount, synced, torusd killed with SIGKILL and restarted, then
// e2fsck must be clean and every file's checksum intact.
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { run } from '@torus/testing'
import { FuseAttachment, isMounted } from './helpers/fuse-attach.js'
import { canRun, Torusd } from './helpers/torusd.js'

describe.skipIf(!canRun(FuseAttachment.available(), 'root, qemu-storage-daemon, /dev/fuse and e2fsprogs'))('ext4 on a torusd volume (needs root, qemu-storage-daemon, /dev/fuse, e2fsprogs)', () => {
  let d: Torusd
  let tmp: string
  let fuse: FuseAttachment
  let mnt: string

  beforeAll(async () => {
    d = await Torusd.start({ size: '2GiB' })
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'torus-ext4-'))
    mnt = path.join(tmp, 'mnt')
    fs.mkdirSync(mnt)
    fuse = new FuseAttachment(tmp, '127.0.0.1', d.ports.nbd, 'fs')
    expect((await d.ctl('volume', 'create-block', 'fs', '512MiB')).code).toBe(0)
  })
  afterAll(async () => {
    if (mnt !== undefined && (await isMounted(mnt))) await run('umount', [mnt])
    await fuse?.detach()
    await d?.destroy()
    if (tmp !== undefined) fs.rmSync(tmp, { recursive: true, force: true })
  })

  it('survives SIGKILL of torusd after sync: e2fsck clean, checksums intact', async () => {
    await fuse.attach()
    const mkfs = await run('mkfs.ext4', ['-F', '-q', '-E', 'nodiscard', fuse.image])
    expect(mkfs.code, mkfs.stderr).toBe(0)
    const mount = await run('mount', ['-o', 'loop', fuse.image, mnt])
    expect(mount.code, mount.stderr).toBe(0)

    const sums = new Map<string, string>()
    const write = (rel: string, data: Buffer): void => {
      fs.mkdirSync(path.dirname(path.join(mnt, rel)), { recursive: true })
      fs.writeFileSync(path.join(mnt, rel), data)
      sums.set(rel, crypto.createHash('sha256').update(data).digest('hex'))
    }
    write('blob.bin', crypto.randomBytes(48 * 1024 * 1024))
    for (let i = 0; i < 300; i++) write(`dir${i % 7}/f${i}.txt`, Buffer.from(`file ${i}\n`.repeat(1 + (i % 50))))
    write('sparse-ish.bin', Buffer.concat([Buffer.alloc(1024 * 1024), crypto.randomBytes(4096)]))
    expect((await run('sync', [])).code).toBe(0)
    expect((await run('umount', [mnt])).code).toBe(0)

    // The filesystem is synced and unmounted; now the daemon dies without any clean shutdown.
    const killed = await d.kill('SIGKILL')
    expect(killed.signal).toBe('SIGKILL')
    await fuse.detach()
    await d.restart()

    await fuse.attach()
    const fsck = await run('e2fsck', ['-fn', fuse.image])
    expect(fsck.code, fsck.stdout + fsck.stderr).toBe(0)
    expect((await run('mount', ['-o', 'loop,ro', fuse.image, mnt])).code).toBe(0)
    try {
      for (const [rel, sum] of sums) {
        const got = crypto.createHash('sha256').update(fs.readFileSync(path.join(mnt, rel))).digest('hex')
        expect(got, rel).toBe(sum)
      }
      expect(fs.readdirSync(mnt).sort()).toEqual(['blob.bin', ...Array.from({ length: 7 }, (_, i) => `dir${i}`), 'lost+found', 'sparse-ish.bin'].sort())
    } finally {
      await run('umount', [mnt])
      await fuse.detach()
    }
  })
})
