import type pg from "pg";
import { Channel } from "../../gen/herald/v1/notification_pb.js";
import { integerField, pageTokenCodec, textField } from "./page-token.js";

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

/** A lookup of findSuppressions: the address as given (matched normalized). */
export interface SuppressionKey {
  tenant: string;
  channel: Channel;
  address: string;
}

/**
 * The suppressions of many addresses in one statement, in the order asked (undefined: not
 * suppressed). The workers' lookups go through it in batches (suppression-lookups.ts): one round
 * trip for every send that waited, not one per send.
 */
export async function findSuppressions(db: Queryable, keys: readonly SuppressionKey[]): Promise<Array<Suppression | undefined>> {
  if (keys.length === 0) return [];
  const result = await db.query<SuppressionRow & { ord: number }>(
    `SELECT q.ord::int AS ord, s.tenant, s.channel, s.address, s.reason, s.detail, s.notification_id, s.created_at
       FROM unnest($1::text[], $2::smallint[], $3::text[]) WITH ORDINALITY AS q(tenant, channel, address, ord)
       JOIN suppressions s ON s.tenant = q.tenant AND s.channel = q.channel AND s.address = q.address`,
    [keys.map((k) => k.tenant), keys.map((k) => k.channel), keys.map((k) => suppressionAddress(k.channel, k.address))],
  );
  const found: Array<Suppression | undefined> = keys.map(() => undefined);
  for (const row of result.rows) found[row.ord - 1] = toSuppression(row);
  return found;
}

/** Lifts a suppression; returns the entry that was lifted, undefined when there was none. */
export async function removeSuppression(db: Queryable, tenant: string, channel: Channel, address: string): Promise<Suppression | undefined> {
  const result = await db.query<SuppressionRow>(
    `DELETE FROM suppressions WHERE tenant = $1 AND channel = $2 AND address = $3
     RETURNING tenant, channel, address, reason, detail, notification_id, created_at`,
    [tenant, channel, suppressionAddress(channel, address)],
  );
  return result.rows[0] ? toSuppression(result.rows[0]) : undefined;
}

export interface SuppressionPage {
  /** Newest first. */
  suppressions: Suppression[];
  /** "" on the last page. */
  nextPageToken: string;
}

// A page token is the last row's position in the (created_at DESC, channel, address) order, the
// primary key breaking ties. created_at travels as exact microseconds (a Date would round to ms
// and a page could repeat or skip rows added in the same millisecond); its range is
// google.protobuf.Timestamp's, so a forged token cannot overflow the query.
const pageTokens = pageTokenCodec({
  createdUs: integerField(-62_135_596_800_000_000n, 253_402_300_799_999_999n),
  channel: integerField(1n, 32_767n),
  address: textField(4096),
});

/**
 * One page of the tenant's suppressions, newest first, optionally of one channel. A page_token
 * this server did not issue throws InvalidPageTokenError (INVALID_ARGUMENT at the edge).
 */
export async function listSuppressions(
  db: Queryable,
  tenant: string,
  query: { channel?: Channel },
  page: { pageSize: number; pageToken: string },
): Promise<SuppressionPage> {
  const after = pageTokens.decode(page.pageToken);
  const params: unknown[] = [tenant];
  const param = (value: unknown): string => `$${params.push(value)}`;
  const where = ["tenant = $1"];
  if (query.channel !== undefined) where.push(`channel = ${param(query.channel)}`);
  if (after) {
    // Mixed directions (created_at DESC, the key ASC), so no single row comparison.
    const at = `(timestamptz 'epoch' + ${param(after.createdUs)}::bigint * interval '1 microsecond')`;
    where.push(`(created_at < ${at} OR (created_at = ${at} AND (channel, address) > (${param(Number(after.channel))}::smallint, ${param(after.address)})))`);
  }
  const limit = param(page.pageSize + 1);
  const result = await db.query<SuppressionRow & { created_us: string }>(
    `SELECT tenant, channel, address, reason, detail, notification_id, created_at,
            (extract(epoch FROM created_at) * 1000000)::bigint::text AS created_us
       FROM suppressions WHERE ${where.join(" AND ")}
      ORDER BY created_at DESC, channel, address
      LIMIT ${limit}`,
    params,
  );
  const rows = result.rows.slice(0, page.pageSize);
  const last = rows[rows.length - 1];
  const more = result.rows.length > page.pageSize && last !== undefined;
  return {
    suppressions: rows.map(toSuppression),
    nextPageToken: more ? pageTokens.encode({ createdUs: last.created_us, channel: String(last.channel), address: last.address }) : "",
  };
}
