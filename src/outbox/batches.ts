import type pg from "pg";
import type { KafkaRecord } from "../kafka/kafka.js";

// The relay's side of the outbox: select what is unpublished, mark what Kafka acknowledged.

/** Unpublished rows, oldest first: their ids and their Kafka records in the same order. */
export interface OutboxBatch {
  ids: string[];
  records: KafkaRecord[];
}

interface OutboxRow {
  id: string;
  topic: string;
  key: string;
  value: Buffer;
  headers: Record<string, unknown>;
}

/**
 * Up to `limit` unpublished rows in id order, except those of `exclude` (published, not yet
 * marked); undefined when there are none. Every unpublished row rather than those past an id
 * cursor: ids are drawn at insert but become visible at commit, out of order, so a cursor
 * would skip a row committed late.
 */
export async function selectUnpublished(
  client: pg.ClientBase,
  limit: number,
  exclude: readonly string[],
): Promise<OutboxBatch | undefined> {
  const { rows } = await client.query<OutboxRow>(
    `SELECT id, topic, key, value, headers FROM outbox
     WHERE published_at IS NULL AND NOT (id = ANY($2::bigint[])) ORDER BY id LIMIT $1`,
    [limit, exclude],
  );
  if (rows.length === 0) return undefined;
  return { ids: rows.map((r) => r.id), records: rows.map(toRecord) };
}

/** Marks rows published: only once Kafka acknowledged them (at least once). */
export async function markPublished(client: pg.ClientBase, ids: readonly string[]): Promise<void> {
  await client.query("UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])", [ids]);
}

function toRecord(row: OutboxRow): KafkaRecord {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(row.headers ?? {})) {
    headers[name] = typeof value === "string" ? value : JSON.stringify(value);
  }
  return { topic: row.topic, key: row.key, value: row.value, headers };
}
