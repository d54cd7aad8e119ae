/**
 * @packageDocumentation
 * The Torus block layer: fixed-size blocks addressed by `BlockRef` and updated in place.
 * {@link AbstractBlockStore} validates arguments, lifecycle and signals for every backend;
 * {@link MemoryBlockStore} keeps blocks in memory; {@link FileBlockStore} keeps them in sparse
 * per-volume files with a byte-per-block index. The `BlockStore` contract itself lives in
 * `@torus/core` and is re-exported here so programs import one package.
 */
export { AbstractBlockStore, type AbstractBlockStoreOptions } from './abstract-block-store.js'
export { MemoryBlockStore, type MemoryBlockStoreOptions } from './memory-block-store.js'
export { FileBlockStore, type FileBlockStoreOptions } from './file-block-store.js'
export type { BlockStore, BlockStoreOptions, BlockStoreSupports, BlockStoreUsage } from '@torus/core'
/** Positional file I/O with Torus error codes, shared with other stores that keep files (the distributor's replica checksums). */
export * as fsIo from './fs-io.js'
