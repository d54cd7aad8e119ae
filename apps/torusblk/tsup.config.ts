import { defineConfig } from 'tsup'
import { base } from '../../tsup.config.base.js'
import pkg from './package.json' with { type: 'json' }

// Apps bundle the workspace packages from source, so `bin/` works after one build and starts fast.
export default defineConfig({
  ...base,
  entry: ['src/main.ts'],
  dts: false,
  noExternal: [/^@torus\//],
  banner: { js: '#!/usr/bin/env node' },
  define: { __TORUS_VERSION__: JSON.stringify(pkg.version) },
  esbuildOptions(options) {
    options.conditions = ['@torus/source']
  },
})
