import { randomUUID } from 'node:crypto'
import fs from 'node:fs/promises'
import path from 'node:path'
import { peerId, TorusError, type PeerId } from '@torus/core'

/** The peer's UUID lives in the data dir so a restarted daemon is the same peer. */
export async function loadOrCreatePeerId(dataDir: string): Promise<PeerId> {
  const file = path.join(dataDir, 'peer-id')
  try {
    const text = (await fs.readFile(file, 'utf8')).trim()
    try {
      return peerId(text)
    } catch {
      throw new TorusError('TORUS_CORRUPT', `${file} does not hold a peer UUID (found ${JSON.stringify(text.slice(0, 40))}); restore it or remove it to become a new peer`)
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  const id = peerId(randomUUID())
  const tmp = `${file}.tmp`
  await fs.writeFile(tmp, `${id}\n`, { flush: true })
  await fs.rename(tmp, file)
  return id
}

/**
 * One daemon per data dir: a pid file that names a live process refuses the start. A pid file
 * left by a killed daemon (its pid no longer running) is taken over.
 */
export async function lockDataDir(dataDir: string): Promise<() => Promise<void>> {
  const file = path.join(dataDir, 'torusd.pid')
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await fs.writeFile(file, `${process.pid}\n`, { flag: 'wx' })
      return async () => {
        await fs.rm(file, { force: true })
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      const other = Number((await fs.readFile(file, 'utf8').catch(() => '')).trim())
      if (Number.isInteger(other) && other > 0 && other !== process.pid && isAlive(other)) {
        throw new TorusError('TORUS_LOCKED', `data dir ${dataDir} is in use by torusd pid ${other}`)
      }
      await fs.rm(file, { force: true })
    }
  }
  throw new TorusError('TORUS_LOCKED', `could not take ${file}`)
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}
