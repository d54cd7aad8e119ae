import { defineConfig } from 'tsup'
import { base } from '../../tsup.config.base.js'
import pkg from './package.json' with { type: 'json' }

// Unlike torusd, torusctl does not bundle the workspace packages: etcd3 (inside
// @torus/metadata-etcd) reads its .proto files next to its own sources at run time, so it must
// load from node_modules, and @torus/core must then load from there too, or two copies of
// TorusError would exist and `instanceof` checks would fail. `pnpm build` builds the packages
// before the apps, so `bin/torusctl` still works after one build.
export default defineConfig({
  ...base,
  entry: ['src/main.ts'],
  dts: false,
  banner: { js: '#!/usr/bin/env node' },
  define: { __TORUS_VERSION__: JSON.stringify(pkg.version) },
})
