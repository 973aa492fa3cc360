// Logger: the structured-logging interface weave-ts writes to; pino loggers fit it as they are.

/** One log method: a structured object first, then a message (pino's calling convention). */
export type LogMethod = (fields: object, message?: string) => void;

/** A pino-compatible logger (`pino()` and its children satisfy it). */
export interface Logger {
  /** Detail for troubleshooting, such as each failed connection attempt. */
  debug: LogMethod;
  /** Lifecycle events: started, endpoint attached, bridge ready. */
  info: LogMethod;
  /** Something an operator should look at; the overlay keeps running. */
  warn: LogMethod;
  /** A failure the overlay could not handle by itself. */
  error: LogMethod;
}

const ignore: LogMethod = () => undefined;

/** The default: logs nothing. */
export const silentLogger: Logger = { debug: ignore, info: ignore, warn: ignore, error: ignore };

/**
 * A logger that writes one JSON line per entry (pino's shape: level, time, msg, fields) to a stream,
 * for the CLI agent and examples. Entries below `level` are skipped.
 */
export function jsonLineLogger(stream: { write(line: string): unknown }, level: 'debug' | 'info' | 'warn' | 'error' = 'info'): Logger {
  const levels = { debug: 20, info: 30, warn: 40, error: 50 } as const;
  const min = levels[level];
  const method =
    (name: keyof typeof levels): LogMethod =>
    (fields, message) => {
      if (levels[name] < min) return;
      const entry = { level: levels[name], time: Date.now(), ...(message !== undefined ? { msg: message } : {}), ...serialisable(fields) };
      stream.write(`${JSON.stringify(entry)}\n`);
    };
  return { debug: method('debug'), info: method('info'), warn: method('warn'), error: method('error') };
}

/** Errors become { code, message } (JSON.stringify drops their fields otherwise); bigints become strings. */
function serialisable(fields: object): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(fields)) {
    if (value instanceof Error) out[key] = { name: value.name, message: value.message, ...('code' in value ? { code: (value as { code: unknown }).code } : {}) };
    else if (typeof value === 'bigint') out[key] = value.toString();
    else out[key] = value;
  }
  return out;
}
