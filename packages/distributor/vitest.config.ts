import { torusProject } from '../../vitest.shared.js'

export default torusProject('distributor')
