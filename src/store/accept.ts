import type pg from "pg";
import type { Notification } from "../../gen/herald/v1/notification_pb.js";
import { insertNotifications, type AcceptInput } from "./accept-statement.js";
import { toNotification, type NotificationRow } from "./rows.js";

// One accept batch inside its transaction: idempotency keys settled within the batch and
// against rows already stored, and the outcome of every request; and the check, before
// batching, that PostgreSQL can store an input at all.

export type AcceptOutcome =
  | { kind: "created"; notification: Notification }
  /** Same tenant and key, same request: the first result, as stored now. */
  | { kind: "duplicate"; notification: Notification }
  /** Same tenant and key, different request. */
  | { kind: "key_conflict" };

/** The (tenant, key) identity of an idempotent input; undefined without a key. */
function keyOf(input: AcceptInput): string | undefined {
  return input.idempotencyKey === "" ? undefined : JSON.stringify([input.tenant, input.idempotencyKey]);
}

/**
 * Accepts one batch inside its transaction; outcomes in input order. A key holds for `ttlMs`
 * after the notification it created (0: for ever).
 */
export async function acceptBatch(client: pg.Pool | pg.ClientBase, inputs: readonly AcceptInput[], ttlMs = 0): Promise<AcceptOutcome[]> {
  // The first input of each (tenant, key) leads and is inserted; later ones
  // in the batch are settled against the leader's result, as if they had
  // arrived after it.
  const { leaderOf, leaders } = keyLeaders(inputs, keyOf);

  const rows = await insertNotifications(client, leaders);
  const conflicted = leaders.filter((l) => !rows.has(l.id.toLowerCase()));
  const existing = await loadByKeys(client, conflicted);
  await retryExpired(client, conflicted, ttlMs, rows, existing);

  return inputs.map((input): AcceptOutcome => {
    const key = keyOf(input);
    const leader = key === undefined ? input : leaderOf.get(key);
    const winner = (leader && rows.get(leader.id.toLowerCase())) ?? (key === undefined ? undefined : existing.get(key));
    if (!winner) throw new Error(`accept: no row for notification ${input.id} after insert`);
    if (leader === input && winner.id === input.id.toLowerCase()) {
      // The spec the row was encoded from: no need to decode it back.
      return { kind: "created", notification: toNotification(winner, input.spec) };
    }
    return input.requestHash && winner.request_hash?.equals(input.requestHash)
      ? { kind: "duplicate", notification: toNotification(winner) }
      : { kind: "key_conflict" };
  });
}

const compare = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Whether an idempotency key has expired: it holds for `ttlMs` after the row it made was created
 * (0: for ever). The one rule for Create's and Notify's keys, on insert and on replay.
 */
export function keyExpired(createdAt: Date, ttlMs: number, now: Date): boolean {
  return ttlMs > 0 && createdAt.getTime() + ttlMs <= now.getTime();
}

/**
 * The first input of each idempotency key (inputs without one all lead), sorted by (tenant, key):
 * every batch takes unique-index locks in the same order, so two concurrent batches sharing keys
 * wait for each other instead of deadlocking. Shared with Notify's request rows (notify.ts).
 */
export function keyLeaders<T extends { tenant: string; idempotencyKey: string }>(
  inputs: readonly T[],
  keyOf: (input: T) => string | undefined,
): { leaderOf: Map<string, T>; leaders: T[] } {
  const leaderOf = new Map<string, T>();
  const leaders: T[] = [];
  for (const input of inputs) {
    const key = keyOf(input);
    if (key !== undefined) {
      if (leaderOf.has(key)) continue;
      leaderOf.set(key, input);
    }
    leaders.push(input);
  }
  leaders.sort((a, b) => compare(a.tenant, b.tenant) || compare(a.idempotencyKey, b.idempotencyKey));
  return { leaderOf, leaders };
}

// Expiry is settled here, when a key conflicts, rather than by a loop that clears old keys: it
// is exact at the window's edge (a loop would leave a key live until its next round), costs the
// accept path nothing when no key conflicts, and the unique index stays the one arbiter between
// concurrent requests. A released key moves to released_idempotency_key, out of the index.

/**
 * Releases the keys of `conflicted` whose stored row is older than the window, inserts those
 * leaders again, and updates `rows` (inserted) and `existing` (the rows their keys now name).
 * Once: a concurrent batch that released the same key first wins its insert, and this one is
 * then settled against that fresh row, as for any key.
 */
async function retryExpired(
  client: pg.Pool | pg.ClientBase,
  conflicted: readonly AcceptInput[],
  ttlMs: number,
  rows: Map<string, NotificationRow>,
  existing: Map<string, NotificationRow>,
): Promise<void> {
  if (ttlMs <= 0) return;
  const expired = conflicted.filter((l) => {
    const row = existing.get(keyOf(l)!);
    return row !== undefined && keyExpired(row.created_at, ttlMs, l.now);
  });
  if (expired.length === 0) return;
  // Conditional on the key still being there: a concurrent release makes this a no-op.
  await client.query(
    `UPDATE notifications SET released_idempotency_key = idempotency_key, idempotency_key = NULL
     WHERE id = ANY($1::uuid[]) AND idempotency_key IS NOT NULL`,
    [expired.map((l) => existing.get(keyOf(l)!)!.id)],
  );
  const inserted = await insertNotifications(client, expired);
  for (const [id, row] of inserted) rows.set(id, row);
  const lost = await loadByKeys(client, expired.filter((l) => !inserted.has(l.id.toLowerCase())));
  for (const [key, row] of lost) existing.set(key, row);
}

/** The stored rows for inputs whose (tenant, key) was taken, by keyOf. */
async function loadByKeys(client: pg.Pool | pg.ClientBase, inputs: readonly AcceptInput[]): Promise<Map<string, NotificationRow>> {
  if (inputs.length === 0) return new Map();
  // READ COMMITTED: this new statement sees the row whose commit the INSERT's
  // ON CONFLICT waited for.
  const result = await client.query<NotificationRow>(
    `SELECT n.* FROM notifications n
     JOIN unnest($1::text[], $2::text[]) AS k(tenant, key) ON n.tenant = k.tenant AND n.idempotency_key = k.key
     WHERE n.idempotency_key IS NOT NULL`,
    [inputs.map((i) => i.tenant), inputs.map((i) => i.idempotencyKey)],
  );
  return new Map(result.rows.map((row) => [JSON.stringify([row.tenant, row.idempotency_key]), row]));
}

// PostgreSQL refuses NUL in text and jsonb, and jsonb refuses a lone UTF-16
// surrogate (text would silently store U+FFFD instead).
// eslint-disable-next-line no-control-regex -- matching NUL is the point
const unstorable = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** The first text value of `input` PostgreSQL would refuse or alter, by field path. */
export function unstorableField(input: AcceptInput): string | undefined {
  const fields: [string, string][] = [
    ["tenant", input.tenant],
    ["id", input.id],
    ["idempotency_key", input.idempotencyKey],
    ["correlation_id", input.correlationId],
    ["notification.recipient.user_id", input.spec.recipient?.userId ?? ""],
    ["local_time.date_time", input.localTime?.dateTime ?? ""],
    ["local_time.time_zone", input.localTime?.timeZone ?? ""],
  ];
  for (const [k, v] of Object.entries(input.spec.labels)) fields.push(["notification.labels", k], ["notification.labels", v]);
  return fields.find(([, value]) => unstorable.test(value))?.[0];
}
