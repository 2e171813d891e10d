import type pg from "pg";
import type { ValidProfile } from "../domain/recipient-profile.js";
import { pageTokenCodec, textField } from "./page-token.js";

// Recipient profiles (migration 010): one row per (tenant, user_id), replaced whole by a put.
// Every function takes the tenant, so no query can reach another tenant's people.

/** A stored profile: what PutRecipient validated (domain/recipient-profile.ts), with its times. */
export interface RecipientProfileRow extends ValidProfile {
  createdAt: Date;
  updatedAt: Date;
}

type Queryable = Pick<pg.ClientBase, "query">;

export interface ProfileRow {
  user_id: string;
  email: string;
  phone: string;
  push_tokens: string[];
  webhook_url: string;
  time_zone: string;
  locale: string;
  data: Record<string, string>;
  created_at: Date;
  updated_at: Date;
}

const COLUMNS = "user_id, email, phone, push_tokens, webhook_url, time_zone, locale, data, created_at, updated_at";

export function toProfile(r: ProfileRow): RecipientProfileRow {
  return {
    userId: r.user_id,
    email: r.email,
    phone: r.phone,
    pushTokens: r.push_tokens,
    webhookUrl: r.webhook_url,
    timeZone: r.time_zone,
    locale: r.locale,
    data: r.data,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

/** Creates or replaces the profile; `created` when none existed. */
export async function putRecipient(db: Queryable, tenant: string, p: ValidProfile): Promise<{ profile: RecipientProfileRow; created: boolean }> {
  // xmax = 0 only on a row this statement inserted (an update leaves the old version's xid there).
  const result = await db.query<ProfileRow & { created: boolean }>(
    `INSERT INTO recipients (tenant, user_id, email, phone, push_tokens, webhook_url, time_zone, locale, data)
     VALUES ($1, $2, $3, $4, $5::text[], $6, $7, $8, $9::jsonb)
     ON CONFLICT (tenant, user_id) DO UPDATE
       SET email = EXCLUDED.email, phone = EXCLUDED.phone, push_tokens = EXCLUDED.push_tokens,
           webhook_url = EXCLUDED.webhook_url, time_zone = EXCLUDED.time_zone, locale = EXCLUDED.locale,
           data = EXCLUDED.data, updated_at = now()
     RETURNING ${COLUMNS}, (xmax = 0) AS created`,
    [tenant, p.userId, p.email, p.phone, p.pushTokens, p.webhookUrl, p.timeZone, p.locale, JSON.stringify(p.data)],
  );
  const row = result.rows[0]!;
  return { profile: toProfile(row), created: row.created };
}

export async function getRecipient(db: Queryable, tenant: string, userId: string): Promise<RecipientProfileRow | undefined> {
  const result = await db.query<ProfileRow>(`SELECT ${COLUMNS} FROM recipients WHERE tenant = $1 AND user_id = $2`, [tenant, userId]);
  return result.rows[0] ? toProfile(result.rows[0]) : undefined;
}

/** Removes the profile; returns it as it was, undefined when there was none. */
export async function deleteRecipient(db: Queryable, tenant: string, userId: string): Promise<RecipientProfileRow | undefined> {
  const result = await db.query<ProfileRow>(`DELETE FROM recipients WHERE tenant = $1 AND user_id = $2 RETURNING ${COLUMNS}`, [tenant, userId]);
  return result.rows[0] ? toProfile(result.rows[0]) : undefined;
}

export interface RecipientPage {
  /** In user_id byte order. */
  recipients: RecipientProfileRow[];
  /** "" on the last page. */
  nextPageToken: string;
}

// The cursor is the last user id of the page (a user id is at most 256 code points: 512 UTF-16 units).
const pageTokens = pageTokenCodec({ after: textField(512) });

/**
 * One page of the tenant's profiles in user_id byte order (the column's "C" collation). A page
 * token this server did not issue throws InvalidPageTokenError (INVALID_ARGUMENT at the edge).
 */
export async function listRecipients(db: Queryable, tenant: string, page: { pageSize: number; pageToken: string }): Promise<RecipientPage> {
  const after = pageTokens.decode(page.pageToken)?.after;
  const result = await db.query<ProfileRow>(
    `SELECT ${COLUMNS} FROM recipients
     WHERE tenant = $1 AND ($2::text IS NULL OR user_id > $2::text)
     ORDER BY user_id LIMIT $3`,
    [tenant, after ?? null, page.pageSize + 1],
  );
  const rows = result.rows.slice(0, page.pageSize).map(toProfile);
  const more = result.rows.length > page.pageSize;
  return { recipients: rows, nextPageToken: more ? pageTokens.encode({ after: rows.at(-1)!.userId }) : "" };
}
