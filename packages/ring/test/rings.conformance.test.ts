import { describeRing } from '@torus/conformance/ring'
import { createRing } from '../src/index.js'

for (const type of ['single', 'mod', 'ketama'] as const) {
  describeRing({ name: `${type} via createRing`, type, create: (descriptor) => createRing(descriptor) })
}
