import type pg from "pg";
import type { Channel, Notification } from "../../gen/herald/v1/notification_pb.js";
import type { SkipReason } from "../../gen/herald/v1/notification_service_pb.js";
import type { Skip } from "../domain/fanout.js";
import { InvalidInputError } from "../errors.js";
import { acceptBatch, keyExpired, keyLeaders, unstorableField } from "./accept.js";
import type { AcceptInput } from "./accept-statement.js";
import { inTransaction } from "./db.js";
import { withStoreErrors } from "./errors.js";
import { toNotification, type NotificationRow } from "./rows.js";

// Notify's fan-outs (migration 012): a notify_requests row and the notifications it created, in one
// transaction. The request row is the arbiter of Notify's idempotency key, as the notifications'
// unique index is of Create's: a repeat is answered with the first fan-out's notifications and
// skipped list, whatever the profile and preferences say by then. A key holds for the same window
// as Create's, released the same way when it conflicts with an older request (accept.ts).

export interface NotifyInput {
  /** The notify_id (UUIDv7), also set on every notification. */
  id: string;
  tenant: string;
  userId: string;
  /** "" = none. */
  idempotencyKey: string;
  /** SHA-256 of the canonical request; null without a key. */
  requestHash: Buffer | null;
  /** What the fan-out skipped, kept for a repeat's answer. */
  skipped: Skip[];
  /** The notifications to create, each with `notifyId` = `id` and no idempotency key of its own. */
  notifications: AcceptInput[];
  now: Date;
}

export type NotifyOutcome =
  | { kind: "created" | "duplicate"; notifyId: string; notifications: Notification[]; skipped: Skip[] }
  /** Same tenant and key, a different request. */
  | { kind: "key_conflict" };

type Queryable = Pick<pg.ClientBase, "query">;

interface RequestRow {
  id: string;
  tenant: string;
  idempotency_key: string;
  request_hash: Buffer | null;
  skipped: Array<{ channel: Channel; reason: SkipReason; detail: string }>;
  created_at: Date;
}

const keyOf = (i: NotifyInput): string | undefined => (i.idempotencyKey === "" ? undefined : JSON.stringify([i.tenant, i.idempotencyKey]));

/** The first field of the fan-out PostgreSQL would refuse or alter, by path (see unstorableField). */
export function unstorableNotifyField(input: NotifyInput): string | undefined {
  for (const n of input.notifications) {
    const field = unstorableField(n);
    if (field) return field;
  }
  return undefined;
}

/** One Notify in its own transaction; rejects with InvalidInputError for text PostgreSQL cannot store, UnavailableError when the database is. */
export async function storeNotify(pool: pg.Pool, input: NotifyInput, ttlMs: number): Promise<NotifyOutcome> {
  const field = unstorableNotifyField(input);
  if (field) throw new InvalidInputError(`${field}: must not contain NUL or unpaired surrogates`);
  const [outcome] = await withStoreErrors(() => inTransaction(pool, (client) => acceptNotifies(client, [input], ttlMs)));
  return outcome!;
}

/**
 * The answer to a repeat of a stored request: the first fan-out (same request) or key_conflict
 * (another); undefined when the key is free or its window has passed, and the request must be made.
 */
export async function replayNotify(
  pool: pg.Pool,
  q: { tenant: string; key: string; requestHash: Buffer; now: Date; ttlMs: number },
): Promise<NotifyOutcome | undefined> {
  const row = (await loadByKeys(pool, [{ tenant: q.tenant, idempotencyKey: q.key }])).values().next().value;
  if (!row || keyExpired(row.created_at, q.ttlMs, q.now)) return undefined;
  if (!row.request_hash?.equals(q.requestHash)) return { kind: "key_conflict" };
  const stored = await loadNotifications(pool, [row.id]);
  return { kind: "duplicate", notifyId: row.id, notifications: stored.get(row.id) ?? [], skipped: row.skipped };
}

/**
 * Accepts fan-outs inside the caller's transaction; outcomes in input order. Request rows are
 * inserted before any notification, in (tenant, key) order, so two transactions sharing keys wait
 * for each other instead of deadlocking.
 */
export async function acceptNotifies(client: pg.ClientBase, inputs: readonly NotifyInput[], ttlMs: number): Promise<NotifyOutcome[]> {
  // The first input of each key leads; later ones in the same call are settled against it.
  const { leaderOf, leaders } = keyLeaders(inputs, keyOf);

  const created = await insertRequests(client, leaders);
  let conflicted = leaders.filter((l) => !created.has(l.id));
  const existing = await loadByKeys(client, conflicted);
  if (ttlMs > 0) {
    // A key older than the window is released and this request made again, once (accept.ts).
    const expired = conflicted.filter((l) => {
      const row = existing.get(keyOf(l)!);
      return row !== undefined && keyExpired(row.created_at, ttlMs, l.now);
    });
    if (expired.length > 0) {
      await client.query(
        `UPDATE notify_requests SET released_idempotency_key = idempotency_key, idempotency_key = NULL
          WHERE id = ANY($1::uuid[]) AND idempotency_key IS NOT NULL`,
        [expired.map((l) => existing.get(keyOf(l)!)!.id)],
      );
      for (const id of await insertRequests(client, expired)) created.add(id);
      conflicted = conflicted.filter((l) => !created.has(l.id));
      for (const [key, row] of await loadByKeys(client, conflicted)) existing.set(key, row);
    }
  }

  // Every notification of every request made here, in one accept statement.
  const making = leaders.filter((l) => created.has(l.id));
  const outcomes = await acceptBatch(client, making.flatMap((l) => l.notifications));
  const made = new Map<string, Notification[]>();
  let next = 0;
  for (const l of making) {
    made.set(l.id, l.notifications.map(() => {
      const o = outcomes[next++]!;
      if (o.kind !== "created") throw new Error(`notify ${l.id}: a notification without a key was not created`);
      return o.notification;
    }));
  }
  const stored = await loadNotifications(client, [...existing.values()].map((r) => r.id));

  return inputs.map((input): NotifyOutcome => {
    const key = keyOf(input);
    const leader = key === undefined ? input : leaderOf.get(key)!;
    if (leader === input && made.has(input.id)) {
      return { kind: "created", notifyId: input.id, notifications: made.get(input.id)!, skipped: input.skipped };
    }
    if (made.has(leader.id)) {
      // A repeat within this call of a request made in it.
      return input.requestHash && leader.requestHash?.equals(input.requestHash)
        ? { kind: "duplicate", notifyId: leader.id, notifications: made.get(leader.id)!, skipped: leader.skipped }
        : { kind: "key_conflict" };
    }
    const row = existing.get(key!);
    if (!row) throw new Error(`notify ${input.id}: no request row for its key after insert`);
    return input.requestHash && row.request_hash?.equals(input.requestHash)
      ? { kind: "duplicate", notifyId: row.id, notifications: stored.get(row.id) ?? [], skipped: row.skipped }
      : { kind: "key_conflict" };
  });
}

/** Inserts the request rows whose key is free; returns the ids inserted. */
async function insertRequests(client: pg.ClientBase, inputs: readonly NotifyInput[]): Promise<Set<string>> {
  if (inputs.length === 0) return new Set();
  const result = await client.query<{ id: string }>(
    `INSERT INTO notify_requests (id, tenant, user_id, idempotency_key, request_hash, skipped, created_at)
     SELECT id, tenant, user_id, idempotency_key, request_hash, skipped, created_at
       FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::bytea[], $6::jsonb[], $7::timestamptz[])
            WITH ORDINALITY AS r(id, tenant, user_id, idempotency_key, request_hash, skipped, created_at, ord)
      ORDER BY ord
     ON CONFLICT (tenant, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
     RETURNING id`,
    [
      inputs.map((i) => i.id),
      inputs.map((i) => i.tenant),
      inputs.map((i) => i.userId),
      inputs.map((i) => (i.idempotencyKey === "" ? null : i.idempotencyKey)),
      inputs.map((i) => i.requestHash),
      inputs.map((i) => JSON.stringify(i.skipped.map((s) => ({ channel: s.channel, reason: s.reason, detail: s.detail })))),
      inputs.map((i) => i.now),
    ],
  );
  // The inputs' ids as given (any hex case) for the caller's lookups.
  const inserted = new Set(result.rows.map((r) => r.id));
  return new Set(inputs.filter((i) => inserted.has(i.id.toLowerCase())).map((i) => i.id));
}

/** The request rows holding the keys of `inputs`, by keyOf. */
async function loadByKeys(client: Queryable, inputs: ReadonlyArray<Pick<NotifyInput, "tenant" | "idempotencyKey">>): Promise<Map<string, RequestRow>> {
  if (inputs.length === 0) return new Map();
  const result = await client.query<RequestRow>(
    `SELECT q.id, q.tenant, q.idempotency_key, q.request_hash, q.skipped, q.created_at FROM notify_requests q
       JOIN unnest($1::text[], $2::text[]) AS k(tenant, key) ON q.tenant = k.tenant AND q.idempotency_key = k.key
      WHERE q.idempotency_key IS NOT NULL`,
    [inputs.map((i) => i.tenant), inputs.map((i) => i.idempotencyKey)],
  );
  return new Map(result.rows.map((row) => [JSON.stringify([row.tenant, row.idempotency_key]), row]));
}

/** The notifications of earlier requests, by notify_id, each list in channel order (push tokens as they were made). */
async function loadNotifications(client: Queryable, notifyIds: readonly string[]): Promise<Map<string, Notification[]>> {
  const found = new Map<string, Notification[]>();
  if (notifyIds.length === 0) return found;
  const result = await client.query<NotificationRow & { notify_id: string }>(
    "SELECT * FROM notifications WHERE notify_id = ANY($1::uuid[]) ORDER BY notify_id, channel, id",
    [notifyIds],
  );
  for (const row of result.rows) {
    const list = found.get(row.notify_id) ?? [];
    list.push(toNotification(row));
    found.set(row.notify_id, list);
  }
  return found;
}
