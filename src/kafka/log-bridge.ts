import { logLevel, type logCreator } from "kafkajs";
import type { Logger } from "../log.js";

/**
 * kafkajs log entries to pino. While a broker is down kafkajs repeats the same error on every
 * reconnect attempt (numbers aside); those repeats are dropped for a minute and counted, since
 * the caller reports the outage once as a classified error anyway.
 */
export function pinoLogCreator(log: Logger, quietMs = 60_000): logCreator {
  const seen = new Map<string, { at: number; dropped: number }>();
  return () =>
    ({ namespace, level, log: entry }) => {
      const { message, timestamp: _t, logger: _l, error, stack: _s, ...extra } = entry as typeof entry & { error?: unknown };
      if (error instanceof Error) extra.err = error; // pino serializes `err` (message, stack)
      else if (error !== undefined) extra.error = error;
      let method: "error" | "warn" | "info" | "debug" =
        level === logLevel.ERROR ? "error" : level === logLevel.WARN ? "warn" : level === logLevel.INFO ? "info" : "debug";
      // Connection reports every failed request and socket error, each of which also reaches
      // the caller as a (classified) rejection; at warn it would say everything twice.
      if (namespace === "Connection") method = "debug";
      // Deliberate (see producer.ts: bounded retries, callers resend), so not worth a warning.
      if (message.startsWith("Limiting retries for the idempotent producer")) method = "debug";
      let dropped = 0;
      if (method === "error" || method === "warn") {
        const key = `${namespace}:${message.replace(/\d+/g, "#")}`;
        const now = Date.now();
        const last = seen.get(key);
        if (last && now - last.at < quietMs) {
          last.dropped++;
          return;
        }
        dropped = last?.dropped ?? 0;
        if (seen.size > 500) seen.clear();
        seen.set(key, { at: now, dropped: 0 });
      }
      log[method]({ namespace, ...extra, ...(dropped > 0 ? { repeatsDropped: dropped } : {}) }, message);
    };
}
