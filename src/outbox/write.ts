import type pg from "pg";
import { dispatchTopics } from "../kafka/topics.js";
import { OUTBOX_CHANNEL } from "./channel.js";
import type { OutboxRecord } from "./records.js";

// Writing outbox rows inside the caller's transaction: the records are committed with the
// status change they announce, or not at all (the transactional outbox).

const asBuffer = (u: Uint8Array): Buffer => Buffer.from(u.buffer, u.byteOffset, u.byteLength);

const OUTBOX_COLUMNS = "topic, key, value, headers, notification_id";
const channelTopics = dispatchTopics();

/**
 * The outbox rows of `records` as one `unnest(...)` source (aliased `r`, with `ord` for their
 * order) whose parameters start at $`first`, and those parameters. A record with a specTail
 * gets its notification's spec between value and tail, from `specs`: a relation with columns
 * id and spec (the notifications table, or the RETURNING of the statement).
 */
function outboxSource(first: number, records: readonly OutboxRecord[], specs: string): { sql: string; params: unknown[] } {
  const types = ["text", "text", "bytea", "bytea", "jsonb", "uuid"];
  const source = `unnest(${types.map((t, i) => `$${first + i}::${t}[]`).join(", ")})
                WITH ORDINALITY AS u(topic, key, head, tail, headers, notification_id, ord)`;
  // Without a spliced record, `specs` need not have a spec column (accept returns only ids).
  const spliced = records.some((r) => r.specTail);
  return {
    sql: spliced
      ? `(SELECT u.topic, u.key, u.headers, u.notification_id, u.ord,
             CASE WHEN u.tail IS NULL THEN u.head ELSE u.head || s.spec || u.tail END AS value
           FROM ${source}
           LEFT JOIN ${specs} s ON u.tail IS NOT NULL AND s.id = u.notification_id) AS r`
      : `(SELECT u.topic, u.key, u.headers, u.notification_id, u.ord, u.head AS value FROM ${source}) AS r`,
    params: [
      records.map((r) => r.topic),
      records.map((r) => r.key),
      records.map((r) => asBuffer(r.value)),
      records.map((r) => (r.specTail ? asBuffer(r.specTail) : null)),
      records.map((r) => JSON.stringify(r.headers)),
      records.map((r) => r.notificationId),
    ],
  };
}

/**
 * An INSERT of `records` in the given order (outbox.id follows it), with parameters from
 * $`first`, for a statement that writes other rows too. With `kept` (a relation of the
 * statement: id, and spec if a record has a specTail), only the records of the notifications
 * it returns are inserted: the records are built before knowing which rows the statement writes.
 */
export function outboxInsert(first: number, records: readonly OutboxRecord[], kept?: string): { sql: string; params: unknown[] } {
  const source = outboxSource(first, records, kept ?? "notifications");
  const where = kept ? `WHERE notification_id IN (SELECT id FROM ${kept})` : "";
  return {
    sql: `INSERT INTO outbox (${OUTBOX_COLUMNS}) SELECT ${OUTBOX_COLUMNS} FROM ${source.sql} ${where} ORDER BY ord`,
    params: source.params,
  };
}

/**
 * Inserts `records` and wakes the relay, in one statement: PostgreSQL delivers the NOTIFY only
 * if the caller's transaction commits, and once per transaction however many writes share it.
 */
export async function writeOutbox(client: pg.ClientBase, records: readonly OutboxRecord[]): Promise<void> {
  const insert = outboxInsert(1, records);
  await client.query(`WITH inserted AS (${insert.sql}) SELECT pg_notify($${insert.params.length + 1}, '')`, [
    ...insert.params,
    OUTBOX_CHANNEL,
  ]);
}

/**
 * Withdraws the Dispatch records of `notificationId` not yet published, in the caller's
 * transaction (Cancel): one still in the outbox must never reach a worker. One the relay
 * already published is harmless: the worker's claim is guarded by status.
 */
export async function withdrawDispatches(client: pg.ClientBase, notificationId: string): Promise<void> {
  await client.query("DELETE FROM outbox WHERE notification_id = $1 AND published_at IS NULL AND topic = ANY($2::text[])", [
    notificationId,
    channelTopics,
  ]);
}
