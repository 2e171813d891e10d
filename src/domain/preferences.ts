import { Channel } from "../../gen/herald/v1/notification_pb.js";
import type { Category, Preferences } from "../../gen/herald/v1/recipient_pb.js";
import { checkQuietHours, type QuietHours } from "./quiet-hours.js";
import { controlChars, invalidArgument, longerThan, validateCategoryName } from "./validate.js";

// What a recipient agreed to receive, and the one rule that reads it. Checked as strictly as
// the rest of the contract (INVALID_ARGUMENT naming the field), stored as checked, and applied by
// channelVerdict wherever Herald decides whether a notification of a category may go out on a
// channel.

const maxCategories = 64;
const descriptionMaxChars = 256;

export interface CategoryChoice {
  category: string;
  optedOutChannels: Channel[];
  unsubscribed: boolean;
}

/** Preferences as stored (store/preferences.ts) and read by channelVerdict. */
export interface StoredPreferences {
  optedOutChannels: Channel[];
  categories: CategoryChoice[];
  quietHours?: QuietHours;
}

/** A tenant's category setting as stored. */
export interface CategorySetting {
  category: string;
  required: boolean;
  defaultOptedOutChannels: Channel[];
  description: string;
}

function checkChannels(channels: readonly Channel[], path: string): Channel[] {
  const seen = new Set<Channel>();
  channels.forEach((c, i) => {
    if (c === Channel.UNSPECIFIED || !(c in Channel)) throw invalidArgument(`${path}[${i}]`, `must be a deliverable channel, got ${c}`);
    if (seen.has(c)) throw invalidArgument(`${path}[${i}]`, "repeats an earlier channel");
    seen.add(c);
  });
  return [...seen].sort((a, b) => a - b);
}

/** Throws INVALID_ARGUMENT naming the field; returns the preferences as they are to be stored (channels sorted). */
export function checkPreferences(p: Preferences, path: string, profileTimeZone: string): StoredPreferences {
  const optedOutChannels = checkChannels(p.optedOutChannels, `${path}.opted_out_channels`);
  if (p.categories.length > maxCategories) throw invalidArgument(`${path}.categories`, `must have at most ${maxCategories} entries`);
  const seen = new Set<string>();
  const categories = p.categories.map((c, i): CategoryChoice => {
    const at = `${path}.categories[${i}]`;
    validateCategoryName(c.category, `${at}.category`);
    if (seen.has(c.category)) throw invalidArgument(`${at}.category`, `repeats ${JSON.stringify(c.category)}`);
    seen.add(c.category);
    return { category: c.category, optedOutChannels: checkChannels(c.optedOutChannels, `${at}.opted_out_channels`), unsubscribed: c.unsubscribed };
  });
  let quietHours: QuietHours | undefined;
  if (p.quietHours) {
    checkQuietHours(p.quietHours, `${path}.quiet_hours`);
    // Read in the recipient's zone: without one there is no "22:00" to hold a notification to.
    if (profileTimeZone === "") throw invalidArgument(`${path}.quiet_hours`, "needs the recipient's time_zone: set it with PutRecipient first");
    quietHours = { start: p.quietHours.start, end: p.quietHours.end };
  }
  return { optedOutChannels, categories, ...(quietHours ? { quietHours } : {}) };
}

/** Throws INVALID_ARGUMENT naming the field; returns the setting as it is to be stored. */
export function checkCategory(c: Category | undefined, path: string): CategorySetting {
  if (!c) throw invalidArgument(path, "is required");
  validateCategoryName(c.category, `${path}.category`);
  if (longerThan(c.description, descriptionMaxChars)) throw invalidArgument(`${path}.description`, `must be at most ${descriptionMaxChars} characters`);
  if (controlChars.test(c.description)) throw invalidArgument(`${path}.description`, "must not contain control characters");
  const defaults = checkChannels(c.defaultOptedOutChannels, `${path}.default_opted_out_channels`);
  if (c.required && defaults.length > 0) {
    throw invalidArgument(`${path}.default_opted_out_channels`, "must be empty for a required category (nobody may be opted out of it)");
  }
  return { category: c.category, required: c.required, defaultOptedOutChannels: defaults, description: c.description };
}

export type ChannelVerdict =
  | { allowed: true }
  | { allowed: false; reason: "opted_out" | "unsubscribed" | "opted_out_by_default"; detail: string };

/**
 * Whether a notification of `category` ("" for none) may go to the recipient on `channel`:
 * a required category always may; otherwise an unsubscribe from the category, an opt-out of the
 * channel for it or for every category, or (with no choice of the recipient's own for the
 * category) the tenant's default keeps it from going.
 */
export function channelVerdict(prefs: StoredPreferences | undefined, category: string, channel: Channel, setting?: CategorySetting): ChannelVerdict {
  const name = `CHANNEL_${Channel[channel]}`;
  const of = category === "" ? "" : ` of category ${category}`;
  if (setting?.required) return { allowed: true };
  const own = category === "" ? undefined : prefs?.categories.find((c) => c.category === category);
  if (own?.unsubscribed) return { allowed: false, reason: "unsubscribed", detail: `the recipient unsubscribed from ${category}` };
  if (own?.optedOutChannels.includes(channel)) return { allowed: false, reason: "opted_out", detail: `the recipient opted out of ${name} for ${category}` };
  if (prefs?.optedOutChannels.includes(channel)) return { allowed: false, reason: "opted_out", detail: `the recipient opted out of ${name}${of ? " for every category" : ""}` };
  if (!own && setting?.defaultOptedOutChannels.includes(channel)) {
    return { allowed: false, reason: "opted_out_by_default", detail: `${category} is off on ${name} unless the recipient opts in` };
  }
  return { allowed: true };
}

/**
 * Preferences with the recipient's one-click unsubscribes (their own rows, store/unsubscribes.ts)
 * read in: each of those categories unsubscribed, its channel choices kept. Undefined only when
 * there is neither.
 */
export function withUnsubscribes<P extends StoredPreferences>(prefs: P | undefined, categories: readonly string[], base: () => P): P | undefined {
  if (categories.length === 0) return prefs;
  const own = prefs ?? base();
  const merged = own.categories.map((c) => (categories.includes(c.category) ? { ...c, unsubscribed: true } : c));
  for (const category of categories) {
    if (!merged.some((c) => c.category === category)) merged.push({ category, optedOutChannels: [], unsubscribed: true });
  }
  return { ...own, categories: merged };
}
