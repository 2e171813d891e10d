import { pino, type Logger } from "pino";

export type { Logger };

/** Options for the root logger. */
export interface LogOptions {
  /** pino level. @defaultValue "info" */
  level?: string;
  /** Process role, on every line (server, worker, relay, scheduler, dev). */
  role?: string;
}

/**
 * The root logger. Secrets never reach it: API keys, provider credentials and
 * authorization headers are redacted wherever they appear in a logged object.
 */
export function createLogger(opts: LogOptions = {}): Logger {
  return pino({
    level: opts.level ?? "info",
    base: { role: opts.role },
    redact: {
      paths: ["authorization", "*.authorization", "apiKey", "*.apiKey", "password", "*.password", "secret", "*.secret"],
      censor: "[redacted]",
    },
  });
}
