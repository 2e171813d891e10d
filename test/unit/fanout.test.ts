import { describe, expect, it } from "vitest";
import { Channel, ContentSchema, Priority } from "../../gen/herald/v1/notification_pb.js";
import { NotifyRequestSchema, SkipReason } from "../../gen/herald/v1/notification_service_pb.js";
import { create } from "@bufbuild/protobuf";
import { notifyTargets, quietHold, suppressedSkip, withRecipientData } from "../../src/domain/fanout.js";
import { validateNotifyRequest } from "../../src/domain/notify-request.js";

// Notify's pure rules: which channels a request considers and with which body, which addresses
// a profile yields, the order of the skip checks, the quiet hold, and the profile's data as
// template variables.

const profile = { userId: "ada", email: "ada@example.com", phone: "", pushTokens: ["t1", "t2"], webhookUrl: "", timeZone: "Europe/Berlin", locale: "", data: {} };
const text = { case: "content" as const, value: create(ContentSchema, { text: "hi", html: "<b>hi</b>" }) };

describe("validateNotifyRequest", () => {
  it("considers every channel with a default body, only the listed ones otherwise, and strips html off the channels that are not email", () => {
    const all = validateNotifyRequest(create(NotifyRequestSchema, { userId: "ada", body: text }));
    expect(all.map((p) => p.channel)).toEqual([Channel.EMAIL, Channel.SMS, Channel.PUSH, Channel.WEBHOOK]);
    expect(all.map((p) => (p.body.case === "content" ? p.body.value.html : undefined))).toEqual(["<b>hi</b>", "", "", ""]);

    const own = validateNotifyRequest(create(NotifyRequestSchema, { userId: "ada", channelBodies: [{ channel: Channel.PUSH, body: { case: "content", value: { text: "p" } } }] }));
    expect(own.map((p) => [p.channel, p.path])).toEqual([[Channel.PUSH, "channel_bodies[0]"]]);

    const listed = validateNotifyRequest(create(NotifyRequestSchema, { userId: "ada", channels: [Channel.WEBHOOK, Channel.EMAIL], body: text }));
    expect(listed.map((p) => [p.channel, p.path])).toEqual([[Channel.EMAIL, ""], [Channel.WEBHOOK, ""]]);
  });
});

describe("notifyTargets", () => {
  it("skips a channel without an address before reading preferences, and makes one target per push token", () => {
    const plans = validateNotifyRequest(create(NotifyRequestSchema, { userId: "ada", body: text }));
    const { targets, skipped } = notifyTargets(plans, profile, { category: "news", preferences: { optedOutChannels: [Channel.SMS, Channel.PUSH], categories: [] } });
    expect(targets.map((t) => [t.channel, t.value])).toEqual([[Channel.EMAIL, "ada@example.com"]]);
    // SMS has no address: NO_ADDRESS, not OPTED_OUT, though the recipient opted out of it too.
    expect(skipped.map((s) => [s.channel, s.reason])).toEqual([
      [Channel.SMS, SkipReason.NO_ADDRESS],
      [Channel.PUSH, SkipReason.OPTED_OUT],
      [Channel.WEBHOOK, SkipReason.NO_ADDRESS],
    ]);
    const push = notifyTargets(plans.filter((p) => p.channel === Channel.PUSH), profile, { category: "" });
    expect(push.targets.map((t) => [t.address, t.value])).toEqual([["deviceToken", "t1"], ["deviceToken", "t2"]]);
  });

  it("shows a suppressed device token by its tail only", () => {
    const target = { channel: Channel.PUSH, address: "deviceToken" as const, value: "x".repeat(4000) + "abcd1234", body: text };
    expect(suppressedSkip(target, "manual")).toEqual({ channel: Channel.PUSH, reason: SkipReason.SUPPRESSED, detail: "device token …abcd1234 is suppressed (manual)" });
  });
});

describe("quietHold", () => {
  const prefs = { optedOutChannels: [], categories: [], quietHours: { start: "22:00", end: "07:00" } };
  const night = new Date("2026-12-04T23:30:00Z"); // 00:30 in Berlin

  it("holds below PRIORITY_HIGH until the window ends on the recipient's clock, and never holds PRIORITY_HIGH", () => {
    expect(quietHold(Priority.NORMAL, profile, prefs, night)?.until.toISOString()).toBe("2026-12-05T06:00:00.000Z");
    expect(quietHold(Priority.LOW, profile, prefs, night)).toBeDefined();
    expect(quietHold(Priority.HIGH, profile, prefs, night)).toBeUndefined();
    expect(quietHold(Priority.NORMAL, profile, prefs, new Date("2026-12-04T12:00:00Z"))).toBeUndefined();
    expect(quietHold(Priority.NORMAL, { timeZone: "" }, prefs, night)).toBeUndefined();
  });
});

describe("withRecipientData", () => {
  const template = (variables: Record<string, string>) => ({ case: "template" as const, value: create(NotifyRequestSchema, { body: { case: "template", value: { templateId: "t", variables } } }).body.value! });

  it("adds the profile's data as recipient.<key> for keys that are variable names, unless the request uses the name itself", () => {
    const data = { first_name: "Ada", "not a name": "x", "dotted.key": "y" };
    const merged = withRecipientData(template({ code: "1" }) as never, data);
    expect(merged.case === "template" && merged.value.variables).toEqual({ code: "1", "recipient.first_name": "Ada" });
    const own = withRecipientData(template({ "recipient.first_name": "Grace" }) as never, data);
    expect(own.case === "template" && own.value.variables).toEqual({ "recipient.first_name": "Grace" });
    expect(withRecipientData(text, data)).toBe(text);
  });
});
