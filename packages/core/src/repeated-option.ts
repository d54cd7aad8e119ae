/** The part of yargs' declared options (`getOptions()`, which yargs passes to a `.check()`) that {@link repeatedOption} reads. */
export interface DeclaredOptions {
  /** Every declared option and positional, by name (aliases too). */
  key: Record<string, unknown>
  /** Names declared `array: true` (or variadic positionals): these may repeat. */
  array: string[]
  alias: Record<string, string[]>
}

/**
 * yargs collects a flag given twice into an array, and `String()` of that joins the values
 * (`--nbd-address 127.0.0.1:1 --nbd-address x` became `"127.0.0.1:1,x"`). For an option not
 * declared `array` that is a usage mistake: returns `--NAME given more than once` for the first
 * such option, or undefined.
 */
export function repeatedOption(argv: Record<string, unknown>, declared: DeclaredOptions): string | undefined {
  const aliases = new Set(Object.values(declared.alias).flat())
  for (const name of Object.keys(declared.key)) {
    if (aliases.has(name) || declared.array.includes(name) || !Array.isArray(argv[name])) continue
    const short = (declared.alias[name] ?? []).filter((a) => a.length === 1).map((a) => `-${a}/`)
    return `${short.join('')}--${name} given more than once`
  }
  return undefined
}
