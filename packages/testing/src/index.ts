/**
 * @packageDocumentation
 * Private test helpers: a model block device and seeded simulation runner (oracles for the
 * volume layer), and helpers to run real processes on free loopback ports and clean them up.
 */
export * from './model-block-device.js'
export * from './simulation.js'
export * from './ports.js'
export * from './processes.js'
