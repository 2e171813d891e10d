import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { Channel, NotificationSchema, Priority, Status } from "../../gen/herald/v1/notification_pb.js";
import { SkipReason, SkippedChannelSchema } from "../../gen/herald/v1/notification_service_pb.js";
import { answerSummary, createdText, skipReasonName, skipReasonText, skippedText } from "../../web/src/notify-answer.js";
import { notifyRequest, parseVariables, type NotifyFields } from "../../web/src/notify-form.js";

// The send card's Notify mode, its pure parts: the form as a Notify request
// (the variables box read, the channel boxes mapped) and the answer in words.

const blank: NotifyFields = {
  userId: "ada",
  category: "",
  channels: [],
  body: "content",
  subject: "",
  text: "",
  html: "",
  templateId: "",
  variables: "",
  priority: "",
};

describe("notifyRequest", () => {
  it("maps a message form as typed: no channels ticked is none sent (every channel with a body), priority unspecified", () => {
    expect(notifyRequest({ ...blank, category: "billing", subject: "Invoice 42", text: "Ready", html: "<p>Ready</p>" }, "k-1")).toEqual({
      ok: true,
      request: {
        userId: "ada",
        category: "billing",
        channels: [],
        body: { case: "content", value: { subject: "Invoice 42", text: "Ready", html: "<p>Ready</p>" } },
        priority: Priority.UNSPECIFIED,
        idempotencyKey: "k-1",
      },
    });
  });

  it("sends the channels ticked in the proto's order, whatever the order given, and the priority chosen", () => {
    const built = notifyRequest({ ...blank, channels: ["webhook", "email", "fax", "sms"], priority: "high" }, "k");
    expect(built.ok && built.request.channels).toEqual([Channel.EMAIL, Channel.SMS, Channel.WEBHOOK]);
    expect(built.ok && built.request.priority).toBe(Priority.HIGH);
    expect(notifyRequest({ ...blank, priority: "low" }, "k")).toMatchObject({ request: { priority: Priority.LOW } });
  });

  it("a template form carries the template id and its variables; the message fields are not sent", () => {
    expect(notifyRequest({ ...blank, body: "template", subject: "ignored", templateId: "welcome", variables: "name=Ada\ncode = 4=2" }, "k")).toMatchObject({
      ok: true,
      request: { body: { case: "template", value: { templateId: "welcome", variables: { name: "Ada", code: " 4=2" } } } },
    });
  });

  it("a variables box it cannot read is said against the form's field, and nothing is sent", () => {
    expect(notifyRequest({ ...blank, body: "template", templateId: "welcome", variables: "name=Ada\nnonsense" }, "k")).toEqual({
      ok: false,
      field: "variables",
      message: 'line 2: expected name=value, got "nonsense"',
    });
  });
});

describe("parseVariables", () => {
  it("splits at the first '=', trims the name, keeps the value as typed and skips blank lines", () => {
    expect(parseVariables("\n name = Ada Lovelace \r\nurl=https://x.test/?a=1\n\n")).toEqual({
      ok: true,
      variables: { name: " Ada Lovelace ", url: "https://x.test/?a=1" },
    });
    expect(parseVariables("")).toEqual({ ok: true, variables: {} });
    expect(parseVariables("empty=")).toEqual({ ok: true, variables: { empty: "" } });
  });

  it("refuses a line without a name and a name given twice", () => {
    expect(parseVariables("=x")).toEqual({ ok: false, message: 'line 1: expected name=value, got "=x"' });
    expect(parseVariables("a=1\nb=2\na=3")).toEqual({ ok: false, message: 'line 3: "a" is given twice' });
  });
});

describe("the Notify answer in words", () => {
  const skip = (channel: Channel, reason: SkipReason, detail: string) => create(SkippedChannelSchema, { channel, reason, detail });

  it("names every reason in words, and one newer than the page by its number", () => {
    expect(
      [SkipReason.NO_ADDRESS, SkipReason.OPTED_OUT, SkipReason.UNSUBSCRIBED, SkipReason.OPTED_OUT_BY_DEFAULT, SkipReason.SUPPRESSED].map(skipReasonText),
    ).toEqual(["no address", "opted out", "unsubscribed from the category", "off by default for the category", "address suppressed"]);
    expect(skipReasonText(99 as SkipReason)).toBe("reason 99");
    expect(skipReasonName(SkipReason.OPTED_OUT_BY_DEFAULT)).toBe("OPTED_OUT_BY_DEFAULT");
  });

  it("keeps the server's detail beside the reason", () => {
    expect(skippedText(skip(Channel.SMS, SkipReason.OPTED_OUT, "the recipient opted out of CHANNEL_SMS for every category"))).toBe(
      "sms: opted out (the recipient opted out of CHANNEL_SMS for every category)",
    );
    expect(skippedText(skip(Channel.WEBHOOK, SkipReason.NO_ADDRESS, ""))).toBe("webhook: no address");
  });

  it("says a created notification's channel and status, and until when quiet hours hold it", () => {
    const until = new Date("2026-12-04T06:00:00Z");
    const time = (d: Date) => d.toISOString();
    expect(createdText(create(NotificationSchema, { channel: Channel.EMAIL, status: Status.QUEUED, deliverTime: timestampFromDate(until) }), time)).toBe("email QUEUED");
    expect(createdText(create(NotificationSchema, { channel: Channel.PUSH, status: Status.SCHEDULED, deliverTime: timestampFromDate(until) }), time)).toBe(
      "push SCHEDULED, held by quiet hours until 2026-12-04T06:00:00.000Z",
    );
  });

  it("sums the answer up; creating nothing is an answer", () => {
    const n = create(NotificationSchema, {});
    const s = skip(Channel.SMS, SkipReason.UNSUBSCRIBED, "");
    expect(answerSummary({ notifications: [n, n], skipped: [s, s] })).toBe("2 created, 2 skipped");
    expect(answerSummary({ notifications: [], skipped: [s, s, s, s] })).toBe("nothing created, 4 skipped");
    expect(answerSummary({ notifications: [n], skipped: [] })).toBe("1 created");
  });
});
