import { createContextKey, type HandlerContext } from "@connectrpc/connect";
import { ConnectError, Code } from "@connectrpc/connect";
import type { Logger } from "../log.js";

// What the edge (edge.ts) attaches to an authenticated call, on either listener, for handlers to
// read: the tenant, the key's id, the request id and a logger.

/** What the edge learned about a call before the handler runs. */
export interface CallInfo {
  /** The tenant the API key belongs to; every read and write is scoped by it. */
  tenant: string;
  /**
   * A short, stable, non-secret id of the API key, for per-key limits and audit entries: a stored
   * key's id (`herald keys`), or a prefix of an env key's hash.
   */
  keyId: string;
  /** The caller's x-request-id, or one we generated; logged and carried to Kafka as correlation-id. */
  requestId: string;
  /** A child logger with requestId, tenant and method on every line (made on first use). */
  log: Logger;
}

/**
 * The call's request id, set by the listener as the call arrives (it sends it back to the caller
 * as the x-request-id response header, error answers included), before the edge authenticates:
 * the edge's CallInfo and the access log then name the same id.
 */
export const requestIdKey = createContextKey<string | undefined>(undefined, { description: "herald request id" });

/** Set by the edge (Connect interceptor or grpc-js adapter) on authenticated calls. */
export const callKey = createContextKey<CallInfo | undefined>(undefined, { description: "herald call" });

/** The call's info; the edge guarantees it for authenticated services. */
export function callInfo(ctx: HandlerContext): CallInfo {
  const info = ctx.values.get(callKey);
  // Reaching a tenant-scoped handler without it would be a wiring bug; fail closed.
  if (!info) throw new ConnectError("missing credentials", Code.Unauthenticated);
  return info;
}

/**
 * Whether the call's client is gone (cancelled it, or its stream broke), without building the
 * call's abort signal: set by the grpc-js adapter (grpc-call-context.ts), whose signal is made on
 * first read. Unset on the Connect listener, whose signal exists anyway: read ctx.signal there.
 */
export const clientGoneKey = createContextKey<(() => boolean) | undefined>(undefined, { description: "herald client gone" });

/** The cheapest way to ask whether the call's client has left. */
export function clientGone(ctx: Pick<HandlerContext, "values" | "signal">): boolean {
  const probe = ctx.values.get(clientGoneKey);
  return probe ? probe() : ctx.signal.aborted;
}
