/**
 * @packageDocumentation
 * Shared vitest suites for the Torus contracts. Every implementation, layer and composite runs
 * the suite of the contract it implements: `@torus/conformance/blockstore`,
 * `@torus/conformance/block-device`, `@torus/conformance/metadata`, `@torus/conformance/ring`, `@torus/conformance/transport`.
 */
export * from './harness.js'
