import type pg from "pg";
import { Status } from "../../gen/herald/v1/notification_pb.js";
import type { Logger } from "../log.js";
import { inTransaction } from "../store/db.js";
import { withStoreErrors } from "../store/errors.js";
import { transitionWrites, writeTransitions, type NotificationRow } from "../store/records.js";

// The scheduler moves due SCHEDULED (deliver_at) and due RETRYING
// (next_attempt_at) notifications to QUEUED, with the same event and outbox
// records accept writes. Several instances may run: each tick locks its rows
// with FOR UPDATE SKIP LOCKED, so instances split the due rows instead of
// releasing one twice, and the UPDATE re-checks the status it selected.

export interface SchedulerDeps {
  pool: pg.Pool;
  log: Logger;
  /** Rows of each kind (scheduled, retrying) released per transaction. */
  batchSize: number;
  /** Longest sleep between ticks; new rows due sooner than this are found at the next wake-up. */
  pollMs: number;
  /** @defaultValue () => new Date() */
  clock?: () => Date;
}

export interface Scheduler {
  start(): void;
  /** Stops the loop and waits for the tick in flight. Idempotent. */
  close(): Promise<void>;
  /** Releases one batch now; returns how many rows it released (for tests). */
  tick(): Promise<number>;
}

/** Shortest sleep when due rows exist but another instance holds them: no busy loop. */
const minSleepMs = 20;
/** Longest back-off while the database is failing. */
const maxBackoffMs = 5_000;

const detailFor: Partial<Record<Status, string>> = {
  [Status.SCHEDULED]: "released",
  [Status.RETRYING]: "retry due",
};

type ReleasedRow = NotificationRow & { from_status: Status };

export function createScheduler(deps: SchedulerDeps): Scheduler {
  const { pool, log, batchSize, pollMs } = deps;
  const clock = deps.clock ?? (() => new Date());
  let closed = false;
  let running: Promise<void> | undefined;
  let closing: Promise<void> | undefined;
  let wake: (() => void) | undefined;

  /** One transaction: lock due rows, move them to QUEUED, append events and outbox records. */
  async function release(): Promise<{ released: number; full: boolean }> {
    const now = clock();
    const rows = await withStoreErrors(() =>
      inTransaction(pool, async (client) => {
        // One CTE per partial index, each ordered by its due time, so both
        // scans stay index scans and neither kind can starve the other.
        const result = await client.query<ReleasedRow>(
          `WITH scheduled AS MATERIALIZED (
             SELECT id, status FROM notifications WHERE status = $3 AND deliver_at <= $1
             ORDER BY deliver_at LIMIT $2 FOR UPDATE SKIP LOCKED
           ), retrying AS MATERIALIZED (
             SELECT id, status FROM notifications WHERE status = $4 AND next_attempt_at <= $1
             ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED
           ), due AS (SELECT * FROM scheduled UNION ALL SELECT * FROM retrying)
           UPDATE notifications n
           SET status = $5, last_sequence = n.last_sequence + 1, updated_at = $1, next_attempt_at = NULL
           FROM due WHERE n.id = due.id AND n.status = due.status
           RETURNING n.*, due.status AS from_status`,
          [now, batchSize, Status.SCHEDULED, Status.RETRYING, Status.QUEUED],
        );
        await writeTransitions(
          client,
          result.rows.map((row) => transitionWrites(row, { detail: detailFor[row.from_status] ?? "released" })),
        );
        return result.rows;
      }),
    );
    const scheduled = rows.filter((r) => r.from_status === Status.SCHEDULED).length;
    return { released: rows.length, full: scheduled >= batchSize || rows.length - scheduled >= batchSize };
  }

  /** How long to sleep: until the next due row, within [minSleepMs, pollMs]. */
  async function nextDelay(): Promise<number> {
    // Both subqueries read one end of a partial index.
    const result = await pool.query<{ next_due: Date | null }>(
      `SELECT LEAST(
         (SELECT min(deliver_at) FROM notifications WHERE status = $1),
         (SELECT min(next_attempt_at) FROM notifications WHERE status = $2)) AS next_due`,
      [Status.SCHEDULED, Status.RETRYING],
    );
    const next = result.rows[0]?.next_due;
    if (!next) return pollMs;
    return Math.min(pollMs, Math.max(minSleepMs, next.getTime() - clock().getTime()));
  }

  function sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        wake = undefined;
        resolve();
      }, ms);
      wake = () => {
        clearTimeout(timer);
        wake = undefined;
        resolve();
      };
    });
  }

  async function loop(): Promise<void> {
    let failures = 0;
    while (!closed) {
      let delay: number;
      try {
        const { full } = await release();
        delay = full ? 0 : await withStoreErrors(nextDelay);
        if (failures > 0) log.info({ failures }, "scheduler recovered");
        failures = 0;
      } catch (err) {
        // Log the change of state, not every failed tick of an outage.
        if (failures === 0) log.error({ err }, "scheduler tick failed; backing off until the database answers");
        failures++;
        delay = Math.min(maxBackoffMs, pollMs * 2 ** Math.min(failures - 1, 10));
      }
      if (delay > 0 && !closed) await sleep(delay);
    }
  }

  return {
    start() {
      if (closed || running) return;
      running = loop();
    },
    close() {
      closing ??= (async () => {
        closed = true;
        wake?.();
        await running;
      })();
      return closing;
    },
    async tick() {
      return (await release()).released;
    },
  };
}
