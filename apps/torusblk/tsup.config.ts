import { defineConfig } from 'tsup'
import { base } from '../../tsup.config.base.js'
import pkg from './package.json' with { type: 'json' }

// Apps bundle the workspace packages from source, so `bin/` works after one build and starts fast.
export default defineConfig({
  ...base,
  entry: ['src/main.ts'],
  dts: false,
  noExternal: [/^@torus\//],
  // Single-threaded GC, as for torusd: see apps/torusd/bin/torusd.cjs.
  banner: { js: '#!/usr/bin/env -S node --single-threaded-gc' },
  define: { __TORUS_VERSION__: JSON.stringify(pkg.version) },
  esbuildOptions(options) {
    options.conditions = ['@torus/source']
  },
})
