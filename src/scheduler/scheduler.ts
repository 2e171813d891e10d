import type pg from "pg";
import { Status } from "../../gen/herald/v1/notification_pb.js";
import type { Logger } from "../log.js";
import { inTransaction } from "../store/db.js";
import { withStoreErrors } from "../store/errors.js";
import { OUTBOX_CHANNEL } from "../store/outbox-channel.js";
import { keptTransitions, transitionWrites, writeTransitions, type NotificationRow, type TransitionRow } from "../store/records.js";
import { writeDeadLetter } from "../store/dead-letters.js";
import { systemClock, type Clock } from "../clock.js";
import { backoffMs } from "../loop/backoff.js";
import { createOutageLog } from "../loop/outage.js";
import { createWakeup } from "../loop/sleep.js";

// The scheduler moves due SCHEDULED (deliver_at) and due RETRYING
// (next_attempt_at) notifications to QUEUED, with the same event and outbox
// records accept writes. Several instances may run: each tick locks its rows
// with FOR UPDATE SKIP LOCKED, so instances split the due rows instead of
// releasing one twice, and the UPDATE re-checks the status it selected.
//
// It also ends claims whose worker is gone: a SENDING row whose lease ran out
// more than a grace period ago goes to RETRYING, due at once, and is released
// in the same tick. Normally the redelivered Kafka record re-claims such a row
// long before; this catches the case where that record was committed anyway,
// so every notification still reaches a terminal status.

export interface SchedulerDeps {
  pool: pg.Pool;
  log: Logger;
  /** Rows of each kind (scheduled, retrying) released per transaction. */
  batchSize: number;
  /** Longest sleep between ticks; new rows due sooner than this are found at the next wake-up. */
  pollMs: number;
  /** @defaultValue () => new Date() */
  clock?: Clock;
  /**
   * A claim (SENDING) is presumed lost this long after its lease ended. Leases are already
   * several send timeouts long; the grace gives a live worker's outcome, and the redelivered
   * record's re-claim, time to land first. @defaultValue 60000
   */
  claimGraceMs?: number;
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

/**
 * How long the loop sleeps after a batch that was not full: until the next due row, to the
 * millisecond (a burst due at one instant starts at that instant), at most pollMs; minSleepMs
 * when a row is due already, so another instance holds it. Due times have µs and a Date only
 * ms, and a timer may fire a little early: a row due within this millisecond waits 1 ms.
 */
export function sleepUntilDue(nextDue: Date | null, now: Date, pollMs: number): number {
  if (!nextDue) return pollMs;
  const wait = nextDue.getTime() - now.getTime();
  return Math.min(pollMs, wait >= 0 ? Math.max(1, Math.ceil(wait)) : minSleepMs);
}
/** Longest back-off while the database is failing. */
const maxBackoffMs = 5_000;

const detailFor: Partial<Record<Status, string>> = {
  [Status.SCHEDULED]: "released",
  [Status.RETRYING]: "retry due",
};

/** A due row as locked for release: what its records need, without the spec. */
type LockedRow = Omit<TransitionRow, "status" | "updated_at" | "spec"> & { spec_length: number; from_status: Status };

const STALE_CLAIM = "claim expired: worker lost";

export function createScheduler(deps: SchedulerDeps): Scheduler {
  const { pool, log, batchSize, pollMs } = deps;
  const clock = deps.clock ?? systemClock;
  const claimGraceMs = deps.claimGraceMs ?? 60_000;
  let closed = false;
  let running: Promise<void> | undefined;
  let closing: Promise<void> | undefined;
  const wakeup = createWakeup();

  /**
   * One transaction: lock due rows, then in one statement move them to QUEUED and append their
   * events and outbox records. The records are built from the rows as locked (the lock holds
   * them as they are until commit); the spec stays in PostgreSQL, the Dispatch records take it
   * from the UPDATE's RETURNING.
   */
  async function release(onLocked?: (full: boolean) => void): Promise<{ released: number; full: boolean }> {
    const now = new Date(clock.now());
    let swept: string[] = [];
    const rows = await withStoreErrors(() =>
      inTransaction(pool, async (client) => {
        swept = await sweepStaleClaims(client, now);
        // One CTE per partial index, each ordered by its due time, so both
        // scans stay index scans and neither kind can starve the other.
        const columns = `id, tenant, channel, user_id, attempts, last_sequence, correlation_id, created_at,
                         octet_length(spec) AS spec_length, status AS from_status`;
        const locked = await client.query<LockedRow>(
          `WITH scheduled AS MATERIALIZED (
             SELECT ${columns} FROM notifications WHERE status = $3 AND deliver_at <= $1
             ORDER BY deliver_at LIMIT $2 FOR UPDATE SKIP LOCKED
           ), retrying AS MATERIALIZED (
             SELECT ${columns} FROM notifications WHERE status = $4 AND next_attempt_at <= $1
             ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED
           )
           SELECT * FROM scheduled UNION ALL SELECT * FROM retrying`,
          [now, batchSize, Status.SCHEDULED, Status.RETRYING],
        );
        onLocked?.(isFull(locked.rows));
        if (locked.rows.length === 0) return [];
        const writes = locked.rows.map((row) =>
          transitionWrites(
            { ...row, status: Status.QUEUED, last_sequence: row.last_sequence + 1, updated_at: now },
            { detail: detailFor[row.from_status] ?? "released" },
          ),
        );
        const appended = keptTransitions(5, writes, "released");
        // The UPDATE re-checks the status it locked; only the rows it returns get records.
        await client.query(
          `WITH released AS (
             UPDATE notifications n
             SET status = $1, last_sequence = n.last_sequence + 1, updated_at = $2, next_attempt_at = NULL
             FROM unnest($3::uuid[], $4::smallint[]) AS due(id, status)
             WHERE n.id = due.id AND n.status = due.status
             RETURNING n.id, n.spec),
           ${appended.sql}
           SELECT pg_notify($${5 + appended.params.length}, '')`,
          [
            Status.QUEUED,
            now,
            locked.rows.map((r) => r.id),
            locked.rows.map((r) => r.from_status),
            ...appended.params,
            OUTBOX_CHANNEL,
          ],
        );
        return locked.rows;
      }),
    );
    if (swept.length > 0) log.warn({ count: swept.length, ids: swept.slice(0, 10) }, "stale claims returned to retry");
    return { released: rows.length, full: isFull(rows) };
  }

  /** A full batch of either kind: more may be due. */
  function isFull(rows: readonly LockedRow[]): boolean {
    const scheduled = rows.filter((r) => r.from_status === Status.SCHEDULED).length;
    return scheduled >= batchSize || rows.length - scheduled >= batchSize;
  }

  /**
   * Releases batches until one is not full. Once a full batch holds its rows, the next one
   * starts: it locks rows past them (SKIP LOCKED) and builds its records here while PostgreSQL
   * writes and commits the one before, so neither waits for the other. At most two at once.
   */
  async function releaseDue(): Promise<void> {
    let previous: Promise<unknown> = Promise.resolve();
    let current: Promise<unknown> = Promise.resolve();
    try {
      for (;;) {
        let locked!: (full: boolean) => void;
        const holding = new Promise<boolean>((resolve) => (locked = resolve));
        const batch = release(locked);
        current = batch;
        const full = await Promise.race([holding, batch.then((r) => r.full)]);
        await previous;
        if (!full) {
          await batch;
          return;
        }
        previous = batch;
      }
    } finally {
      // After a failure: the other batch still finishes (or fails) before the loop backs off.
      await Promise.allSettled([previous, current]);
    }
  }

  /**
   * SENDING rows whose lease ended more than claimGraceMs ago (database clock, as leases are
   * set) → RETRYING due `now`, in this transaction, so the release below queues them at once;
   * a lost claim on the last attempt is DEAD_LETTERED instead (the budget is spent).
   * Rows a worker is finishing are locked by it and skipped; the UPDATE re-checks status and
   * lease under the lock, so an outcome that committed first always wins.
   */
  async function sweepStaleClaims(client: pg.PoolClient, now: Date): Promise<string[]> {
    const swept = await client.query<NotificationRow>(
      `WITH stale AS MATERIALIZED (
         SELECT id FROM notifications
         WHERE status = $3 AND lease_until < now() - $4 * interval '1 millisecond'
         ORDER BY lease_until LIMIT $2 FOR UPDATE SKIP LOCKED
       )
       UPDATE notifications n
       SET status = CASE WHEN n.attempts >= n.max_attempts THEN $7::smallint ELSE $5::smallint END,
           next_attempt_at = CASE WHEN n.attempts >= n.max_attempts THEN NULL ELSE $1::timestamptz END,
           last_sequence = n.last_sequence + 1, updated_at = $1, lease_until = NULL, last_error = $6
       FROM stale WHERE n.id = stale.id AND n.status = $3 AND n.lease_until < now() - $4 * interval '1 millisecond'
       RETURNING n.*`,
      [now, batchSize, Status.SENDING, claimGraceMs, Status.RETRYING, STALE_CLAIM, Status.DEAD_LETTERED],
    );
    await writeTransitions(client, swept.rows.map((row) => transitionWrites(row, { detail: STALE_CLAIM })));
    for (const row of swept.rows) {
      if (row.status === Status.DEAD_LETTERED) await writeDeadLetter(client, row, { now });
    }
    return swept.rows.map((r) => r.id);
  }

  /** How long to sleep: see sleepUntilDue. */
  async function nextDelay(): Promise<number> {
    // Both subqueries read one end of a partial index.
    const result = await pool.query<{ next_due: Date | null }>(
      `SELECT LEAST(
         (SELECT min(deliver_at) FROM notifications WHERE status = $1),
         (SELECT min(next_attempt_at) FROM notifications WHERE status = $2)) AS next_due`,
      [Status.SCHEDULED, Status.RETRYING],
    );
    return sleepUntilDue(result.rows[0]?.next_due ?? null, new Date(clock.now()), pollMs);
  }

  async function loop(): Promise<void> {
    // Logs the change of state, not every failed tick of an outage.
    const outage = createOutageLog(log, { down: "scheduler tick failed; backing off until the database answers", up: "scheduler recovered" }, clock);
    while (!closed) {
      let delay: number;
      try {
        await releaseDue();
        delay = await withStoreErrors(nextDelay);
        outage.succeeded();
      } catch (err) {
        delay = backoffMs(outage.failed(err), { baseMs: pollMs, capMs: maxBackoffMs });
      }
      if (delay > 0 && !closed) await wakeup.sleep(delay);
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
        wakeup.wake();
        await running;
      })();
      return closing;
    },
    async tick() {
      return (await release()).released;
    },
  };
}
