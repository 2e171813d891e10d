import { pino, type Logger } from "pino";
import { mergeTraceLogFields, traceLogFields } from "./tracing/log-fields.js";

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
    // trace_id and span_id of the span the line is written in, when tracing is on.
    mixin: traceLogFields,
    mixinMergeStrategy: mergeTraceLogFields,
    redact: {
      paths: ["authorization", "*.authorization", "apiKey", "*.apiKey", "password", "*.password", "secret", "*.secret"],
      censor: "[redacted]",
    },
  });
}
