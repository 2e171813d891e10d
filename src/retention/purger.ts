import type pg from "pg";
import { systemClock, type Clock } from "../clock.js";
import type { Logger } from "../log.js";
import { backoffMs } from "../loop/backoff.js";
import { createOutageLog } from "../loop/outage.js";
import { sleep } from "../loop/sleep.js";
import type { RetentionMetrics } from "../metrics/retention.js";
import { withStoreErrors } from "../store/errors.js";
import { purgeBatch, type PurgeCounts } from "../store/purge.js";

// The retention loop: every `everyMs`, a round of purge batches (store/purge.ts) until one comes
// back short. Paced so it never hogs the database: after each full batch it rests at least as
// long as the batch took (and at least pauseMs), so the purge holds a connection and its row
// locks half the time at most, in short transactions, and a large backlog drains over minutes
// instead of competing with Create. One purger works at a time (the batch's advisory lock); the
// others find it busy and wait for their next round. While the database fails, it backs off and
// says so once (loop/outage.ts); it never throws out of the loop.

export interface PurgerDeps {
  pool: pg.Pool;
  log: Logger;
  /** Terminal notifications whose last change is older than this go (HERALD_RETENTION_DAYS). */
  retentionMs: number;
  /** Notifications per batch (HERALD_RETENTION_BATCH). */
  batchSize: number;
  /** Least rest between two batches of a round (HERALD_RETENTION_PAUSE_MS). */
  pauseMs: number;
  /** Time between rounds. @defaultValue 60000 */
  everyMs?: number;
  /** @defaultValue systemClock */
  clock?: Clock;
  metrics?: RetentionMetrics;
  /** @defaultValue PURGE_LOCK_KEY */
  lockKey?: number;
}

/** What one round deleted. */
export interface PurgeRound extends PurgeCounts {
  batches: number;
  /** Another purger held the lock: this round did nothing. */
  busy: boolean;
}

export interface Purger {
  start(): void;
  /** Stops the loop and waits for the batch in flight. Idempotent. */
  close(): Promise<void>;
  /** One round now (tests, the bench); throws what a batch threw. */
  runRound(): Promise<PurgeRound>;
}

/** Longest back-off while the database fails. */
const maxBackoffMs = 30_000;

export function createPurger(deps: PurgerDeps): Purger {
  const { pool, log, retentionMs, batchSize, pauseMs, everyMs = 60_000, clock = systemClock, metrics, lockKey } = deps;
  const stop = new AbortController();
  const stopped = stop.signal;
  const outage = createOutageLog(log, { down: "retention purge cannot reach the database; waiting", up: "retention purge reached the database again" }, clock);
  let loop: Promise<void> | undefined;
  let closed: Promise<void> | undefined;

  async function runRound(): Promise<PurgeRound> {
    const round: PurgeRound = { notifications: 0, statusEvents: 0, outbox: 0, notifyRequests: 0, batches: 0, busy: false };
    const began = clock.now();
    while (!stopped.aborted) {
      const started = clock.now();
      let batch;
      try {
        batch = await withStoreErrors(() => purgeBatch(pool, { retentionMs, limit: batchSize, lockKey }));
      } catch (err) {
        metrics?.failed();
        throw err;
      }
      if (batch.kind === "busy") {
        round.busy = true;
        break;
      }
      const { counts } = batch;
      round.batches++;
      round.notifications += counts.notifications;
      round.statusEvents += counts.statusEvents;
      round.outbox += counts.outbox;
      round.notifyRequests += counts.notifyRequests;
      metrics?.purged(counts);
      if (counts.notifications < batchSize && counts.notifyRequests < batchSize) break;
      await sleep(Math.max(pauseMs, clock.now() - started), stopped);
    }
    if (round.notifications > 0 || round.notifyRequests > 0) {
      const { notifications, statusEvents, outbox, notifyRequests, batches } = round;
      log.info({ notifications, statusEvents, outbox, notifyRequests, batches, ms: clock.now() - began }, "retention purged expired notifications");
    } else if (round.busy) {
      log.debug("another instance is purging; waiting for the next round");
    }
    return round;
  }

  async function run(): Promise<void> {
    while (!stopped.aborted) {
      try {
        await runRound();
        outage.succeeded();
        await sleep(everyMs, stopped);
      } catch (err) {
        if (stopped.aborted) break;
        await sleep(backoffMs(outage.failed(err), { baseMs: 1000, capMs: Math.min(maxBackoffMs, everyMs) }), stopped);
      }
    }
  }

  return {
    start() {
      if (stopped.aborted || loop) return;
      log.info({ retentionDays: retentionMs / 86_400_000, batchSize, pauseMs }, "retention purge running");
      loop = run().catch((err: unknown) => log.error({ err }, "retention loop failed"));
    },
    runRound,
    close() {
      closed ??= (async () => {
        stop.abort();
        await loop;
      })();
      return closed;
    },
  };
}
