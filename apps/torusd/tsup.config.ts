import { defineConfig } from 'tsup'
import { base } from '../../tsup.config.base.js'

// Apps bundle the workspace packages from source, so `bin/` works after one build and starts fast.
export default defineConfig({
  ...base,
  entry: ['src/main.ts'],
  dts: false,
  noExternal: [/^@torus\//],
  banner: { js: '#!/usr/bin/env node' },
  esbuildOptions(options) {
    options.conditions = ['@torus/source']
  },
})
