import type pg from "pg";
import { withUnsubscribes, type CategorySetting, type StoredPreferences } from "../domain/preferences.js";
import { toCategory, toPreferences, type CategoryRow, type PreferencesRow } from "./preferences.js";
import { toProfile, type ProfileRow, type RecipientProfileRow } from "./recipients.js";

// What Notify reads before it fans out, in one statement: the recipient's profile, their
// preferences and the tenant's setting for the event's category.

type Queryable = Pick<pg.ClientBase, "query">;

export interface NotifyContext {
  profile: RecipientProfileRow;
  /** Undefined when the recipient set none. */
  preferences?: StoredPreferences;
  /** Undefined without a category, or when the tenant set none for it. */
  setting?: CategorySetting;
}

type Row = ProfileRow & {
  p_opted_out_channels: PreferencesRow["opted_out_channels"] | null;
  p_categories: PreferencesRow["categories"] | null;
  p_quiet_start: string | null;
  p_quiet_end: string | null;
  p_updated_at: Date | null;
  c_category: string | null;
  c_required: boolean;
  c_default_opted_out_channels: CategoryRow["default_opted_out_channels"];
  c_description: string;
  c_updated_at: Date;
  /** The recipient clicked the category's one-click unsubscribe link (store/unsubscribes.ts). */
  u_clicked: boolean;
};

/** The recipient's context for an event of `category` ("" for none); undefined when the tenant has no such recipient. */
export async function readNotifyContext(db: Queryable, tenant: string, userId: string, category: string): Promise<NotifyContext | undefined> {
  const result = await db.query<Row>(
    `SELECT r.user_id, r.email, r.phone, r.push_tokens, r.webhook_url, r.time_zone, r.locale, r.data, r.created_at, r.updated_at,
            p.opted_out_channels AS p_opted_out_channels, p.categories AS p_categories, p.quiet_start AS p_quiet_start,
            p.quiet_end AS p_quiet_end, p.updated_at AS p_updated_at,
            c.category AS c_category, c.required AS c_required, c.default_opted_out_channels AS c_default_opted_out_channels,
            c.description AS c_description, c.updated_at AS c_updated_at,
            EXISTS (SELECT 1 FROM unsubscribes u WHERE u.tenant = r.tenant AND u.user_id = r.user_id AND u.category = $3) AS u_clicked
       FROM recipients r
       LEFT JOIN recipient_preferences p ON p.tenant = r.tenant AND p.user_id = r.user_id
       LEFT JOIN notification_categories c ON c.tenant = r.tenant AND c.category = $3
      WHERE r.tenant = $1 AND r.user_id = $2`,
    [tenant, userId, category],
  );
  const row = result.rows[0];
  if (!row) return undefined;
  const context: NotifyContext = { profile: toProfile(row) };
  if (row.p_updated_at !== null) {
    context.preferences = toPreferences({
      opted_out_channels: row.p_opted_out_channels ?? [],
      categories: row.p_categories ?? [],
      quiet_start: row.p_quiet_start ?? "",
      quiet_end: row.p_quiet_end ?? "",
      updated_at: row.p_updated_at,
    });
  }
  // A click is an unsubscribe like one set in the preferences (channelVerdict reads both the same way).
  if (row.u_clicked) context.preferences = withUnsubscribes(context.preferences, [category], () => ({ optedOutChannels: [], categories: [] }));
  if (row.c_category !== null) {
    context.setting = toCategory({
      category: row.c_category,
      required: row.c_required,
      default_opted_out_channels: row.c_default_opted_out_channels,
      description: row.c_description,
      updated_at: row.c_updated_at,
    });
  }
  return context;
}
