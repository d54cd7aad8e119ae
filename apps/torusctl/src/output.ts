/** Result output: aligned columns like the original torusctl, or JSON with --output json. */
export type OutputFormat = 'table' | 'json'

export function renderTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd()
  return [line(header), ...rows.map(line)].join('\n') + '\n'
}

export function renderJson(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`
}

/** What every command gets besides its backend and arguments. */
export interface CommandContext {
  output: OutputFormat
  /** Current time in ms, for relative ages ("2 seconds ago"). */
  now: () => number
}
