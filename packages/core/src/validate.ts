import { TorusError } from './errors.js'

/**
 * Volume names double as NBD export names and (later) snapshot exports `VOLUME@SNAPSHOT`,
 * so `@`, `/` and whitespace are not allowed.
 */
export const VOLUME_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/

export function validateVolumeName(name: unknown): string {
  if (typeof name !== 'string' || !VOLUME_NAME_RE.test(name)) {
    throw new TorusError(
      'TORUS_INVALID_ARGUMENT',
      `invalid volume name ${JSON.stringify(name)}: use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit`,
    )
  }
  return name
}

/** Block sizes are powers of two between 4 KiB and 32 MiB (a multiple of the 4 KiB sector). */
export function validateBlockSize(bytes: unknown): number {
  if (typeof bytes !== 'number' || !Number.isSafeInteger(bytes) || bytes < 4096 || bytes > 32 * 1024 * 1024 || (bytes & (bytes - 1)) !== 0) {
    throw new TorusError('TORUS_INVALID_ARGUMENT', `invalid block size ${String(bytes)}: use a power of two from 4KiB to 32MiB`)
  }
  return bytes
}

/**
 * Largest volume: 8 TiB. The file block store keeps a volume in one file (ext4 caps files at
 * 16 TiB) with a one-byte-per-block index in memory; larger volumes wait for a store that
 * shards them.
 */
export const MAX_VOLUME_SIZE_BYTES = 8 * 1024 ** 4

/** Volume sizes are whole multiples of 512 bytes (what NBD clients and the kernel expect), 1 MiB to 8 TiB. */
export function validateVolumeSize(bytes: unknown): number {
  if (typeof bytes !== 'number' || !Number.isSafeInteger(bytes) || bytes < 1024 * 1024 || bytes > MAX_VOLUME_SIZE_BYTES || bytes % 512 !== 0) {
    const what = typeof bytes === 'number' ? `${bytes} bytes` : `${JSON.stringify(bytes)} (a ${typeof bytes}, not a number)`
    throw new TorusError('TORUS_INVALID_ARGUMENT', `invalid volume size ${what}: use 1MiB to 8TiB, in whole 512-byte sectors`)
  }
  return bytes
}

export function validateReplication(n: unknown): number {
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 1 || n > 16) {
    throw new TorusError('TORUS_INVALID_ARGUMENT', `invalid replication ${String(n)}: use 1 to 16`)
  }
  return n
}

/**
 * An etcd key prefix for one cluster: 1-128 of `A-Z a-z 0-9 . _ - /`, not starting with `/`,
 * always ending in `/` (added when missing, so `prod` and `prod/` name the same cluster and
 * `prod` cannot also match `production/`). Throws TORUS_INVALID_ARGUMENT.
 */
export function normalizeEtcdPrefix(raw: unknown): string {
  if (typeof raw !== 'string' || !/^[A-Za-z0-9._-][A-Za-z0-9._/-]{0,127}$/.test(raw) || raw.includes('//')) {
    throw new TorusError(
      'TORUS_INVALID_ARGUMENT',
      `invalid etcd prefix ${JSON.stringify(raw)}: use 1-128 letters, digits, '.', '_', '-' or '/', not starting with '/' and without '//'`,
    )
  }
  return raw.endsWith('/') ? raw : `${raw}/`
}
