import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Status, type Notification } from "../../gen/herald/v1/notification_pb.js";
import { SkipReason, type NotifyResponse, type SkippedChannel } from "../../gen/herald/v1/notification_service_pb.js";
import { channelName, statusName } from "./notification-table.js";

// A Notify answer in words: what was created on which channel (and, when the
// recipient's quiet hours held it, until when), and every channel skipped with
// its reason. The server's own detail ("the recipient opted out of CHANNEL_SMS
// for billing") is kept beside the reason: it names the category or address.

const reasons: Record<SkipReason, string> = {
  [SkipReason.UNSPECIFIED]: "not sent",
  [SkipReason.NO_ADDRESS]: "no address",
  [SkipReason.OPTED_OUT]: "opted out",
  [SkipReason.UNSUBSCRIBED]: "unsubscribed from the category",
  [SkipReason.OPTED_OUT_BY_DEFAULT]: "off by default for the category",
  [SkipReason.SUPPRESSED]: "address suppressed",
};

/** The reason in a few words; a reason newer than this page is named by its number. */
export const skipReasonText = (r: SkipReason): string => reasons[r] ?? `reason ${r}`;

/** The enum's name without its prefix, for data attributes and tests: "OPTED_OUT". */
export const skipReasonName = (r: SkipReason): string => SkipReason[r] ?? String(r);

/** "sms: opted out (the recipient opted out of CHANNEL_SMS for every category)". */
export function skippedText(s: SkippedChannel): string {
  const head = `${channelName(s.channel)}: ${skipReasonText(s.reason)}`;
  return s.detail ? `${head} (${s.detail})` : head;
}

/**
 * "email QUEUED", or, held by quiet hours, "push SCHEDULED, held by quiet hours until 05/12/2026, 07:00:00"
 * with the time as `time` writes it (the page's date-time format: the window may end tomorrow).
 */
export function createdText(n: Notification, time: (d: Date) => string): string {
  const head = `${channelName(n.channel)} ${statusName(n.status)}`;
  if (n.status !== Status.SCHEDULED || !n.deliverTime) return head;
  return `${head}, held by quiet hours until ${time(timestampDate(n.deliverTime))}`;
}

/** "2 created, 2 skipped"; "nothing created, 4 skipped" (creating nothing is an answer, not an error). */
export function answerSummary(res: Pick<NotifyResponse, "notifications" | "skipped">): string {
  const created = res.notifications.length === 0 ? "nothing created" : `${res.notifications.length} created`;
  return res.skipped.length === 0 ? created : `${created}, ${res.skipped.length} skipped`;
}
