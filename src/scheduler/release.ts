import type pg from "pg";
import { Status } from "../../gen/herald/v1/notification_pb.js";
import type { Clock } from "../clock.js";
import type { Logger } from "../log.js";
import type { SchedulerMetrics } from "../metrics/scheduler.js";
import { inTransaction } from "../store/db.js";
import { withStoreErrors } from "../store/errors.js";
import { OUTBOX_CHANNEL } from "../outbox/channel.js";
import { keptTransitions, transitionWrites, type TransitionRow } from "../store/transitions.js";
import { sweepStaleClaims } from "./stale-claims.js";

// Releasing due rows: SCHEDULED (deliver_at) and RETRYING (next_attempt_at) → QUEUED, with the
// same event and outbox records accept writes. Each batch locks its rows with FOR UPDATE SKIP
// LOCKED, so several schedulers split the due rows instead of releasing one twice, and the
// UPDATE re-checks the status it selected.

export interface ReleaseOptions {
  pool: pg.Pool;
  log: Logger;
  clock: Clock;
  /** Rows of each kind (scheduled, retrying) released per transaction. */
  batchSize: number;
  /** See stale-claims.ts. */
  claimGraceMs: number;
  /** Hears each released row after its batch committed. */
  metrics?: SchedulerMetrics;
}

export interface Releaser {
  /** One batch; `onLocked` hears, before the write, whether it was full. */
  release: (onLocked?: (full: boolean) => void) => Promise<{ released: number; full: boolean }>;
  /** Batches until one is not full. */
  releaseDue: () => Promise<void>;
}

const detailFor: Partial<Record<Status, string>> = {
  [Status.SCHEDULED]: "released",
  [Status.RETRYING]: "retry due",
};

/** A due row as locked for release: what its records need, without the spec. */
type LockedRow = Omit<TransitionRow, "status" | "updated_at" | "spec"> & { spec_length: number; from_status: Status; due_at: Date };

export function createReleaser(opts: ReleaseOptions): Releaser {
  const { pool, log, clock, batchSize, claimGraceMs } = opts;

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
        swept = await sweepStaleClaims(client, now, { batchSize, claimGraceMs });
        // One CTE per partial index, each ordered by its due time, so both
        // scans stay index scans and neither kind can starve the other.
        const columns = `id, tenant, channel, user_id, priority, attempts, last_sequence, correlation_id, created_at,
                         octet_length(spec) AS spec_length, status AS from_status,
                         CASE WHEN status = $4 THEN next_attempt_at ELSE deliver_at END AS due_at`;
        const locked = await client.query<LockedRow>(
          `WITH scheduled AS MATERIALIZED (
             SELECT ${columns}, traceparent FROM notifications WHERE status = $3 AND deliver_at <= $1
             ORDER BY deliver_at LIMIT $2 FOR UPDATE SKIP LOCKED
           ), retrying AS MATERIALIZED (
             SELECT ${columns}, traceparent FROM notifications WHERE status = $4 AND next_attempt_at <= $1
             ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED
           )
           SELECT * FROM scheduled UNION ALL SELECT * FROM retrying`,
          [now, batchSize, Status.SCHEDULED, Status.RETRYING],
        );
        onLocked?.(isFull(locked.rows));
        if (locked.rows.length === 0) return [];
        // Each row's traceparent (selected above) goes on its records: a release continues the trace
        // the notification was accepted in.
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
    const releasedAt = clock.now();
    for (const r of rows) opts.metrics?.released(r.from_status === Status.RETRYING ? "retry" : "scheduled", (releasedAt - r.due_at.getTime()) / 1000);
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

  return { release, releaseDue };
}
