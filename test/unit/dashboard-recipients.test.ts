import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { Channel } from "../../gen/herald/v1/notification_pb.js";
import { CategorySchema, PreferencesSchema, QuietHoursSchema, RecipientProfileSchema } from "../../gen/herald/v1/recipient_pb.js";
import { categoryRows, channelsText, profileFacts, quietHoursText } from "../../web/src/recipient-summary.js";

// The recipient view's pure part: a profile, preferences and the tenant's
// categories in words.

describe("profileFacts", () => {
  it("lists each address, the time zone, the locale and the data keys, saying 'none' or 'not set' where empty", () => {
    const long = "t".repeat(40);
    const p = create(RecipientProfileSchema, {
      userId: "ada",
      email: "ada@example.com",
      pushTokens: ["tok-1", long],
      timeZone: "Europe/Zurich",
      data: { plan: "pro", name: "Ada" },
    });
    expect(profileFacts(p)).toEqual([
      { name: "email", value: "ada@example.com" },
      { name: "phone", value: "none" },
      { name: "push tokens", value: `tok-1, ${"t".repeat(16)}…`, title: `tok-1\n${long}` },
      { name: "webhook", value: "none" },
      { name: "time zone", value: "Europe/Zurich" },
      { name: "locale", value: "not set" },
      { name: "data", value: "name, plan" },
    ]);
    expect(profileFacts(create(RecipientProfileSchema, { pushTokens: ["short"] })).find((f) => f.name === "push tokens")).toEqual({ name: "push tokens", value: "short" });
  });
});

describe("channelsText and quietHoursText", () => {
  it("names channels in the proto's order, 'none' for none", () => {
    expect(channelsText([Channel.PUSH, Channel.SMS])).toBe("sms, push");
    expect(channelsText([])).toBe("none");
  });

  it("says the window, whether it spans midnight, and whose clock it is read on", () => {
    expect(quietHoursText(create(QuietHoursSchema, { start: "22:00", end: "07:00" }), "Europe/Zurich")).toBe(
      "22:00 to 07:00 (overnight) every day, Europe/Zurich time",
    );
    expect(quietHoursText(create(QuietHoursSchema, { start: "12:00", end: "13:30" }), "")).toBe("12:00 to 13:30 every day, but the profile has no time zone");
    expect(quietHoursText(undefined, "Europe/Zurich")).toBe("none");
  });
});

describe("categoryRows", () => {
  const categories = [
    create(CategorySchema, { category: "security", required: true, description: "Sign-ins and password changes" }),
    create(CategorySchema, { category: "marketing", defaultOptedOutChannels: [Channel.SMS, Channel.EMAIL] }),
    create(CategorySchema, { category: "billing" }),
  ];

  it("puts the tenant's setting beside the person's own choice, one row per category by name", () => {
    const prefs = create(PreferencesSchema, {
      categories: [
        { category: "marketing", unsubscribed: true },
        { category: "billing", optedOutChannels: [Channel.PUSH] },
        { category: "security", optedOutChannels: [Channel.SMS] },
        { category: "digest", optedOutChannels: [] },
      ],
    });
    expect(categoryRows(categories, prefs)).toEqual([
      { category: "billing", setting: "on for every channel", choice: "opted out of push", description: "", required: false, unsubscribed: false },
      { category: "digest", setting: "not set by the tenant", choice: "every channel (their own choice)", description: "", required: false, unsubscribed: false },
      { category: "marketing", setting: "off by default on email, sms", choice: "unsubscribed", description: "", required: false, unsubscribed: true },
      {
        category: "security",
        setting: "required: opt-outs do not apply",
        choice: "opted out of sms (does not apply: required)",
        description: "Sign-ins and password changes",
        required: true,
        unsubscribed: false,
      },
    ]);
  });

  it("without preferences, every category is 'no choice of their own'", () => {
    expect(categoryRows(categories, undefined).map((r) => [r.category, r.choice])).toEqual([
      ["billing", "no choice of their own"],
      ["marketing", "no choice of their own"],
      ["security", "no choice of their own"],
    ]);
    expect(categoryRows([], undefined)).toEqual([]);
  });
});
