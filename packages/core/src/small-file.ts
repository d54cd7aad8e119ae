import fs from 'node:fs'

/**
 * Reads a small text file (a secret, a config file) as UTF-8, refusing one longer than
 * `maxBytes` after reading at most `maxBytes + 1` bytes: `/dev/zero`, a log file or a disk image
 * passed by mistake gets a clear error instead of exhausting memory. Errors from the file system
 * keep their `code` (callers test for ENOENT); a file that is too long throws a RangeError.
 */
export function readSmallFileSync(file: string, maxBytes: number): string {
  const fd = fs.openSync(file, 'r')
  try {
    const buf = Buffer.alloc(maxBytes + 1)
    let length = 0
    while (length < buf.length) {
      const n = fs.readSync(fd, buf, length, buf.length - length, null)
      if (n === 0) break
      length += n
    }
    if (length > maxBytes) throw new RangeError(`it is longer than ${maxBytes} bytes; is it the right file?`)
    return buf.toString('utf8', 0, length)
  } finally {
    fs.closeSync(fd)
  }
}
