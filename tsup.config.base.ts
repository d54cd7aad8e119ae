import type { Options } from 'tsup'

// Shared build options: every package's tsup.config.ts spreads this and adds only subpath entries.
export const base: Options = {
  entry: ['src/index.ts'],
  format: ['esm'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node20',
  splitting: false,
}
