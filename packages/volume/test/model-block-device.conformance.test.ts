// Goal: the oracle the simulations trust is itself a correct BlockDevice.
// Method: run describeBlockDevice over ModelBlockDevice, writable and read-only.
import { describeBlockDevice } from '@torus/conformance/block-device'
import { ModelBlockDevice } from '@torus/testing'

describeBlockDevice({
  name: 'model block device',
  create: async () => new ModelBlockDevice({ sizeBytes: 3 * 1024 * 1024 + 512 }),
  destroy: async () => {},
})

describeBlockDevice({
  name: 'model block device, read-only',
  create: async () => new ModelBlockDevice({ sizeBytes: 1024 * 1024, readOnly: true }),
  destroy: async () => {},
})
