import { torusProject } from '../../vitest.shared.js'

// Daemon tests spawn real processes and real NBD clients; they run one file at a time so they
// do not fight over the machine's two cores.
export default torusProject('torusd', { testTimeout: 120_000, hookTimeout: 120_000, fileParallelism: false })
