// Replaced at build time by tsup (`define`); running from source it reads "dev".
declare const __TORUS_VERSION__: string | undefined

export const VERSION: string = typeof __TORUS_VERSION__ === 'string' ? __TORUS_VERSION__ : 'dev'
