import { fromBinary } from "@bufbuild/protobuf";
import type pg from "pg";
import { NotificationSpecSchema, Status } from "../../gen/herald/v1/notification_pb.js";
import { inTransaction } from "./db.js";
import { withStoreErrors } from "./errors.js";
import type { NotificationRow } from "./rows.js";
import { addSuppression, type SuppressionReason } from "./suppressions.js";
import { transitionWrites, writeTransitions, type Alongside } from "./transitions.js";

// Receipts: what a provider reports after it accepted a message (delivered, bounced, undelivered,
// a complaint). Every receipt goes through the one transition code, so it appends a status event
// and a herald.status record like any other change, and is idempotent by the transition guard:
// only SENT moves to DELIVERED or FAILED, so a repeated or late receipt changes nothing.
//
// The race with the worker: a provider may call back before the worker's outcome transaction
// has stored SENT and the provider's message id. Both transactions lock the notification row
// (FOR UPDATE here, the guarded UPDATE there), so one waits for the other: a receipt that finds
// the row not yet SENT is stored (migration 009) and the outcome transaction, which reads the
// receipts table after its own UPDATE, applies it; a receipt that waited for the outcome
// transaction re-reads the row (READ COMMITTED) and finds it SENT.

/** What a provider reported about one message, bound to the notification it names. */
export interface Receipt {
  /** twilio, sendgrid: recorded as the status event's provider. */
  provider: string;
  /** The notification the callback is bound to (Twilio: our StatusCallback's query; SendGrid: unique_args). */
  notificationId: string;
  /** When the provider names the tenant too (SendGrid's unique_args), it must be the notification's. */
  tenant?: string;
  /** The provider's id for the message: must be the one the worker stored with SENT; "" when the receipt names none. */
  providerMessageId: string;
  /** DELIVERED or FAILED; undefined: no status change (a complaint after delivery). */
  status?: Status.DELIVERED | Status.FAILED;
  /** The status event's detail, e.g. "twilio: undelivered, error 30003". */
  detail: string;
  /** Suppress the notification's recipient address for its tenant, in this transaction. */
  suppress?: { reason: SuppressionReason; detail: string };
  /** When it was received (the status event's time). */
  at: Date;
}

export type ReceiptResult =
  /** The status changed (and the address was suppressed, if asked and not already). */
  | { kind: "applied"; status: Status; suppressed: boolean }
  /** The notification is not SENT yet: kept, applied when its SENT is stored. */
  | { kind: "pending"; suppressed: boolean }
  /** Nothing to change: already DELIVERED or FAILED, or a receipt that changes no status. */
  | { kind: "ignored"; suppressed: boolean }
  /** No such notification, another tenant's, or another message of it: nothing changed. */
  | { kind: "unmatched" };

// Statuses from which the notification may still become SENT with this message id: a receipt
// for it is kept. From any other (FAILED, DEAD_LETTERED, CANCELED, ...) it never will.
const notYetSent = new Set<Status>([Status.QUEUED, Status.SENDING, Status.RETRYING]);

export interface ReceiptStore {
  apply(receipt: Receipt): Promise<ReceiptResult>;
}

export function createReceiptStore(deps: { pool: pg.Pool }): ReceiptStore {
  return {
    apply: (receipt) => withStoreErrors(() => inTransaction(deps.pool, (client) => applyReceipt(client, receipt))),
  };
}

/** Applies one receipt in the caller's transaction. */
export async function applyReceipt(client: pg.ClientBase, receipt: Receipt): Promise<ReceiptResult> {
  const found = await client.query<NotificationRow>(`SELECT * FROM notifications WHERE id = $1 FOR UPDATE`, [receipt.notificationId]);
  const row = found.rows[0];
  if (!row || (receipt.tenant !== undefined && receipt.tenant !== row.tenant)) return { kind: "unmatched" };
  // Erased (store/erasure.ts): its person is forgotten, and a provider's words may name them.
  if (row.erased_at) return { kind: "unmatched" };
  // Stored with SENT: it must be this message. (A receipt that names no message id, a SendGrid
  // event without smtp-id, is bound by the notification and tenant its signed payload names.)
  if (!sameMessage(row.provider_message_id, receipt.providerMessageId)) return { kind: "unmatched" };

  const suppressed = receipt.suppress ? await suppress(client, row, receipt.suppress) : false;
  if (receipt.status === undefined) return { kind: "ignored", suppressed };
  if (row.status === Status.SENT) {
    await transition(client, row, receipt);
    return { kind: "applied", status: receipt.status, suppressed };
  }
  if (notYetSent.has(row.status)) {
    await client.query(
      `INSERT INTO receipts (notification_id, provider, provider_message_id, status, detail, received_at)
       VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`,
      [row.id, receipt.provider, receipt.providerMessageId, receipt.status, receipt.detail, receipt.at],
    );
    return { kind: "pending", suppressed };
  }
  return { kind: "ignored", suppressed };
}

/** Whether a stored message id and a receipt's name the same message ("" on either side: not known yet). */
function sameMessage(stored: string, reported: string): boolean {
  return stored === "" || reported === "" || stored === reported;
}

async function suppress(client: pg.ClientBase, row: NotificationRow, s: NonNullable<Receipt["suppress"]>): Promise<boolean> {
  const address = fromBinary(NotificationSpecSchema, row.spec).recipient?.address.value;
  if (!address) return false;
  return addSuppression(client, { tenant: row.tenant, channel: row.channel, address, reason: s.reason, detail: s.detail, notificationId: row.id });
}

/** SENT → the receipt's status, guarded: a row that is no longer SENT is left alone. */
async function transition(
  client: pg.ClientBase,
  row: Pick<NotificationRow, "id">,
  receipt: Pick<Receipt, "status" | "detail" | "provider" | "at">,
): Promise<NotificationRow | undefined> {
  const updated = await client.query<NotificationRow>(
    `UPDATE notifications
     SET status = $2::smallint, last_sequence = last_sequence + 1, updated_at = greatest(updated_at, $3::timestamptz),
         last_error = CASE WHEN $2::smallint = $5::smallint THEN $4::text ELSE last_error END
     WHERE id = $1 AND status = $6::smallint
     RETURNING *`,
    [row.id, receipt.status, receipt.at, receipt.detail, Status.FAILED, Status.SENT],
  );
  const moved = updated.rows[0];
  if (moved) await writeTransitions(client, [transitionWrites(moved, { detail: receipt.detail, provider: receipt.provider })]);
  return moved;
}

/** A receipt kept because it arrived before its SENT, as takePendingReceipts returns it (JSON). */
export interface TakenReceipt {
  notification_id: string;
  provider: string;
  provider_message_id: string;
  status: Status;
  detail: string;
  /** ISO 8601. */
  received_at: string;
}

/**
 * For the transaction that is storing SENT for `ids`: deletes every kept receipt of those
 * notifications (one for another message id can never apply now) and returns them, as the
 * `alongside` step of the outcome's writeTransitions statement: a statement after the UPDATE
 * that took the rows' locks, so it sees every receipt committed before (see above why none can
 * be missed), at no round trip of its own. undefined: nothing to take.
 */
export function takePendingReceipts(ids: readonly string[]): Alongside | undefined {
  if (ids.length === 0) return undefined;
  return (first) => ({
    sql: `DELETE FROM receipts WHERE notification_id = ANY($${first}::uuid[])
          RETURNING notification_id, provider, provider_message_id, status, detail, received_at`,
    params: [ids],
  });
}

/**
 * Applies, in the order received, the receipts takePendingReceipts took for `rows` (just stored
 * SENT) whose message id is the one stored. Returns the rows that moved on, as they are now.
 */
export async function applyTakenReceipts(client: pg.ClientBase, rows: readonly NotificationRow[], taken: readonly TakenReceipt[]): Promise<NotificationRow[]> {
  if (taken.length === 0) return [];
  const byId = new Map(rows.map((r) => [r.id, r]));
  const moved: NotificationRow[] = [];
  const ordered = taken.map((r) => ({ ...r, at: new Date(r.received_at) })).sort((a, b) => a.at.getTime() - b.at.getTime());
  for (const r of ordered) {
    const row = byId.get(r.notification_id);
    if (!row || !sameMessage(row.provider_message_id, r.provider_message_id)) continue;
    // The first that applies wins; the guard makes any later one (DELIVERED after FAILED) a no-op.
    const now = await transition(client, row, { status: r.status as Status.DELIVERED | Status.FAILED, detail: r.detail, provider: r.provider, at: r.at });
    if (now) moved.push(now);
  }
  return moved;
}

/**
 * In the transaction that has just stored SENT for these rows: SENT → DELIVERED at once, for the
 * channels whose provider is the destination (a webhook receiver that answered 2xx). One UPDATE
 * and one append for the whole outcome batch, as the SENT transitions before them.
 */
export async function deliveredOnSend(
  client: pg.ClientBase,
  delivered: readonly { row: Pick<NotificationRow, "id">; provider: string; at: Date }[],
): Promise<void> {
  if (delivered.length === 0) return;
  const updated = await client.query<NotificationRow>(
    `UPDATE notifications n
     SET status = $3::smallint, last_sequence = n.last_sequence + 1, updated_at = greatest(n.updated_at, i.at)
     FROM unnest($1::uuid[], $2::timestamptz[]) AS i(id, at)
     WHERE n.id = i.id AND n.status = $4::smallint
     RETURNING n.*`,
    [delivered.map((d) => d.row.id), delivered.map((d) => d.at), Status.DELIVERED, Status.SENT],
  );
  const providerOf = new Map(delivered.map((d) => [d.row.id.toLowerCase(), d.provider]));
  const moved = new Map(updated.rows.map((row) => [row.id, row]));
  // Events in the batch's order, as writeTransitions appends them.
  const writes = delivered.flatMap(({ row }) => {
    const now = moved.get(row.id.toLowerCase());
    return now ? [transitionWrites(now, { detail: "delivered: the receiver answered 2xx", provider: providerOf.get(now.id) ?? "" })] : [];
  });
  await writeTransitions(client, writes);
}
