/**
 * Human sizes: `1GiB`, `256MiB`, `512KiB`, `1M`, `5GB`, `4096`. The units, case-insensitive:
 * none or `B` for bytes; `KiB` `MiB` `GiB` `TiB` `PiB` and the single letters `K` `M` `G` `T` `P`
 * for powers of 1024; `KB` `MB` `GB` `TB` `PB` for powers of 1000.
 */
const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  kb: 1000,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1000 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1000 ** 3,
  gib: 1024 ** 3,
  t: 1024 ** 4,
  tb: 1000 ** 4,
  tib: 1024 ** 4,
  p: 1024 ** 5,
  pb: 1000 ** 5,
  pib: 1024 ** 5,
}

/** What {@link parseSize} accepts, as its error message tells users; keep it in step with UNITS. */
const SIZE_UNITS_HELP =
  'units, case-insensitive: B or none; KiB, MiB, GiB, TiB, PiB or K, M, G, T, P (powers of 1024); KB, MB, GB, TB, PB (powers of 1000)'

/** Parses a size; throws RangeError with a readable message on bad input. */
export function parseSize(input: string | number): number {
  if (typeof input === 'number') {
    if (!Number.isSafeInteger(input) || input < 0) throw new RangeError(`invalid size: ${input}`)
    return input
  }
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(input)
  if (m === null) throw new RangeError(`invalid size "${input}" (expected e.g. 1GiB, 256MiB, 512KiB or a number of bytes)`)
  const unit = UNITS[m[2]!.toLowerCase()]
  if (unit === undefined) throw new RangeError(`invalid size unit in "${input}" (${SIZE_UNITS_HELP})`)
  const value = Number(m[1]) * unit
  if (!Number.isSafeInteger(value)) {
    if (Number.isFinite(value) && value < Number.MAX_SAFE_INTEGER) throw new RangeError(`size "${input}" is not a whole number of bytes`)
    throw new RangeError(`size "${input}" is too large`)
  }
  return value
}

/** Formats bytes the way the original torusctl did: `1.0 GiB`, `512.0 MiB`, `0 B`. */
export function formatSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`
  const units = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB']
  let value = bytes / 1024
  let i = 0
  while (value >= 1024 && i < units.length - 1) {
    value /= 1024
    i++
  }
  return `${value.toFixed(1)} ${units[i]}`
}
