// Goal: TRIM gives disk space back, so a client on an over-committed node cannot fill the host
// disk past --size by writing, trimming and moving on (thin provisioning that stays thin).
// Method: a real torusd with --size 64MiB and a 1 TiB volume; qemu-io writes 48 MiB, flushes,
// discards it (NBD TRIM) and flushes, each round at a new offset; the volume's data file is then
// measured with stat(2) and the last round's bytes read back.
import fs from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { hasCommand, run } from '@torus/testing'
import { canRun, Torusd } from './helpers/torusd.js'

const MiB = 1024 * 1024
let d: Torusd

describe.skipIf(!canRun(hasCommand('qemu-io'), 'qemu-io'))('TRIM on a thin volume', () => {
  beforeAll(async () => {
    d = await Torusd.start({ size: '64MiB' })
    const created = await d.ctl('volume', 'create-block', 'big', '1TiB')
    expect(created.code, created.stderr).toBe(0)
  })
  afterAll(async () => {
    await d?.destroy()
  })

  it('keeps the data file near --size across write / flush / trim / flush rounds at new offsets', async () => {
    const rounds = 8
    for (let r = 0; r < rounds; r++) {
      const base = r * 256 * MiB
      const args = ['-f', 'raw', d.uri('big'), '-c', `write -P ${r + 1} ${base} 48M`, '-c', 'flush', '-c', `discard ${base} 48M`, '-c', 'flush']
      const q = await run('qemu-io', args, { timeoutMs: 60_000 })
      expect(q.code, q.stdout + q.stderr).toBe(0)
    }
    const last = (rounds - 1) * 256 * MiB
    const kept = await run('qemu-io', ['-f', 'raw', d.uri('big'), '-c', `write -P 0x5a ${last} 1M`, '-c', 'flush', '-c', `read -P 0x5a ${last} 1M`, '-c', `read -P 0 ${last + MiB} 47M`], { timeoutMs: 60_000 })
    expect(kept.code, kept.stdout + kept.stderr).toBe(0)
    const id = ((await d.ctlJson<Array<{ name: string; id: number }>>('volume', 'list')).find((v) => v.name === 'big'))!.id
    const data = path.join(d.dataDir, 'blocks', String(id), 'data')
    // Holes are punched in the background after each flush: wait for the last ones.
    const deadline = Date.now() + 15_000
    let onDisk = fs.statSync(data).blocks * 512
    while (onDisk > 64 * MiB && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100))
      onDisk = fs.statSync(data).blocks * 512
    }
    // 8 rounds of 48 MiB were written (384 MiB); without holes the file would hold all of it.
    expect(onDisk).toBeLessThanOrEqual(64 * MiB)
    expect(fs.statSync(data).size).toBeGreaterThan(last)
  })
})
