import { randomBytes } from "node:crypto";
import { uuidv7 } from "uuidv7";
import { specBytes } from "./bodies.js";

// The ceilings' raw write: rows of Herald's own notifications table (same schema and indexes),
// many per statement through unnest, as the accept path inserts them. One statement for every
// scenario that measures it (ceilings, bulk, the bulk skeleton), so their ceilings stay alike.

export const INSERT_NOTIFICATION_ROWS = `INSERT INTO notifications (id, tenant, channel, user_id, status, spec, priority, labels, idempotency_key,
    request_hash, correlation_id, local_time, deliver_at, max_attempts, last_sequence, created_at, updated_at)
  SELECT id, $6, 1, user_id, 2, spec, 0, '{}', NULL, hash, corr, NULL, now(), 4, 1, now(), now()
  FROM unnest($1::uuid[], $2::text[], $3::bytea[], $4::bytea[], $5::text[]) AS t(id, user_id, spec, hash, corr)`;

const spec = specBytes();
const hash = randomBytes(32);

/** The parameters of INSERT_NOTIFICATION_ROWS for `ids` (new UUIDv7s when a count), users numbered from `firstUser`. */
export function notificationRowParams(tenant: string, ids: number | readonly string[], firstUser: number): unknown[] {
  const rowIds = typeof ids === "number" ? Array.from({ length: ids }, () => uuidv7()) : ids;
  return [rowIds, rowIds.map((_, j) => `user-${(firstUser + j) % 5000}`), rowIds.map(() => spec), rowIds.map(() => hash), rowIds.map(() => uuidv7()), tenant];
}
