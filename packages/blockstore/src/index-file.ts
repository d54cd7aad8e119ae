import { TorusError } from '@torus/core'

/**
 * The per-volume `index` file of {@link FileBlockStore}: a fixed header, then one byte per block.
 *
 * ```
 * 0          8        10         12           16
 * +----------+--------+----------+------------+-----------------------------------+
 * | magic    | format | reserved | blockSize  | block 0 | block 1 | ... (1 byte)  |
 * | TORUSIDX | u16 BE | u16 = 0  | u32 BE     | 0 = absent, 1 = allocated         |
 * +----------+--------+----------+------------+-----------------------------------+
 * ```
 *
 * The body may be shorter than the volume: blocks past its end are absent.
 */
export const INDEX_HEADER_BYTES = 16
export const INDEX_FORMAT_VERSION = 1
const MAGIC = new TextEncoder().encode('TORUSIDX')

export function encodeIndexHeader(blockSizeBytes: number): Uint8Array {
  const out = new Uint8Array(INDEX_HEADER_BYTES)
  out.set(MAGIC, 0)
  const view = new DataView(out.buffer)
  view.setUint16(8, INDEX_FORMAT_VERSION)
  view.setUint32(12, blockSizeBytes)
  return out
}

/**
 * Checks the header and body of a whole index file and returns its body (a copy, so it can grow
 * independently). Throws TORUS_CORRUPT naming `path` for anything that is not a valid index, and
 * TORUS_INVALID_ARGUMENT when it is valid but was written with another block size.
 */
export function decodeIndexFile(bytes: Uint8Array, path: string, blockSizeBytes: number): Uint8Array {
  const corrupt = (why: string): TorusError =>
    new TorusError('TORUS_CORRUPT', `${path} is not a Torus block index: ${why}`, { details: { path } })
  if (bytes.byteLength < INDEX_HEADER_BYTES) throw corrupt(`only ${bytes.byteLength} bytes`)
  for (let i = 0; i < MAGIC.byteLength; i++) if (bytes[i] !== MAGIC[i]) throw corrupt('bad magic')
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const format = view.getUint16(8)
  if (format !== INDEX_FORMAT_VERSION) throw corrupt(`unknown format version ${format}`)
  const stored = view.getUint32(12)
  if (stored !== blockSizeBytes) {
    throw new TorusError(
      'TORUS_INVALID_ARGUMENT',
      `${path} was written with ${stored}-byte blocks, but the store was opened with ${blockSizeBytes}`,
      { details: { path, storedBlockSizeBytes: stored, blockSizeBytes } },
    )
  }
  const body = bytes.slice(INDEX_HEADER_BYTES)
  for (let i = 0; i < body.byteLength; i++) {
    if (body[i]! > 1) throw corrupt(`entry ${i} is ${body[i]}, expected 0 or 1`)
  }
  return body
}
