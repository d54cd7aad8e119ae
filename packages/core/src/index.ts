/**
 * @packageDocumentation
 * The vocabulary of Torus: ids, {@link BlockRef}, {@link TorusError} and its codes, the
 * {@link Logger}, {@link Clock} and {@link Random} abstractions, human sizes, and the contracts
 * (`BlockStore`, `BlockDevice`, `MetadataStore`, `Ring`, `Transport`) that every other package implements or uses.
 */
export * from './errors.js'
export * from './logger.js'
export * from './clock.js'
export * from './random.js'
export * from './ids.js'
export * from './block-ref.js'
export * from './sizes.js'
export * from './repeated-option.js'
export * from './validate.js'
export * from './ring-descriptor.js'
export * from './small-file.js'
export type * from './contracts/index.js'
