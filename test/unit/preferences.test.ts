import { describe, expect, it } from "vitest";
import { Channel } from "../../gen/herald/v1/notification_pb.js";
import { channelVerdict, withUnsubscribes, type CategorySetting, type StoredPreferences } from "../../src/domain/preferences.js";

// The one rule that decides whether a notification of a category may go to a recipient on a
// channel, from their preferences and the tenant's setting for the category.

const none: StoredPreferences = { optedOutChannels: [], categories: [] };
const setting = (over: Partial<CategorySetting>): CategorySetting => ({ category: "marketing", required: false, defaultOptedOutChannels: [], description: "", ...over });

describe("channelVerdict", () => {
  it("allows by default: no preferences, no setting, or nothing that applies", () => {
    expect(channelVerdict(undefined, "", Channel.EMAIL)).toEqual({ allowed: true });
    expect(channelVerdict(none, "marketing", Channel.SMS, setting({}))).toEqual({ allowed: true });
    expect(channelVerdict({ optedOutChannels: [Channel.SMS], categories: [] }, "marketing", Channel.EMAIL)).toEqual({ allowed: true });
  });

  it("an opt-out of a channel for every category, or for one, keeps that channel only", () => {
    const everywhere = { optedOutChannels: [Channel.SMS], categories: [] };
    expect(channelVerdict(everywhere, "", Channel.SMS)).toEqual({ allowed: false, reason: "opted_out", detail: "the recipient opted out of CHANNEL_SMS" });
    expect(channelVerdict(everywhere, "news", Channel.SMS)).toMatchObject({ allowed: false, detail: "the recipient opted out of CHANNEL_SMS for every category" });
    const forNews = { optedOutChannels: [], categories: [{ category: "news", optedOutChannels: [Channel.PUSH], unsubscribed: false }] };
    expect(channelVerdict(forNews, "news", Channel.PUSH)).toEqual({ allowed: false, reason: "opted_out", detail: "the recipient opted out of CHANNEL_PUSH for news" });
    expect(channelVerdict(forNews, "news", Channel.EMAIL)).toEqual({ allowed: true });
    expect(channelVerdict(forNews, "billing", Channel.PUSH)).toEqual({ allowed: true });
    // An uncategorized notification is held only by the every-category opt-outs.
    expect(channelVerdict(forNews, "", Channel.PUSH)).toEqual({ allowed: true });
  });

  it("an unsubscribe from a category keeps every channel of it", () => {
    const unsubscribed = { optedOutChannels: [], categories: [{ category: "news", optedOutChannels: [], unsubscribed: true }] };
    for (const channel of [Channel.EMAIL, Channel.SMS, Channel.PUSH, Channel.WEBHOOK]) {
      expect(channelVerdict(unsubscribed, "news", channel)).toEqual({ allowed: false, reason: "unsubscribed", detail: "the recipient unsubscribed from news" });
    }
  });

  it("a required category goes out whatever the recipient chose", () => {
    const everything = { optedOutChannels: [Channel.EMAIL, Channel.SMS], categories: [{ category: "security", optedOutChannels: [Channel.EMAIL], unsubscribed: true }] };
    expect(channelVerdict(everything, "security", Channel.EMAIL, setting({ category: "security", required: true }))).toEqual({ allowed: true });
    expect(channelVerdict(everything, "security", Channel.SMS, setting({ category: "security", required: true }))).toEqual({ allowed: true });
  });

  it("the tenant's default opts out until the recipient makes a choice of their own for the category", () => {
    const smsOff = setting({ defaultOptedOutChannels: [Channel.SMS] });
    expect(channelVerdict(undefined, "marketing", Channel.SMS, smsOff)).toEqual({
      allowed: false,
      reason: "opted_out_by_default",
      detail: "marketing is off on CHANNEL_SMS unless the recipient opts in",
    });
    expect(channelVerdict(undefined, "marketing", Channel.EMAIL, smsOff)).toEqual({ allowed: true });
    // Any choice of theirs for the category replaces the default: here, SMS opted in (nothing opted out).
    const optedIn = { optedOutChannels: [], categories: [{ category: "marketing", optedOutChannels: [], unsubscribed: false }] };
    expect(channelVerdict(optedIn, "marketing", Channel.SMS, smsOff)).toEqual({ allowed: true });
    // But not their opt-out of the channel for every category.
    expect(channelVerdict({ ...optedIn, optedOutChannels: [Channel.SMS] }, "marketing", Channel.SMS, smsOff)).toMatchObject({ allowed: false, reason: "opted_out" });
  });
});

describe("withUnsubscribes", () => {
  const base = () => ({ optedOutChannels: [], categories: [] });

  it("reads one-click unsubscribes in: a category already chosen keeps its channels, a new one is added; nothing else changes", () => {
    const own: StoredPreferences = {
      optedOutChannels: [Channel.PUSH],
      categories: [{ category: "marketing", optedOutChannels: [Channel.SMS], unsubscribed: false }, { category: "billing", optedOutChannels: [], unsubscribed: false }],
      quietHours: { start: "22:00", end: "07:00" },
    };
    expect(withUnsubscribes(own, ["marketing", "digest"], base)).toEqual({
      optedOutChannels: [Channel.PUSH],
      categories: [
        { category: "marketing", optedOutChannels: [Channel.SMS], unsubscribed: true },
        { category: "billing", optedOutChannels: [], unsubscribed: false },
        { category: "digest", optedOutChannels: [], unsubscribed: true },
      ],
      quietHours: { start: "22:00", end: "07:00" },
    });
    expect(channelVerdict(withUnsubscribes(undefined, ["digest"], base), "digest", Channel.EMAIL)).toMatchObject({ allowed: false, reason: "unsubscribed" });
  });

  it("without clicks: the preferences as they were, none when there were none", () => {
    expect(withUnsubscribes(undefined, [], base)).toBeUndefined();
    expect(withUnsubscribes(none, [], base)).toBe(none);
  });
});
