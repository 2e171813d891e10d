import type { Channel } from "../../gen/herald/v1/notification_pb.js";
import type { Category, Preferences, QuietHours, RecipientProfile } from "../../gen/herald/v1/recipient_pb.js";
import { channelName } from "./notification-table.js";

// A recipient as the recipient view shows it, in words: their profile's facts,
// their preferences, and one row per category (the tenant's setting beside the
// person's own choice). Nothing here decides whether a notification goes out:
// that rule is the server's (Notify answers it per channel); this only says
// what is stored.

/** Long device tokens are shown by their start; the whole token is in the title. */
const TOKEN_SHOWN = 16;

export interface Fact {
  name: string;
  value: string;
  /** The full value when `value` is shortened. */
  title?: string;
}

/** "sms, push", in the proto's channel order; "none" for an empty list. */
export function channelsText(list: readonly Channel[]): string {
  return list.length === 0 ? "none" : [...list].sort((a, b) => a - b).map(channelName).join(", ");
}

const shortToken = (t: string) => (t.length > TOKEN_SHOWN ? `${t.slice(0, TOKEN_SHOWN)}…` : t);

/** Address, time zone, locale and data keys, "none"/"not set" where empty. */
export function profileFacts(p: RecipientProfile): Fact[] {
  const dataKeys = Object.keys(p.data).sort();
  return [
    { name: "email", value: p.email || "none" },
    { name: "phone", value: p.phone || "none" },
    {
      name: "push tokens",
      value: p.pushTokens.length === 0 ? "none" : p.pushTokens.map(shortToken).join(", "),
      ...(p.pushTokens.some((t) => t.length > TOKEN_SHOWN) ? { title: p.pushTokens.join("\n") } : {}),
    },
    { name: "webhook", value: p.webhookUrl || "none" },
    { name: "time zone", value: p.timeZone || "not set" },
    { name: "locale", value: p.locale || "not set" },
    // Keys only: values may be large and are the caller's own business.
    { name: "data", value: dataKeys.length === 0 ? "none" : dataKeys.join(", ") },
  ];
}

/** "22:00 to 07:00 every day, Europe/Zurich time"; "none" when unset. */
export function quietHoursText(q: QuietHours | undefined, timeZone: string): string {
  if (!q) return "none";
  const overnight = q.end < q.start ? " (overnight)" : "";
  // The server asks for a time zone before it stores quiet hours; a profile replaced since may have lost it.
  return `${q.start} to ${q.end}${overnight} every day, ${timeZone ? `${timeZone} time` : "but the profile has no time zone"}`;
}

export interface CategoryRow {
  category: string;
  /** The tenant's setting in words. */
  setting: string;
  /** The person's own choice in words. */
  choice: string;
  description: string;
  required: boolean;
  unsubscribed: boolean;
}

function settingText(c: Category | undefined): string {
  if (!c) return "not set by the tenant";
  if (c.required) return "required: opt-outs do not apply";
  if (c.defaultOptedOutChannels.length > 0) return `off by default on ${channelsText(c.defaultOptedOutChannels)}`;
  return "on for every channel";
}

function choiceText(own: Preferences["categories"][number] | undefined, required: boolean): string {
  if (!own) return "no choice of their own";
  const text = own.unsubscribed
    ? "unsubscribed"
    : own.optedOutChannels.length > 0
      ? `opted out of ${channelsText(own.optedOutChannels)}`
      : "every channel (their own choice)";
  return required ? `${text} (does not apply: required)` : text;
}

/**
 * One row per category the tenant set or the person made a choice for, by
 * name: a choice for a category the tenant never set still counts for Notify.
 */
export function categoryRows(categories: readonly Category[], prefs: Preferences | undefined): CategoryRow[] {
  const tenant = new Map(categories.map((c) => [c.category, c]));
  const own = new Map((prefs?.categories ?? []).map((c) => [c.category, c]));
  const names = [...new Set([...tenant.keys(), ...own.keys()])].sort();
  return names.map((name) => {
    const setting = tenant.get(name);
    const choice = own.get(name);
    const required = setting?.required ?? false;
    return {
      category: name,
      setting: settingText(setting),
      choice: choiceText(choice, required),
      description: setting?.description ?? "",
      required,
      unsubscribed: choice?.unsubscribed ?? false,
    };
  });
}
