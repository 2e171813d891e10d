import type pg from "pg";
import { Status } from "../../gen/herald/v1/notification_pb.js";

// What is waiting inside Herald, read from PostgreSQL for the operator (metrics gauges, the
// operations view, `herald status`): the relay's outbox backlog, the scheduler's due rows and
// the open dead letters. Deployment-wide, no tenant data. Each count is capped so that a huge
// backlog (the very moment someone looks) costs a bounded scan; every part uses a partial index.

/** Counts stop here; a gauge at the cap reads "at least this many". */
export const BACKLOG_COUNT_CAP = 1_000_000;

export interface Backlog {
  /** Outbox rows not yet published to Kafka. */
  outboxPending: number;
  /** Seconds since the oldest unpublished outbox row was written; 0 when none waits. */
  outboxOldestAgeSeconds: number;
  /** SCHEDULED rows whose time has come and RETRYING rows whose retry is due, not yet released. */
  dueUnreleased: number;
  /** Seconds the oldest of those has been due; 0 when none is. */
  dueOldestAgeSeconds: number;
  /** Dead letters (FAILED or DEAD_LETTERED) not redriven, every tenant. */
  deadLettersOpen: number;
}

export async function readBacklog(pool: pg.Pool | pg.PoolClient): Promise<Backlog> {
  const { rows } = await pool.query<{ op: string; oa: number | null; du: string; da: number | null; dl: string }>(
    `SELECT
       (SELECT count(*) FROM (SELECT 1 FROM outbox WHERE published_at IS NULL LIMIT $1) o) AS op,
       (SELECT extract(epoch FROM now() - created_at)::float8
          FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT 1) AS oa,
       (SELECT count(*) FROM (
          (SELECT 1 FROM notifications WHERE status = $2 AND deliver_at <= now() LIMIT $1)
          UNION ALL
          (SELECT 1 FROM notifications WHERE status = $3 AND next_attempt_at <= now() LIMIT $1)) d) AS du,
       (SELECT extract(epoch FROM now() - least(
          (SELECT min(deliver_at) FROM notifications WHERE status = $2 AND deliver_at <= now()),
          (SELECT min(next_attempt_at) FROM notifications WHERE status = $3 AND next_attempt_at <= now())))::float8) AS da,
       (SELECT count(*) FROM (SELECT 1 FROM dead_letters WHERE redriven_at IS NULL LIMIT $1) l) AS dl`,
    [BACKLOG_COUNT_CAP, Status.SCHEDULED, Status.RETRYING],
  );
  const r = rows[0]!;
  return {
    outboxPending: Number(r.op),
    outboxOldestAgeSeconds: Math.max(0, r.oa ?? 0),
    dueUnreleased: Math.min(BACKLOG_COUNT_CAP, Number(r.du)),
    dueOldestAgeSeconds: Math.max(0, r.da ?? 0),
    deadLettersOpen: Number(r.dl),
  };
}
