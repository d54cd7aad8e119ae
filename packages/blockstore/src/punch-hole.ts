import { execFile } from 'node:child_process'

/**
 * Deallocates `[offsetBytes, offsetBytes + lengthBytes)` of the file at `path`, keeping its size:
 * the range reads as zeros and no longer takes disk space (fallocate(2) with
 * FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE). Node has no binding for fallocate, so this runs
 * util-linux's fallocate(1), which every Debian system has. One process per call: callers merge
 * adjacent ranges and keep this off the I/O path.
 *
 * Rejects when the tool is missing or the file system cannot punch holes (the message says which).
 */
export function punchHole(path: string, offsetBytes: number, lengthBytes: number): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(
      'fallocate',
      ['--punch-hole', '--offset', String(offsetBytes), '--length', String(lengthBytes), path],
      { timeout: 60_000, maxBuffer: 64 * 1024 },
      (err, _stdout, stderr) => {
        if (err === null) return resolve()
        const why = stderr.trim() || err.message
        reject(new Error(`fallocate --punch-hole ${path}: ${why}`, { cause: err }))
      },
    )
  })
}
