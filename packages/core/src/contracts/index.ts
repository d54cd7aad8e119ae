export type * from './common.js'
export type * from './block-store.js'
export type * from './block-device.js'
export type * from './metadata-store.js'
