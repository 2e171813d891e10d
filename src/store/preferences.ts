import type pg from "pg";
import type { Channel } from "../../gen/herald/v1/notification_pb.js";
import { withUnsubscribes, type CategoryChoice, type CategorySetting, type StoredPreferences } from "../domain/preferences.js";

// Recipient preferences and tenant categories (migration 011), stored as domain/preferences.ts
// checked them. Every function takes the tenant.

type Queryable = Pick<pg.ClientBase, "query">;

export interface PreferencesRow {
  opted_out_channels: Channel[];
  categories: Array<{ category: string; opted_out_channels: Channel[]; unsubscribed: boolean }>;
  quiet_start: string;
  quiet_end: string;
  updated_at: Date;
}

export function toPreferences(r: PreferencesRow): StoredPreferences & { updatedAt: Date } {
  return {
    optedOutChannels: r.opted_out_channels,
    categories: r.categories.map((c): CategoryChoice => ({ category: c.category, optedOutChannels: c.opted_out_channels, unsubscribed: c.unsubscribed })),
    ...(r.quiet_start !== "" ? { quietHours: { start: r.quiet_start, end: r.quiet_end } } : {}),
    updatedAt: r.updated_at,
  };
}

const PREFERENCE_COLUMNS = "opted_out_channels, categories, quiet_start, quiet_end, updated_at";

/**
 * The recipient's preferences, read with their profile in one statement: undefined when the
 * tenant has no such recipient; `preferences` undefined when none were set. One-click unsubscribes
 * (store/unsubscribes.ts) are read in as `unsubscribed` categories; with no preferences row of
 * their own, `updatedAt` is the latest click.
 */
export async function getPreferences(
  db: Queryable,
  tenant: string,
  userId: string,
): Promise<{ preferences?: StoredPreferences & { updatedAt: Date } } | undefined> {
  const r = await db.query<(PreferencesRow | Record<keyof PreferencesRow, null>) & { clicked: string[]; clicked_at: Date | null }>(
    `SELECT p.opted_out_channels, p.categories, p.quiet_start, p.quiet_end, p.updated_at,
            ARRAY(SELECT u.category FROM unsubscribes u WHERE u.tenant = r.tenant AND u.user_id = r.user_id ORDER BY u.category) AS clicked,
            (SELECT max(u.created_at) FROM unsubscribes u WHERE u.tenant = r.tenant AND u.user_id = r.user_id) AS clicked_at
       FROM recipients r LEFT JOIN recipient_preferences p ON p.tenant = r.tenant AND p.user_id = r.user_id
      WHERE r.tenant = $1 AND r.user_id = $2`,
    [tenant, userId],
  );
  const row = r.rows[0];
  if (!row) return undefined;
  const own = row.updated_at === null ? undefined : toPreferences(row);
  const preferences = withUnsubscribes(own, row.clicked, () => ({ optedOutChannels: [], categories: [], updatedAt: row.clicked_at ?? new Date(0) }));
  return preferences ? { preferences } : {};
}

/**
 * Replaces the recipient's preferences; undefined when the recipient has no profile (none is
 * created). Whole, one-click unsubscribes included: the clicks of categories the new preferences
 * do not keep unsubscribed are deleted in the same statement (GetPreferences showed them as
 * unsubscribed; leaving one out subscribes the recipient again).
 */
export async function setPreferences(db: Queryable, tenant: string, userId: string, p: StoredPreferences): Promise<(StoredPreferences & { updatedAt: Date }) | undefined> {
  const categories = p.categories.map((c) => ({ category: c.category, opted_out_channels: c.optedOutChannels, unsubscribed: c.unsubscribed }));
  const kept = p.categories.filter((c) => c.unsubscribed).map((c) => c.category);
  const r = await db.query<PreferencesRow>(
    `WITH saved AS (
       INSERT INTO recipient_preferences (tenant, user_id, opted_out_channels, categories, quiet_start, quiet_end)
       SELECT tenant, user_id, $3::smallint[], $4::jsonb, $5, $6 FROM recipients WHERE tenant = $1 AND user_id = $2
       ON CONFLICT (tenant, user_id) DO UPDATE
         SET opted_out_channels = EXCLUDED.opted_out_channels, categories = EXCLUDED.categories,
             quiet_start = EXCLUDED.quiet_start, quiet_end = EXCLUDED.quiet_end, updated_at = now()
       RETURNING ${PREFERENCE_COLUMNS}
     ), resubscribed AS (
       DELETE FROM unsubscribes
        WHERE tenant = $1 AND user_id = $2 AND NOT (category = ANY($7::text[])) AND EXISTS (SELECT 1 FROM saved)
     )
     SELECT * FROM saved`,
    [tenant, userId, p.optedOutChannels, JSON.stringify(categories), p.quietHours?.start ?? "", p.quietHours?.end ?? "", kept],
  );
  return r.rows[0] ? toPreferences(r.rows[0]) : undefined;
}

export interface CategoryRow {
  category: string;
  required: boolean;
  default_opted_out_channels: Channel[];
  description: string;
  updated_at: Date;
}

const CATEGORY_COLUMNS = "category, required, default_opted_out_channels, description, updated_at";

export function toCategory(r: CategoryRow): CategorySetting & { updatedAt: Date } {
  return { category: r.category, required: r.required, defaultOptedOutChannels: r.default_opted_out_channels, description: r.description, updatedAt: r.updated_at };
}

/** Creates or replaces the tenant's setting for a category; `created` when none existed. */
export async function putCategory(db: Queryable, tenant: string, c: CategorySetting): Promise<{ category: CategorySetting & { updatedAt: Date }; created: boolean }> {
  const r = await db.query<CategoryRow & { created: boolean }>(
    `INSERT INTO notification_categories (tenant, category, required, default_opted_out_channels, description)
     VALUES ($1, $2, $3, $4::smallint[], $5)
     ON CONFLICT (tenant, category) DO UPDATE
       SET required = EXCLUDED.required, default_opted_out_channels = EXCLUDED.default_opted_out_channels,
           description = EXCLUDED.description, updated_at = now()
     RETURNING ${CATEGORY_COLUMNS}, (xmax = 0) AS created`,
    [tenant, c.category, c.required, c.defaultOptedOutChannels, c.description],
  );
  return { category: toCategory(r.rows[0]!), created: r.rows[0]!.created };
}

/** Every category the tenant set, by name. */
export async function listCategories(db: Queryable, tenant: string): Promise<Array<CategorySetting & { updatedAt: Date }>> {
  const r = await db.query<CategoryRow>(`SELECT ${CATEGORY_COLUMNS} FROM notification_categories WHERE tenant = $1 ORDER BY category`, [tenant]);
  return r.rows.map(toCategory);
}

/** Removes a category's setting; returns it as it was, undefined when there was none. */
export async function deleteCategory(db: Queryable, tenant: string, category: string): Promise<(CategorySetting & { updatedAt: Date }) | undefined> {
  const r = await db.query<CategoryRow>(`DELETE FROM notification_categories WHERE tenant = $1 AND category = $2 RETURNING ${CATEGORY_COLUMNS}`, [tenant, category]);
  return r.rows[0] ? toCategory(r.rows[0]) : undefined;
}
