import { create } from "@bufbuild/protobuf";
import {
  Channel,
  NotificationSpecSchema,
  Priority,
  RecipientSchema,
  type NotificationSpec,
  type Recipient,
} from "../../gen/herald/v1/notification_pb.js";
import { SkipReason } from "../../gen/herald/v1/notification_service_pb.js";
import type { ChannelPlan } from "./notify-request.js";
import { channelVerdict, type CategorySetting, type StoredPreferences } from "./preferences.js";
import { quietUntil } from "./quiet-hours.js";
import type { ValidProfile } from "./recipient-profile.js";

// Notify's fan-out, as pure rules: which of the considered channels a recipient gets the event on
// (an address for it, preferences that allow it, an address nobody suppressed), what each
// notification holds, and whether quiet hours hold it back. The handler reads the profile,
// preferences and suppressions, and stores what these decide.

/** A channel (or one push token) Notify sends nothing to, and why. */
export interface Skip {
  channel: Channel;
  reason: SkipReason;
  detail: string;
}

/** One notification to create: a channel and one address of the profile's for it. */
export interface Target {
  channel: Channel;
  address: NonNullable<Recipient["address"]["case"]>;
  value: string;
  body: NotificationSpec["body"];
}

const name = (c: Channel): string => `CHANNEL_${Channel[c]}`;

const verdictReasons = {
  opted_out: SkipReason.OPTED_OUT,
  unsubscribed: SkipReason.UNSUBSCRIBED,
  opted_out_by_default: SkipReason.OPTED_OUT_BY_DEFAULT,
} as const;

/** The profile's addresses for a channel (a push token each), as Recipient address cases. */
function addressesOf(profile: ValidProfile, channel: Channel): Array<Pick<Target, "address" | "value">> {
  switch (channel) {
    case Channel.EMAIL:
      return profile.email === "" ? [] : [{ address: "email", value: profile.email }];
    case Channel.SMS:
      return profile.phone === "" ? [] : [{ address: "phone", value: profile.phone }];
    case Channel.PUSH:
      return profile.pushTokens.map((value) => ({ address: "deviceToken", value }));
    case Channel.WEBHOOK:
      return profile.webhookUrl === "" ? [] : [{ address: "webhookUrl", value: profile.webhookUrl }];
    default:
      return [];
  }
}

/**
 * The addresses the event may go to, in channel order, and the channels it may not: no address
 * for it, or the recipient's preferences (channelVerdict, the one rule) keep it off.
 */
export function notifyTargets(
  plans: readonly ChannelPlan[],
  profile: ValidProfile,
  choice: { category: string; preferences?: StoredPreferences; setting?: CategorySetting },
): { targets: Target[]; skipped: Skip[] } {
  const targets: Target[] = [];
  const skipped: Skip[] = [];
  for (const { channel, body } of plans) {
    const addresses = addressesOf(profile, channel);
    if (addresses.length === 0) {
      skipped.push({ channel, reason: SkipReason.NO_ADDRESS, detail: `the recipient has no address for ${name(channel)}` });
      continue;
    }
    const verdict = channelVerdict(choice.preferences, choice.category, channel, choice.setting);
    if (!verdict.allowed) {
      skipped.push({ channel, reason: verdictReasons[verdict.reason], detail: verdict.detail });
      continue;
    }
    for (const a of addresses) targets.push({ channel, ...a, body });
  }
  return { targets, skipped };
}

/** The skip for a target whose address is suppressed (`reason`: the suppression's, e.g. hard_bounce). */
export function suppressedSkip(target: Target, reason: string): Skip {
  // A device token can be 4 KiB: its tail is enough to tell which.
  const shown = target.address === "deviceToken" ? `device token …${target.value.slice(-8)}` : target.value;
  return { channel: target.channel, reason: SkipReason.SUPPRESSED, detail: `${shown} is suppressed (${reason})` };
}

/**
 * When quiet hours hold the event back: the instant they end in the recipient's zone, and the
 * words for its first status event. PRIORITY_HIGH is never held; nor is anyone without quiet
 * hours (they need a time zone, which SetPreferences insists on).
 */
export function quietHold(
  priority: Priority,
  profile: Pick<ValidProfile, "timeZone">,
  preferences: StoredPreferences | undefined,
  now: Date,
): { until: Date; detail: string } | undefined {
  const q = preferences?.quietHours;
  if (priority === Priority.HIGH || !q || profile.timeZone === "") return undefined;
  const until = quietUntil(now, profile.timeZone, q);
  if (!until) return undefined;
  return { until, detail: `accepted; held by the recipient's quiet hours (${q.start}-${q.end} ${profile.timeZone}) until ${until.toISOString()}` };
}

/** Variables made from the profile's data: `recipient.<key>` for each key that can be a variable name. */
const dataKey = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * A body with the profile's data added to a template's variables as `recipient.<key>`, unless the
 * request used the `recipient` name itself (then its variables are taken as they are).
 */
export function withRecipientData(body: NotificationSpec["body"], data: Record<string, string>): NotificationSpec["body"] {
  if (body.case !== "template") return body;
  if (Object.keys(body.value.variables).some((k) => k === "recipient" || k.startsWith("recipient."))) return body;
  const variables = { ...body.value.variables };
  for (const [k, v] of Object.entries(data)) if (dataKey.test(k)) variables[`recipient.${k}`] = v;
  return { case: "template", value: { ...body.value, variables } };
}

/** The notification for one target; `locale` is the profile's (a template renders its variant for it). */
export function targetSpec(
  target: Target,
  req: { userId: string; category: string; priority: Priority; labels: Record<string, string>; locale: string },
): NotificationSpec {
  return create(NotificationSpecSchema, {
    channel: target.channel,
    recipient: create(RecipientSchema, { userId: req.userId, address: { case: target.address, value: target.value } }),
    body: target.body,
    priority: req.priority,
    labels: req.labels,
    category: req.category,
    locale: req.locale,
  });
}
