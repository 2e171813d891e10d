import { randomUUID } from "node:crypto";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type pg from "pg";
import { Channel, NotificationSpecSchema, Status } from "../../gen/herald/v1/notification_pb.js";
import { cancelable } from "../domain/status.js";
import { auditSubjectKey, subjectRef, writeAudit } from "./audit.js";
import { inTransaction } from "./db.js";
import type { NotificationRow } from "./rows.js";
import { suppressionAddress } from "./suppressions.js";
import { transitionWrites, writeTransitions } from "./transitions.js";

// EraseRecipient (issue 16 item 7): forget a person of a tenant, keeping anonymous counts.
//
// What goes: the profile and its preferences; on every notification of theirs, the spec's address,
// content, template and variables and labels (the stored spec is replaced by one that keeps only
// the channel and priority), the labels column, last_error, provider_message_id, the idempotency
// key (a caller's key often embeds the user id), the request hash (a hash of the whole request,
// address included), the local time; the detail of every status event; the user id everywhere
// (notifications, status_events, status_feed_log), replaced by one random "erased:<uuid>" per
// erasure, which nothing links back to the person; their dead letters, waiting receipts and
// outbox rows (a Dispatch carries the spec, a status record the user id and detail); the
// suppressions of every address they had (profile or notification): a suppression protects the
// owner of an address, who has now asked to be forgotten, and keeping it would keep the address.
// What stays: per notification its id, tenant, channel, status, priority, attempts, times,
// correlation id and trace context (the caller's request ids, not the person's), and provider;
// the events' statuses and times. Counts per channel and status are therefore unchanged.
//
// Notifications not yet sent (SCHEDULED, QUEUED, RETRYING) are canceled through the normal
// transition (event + herald.status record, with the erased id), so a worker holding their
// Dispatch finds them CANCELED at its claim and the scheduler never releases them. A notification
// being sent (SENDING) cannot be stopped, and its outcome would write the provider's answer back:
// erasure then answers `sending`, erasing none of the batch it was in, and the caller tries again
// once the send ends (the lease bounds it).
//
// Batches: a person may have many notifications, and every statement is bounded by the pool's
// statement timeout, so the notifications are erased `batchSize` at a time, each batch a
// transaction that locks its rows (FOR UPDATE, in id order, so two erasures of one person queue).
// A batch moves its rows off the user id, so the next batch finds the rest: a call cut short
// resumes where it stopped when repeated. The batch that finds fewer than batchSize rows (the
// only one, for most people) also deletes the profile and suppressions and writes the audit
// entry: those commit together. A last short transaction catches the feed rows the relay logged
// meanwhile (sweepFeed).

/** What one erasure did; the audit entry's counts. */
export interface ErasureCounts {
  notificationsErased: number;
  notificationsCanceled: number;
  profileDeleted: boolean;
  preferencesDeleted: boolean;
  suppressionsDeleted: number;
  deadLettersDeleted: number;
  receiptsDeleted: number;
  outboxRecordsDeleted: number;
  /** Notify's request rows (migration 012): their keys and skipped lists can name addresses. */
  notifyRequestsDeleted: number;
}

export type ErasureOutcome =
  | { kind: "erased"; counts: ErasureCounts; auditId: string }
  /** `count` notifications of the person are being sent: nothing more was erased; try again later. */
  | { kind: "sending"; count: number; counts: ErasureCounts };

export interface ErasureRequest {
  tenant: string;
  userId: string;
  /** The API key's id and the call's request id: the audit entry's actor. */
  actor: { keyId: string; requestId: string };
  now: Date;
}

export interface ErasureOptions {
  /** Notifications per transaction. @defaultValue 500 */
  batchSize?: number;
  /** The user id the person's notifications get. @defaultValue "erased:" + a random UUID */
  erasedId?: string;
}

/** The user id prefix of an erased notification (the marker that counts is erased_at). */
export const ERASED_PREFIX = "erased:";

export async function eraseRecipient(pool: pg.Pool, req: ErasureRequest, opts: ErasureOptions = {}): Promise<ErasureOutcome> {
  const batchSize = opts.batchSize ?? 500;
  const erasedId = opts.erasedId ?? `${ERASED_PREFIX}${randomUUID()}`;
  const counts: ErasureCounts = {
    notificationsErased: 0,
    notificationsCanceled: 0,
    profileDeleted: false,
    preferencesDeleted: false,
    suppressionsDeleted: 0,
    deadLettersDeleted: 0,
    receiptsDeleted: 0,
    outboxRecordsDeleted: 0,
    notifyRequestsDeleted: 0,
  };
  // Every address seen on the person's notifications, for the suppressions (kept across batches).
  const addresses = new Map<string, { channel: Channel; address: string }>();
  for (;;) {
    const step = await inTransaction(pool, async (client) => {
      const batch = await eraseBatch(client, req, erasedId, batchSize, addresses);
      if (batch.kind === "sending") return batch;
      add(counts, batch.counts);
      if (batch.locked === batchSize) return { kind: "more" as const };
      const auditId = await finish(client, req, counts, addresses);
      return { kind: "done" as const, auditId };
    });
    if (step.kind === "sending") return { kind: "sending", count: step.count, counts };
    if (step.kind === "done") {
      if (counts.notificationsErased > 0) await sweepFeed(pool, req, erasedId);
      return { kind: "erased", counts, auditId: step.auditId };
    }
  }
}

/**
 * The feed rows the relay leader logged while the erasure ran. It reads an event's user id when
 * it assigns the event's position (feed/positions.ts), in a statement whose snapshot may predate
 * the batch that scrubbed the event and that commits after it, so a row with the old user id can
 * appear after the batch's own UPDATE. Every assignment holds the status_feed row until it
 * commits: taking that lock waits for any assignment in flight, and the next statement sees what
 * it wrote; any later one reads the scrubbed events.
 */
async function sweepFeed(pool: pg.Pool, req: ErasureRequest, erasedId: string): Promise<void> {
  await inTransaction(pool, async (client) => {
    await client.query("SELECT head FROM status_feed WHERE id = 1 FOR UPDATE");
    await client.query(
      `UPDATE status_feed_log f SET user_id = $3
       FROM notifications n
       WHERE f.tenant = $1 AND f.user_id = $2 AND n.id = f.notification_id AND n.user_id = $3`,
      [req.tenant, req.userId, erasedId],
    );
  });
}

function add(into: ErasureCounts, batch: Pick<ErasureCounts, "notificationsErased" | "notificationsCanceled" | "deadLettersDeleted" | "receiptsDeleted" | "outboxRecordsDeleted">): void {
  into.notificationsErased += batch.notificationsErased;
  into.notificationsCanceled += batch.notificationsCanceled;
  into.deadLettersDeleted += batch.deadLettersDeleted;
  into.receiptsDeleted += batch.receiptsDeleted;
  into.outboxRecordsDeleted += batch.outboxRecordsDeleted;
}

/** The stored spec of an erased notification: its channel and priority, the erased id, nothing else. */
export function erasedSpec(spec: Buffer, erasedId: string): Buffer {
  const was = fromBinary(NotificationSpecSchema, spec);
  const now = create(NotificationSpecSchema, { channel: was.channel, priority: was.priority, recipient: { userId: erasedId } });
  return Buffer.from(toBinary(NotificationSpecSchema, now));
}

type BatchResult =
  | { kind: "sending"; count: number }
  | {
      kind: "erased";
      locked: number;
      counts: Pick<ErasureCounts, "notificationsErased" | "notificationsCanceled" | "deadLettersDeleted" | "receiptsDeleted" | "outboxRecordsDeleted">;
    };

async function eraseBatch(
  client: pg.ClientBase,
  req: ErasureRequest,
  erasedId: string,
  limit: number,
  addresses: Map<string, { channel: Channel; address: string }>,
): Promise<BatchResult> {
  const locked = await client.query<Pick<NotificationRow, "id" | "channel" | "status" | "spec">>(
    `SELECT id, channel, status, spec FROM notifications WHERE tenant = $1 AND user_id = $2 ORDER BY id LIMIT $3 FOR UPDATE`,
    [req.tenant, req.userId, limit],
  );
  const rows = locked.rows;
  const sending = rows.filter((r) => r.status === Status.SENDING).length;
  if (sending > 0) return { kind: "sending", count: sending };
  const none = { notificationsErased: 0, notificationsCanceled: 0, deadLettersDeleted: 0, receiptsDeleted: 0, outboxRecordsDeleted: 0 };
  if (rows.length === 0) return { kind: "erased", locked: 0, counts: none };

  for (const r of rows) {
    const address = fromBinary(NotificationSpecSchema, r.spec).recipient?.address.value;
    if (address) remember(addresses, r.channel, address);
  }
  const ids = rows.map((r) => r.id);
  // The rows are locked: the statuses read are the ones the UPDATE sees.
  const canceled = new Set(rows.filter((r) => cancelable.includes(r.status)).map((r) => r.id));

  // First what hangs off the notifications, then the rows themselves, then the cancellations'
  // new events and records, which are built from the scrubbed rows (erased id, no address).
  const side = await client.query<{ dead_letters: number; receipts: number; outbox: number }>(
    `WITH events AS (UPDATE status_events SET user_id = $2, detail = '' WHERE notification_id = ANY($1::uuid[]) RETURNING 1),
          feed AS (UPDATE status_feed_log SET user_id = $2 WHERE notification_id = ANY($1::uuid[]) RETURNING 1),
          records AS (DELETE FROM outbox WHERE notification_id = ANY($1::uuid[]) RETURNING 1),
          dead AS (DELETE FROM dead_letters WHERE notification_id = ANY($1::uuid[]) RETURNING 1),
          waiting AS (DELETE FROM receipts WHERE notification_id = ANY($1::uuid[]) RETURNING 1)
     SELECT (SELECT count(*) FROM dead)::int AS dead_letters, (SELECT count(*) FROM waiting)::int AS receipts,
            (SELECT count(*) FROM records)::int AS outbox, (SELECT count(*) FROM events) + (SELECT count(*) FROM feed) AS rewritten`,
    [ids, erasedId],
  );
  const scrubbed = await client.query<NotificationRow>(
    `UPDATE notifications n SET
       status = CASE WHEN n.status = ANY($4::smallint[]) THEN $5::smallint ELSE n.status END,
       last_sequence = CASE WHEN n.status = ANY($4::smallint[]) THEN n.last_sequence + 1 ELSE n.last_sequence END,
       updated_at = CASE WHEN n.status = ANY($4::smallint[]) THEN $6::timestamptz ELSE n.updated_at END,
       next_attempt_at = CASE WHEN n.status = ANY($4::smallint[]) THEN NULL ELSE n.next_attempt_at END,
       user_id = $3, spec = u.spec, labels = '{}', last_error = '', provider_message_id = '',
       idempotency_key = NULL, released_idempotency_key = NULL, request_hash = NULL, local_time = NULL,
       erased_at = $6::timestamptz
     FROM unnest($1::uuid[], $2::bytea[]) AS u(id, spec)
     WHERE n.id = u.id
     RETURNING n.*`,
    [ids, rows.map((r) => erasedSpec(r.spec, erasedId)), erasedId, cancelable, Status.CANCELED, req.now],
  );
  const byId = new Map(scrubbed.rows.map((r) => [r.id, r]));
  const writes = ids.flatMap((id) => {
    const row = byId.get(id);
    return row && canceled.has(id) ? [transitionWrites(row, { detail: "canceled: recipient erased", correlationId: req.actor.requestId })] : [];
  });
  await writeTransitions(client, writes);
  const s = side.rows[0]!;
  return {
    kind: "erased",
    locked: rows.length,
    counts: {
      notificationsErased: scrubbed.rows.length,
      notificationsCanceled: writes.length,
      deadLettersDeleted: s.dead_letters,
      receiptsDeleted: s.receipts,
      outboxRecordsDeleted: s.outbox,
    },
  };
}

function remember(addresses: Map<string, { channel: Channel; address: string }>, channel: Channel, address: string): void {
  const normalized = suppressionAddress(channel, address);
  addresses.set(`${channel}\0${normalized}`, { channel, address: normalized });
}

/** The last batch's transaction: the profile, its preferences (one-click unsubscribes too), the suppressions, the audit entry. */
async function finish(
  client: pg.ClientBase,
  req: ErasureRequest,
  counts: ErasureCounts,
  addresses: Map<string, { channel: Channel; address: string }>,
): Promise<string> {
  const prefs = await client.query("DELETE FROM recipient_preferences WHERE tenant = $1 AND user_id = $2", [req.tenant, req.userId]);
  // A Notify request's idempotency key and skipped list ("ada@example.com is suppressed") can name
  // the person; its notifications keep the notify_id, an opaque uuid.
  const requests = await client.query("DELETE FROM notify_requests WHERE tenant = $1 AND user_id = $2", [req.tenant, req.userId]);
  counts.notifyRequestsDeleted = requests.rowCount ?? 0;
  // One-click unsubscribes are part of the person's preferences (migration 015), and name them.
  const clicks = await client.query("DELETE FROM unsubscribes WHERE tenant = $1 AND user_id = $2", [req.tenant, req.userId]);
  counts.preferencesDeleted = (prefs.rowCount ?? 0) > 0 || (clicks.rowCount ?? 0) > 0;
  const profile = await client.query<{ email: string; phone: string; push_tokens: string[]; webhook_url: string }>(
    "DELETE FROM recipients WHERE tenant = $1 AND user_id = $2 RETURNING email, phone, push_tokens, webhook_url",
    [req.tenant, req.userId],
  );
  const p = profile.rows[0];
  counts.profileDeleted = p !== undefined;
  if (p) {
    if (p.email) remember(addresses, Channel.EMAIL, p.email);
    if (p.phone) remember(addresses, Channel.SMS, p.phone);
    for (const token of p.push_tokens) remember(addresses, Channel.PUSH, token);
    if (p.webhook_url) remember(addresses, Channel.WEBHOOK, p.webhook_url);
  }
  if (addresses.size > 0) {
    const list = [...addresses.values()];
    const removed = await client.query(
      `DELETE FROM suppressions s USING unnest($2::smallint[], $3::text[]) AS a(channel, address)
       WHERE s.tenant = $1 AND s.channel = a.channel AND s.address = a.address`,
      [req.tenant, list.map((a) => a.channel), list.map((a) => a.address)],
    );
    counts.suppressionsDeleted = removed.rowCount ?? 0;
  }
  const key = await auditSubjectKey(client);
  return writeAudit(client, {
    tenant: req.tenant,
    action: "recipient.erase",
    actor: req.actor,
    subjectRef: subjectRef(key, req.tenant, req.userId),
    counts: { ...counts },
  });
}
