import type pg from "pg";
import type { DeadLetter } from "../../gen/herald/v1/dead_letter_pb.js";
import { Status, type Channel } from "../../gen/herald/v1/notification_pb.js";
import { CHANNELS } from "../kafka/topics.js";
import { inTransaction } from "./db.js";
import { deadLetterMessage, deadStatuses } from "./dead-letter-record.js";
import { withStoreErrors } from "./errors.js";
import type { NotificationRow } from "./rows.js";
import { transitionWrites, writeTransitions } from "./transitions.js";
import { integerField, pageTokenCodec } from "./page-token.js";
import { isUuid } from "../domain/ids.js";

// Dead letters: notifications that ended FAILED or DEAD_LETTERED. Workers
// record a death with writeDeadLetter (dead-letter-record.ts) inside their
// outcome transaction; the API lists, reads and redrives them here. A dead_letters row is "open" until it is
// redriven (redriven_at set); dying again reopens it in place.

/** Selects dead letters; unset fields match everything. */
export interface DeadLetterQuery {
  channel?: Channel;
  /** Dead at or after. */
  since?: Date;
  /** Dead before. */
  until?: Date;
  /** Case-insensitive substring of the last error, taken literally. */
  errorContains?: string;
  status?: Status.FAILED | Status.DEAD_LETTERED;
}

export type RedriveTarget = { id: string } | { filter: DeadLetterQuery; limit: number };

export type RedriveOutcome =
  | { kind: "redriven"; ids: string[] }
  /** No such notification in the tenant (single id only). */
  | { kind: "not_found" }
  /** It exists but is not dead (single id only). */
  | { kind: "not_dead"; status: Status };

export interface DeadLetterStore {
  /** Open dead letters, newest first; `nextPageToken` is "" on the last page. Throws InvalidPageTokenError for a token it did not issue. */
  list(
    tenant: string,
    filter: DeadLetterQuery,
    page: { pageSize: number; pageToken: string },
  ): Promise<{ deadLetters: DeadLetter[]; nextPageToken: string }>;
  /** One open dead letter; undefined if the notification is unknown, another tenant's, or not dead. */
  get(tenant: string, id: string): Promise<DeadLetter | undefined>;
  /** Queues dead letters again with a fresh attempt budget. */
  redrive(tenant: string, target: RedriveTarget, opts: { now: Date; correlationId: string }): Promise<RedriveOutcome>;
}

export interface DeadLetterStoreDeps {
  pool: pg.Pool;
  /** Attempts a redriven notification gets on top of those it has made, per channel. */
  maxAttempts: (channel: Channel) => number;
  /** Rows redriven per transaction by a filter. @defaultValue 500 */
  batchSize?: number;
}

/** A notifications row joined with its dead_letters columns (prefixed dl_). */
type DeadLetterRow = NotificationRow & {
  dl_status: Status;
  dl_last_error: string;
  dl_attempts: number;
  dl_created_at: Date;
  dl_redrive_count: number;
  /** dl_created_at in µs since the epoch, exact, for the page token. */
  dl_created_us: string;
};

function toDeadLetter(row: DeadLetterRow): DeadLetter {
  return deadLetterMessage(row, {
    status: row.dl_status,
    lastError: row.dl_last_error,
    attempts: row.dl_attempts,
    at: row.dl_created_at,
    redriveCount: row.dl_redrive_count,
  });
}

// A page token is the last row's position in the (created_at DESC, id) order.
// created_at travels as exact microseconds: a JS Date would round it to ms and
// the next page could repeat or skip rows dead within the same millisecond.
// Its range is google.protobuf.Timestamp's (0001-01-01 to 9999-12-31), which
// PostgreSQL's timestamptz holds, so a forged token cannot overflow the query.
const pageTokens = pageTokenCodec({
  createdUs: integerField(-62_135_596_800_000_000n, 253_402_300_799_999_999n),
  id: isUuid,
});

/** Appends the filter's conditions on `d` (dead_letters) to `where`, with their parameters. */
function filterSql(filter: DeadLetterQuery, where: string[], params: unknown[]): void {
  const param = (value: unknown): string => `$${params.push(value)}`;
  if (filter.channel !== undefined) where.push(`d.channel = ${param(filter.channel)}`);
  if (filter.status !== undefined) where.push(`d.status = ${param(filter.status)}`);
  if (filter.since) where.push(`d.created_at >= ${param(filter.since)}`);
  if (filter.until) where.push(`d.created_at < ${param(filter.until)}`);
  if (filter.errorContains) {
    // Taken literally: the caller's % and _ are not wildcards.
    const literal = filter.errorContains.replace(/[\\%_]/g, (c) => `\\${c}`);
    where.push(`d.last_error ILIKE ${param(`%${literal}%`)} ESCAPE '\\'`);
  }
}

export function createDeadLetterStore(deps: DeadLetterStoreDeps): DeadLetterStore {
  const { pool } = deps;
  const batchSize = deps.batchSize ?? 500;
  // Extra attempts per channel, joined in SQL so one statement serves a mixed batch.
  const budgetChannels = [...CHANNELS];
  const budgets = budgetChannels.map((c) => deps.maxAttempts(c));

  async function select(
    tenant: string,
    conditions: (where: string[], params: unknown[]) => void,
    limit: number,
  ): Promise<DeadLetterRow[]> {
    const params: unknown[] = [tenant];
    const where = ["d.tenant = $1", "d.redriven_at IS NULL", "n.tenant = $1"];
    conditions(where, params);
    params.push(limit);
    const result = await pool.query<DeadLetterRow>(
      `SELECT n.*, d.status AS dl_status, d.last_error AS dl_last_error, d.attempts AS dl_attempts,
         d.created_at AS dl_created_at, d.redrive_count AS dl_redrive_count,
         (extract(epoch FROM d.created_at) * 1000000)::bigint::text AS dl_created_us
       FROM dead_letters d JOIN notifications n ON n.id = d.notification_id
       WHERE ${where.join(" AND ")}
       ORDER BY d.created_at DESC, d.notification_id
       LIMIT $${params.length}`,
      params,
    );
    return result.rows;
  }

  /**
   * Moves the locked dead notifications `ids` to QUEUED and closes their dead
   * letters; returns the ids in the given order. Attempts stay monotonic and
   * the budget is raised instead of reset: a worker's claim is guarded by the
   * attempt number, so Kafka records of earlier attempts never match again.
   */
  async function requeue(client: pg.ClientBase, ids: string[], opts: { now: Date; correlationId: string }): Promise<string[]> {
    if (ids.length === 0) return [];
    const updated = await client.query<NotificationRow>(
      `UPDATE notifications n
       SET status = $3, max_attempts = n.attempts + b.extra, next_attempt_at = NULL,
           last_sequence = n.last_sequence + 1, updated_at = $4
       FROM unnest($5::smallint[], $6::int[]) AS b(channel, extra)
       WHERE n.id = ANY($1::uuid[]) AND n.status = ANY($2::smallint[]) AND b.channel = n.channel
       RETURNING n.*`,
      [ids, deadStatuses, Status.QUEUED, opts.now, budgetChannels, budgets],
    );
    const order = new Map(ids.map((id, i) => [id.toLowerCase(), i]));
    const rows = updated.rows.sort((a, b) => (order.get(a.id) ?? 0) - (order.get(b.id) ?? 0));
    await writeTransitions(
      client,
      rows.map((row) => transitionWrites(row, { detail: "redriven", correlationId: opts.correlationId })),
    );
    const requeued = rows.map((row) => row.id);
    await client.query(
      `UPDATE dead_letters SET redriven_at = $2, redrive_count = redrive_count + 1
       WHERE notification_id = ANY($1::uuid[]) AND redriven_at IS NULL`,
      [requeued, opts.now],
    );
    return requeued;
  }

  async function redriveOne(tenant: string, id: string, opts: { now: Date; correlationId: string }): Promise<RedriveOutcome> {
    if (!isUuid(id)) return { kind: "not_found" };
    return inTransaction(pool, async (client): Promise<RedriveOutcome> => {
      // Lock first so "not dead" reports the status that actually won a race. An erased
      // notification (store/erasure.ts) has no address left to send to: its dead letter is gone.
      const found = await client.query<{ status: Status }>(
        "SELECT status FROM notifications WHERE id = $1 AND tenant = $2 AND erased_at IS NULL FOR UPDATE",
        [id, tenant],
      );
      const current = found.rows[0];
      if (!current) return { kind: "not_found" };
      if (!deadStatuses.includes(current.status)) return { kind: "not_dead", status: current.status };
      const ids = await requeue(client, [id], opts);
      if (ids.length !== 1) throw new Error(`redrive: locked row ${id} did not update`);
      return { kind: "redriven", ids };
    });
  }

  /** One transaction per batch; redriven rows stop matching, so each batch starts from the top again. */
  async function redriveMatching(
    tenant: string,
    filter: DeadLetterQuery,
    limit: number,
    opts: { now: Date; correlationId: string },
  ): Promise<RedriveOutcome> {
    const all: string[] = [];
    while (all.length < limit) {
      const want = Math.min(batchSize, limit - all.length);
      const { ids, selected } = await inTransaction(pool, async (client) => {
        const params: unknown[] = [tenant, deadStatuses];
        const where = ["d.tenant = $1", "d.redriven_at IS NULL", "n.tenant = $1", "n.status = ANY($2::smallint[])"];
        filterSql(filter, where, params);
        params.push(want);
        // SKIP LOCKED: a row another transaction holds is changing status
        // (another redrive, or a worker); skipping it is what a filter does
        // with a notification that is not dead.
        const locked = await client.query<{ id: string }>(
          `SELECT n.id FROM dead_letters d JOIN notifications n ON n.id = d.notification_id
           WHERE ${where.join(" AND ")}
           ORDER BY d.created_at DESC, d.notification_id
           LIMIT $${params.length}
           FOR UPDATE OF n SKIP LOCKED`,
          params,
        );
        const selectedIds = locked.rows.map((r) => r.id);
        return { ids: await requeue(client, selectedIds, opts), selected: selectedIds.length };
      });
      all.push(...ids);
      if (selected < want) break;
    }
    return { kind: "redriven", ids: all };
  }

  return {
    async list(tenant, filter, page) {
      const after = pageTokens.decode(page.pageToken);
      return withStoreErrors(async () => {
        const rows = await select(
          tenant,
          (where, params) => {
            filterSql(filter, where, params);
            if (after) {
              // Mixed directions (created_at DESC, id ASC), so no row comparison.
              const at = `(timestamptz 'epoch' + $${params.push(after.createdUs)}::bigint * interval '1 microsecond')`;
              const id = `$${params.push(after.id)}::uuid`;
              where.push(`(d.created_at < ${at} OR (d.created_at = ${at} AND d.notification_id > ${id}))`);
            }
          },
          page.pageSize + 1,
        );
        const pageRows = rows.slice(0, page.pageSize);
        const last = pageRows[pageRows.length - 1];
        const more = rows.length > page.pageSize && last !== undefined;
        return {
          deadLetters: pageRows.map(toDeadLetter),
          nextPageToken: more ? pageTokens.encode({ createdUs: last.dl_created_us, id: last.id }) : "",
        };
      });
    },

    async get(tenant, id) {
      if (!isUuid(id)) return undefined;
      const rows = await withStoreErrors(() =>
        select(tenant, (where, params) => where.push(`d.notification_id = $${params.push(id)}::uuid`), 1),
      );
      return rows[0] && toDeadLetter(rows[0]);
    },

    redrive(tenant, target, opts) {
      return withStoreErrors(() =>
        "id" in target ? redriveOne(tenant, target.id, opts) : redriveMatching(tenant, target.filter, target.limit, opts),
      );
    },
  };
}
