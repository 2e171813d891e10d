import type pg from "pg";
import type { Clock } from "../clock.js";
import type { Logger } from "../log.js";
import { deletePublished } from "../outbox/retention.js";
import { isConnectionFailure } from "../store/db.js";

const HOUSEKEEPING_BATCH = 1000;

/**
 * The leader's retention: every `everyMs`, deletes published rows older than `retentionMs`,
 * a batch per call, calling again at once while a batch comes back full. A failure is logged
 * and waits for the next round; publishing goes on. A failed connection is thrown instead: the
 * session is unusable (a timed-out query is still in flight on it) and must be dropped.
 */
export function createHousekeeping(deps: {
  clock: Clock;
  log: Logger;
  retentionMs: number;
  everyMs: number;
}): (client: pg.ClientBase, stopped: AbortSignal) => Promise<void> {
  const { clock, log, retentionMs, everyMs } = deps;
  let next = clock.now();
  return async function housekeep(client: pg.ClientBase, stopped: AbortSignal): Promise<void> {
    if (clock.now() < next) return;
    try {
      const deleted = await deletePublished(client, retentionMs, HOUSEKEEPING_BATCH);
      next = deleted === HOUSEKEEPING_BATCH ? clock.now() : clock.now() + everyMs;
      if (deleted > 0) log.debug({ deleted }, "relay deleted published outbox rows");
    } catch (err) {
      next = clock.now() + everyMs;
      if (isConnectionFailure(err)) throw err;
      if (!stopped.aborted) log.warn({ err }, "relay housekeeping failed");
    }
  };
}
