import { UnavailableError } from "../errors.js";

// The store's one translation point for PostgreSQL failures (STYLE habit 4):
// "the database cannot answer right now" becomes UnavailableError("database"),
// which the API maps to UNAVAILABLE and workers treat as "back off and retry".
// Everything else (a bug, a constraint we did not expect) propagates unchanged
// and ends up as INTERNAL with its cause logged.

/** The database cannot answer now: the store is closed, or PostgreSQL is unreachable or refusing work. */
export function databaseUnavailable(message: string, cause?: unknown): UnavailableError {
  return new UnavailableError("database", message, { cause });
}

// Socket-level failures from node:net / dns while connecting or mid-query.
const networkCodes = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EPIPE",
]);

// SQLSTATEs that say "not now" rather than "never": the server is shutting
// down or starting (57P01-57P03), out of connections or resources (class 53),
// the statement hit statement_timeout (57014), or we reached a read-only
// standby during a failover (25006). Class 08 is "connection exception".
const sqlStates = new Set(["57P01", "57P02", "57P03", "57014", "25006"]);
const sqlStateClasses = ["08", "53"];

// node-postgres reports its own client-side failures with messages only.
const messages =
  /timeout exceeded when trying to connect|Connection terminated|Query read timeout|Client has encountered a connection error|Cannot use a pool after calling end/i;

/** Whether `err` means the database is unreachable or temporarily refusing work. */
export function isUnavailable(err: unknown): boolean {
  if (err instanceof UnavailableError) return err.dependency === "database";
  if (typeof err !== "object" || err === null) return false;
  const { code, message } = err as { code?: unknown; message?: unknown };
  if (typeof code === "string") {
    if (networkCodes.has(code) || sqlStates.has(code)) return true;
    if (code.length === 5 && sqlStateClasses.includes(code.slice(0, 2))) return true;
  }
  if (typeof message === "string" && messages.test(message)) return true;
  // Node 20 tries every address of "localhost" and reports an AggregateError.
  if (err instanceof AggregateError) return err.errors.some(isUnavailable);
  return false;
}

/** Runs `fn`, turning unavailability into UnavailableError("database") (with the original as `cause`). */
export async function withStoreErrors<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof UnavailableError || !isUnavailable(err)) throw err;
    throw databaseUnavailable("database unavailable", err);
  }
}
