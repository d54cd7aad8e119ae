import { torusProject } from '../../vitest.shared.js'

// The tool's own tests start real etcd and torusd processes, one file at a time.
export default torusProject('tools-cluster', { testTimeout: 120_000, hookTimeout: 120_000, fileParallelism: false })
