import fs from 'node:fs'
import { TorusError } from '@torus/core'

// Callback fs on raw fds: the FileHandle promise API allocates more per call, and these sit on
// the NBD hot path. Each helper is one syscall in the common case.

/** Writes all of `bytes` at `position`, looping only on a short write. */
export function pwriteAll(fd: number, bytes: Uint8Array, position: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let done = 0
    const step = (err: NodeJS.ErrnoException | null, written: number): void => {
      if (err !== null) return reject(mapFsError(err))
      done += written
      if (done === bytes.byteLength) return resolve()
      fs.write(fd, bytes, done, bytes.byteLength - done, position + done, step)
    }
    fs.write(fd, bytes, 0, bytes.byteLength, position, step)
  })
}

/** Fills `target` from `position`; bytes past the end of the file read as zeros. */
export function preadFull(fd: number, target: Uint8Array, position: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let done = 0
    const step = (err: NodeJS.ErrnoException | null, read: number): void => {
      if (err !== null) return reject(mapFsError(err))
      done += read
      if (done === target.byteLength) return resolve()
      if (read === 0) {
        target.fill(0, done)
        return resolve()
      }
      fs.read(fd, target, done, target.byteLength - done, position + done, step)
    }
    fs.read(fd, target, 0, target.byteLength, position, step)
  })
}

export { fdatasyncOffPool as fdatasync } from './sync-thread.js'

export function closeFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.close(fd, (err) => (err === null ? resolve() : reject(mapFsError(err)))))
}

export function openFd(path: string, flags: number): Promise<number> {
  return new Promise((resolve, reject) => fs.open(path, flags, 0o644, (err, fd) => (err === null ? resolve(fd) : reject(mapFsError(err)))))
}

/** Makes a directory's entries (creates, renames, removals) durable. */
export async function fsyncDir(path: string): Promise<void> {
  const fd = await openFd(path, fs.constants.O_RDONLY)
  try {
    await new Promise<void>((resolve, reject) => fs.fsync(fd, (err) => (err === null ? resolve() : reject(mapFsError(err)))))
  } finally {
    await closeFd(fd)
  }
}

/**
 * The one place where Node's system errors become Torus codes: a full disk or quota is
 * TORUS_OUT_OF_SPACE, a failing device is TORUS_CORRUPT. Other errors (permissions, too many
 * open files) describe the host, not the data, and pass through unchanged.
 */
export function mapFsError(err: NodeJS.ErrnoException): Error {
  if (err instanceof TorusError) return err
  switch (err.code) {
    case 'ENOSPC':
    case 'EDQUOT':
      return new TorusError('TORUS_OUT_OF_SPACE', `disk full: ${err.message}`, { cause: err })
    case 'EFBIG':
      // The file system's largest file is smaller than the volume (ext4: 16 TiB).
      return new TorusError('TORUS_OUT_OF_SPACE', `file too large for the file system: ${err.message}`, { cause: err })
    case 'EIO':
      return new TorusError('TORUS_CORRUPT', `i/o error: ${err.message}`, { cause: err })
    default:
      return err
  }
}
