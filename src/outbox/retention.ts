import type pg from "pg";

/**
 * Deletes up to `limit` rows published more than `retentionMs` ago; returns how many. Small
 * batches in id order (the primary key walks oldest first), so no long lock or scan: a caller
 * that got `limit` back calls again.
 */
export async function deletePublished(client: pg.ClientBase, retentionMs: number, limit: number): Promise<number> {
  const res = await client.query(
    `DELETE FROM outbox WHERE id IN (
       SELECT id FROM outbox WHERE published_at < now() - $1::bigint * interval '1 millisecond'
       ORDER BY id LIMIT $2)`,
    [retentionMs, limit],
  );
  return res.rowCount ?? 0;
}
