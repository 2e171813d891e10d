import type pg from "pg";
import { Channel } from "../../gen/herald/v1/notification_pb.js";

// Suppressed addresses (migration 008): where a tenant must not send any more. Receipts add them
// (a hard bounce or a complaint, in the receipt's transaction), operators add and remove them
// through the API; workers look one up before each send and fail the notification at once with
// the reason. Every function takes the caller's client or pool, so a receipt's suppression
// commits with its status change or not at all.

export type SuppressionReason = "hard_bounce" | "complaint" | "manual";

export interface Suppression {
  tenant: string;
  channel: Channel;
  /** As given; stored and matched normalized (suppressionAddress). */
  address: string;
  reason: SuppressionReason;
  /** The provider's words: bounce code and text, complaint feedback type. */
  detail: string;
  /** The notification whose receipt caused it. */
  notificationId?: string;
  createdAt?: Date;
}

type Queryable = Pick<pg.ClientBase, "query">;

/**
 * The form an address is stored and matched in: email lower-cased (providers report bounces in
 * whatever case the recipient's server used, and mailbox names are case-insensitive in practice),
 * anything else trimmed as is (phone numbers are E.164 already, device tokens and URLs are exact).
 */
export function suppressionAddress(channel: Channel, address: string): string {
  const trimmed = address.trim();
  return channel === Channel.EMAIL ? trimmed.toLowerCase() : trimmed;
}

interface SuppressionRow {
  tenant: string;
  channel: Channel;
  address: string;
  reason: SuppressionReason;
  detail: string;
  notification_id: string | null;
  created_at: Date;
}

function toSuppression(row: SuppressionRow): Suppression {
  return {
    tenant: row.tenant,
    channel: row.channel,
    address: row.address,
    reason: row.reason,
    detail: row.detail,
    notificationId: row.notification_id ?? undefined,
    createdAt: row.created_at,
  };
}

/**
 * Suppresses an address; returns false when it already was (the first entry, and its reason,
 * is kept: a later bounce does not overwrite an operator's note or an earlier complaint).
 */
export async function addSuppression(db: Queryable, s: Suppression): Promise<boolean> {
  const result = await db.query(
    `INSERT INTO suppressions (tenant, channel, address, reason, detail, notification_id, created_at)
     VALUES ($1, $2, $3, $4, $5, $6, COALESCE($7, now()))
     ON CONFLICT (tenant, channel, address) DO NOTHING`,
    [s.tenant, s.channel, suppressionAddress(s.channel, s.address), s.reason, s.detail, s.notificationId ?? null, s.createdAt ?? null],
  );
  return (result.rowCount ?? 0) > 0;
}

/** The suppression of this address for the tenant, if any. */
export async function findSuppression(db: Queryable, tenant: string, channel: Channel, address: string): Promise<Suppression | undefined> {
  const result = await db.query<SuppressionRow>(
    `SELECT tenant, channel, address, reason, detail, notification_id, created_at
       FROM suppressions WHERE tenant = $1 AND channel = $2 AND address = $3`,
    [tenant, channel, suppressionAddress(channel, address)],
  );
  return result.rows[0] ? toSuppression(result.rows[0]) : undefined;
}

/** Lifts a suppression; returns whether there was one. */
export async function removeSuppression(db: Queryable, tenant: string, channel: Channel, address: string): Promise<boolean> {
  const result = await db.query(`DELETE FROM suppressions WHERE tenant = $1 AND channel = $2 AND address = $3`, [
    tenant,
    channel,
    suppressionAddress(channel, address),
  ]);
  return (result.rowCount ?? 0) > 0;
}
