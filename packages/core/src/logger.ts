/** Structured logger. Libraries take one in their options and never print. */
export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void
  info(message: string, fields?: Record<string, unknown>): void
  warn(message: string, fields?: Record<string, unknown>): void
  error(message: string, fields?: Record<string, unknown>): void
  child(fields: Record<string, unknown>): Logger
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error'

const noop = (): void => {}

export const silentLogger: Logger = {
  debug: noop,
  info: noop,
  warn: noop,
  error: noop,
  child: () => silentLogger,
}

const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 }

export interface JsonLoggerOptions {
  level?: LogLevel
  /** Where lines go; apps pass `(line) => process.stderr.write(line)`. */
  write: (line: string) => void
  fields?: Record<string, unknown>
  now?: () => Date
}

/** A logger that emits one JSON object per line. The app owns the sink. */
export function createJsonLogger(options: JsonLoggerOptions): Logger {
  const min = LEVELS[options.level ?? 'info']
  const base = options.fields ?? {}
  const now = options.now ?? (() => new Date())
  const emit = (level: LogLevel, msg: string, fields?: Record<string, unknown>): void => {
    if (LEVELS[level] < min) return
    const record: Record<string, unknown> = { time: now().toISOString(), level, msg, ...base, ...fields }
    for (const [k, v] of Object.entries(record)) {
      if (v instanceof Error) record[k] = { name: v.name, message: v.message, ...('code' in v ? { code: v.code } : {}) }
    }
    options.write(`${JSON.stringify(record)}\n`)
  }
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (fields) => createJsonLogger({ ...options, fields: { ...base, ...fields } }),
  }
}
