import { Channel, type Content, type NotificationSpec } from "../../gen/herald/v1/notification_pb.js";
import type { NotifyRequest } from "../../gen/herald/v1/notification_service_pb.js";
import {
  invalidArgument,
  validateBody,
  validateCategoryName,
  validateIdempotencyKey,
  validateLabels,
  validatePriority,
  validateUserId,
} from "./validate.js";

// Notify's request, checked as strictly as Create's: every rule names its field, in field-number
// order. What comes out is the list of channels to consider, each with the body it would carry.

/** Every deliverable channel, in enum order: the order Notify considers and answers them in. */
export const NOTIFY_CHANNELS: readonly Channel[] = [Channel.EMAIL, Channel.SMS, Channel.PUSH, Channel.WEBHOOK];

const name = (c: Channel): string => `CHANNEL_${Channel[c]}`;

/** A channel Notify will consider and the body a notification on it carries. */
export interface ChannelPlan {
  channel: Channel;
  body: NotificationSpec["body"];
  /** Where the body came from, for errors found later (a template's variables): "" for the request's own, else `channel_bodies[i]`. */
  path: string;
}

/** Throws INVALID_ARGUMENT naming the field and rule; returns the channels to consider, in channel order. */
export function validateNotifyRequest(req: NotifyRequest): ChannelPlan[] {
  validateUserId(req.userId, "user_id");
  if (req.category !== "") validateCategoryName(req.category, "category");
  // Checked as email's, which allows every field; what the other channels keep of it (no html)
  // is checked for each below.
  if (req.body.case !== undefined) validateBody(req.body, Channel.EMAIL, "");

  const own = new Map<Channel, { body: NotificationSpec["body"]; path: string }>();
  req.channelBodies.forEach((cb, i) => {
    const at = `channel_bodies[${i}]`;
    checkChannel(cb.channel, `${at}.channel`);
    if (own.has(cb.channel)) throw invalidArgument(`${at}.channel`, `repeats ${name(cb.channel)}: one body per channel`);
    validateBody(cb.body, cb.channel, at);
    own.set(cb.channel, { body: cb.body, path: at });
  });

  const seen = new Set<Channel>();
  req.channels.forEach((c, i) => {
    checkChannel(c, `channels[${i}]`);
    if (seen.has(c)) throw invalidArgument(`channels[${i}]`, `repeats ${name(c)}`);
    seen.add(c);
  });
  const considered = NOTIFY_CHANNELS.filter((c) =>
    req.channels.length > 0 ? seen.has(c) : req.body.case !== undefined || own.has(c),
  );
  if (considered.length === 0) throw invalidArgument("body", "is required: set content or template, or channel_bodies");

  const plans = considered.map((channel): ChannelPlan => {
    const mine = own.get(channel);
    if (mine) return { channel, ...mine };
    const body = defaultBody(req.body, channel);
    if (!body) {
      const at = `channels[${req.channels.indexOf(channel)}]`;
      throw invalidArgument(at, `${name(channel)} has no body: set content or template, or a channel_bodies entry for it`);
    }
    return { channel, body, path: "" };
  });

  validatePriority(req.priority, "priority");
  validateLabels(req.labels, "labels");
  validateIdempotencyKey(req.idempotencyKey);
  return plans;
}

function checkChannel(c: Channel, path: string): void {
  if (c === Channel.UNSPECIFIED || !(c in Channel)) throw invalidArgument(path, `must be a deliverable channel, got ${c}`);
}

/**
 * The request's default body as a notification on `channel` carries it: a content's html is
 * email's alone, so the other channels carry its subject, text and data. Undefined when there is
 * no default body. A default that leaves a channel nothing to send is INVALID_ARGUMENT.
 */
function defaultBody(body: NotifyRequest["body"], channel: Channel): NotificationSpec["body"] | undefined {
  if (body.case !== "content") return body.case === "template" ? body : undefined;
  const content: Content = channel === Channel.EMAIL || body.value.html === "" ? body.value : { ...body.value, html: "" };
  if (content.text === "" && content.html === "" && Object.keys(content.data).length === 0) {
    throw invalidArgument("content", `${name(channel)} needs text or data (html is email's alone): set them, or give ${name(channel)} its own channel_bodies entry`);
  }
  return { case: "content", value: content };
}
