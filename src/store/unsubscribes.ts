import { randomBytes } from "node:crypto";
import type pg from "pg";
import type { Channel } from "../../gen/herald/v1/notification_pb.js";
import { channelVerdict } from "../domain/preferences.js";
import { createBatchedLookups, type BatchedLookups } from "./batched-lookups.js";
import { toCategory, toPreferences, type CategoryRow, type PreferencesRow } from "./preferences.js";

// One-click unsubscribes (migration 015; README "One-click unsubscribe"): the key their links are
// signed with, the click recorded, and the check the workers make before each send of a category
// (unsubscribed, or opted out of its channel since it was accepted).

type Queryable = Pick<pg.ClientBase, "query">;

const SECRET_NAME = "unsubscribe-link";

/**
 * The deployment's key for unsubscribe links (domain/unsubscribe-token.ts), made by the first
 * process that needs it: workers sign with it, every API instance verifies with it.
 */
export async function loadUnsubscribeKey(db: Queryable): Promise<Buffer> {
  // Concurrent first starts: one insert wins, and both read the winner's key.
  await db.query("INSERT INTO herald_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING", [SECRET_NAME, randomBytes(32)]);
  const found = await db.query<{ value: Buffer }>("SELECT value FROM herald_secrets WHERE name = $1", [SECRET_NAME]);
  return found.rows[0]!.value;
}

export interface UnsubscribeRequest {
  tenant: string;
  userId: string;
  category: string;
  notificationId: string;
}

export type UnsubscribeResult =
  /** Stored now. */
  | { kind: "recorded" }
  /** They had clicked before: nothing changed. */
  | { kind: "repeat" }
  /** The tenant made the category required: nobody may opt out of it; nothing stored. */
  | { kind: "required" };

/**
 * Records the click, unless the category is required (read now, not when the link was made: a
 * category the tenant has since made required refuses it). Idempotent: a repeat keeps the first
 * click's time and message. One statement.
 */
export async function recordUnsubscribe(db: Queryable, r: UnsubscribeRequest): Promise<UnsubscribeResult> {
  const result = await db.query<{ required: boolean; recorded: boolean }>(
    `WITH setting AS (
       SELECT EXISTS (SELECT 1 FROM notification_categories WHERE tenant = $1 AND category = $3 AND required) AS required
     ), saved AS (
       INSERT INTO unsubscribes (tenant, user_id, category, notification_id)
       SELECT $1, $2, $3, $4 FROM setting WHERE NOT setting.required
       ON CONFLICT (tenant, user_id, category) DO NOTHING
       RETURNING 1
     )
     SELECT setting.required, EXISTS (SELECT 1 FROM saved) AS recorded FROM setting`,
    [r.tenant, r.userId, r.category, r.notificationId],
  );
  const row = result.rows[0]!;
  return { kind: row.required ? "required" : row.recorded ? "recorded" : "repeat" };
}

/** A send's question: may this recipient get a notification of this category on this channel, and is it required? */
export interface CategoryKey {
  tenant: string;
  userId: string;
  category: string;
  channel: Channel;
}

export interface CategoryCheck {
  /** The tenant made the category required: it goes out whatever the recipient chose, and carries no unsubscribe link. */
  required: boolean;
  /** The recipient unsubscribed from it: by a link (since when), or in the preferences the tenant set. */
  unsubscribed?: { via: "link"; since: Date } | { via: "preferences" };
  /** Their preferences (or the category's default) keep it off this channel: why, in channelVerdict's words. */
  optedOut?: { reason: "opted_out" | "opted_out_by_default"; detail: string };
}

/** One send's row: the click, and the preferences and category rows as preferences.ts reads them (null: none). */
type CheckRow = { ord: number; clicked_at: Date | null; category_updated_at: Date | null } & Nullable<PreferencesRow> & Nullable<Omit<CategoryRow, "updated_at">>;
type Nullable<T> = { [K in keyof T]: T[K] | null };

/**
 * The checks of many sends in one statement, in the order asked: the workers' lookups go through
 * it in batches (batched-lookups.ts). Every join is on a primary key. The verdict is Notify's own
 * (domain/preferences.ts channelVerdict), so a send is held to the choices Notify would have
 * applied, as they stand when it goes out.
 */
export async function checkCategories(db: Queryable, keys: readonly CategoryKey[]): Promise<CategoryCheck[]> {
  if (keys.length === 0) return [];
  const result = await db.query<CheckRow>(
    `SELECT q.ord::int AS ord, u.created_at AS clicked_at,
            p.opted_out_channels, p.categories, p.quiet_start, p.quiet_end, p.updated_at,
            c.category, c.required, c.default_opted_out_channels, c.description, c.updated_at AS category_updated_at
       FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS q(tenant, user_id, category, ord)
       LEFT JOIN notification_categories c ON c.tenant = q.tenant AND c.category = q.category
       LEFT JOIN unsubscribes u ON u.tenant = q.tenant AND u.user_id = q.user_id AND u.category = q.category
       LEFT JOIN recipient_preferences p ON p.tenant = q.tenant AND p.user_id = q.user_id`,
    [keys.map((k) => k.tenant), keys.map((k) => k.userId), keys.map((k) => k.category)],
  );
  const checks: CategoryCheck[] = keys.map(() => ({ required: false }));
  for (const row of result.rows) {
    const key = keys[row.ord - 1]!;
    const required = row.required ?? false;
    if (required) {
      checks[row.ord - 1] = { required };
      continue;
    }
    if (row.clicked_at) {
      checks[row.ord - 1] = { required, unsubscribed: { via: "link", since: row.clicked_at } };
      continue;
    }
    const prefs = row.updated_at === null ? undefined : toPreferences(row as PreferencesRow);
    const setting = row.category === null ? undefined : toCategory({ ...(row as Omit<CategoryRow, "updated_at">), updated_at: row.category_updated_at! });
    const verdict = channelVerdict(prefs, key.category, key.channel, setting);
    checks[row.ord - 1] = verdict.allowed
      ? { required }
      : verdict.reason === "unsubscribed"
        ? { required, unsubscribed: { via: "preferences" } }
        : { required, optedOut: { reason: verdict.reason, detail: verdict.detail } };
  }
  return checks;
}

/** The workers' category checks, batched: one statement per batch of sends of a category. */
export function createCategoryChecks(deps: { db: Queryable; /** @defaultValue 500 */ maxBatch?: number }): BatchedLookups<CategoryKey, CategoryCheck> {
  return createBatchedLookups((keys: CategoryKey[]) => checkCategories(deps.db, keys), { maxBatch: deps.maxBatch });
}
