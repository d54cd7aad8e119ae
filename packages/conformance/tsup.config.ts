import { defineConfig } from 'tsup'
import { base } from '../../tsup.config.base.js'

export default defineConfig({
  ...base,
  entry: {
    index: 'src/index.ts',
    'blockstore/index': 'src/blockstore/index.ts',
    'block-device/index': 'src/block-device/index.ts',
    'metadata/index': 'src/metadata/index.ts',
    'ring/index': 'src/ring/index.ts',
    'transport/index': 'src/transport/index.ts',
  },
  external: ['vitest'],
})
