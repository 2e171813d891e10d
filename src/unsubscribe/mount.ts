import type pg from "pg";
import type { Registry } from "prom-client";
import { createUnsubscribeTokens } from "../domain/unsubscribe-token.js";
import type { HttpRoute } from "../health/route.js";
import type { Logger } from "../log.js";
import { createUnsubscribeMetrics } from "../metrics/unsubscribes.js";
import { withStoreErrors } from "../store/errors.js";
import { recordUnsubscribe } from "../store/unsubscribes.js";
import { unsubscribeRoute } from "./route.js";

/**
 * /unsubscribe/<token>, served by every API instance whatever its own HERALD_PUBLIC_URL: the links
 * are made by the workers, and any instance behind the public URL must take them. `secret` is the
 * deployment's link key (store/unsubscribes.ts loadUnsubscribeKey).
 */
export function configuredUnsubscribeRoute(secret: Uint8Array, deps: { pool: pg.Pool; registry: Registry; log: Logger }): HttpRoute {
  return unsubscribeRoute({
    tokens: createUnsubscribeTokens(secret),
    record: (req) => withStoreErrors(() => recordUnsubscribe(deps.pool, req)),
    metrics: createUnsubscribeMetrics(deps.registry),
    log: deps.log,
  });
}
