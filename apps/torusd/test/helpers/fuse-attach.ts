import fs from 'node:fs'
import path from 'node:path'
import { hasCommand, run } from '@torus/testing'

/**
 * Puts an NBD export on a regular file through qemu-storage-daemon's FUSE export, so the
 * kernel's loop driver can mount a filesystem on it (this machine has no kernel nbd module).
 */
export class FuseAttachment {
  readonly image: string
  readonly pidFile: string
  constructor(
    readonly dir: string,
    readonly host: string,
    readonly port: number,
    readonly exportName: string,
  ) {
    this.image = path.join(dir, 'disk.raw')
    this.pidFile = path.join(dir, 'qsd.pid')
    fs.writeFileSync(this.image, '')
  }

  static available(): boolean {
    return process.getuid?.() === 0 && ['qemu-storage-daemon', 'mkfs.ext4', 'e2fsck', 'mount', 'umount'].every((c) => hasCommand(c)) && fs.existsSync('/dev/fuse')
  }

  async attach(): Promise<void> {
    const r = await run('qemu-storage-daemon', [
      '--blockdev', `driver=nbd,node-name=nbd0,server.type=inet,server.host=${this.host},server.port=${this.port},export=${this.exportName}`,
      '--export', `type=fuse,id=exp0,node-name=nbd0,mountpoint=${this.image},writable=on`,
      '--pidfile', this.pidFile,
      '--daemonize',
    ])
    if (r.code !== 0) throw new Error(`qemu-storage-daemon failed (${r.code}): ${r.stderr}`)
  }

  /** Stops qemu-storage-daemon and waits until the FUSE mount is gone. */
  async detach(): Promise<void> {
    if (fs.existsSync(this.pidFile)) {
      const pid = Number(fs.readFileSync(this.pidFile, 'utf8').trim())
      try {
        process.kill(pid, 'SIGTERM')
      } catch {
        // already gone
      }
    }
    for (let i = 0; i < 100; i++) {
      if (!fs.readFileSync('/proc/mounts', 'utf8').includes(` ${this.image} fuse`)) return
      await new Promise((r) => setTimeout(r, 100))
    }
    await run('umount', ['-l', this.image])
  }
}

export async function isMounted(dir: string): Promise<boolean> {
  return fs.readFileSync('/proc/mounts', 'utf8').split('\n').some((l) => l.split(' ')[1] === dir)
}
