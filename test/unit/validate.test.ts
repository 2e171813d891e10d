import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { Channel, NotificationSpecSchema, Priority, type NotificationSpec } from "../../gen/herald/v1/notification_pb.js";
import { createEgressPolicy } from "../../src/domain/egress.js";
import { limits, validateId, validateIdempotencyKey, validateSpec } from "../../src/domain/validate.js";
import { expectInvalid } from "../support/expect-invalid.js";

// The plain-object form of create()'s init (not an existing message), so Partial<> applies.
type SpecInit = Exclude<MessageInitShape<typeof NotificationSpecSchema>, NotificationSpec>;
type Address = NonNullable<SpecInit["recipient"]>["address"];

const content = (c: { subject?: string; text?: string; html?: string; data?: Record<string, string> }): SpecInit["body"] => ({
  case: "content",
  value: c,
});
const template = (templateId: string, variables: Record<string, string> = {}): SpecInit["body"] => ({
  case: "template",
  value: { templateId, variables },
});

/** A valid email notification, with overrides. */
function spec(over: Partial<SpecInit> = {}) {
  return create(NotificationSpecSchema, {
    channel: Channel.EMAIL,
    recipient: { userId: "user-1", address: { case: "email", value: "ada@example.com" } },
    body: content({ subject: "Hello", text: "Hi Ada" }),
    ...over,
  });
}
const withAddress = (channel: Channel, address: Address, over: Partial<SpecInit> = {}) =>
  spec({ channel, recipient: { userId: "user-1", address }, ...over });
const entries = (n: number, value = "v") => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, value]));

/** Asserts fn throws InvalidArgument with exactly `${path}: ${rule}`. */

describe("limits", () => {
  it("are the numbers the proto documents", () => {
    expect(limits).toMatchObject({
      userIdMaxChars: 256,
      emailMaxChars: 254,
      deviceTokenMaxChars: 4096,
      webhookUrlMaxChars: 2048,
      subjectMaxChars: 998,
      contentMaxBytes: 262144,
      mapValueMaxBytes: 8192,
      dataMaxEntries: 64,
      templateIdMaxChars: 128,
      variablesMaxEntries: 64,
      labelsMaxEntries: 32,
      labelKeyMaxChars: 63,
      labelValueMaxChars: 256,
      idempotencyKeyMaxChars: 128,
    });
  });
});

describe("validateSpec: valid notifications pass", () => {
  it.each([
    ["email with html", spec({ body: content({ subject: "S", html: "<p>Hi</p>" }) })],
    ["email to a dot-less domain", withAddress(Channel.EMAIL, { case: "email", value: "ada@localhost" })],
    ["sms", withAddress(Channel.SMS, { case: "phone", value: "+14155550100" }, { body: content({ text: "code 123" }) })],
    ["push with data only", withAddress(Channel.PUSH, { case: "deviceToken", value: "fcm:AbC_-123" }, { body: content({ data: { a: "1" } }) })],
    ["webhook with template", withAddress(Channel.WEBHOOK, { case: "webhookUrl", value: "https://hooks.example.com:8443/h?x=1" }, { body: template("welcome.v2", { first_name: "Ada", "user.plan": "pro" }) })],
    ["http webhook to a public address", withAddress(Channel.WEBHOOK, { case: "webhookUrl", value: "http://93.184.215.14:9000/hook" })],
    ["priority and labels", spec({ priority: Priority.HIGH, labels: { "team/billing": "yes", "a.b_c-d": "" } })],
  ])("%s", (_name, s) => {
    expect(() => validateSpec(s)).not.toThrow();
  });

  it("accepts every limit exactly at its boundary", () => {
    const emoji = "😀"; // 1 code point, 2 UTF-16 units: lengths count code points
    const s = spec({
      recipient: { userId: emoji.repeat(limits.userIdMaxChars), address: { case: "email", value: `${"a".repeat(64)}@${"b".repeat(63)}.${"c".repeat(63)}.${"d".repeat(57)}` } },
      body: content({ subject: emoji.repeat(limits.subjectMaxChars), data: { ...entries(limits.dataMaxEntries - 1), ["k".repeat(limits.dataKeyMaxChars)]: "x".repeat(limits.mapValueMaxBytes) } }),
      labels: { ...entries(limits.labelsMaxEntries - 1, emoji.repeat(limits.labelValueMaxChars)), ["k".repeat(limits.labelKeyMaxChars)]: "" },
    });
    expect(() => validateSpec(s)).not.toThrow();
    const t = spec({ body: template("t".repeat(limits.templateIdMaxChars), entries(limits.variablesMaxEntries, "é".repeat(limits.mapValueMaxBytes / 2))) });
    expect(() => validateSpec(t)).not.toThrow();
  });

  it("accepts content of exactly contentMaxBytes, counting subject and data keys", () => {
    const s = spec({ body: content({ subject: "ab", text: "x".repeat(limits.contentMaxBytes - 3), data: { k: "" } }) });
    expect(() => validateSpec(s)).not.toThrow();
    const over = spec({ body: content({ subject: "ab", text: "x".repeat(limits.contentMaxBytes - 2), data: { k: "" } }) });
    expectInvalid(() => validateSpec(over), "notification.content", "larger than 262144 bytes");
  });
});

describe("validateSpec: notification, channel, priority", () => {
  it("requires the notification", () => {
    expectInvalid(() => validateSpec(undefined), "notification", "is required");
  });
  it("names the path it is given", () => {
    expectInvalid(() => validateSpec(undefined, "request.notification"), "request.notification", "is required");
  });
  it("requires a channel", () => {
    expectInvalid(() => validateSpec(spec({ channel: Channel.UNSPECIFIED })), "notification.channel", "is required: set CHANNEL_EMAIL, CHANNEL_SMS, CHANNEL_PUSH or CHANNEL_WEBHOOK");
  });
  it("rejects an unknown channel number", () => {
    expectInvalid(() => validateSpec(spec({ channel: 9 as Channel })), "notification.channel", "must be a known channel, got 9");
  });
  it("rejects an unknown priority number", () => {
    expectInvalid(() => validateSpec(spec({ priority: 7 as Priority })), "notification.priority", "must be a known priority, got 7");
  });
});

describe("validateSpec: recipient", () => {
  it("is required", () => {
    expectInvalid(() => validateSpec(spec({ recipient: undefined })), "notification.recipient", "is required");
  });
  it("requires user_id", () => {
    expectInvalid(() => validateSpec(spec({ recipient: { userId: "", address: { case: "email", value: "a@b.co" } } })), "notification.recipient.user_id", "is required");
  });
  it("limits user_id length", () => {
    const r = { userId: "u".repeat(limits.userIdMaxChars + 1), address: { case: "email" as const, value: "a@b.co" } };
    expectInvalid(() => validateSpec(spec({ recipient: r })), "notification.recipient.user_id", "must be at most 256 characters");
  });
  it.each(["a\nb", "a\u0000b", "a\u007fb", "a\u0085b"])("rejects control characters in user_id %j", (userId) => {
    const r = { userId, address: { case: "email" as const, value: "a@b.co" } };
    expectInvalid(() => validateSpec(spec({ recipient: r })), "notification.recipient.user_id", "must not contain control characters");
  });
  it("requires the address kind of the channel", () => {
    expectInvalid(() => validateSpec(withAddress(Channel.SMS, { case: "email", value: "a@b.co" })), "notification.recipient", "channel CHANNEL_SMS needs a phone address, got email");
    expectInvalid(() => validateSpec(withAddress(Channel.WEBHOOK, { case: "deviceToken", value: "t" })), "notification.recipient", "channel CHANNEL_WEBHOOK needs a webhook_url address, got device_token");
  });
  it("requires an address", () => {
    expectInvalid(() => validateSpec(withAddress(Channel.PUSH, { case: undefined })), "notification.recipient", "channel CHANNEL_PUSH needs a device_token address, got none");
  });
  it("rejects an empty address value", () => {
    expectInvalid(() => validateSpec(withAddress(Channel.EMAIL, { case: "email", value: "" })), "notification.recipient.email", "is required");
  });
});

describe("validateSpec: addresses", () => {
  const email = (value: string) => withAddress(Channel.EMAIL, { case: "email", value });
  const phone = (value: string) => withAddress(Channel.SMS, { case: "phone", value });
  const token = (value: string) => withAddress(Channel.PUSH, { case: "deviceToken", value });
  const hook = (value: string) => withAddress(Channel.WEBHOOK, { case: "webhookUrl", value });

  it.each(["ada", "ada@", "@example.com", "ada @example.com", "ada@-example.com", "ada@example..com", "adä@example.com", "ada@exa_mple.com"])("rejects email %j", (v) => {
    expectInvalid(() => validateSpec(email(v)), "notification.recipient.email", "must be an email address like ada@example.com");
  });
  it("limits email length", () => {
    expectInvalid(() => validateSpec(email(`a@${"b".repeat(60)}.${"c".repeat(60)}.${"d".repeat(60)}.${"e".repeat(70)}`)), "notification.recipient.email", "must be at most 254 characters");
  });
  it("limits the email local part", () => {
    expectInvalid(() => validateSpec(email(`${"a".repeat(65)}@example.com`)), "notification.recipient.email", "the part before @ must be at most 64 characters");
  });
  it.each(["4155550100", "+0415555010", "+1", "+1 415 555 0100", "+1234567890123456", "+1415555010a"])("rejects phone %j", (v) => {
    expectInvalid(() => validateSpec(phone(v)), "notification.recipient.phone", "must be an E.164 number like +14155550100");
  });
  it("limits device_token length", () => {
    expectInvalid(() => validateSpec(token("t".repeat(4097))), "notification.recipient.device_token", "must be at most 4096 characters");
  });
  it.each(["a b", "tök", "a\tb"])("rejects device_token %j", (v) => {
    expectInvalid(() => validateSpec(token(v)), "notification.recipient.device_token", "must be printable ASCII without spaces");
  });
  it.each(["/hook", "example.com/hook", "ftp://example.com/x", "mailto:ada@example.com", "https://", " https://example.com/", "https://exa mple.com/", "https://example.com/\n"])("rejects webhook_url %j", (v) => {
    expectInvalid(() => validateSpec(hook(v)), "notification.recipient.webhook_url", "must be an absolute http or https URL");
  });
  it("limits webhook_url length", () => {
    expectInvalid(() => validateSpec(hook(`https://example.com/${"p".repeat(2048)}`)), "notification.recipient.webhook_url", "must be at most 2048 characters");
  });
  it.each(["https://user:pass@example.com/h", "https://user@example.com/h", "https://:pass@example.com/h", "https://@example.com/h"])("rejects credentials in %j", (v) => {
    expectInvalid(() => validateSpec(hook(v)), "notification.recipient.webhook_url", "must not contain credentials (user:password@)");
  });
  it.each(["https://example.com/h#frag", "https://example.com/h#"])("rejects a fragment in %j", (v) => {
    expectInvalid(() => validateSpec(hook(v)), "notification.recipient.webhook_url", "must not contain a fragment (#...)");
  });
  it.each([
    ["http://127.0.0.1:9000/h", "127.0.0.1 is a loopback address"],
    ["http://2130706433/h", "127.0.0.1 is a loopback address"],
    ["http://0x7f.1/h", "127.0.0.1 is a loopback address"],
    ["http://127.1/h", "127.0.0.1 is a loopback address"],
    ["http://[::1]/h", "::1 is a loopback address"],
    ["http://[::ffff:127.0.0.1]/h", "127.0.0.1 is a loopback address"],
    ["http://LocalHost./h", "localhost is a loopback address"],
    ["http://api.localhost/h", "api.localhost is a loopback address"],
    ["http://0.0.0.0/h", "0.0.0.0 is an unspecified address"],
    ["http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"],
    ["http://[fe80::1]/h", "fe80::1 is a link-local address"],
    ["http://10.0.0.1/h", "10.0.0.1 is a private (RFC 1918) address"],
    ["http://192.168.1.20/h", "192.168.1.20 is a private (RFC 1918) address"],
    ["http://[fd00::1]/h", "fd00::1 is a private (unique local) address"],
    ["http://100.64.1.1/h", "100.64.1.1 is a carrier-grade NAT address"],
    ["http://224.0.0.1/h", "224.0.0.1 is a multicast address"],
    ["http://[2002:7f00:1::1]/h", "2002:7f00:1::1 is a special-purpose (6to4) address"],
  ])("refuses a webhook_url that reaches a non-public address: %j", (v, why) => {
    expectInvalid(
      () => validateSpec(hook(v)),
      "notification.recipient.webhook_url",
      `must reach a public address: ${why} (an operator may allow it with HERALD_WEBHOOK_ALLOW_CIDRS)`,
    );
  });
  it("accepts a non-public address an operator allowed, and a name (judged when it is resolved)", () => {
    const egress = createEgressPolicy(["127.0.0.0/8", "10.1.0.0/16"]);
    for (const v of ["http://127.0.0.1:9000/h", "http://localhost:9000/h", "http://10.1.2.3/h", "http://[::ffff:10.1.2.3]/h"]) {
      expect(() => validateSpec(hook(v), "notification", { egress }), v).not.toThrow();
    }
    expectInvalid(() => validateSpec(hook("http://10.2.0.1/h"), "notification", { egress }), "notification.recipient.webhook_url", "must reach a public address: 10.2.0.1 is a private (RFC 1918) address (an operator may allow it with HERALD_WEBHOOK_ALLOW_CIDRS)");
    expect(() => validateSpec(hook("https://internal.example.com/h"))).not.toThrow();
  });
});

describe("validateSpec: body", () => {
  it("is required", () => {
    expectInvalid(() => validateSpec(spec({ body: { case: undefined } })), "notification", "body is required: set content or template");
  });
  it("content needs text, html or data", () => {
    expectInvalid(() => validateSpec(spec({ body: content({ subject: "only a subject" }) })), "notification.content", "set at least one of text, html or data");
  });
  it("limits the subject", () => {
    expectInvalid(() => validateSpec(spec({ body: content({ subject: "s".repeat(999), text: "t" }) })), "notification.content.subject", "must be at most 998 characters");
  });
  it("allows html only for email", () => {
    const s = withAddress(Channel.SMS, { case: "phone", value: "+14155550100" }, { body: content({ text: "t", html: "<b>t</b>" }) });
    expectInvalid(() => validateSpec(s), "notification.content.html", "only email supports html");
  });
  it("limits the total content size in UTF-8 bytes", () => {
    // 2-byte characters: within the limit in characters, over it in bytes.
    const s = spec({ body: content({ subject: "S", text: "é".repeat(limits.contentMaxBytes / 2) }) });
    expectInvalid(() => validateSpec(s), "notification.content", "larger than 262144 bytes");
  });
  it("counts data keys and values in the total", () => {
    const data = entries(40, "x".repeat(limits.mapValueMaxBytes));
    expectInvalid(() => validateSpec(spec({ body: content({ text: "t", data }) })), "notification.content", "larger than 262144 bytes");
  });
  it("limits data entries", () => {
    expectInvalid(() => validateSpec(spec({ body: content({ data: entries(65) }) })), "notification.content.data", "must have at most 64 entries");
  });
  it("limits data keys", () => {
    expectInvalid(() => validateSpec(spec({ body: content({ data: { "": "v" } }) })), 'notification.content.data[""]', "key must be 1 to 128 characters");
    const long = "k".repeat(129);
    expectInvalid(() => validateSpec(spec({ body: content({ data: { [long]: "v" } }) })), `notification.content.data["${"k".repeat(40)}…"]`, "key must be 1 to 128 characters");
  });
  it("limits data values in UTF-8 bytes", () => {
    expectInvalid(() => validateSpec(spec({ body: content({ data: { big: "é".repeat(4097) } }) })), 'notification.content.data["big"]', "value must be at most 8192 bytes");
  });
  it("requires template_id", () => {
    expectInvalid(() => validateSpec(spec({ body: template("") })), "notification.template.template_id", "is required");
  });
  it.each(["welcome v2", "wel/come", "t".repeat(129)])("rejects template_id %j", (id) => {
    expectInvalid(() => validateSpec(spec({ body: template(id) })), "notification.template.template_id", "must be 1 to 128 characters of [A-Za-z0-9._-]");
  });
  it("limits variables entries", () => {
    expectInvalid(() => validateSpec(spec({ body: template("t", entries(65)) })), "notification.template.variables", "must have at most 64 entries");
  });
  it.each(["1st", "first-name", ".a", "a b"])("rejects variable key %j", (key) => {
    expectInvalid(() => validateSpec(spec({ body: template("t", { [key]: "v" }) })), `notification.template.variables["${key}"]`, "key must match [A-Za-z_][A-Za-z0-9_.]*");
  });
  it("limits variable keys", () => {
    expectInvalid(() => validateSpec(spec({ body: template("t", { ["v".repeat(129)]: "x" }) })), `notification.template.variables["${"v".repeat(40)}…"]`, "key must be 1 to 128 characters");
  });
  it("limits variable values", () => {
    expectInvalid(() => validateSpec(spec({ body: template("t", { name: "x".repeat(8193) }) })), 'notification.template.variables["name"]', "value must be at most 8192 bytes");
  });
});

describe("validateSpec: labels", () => {
  it("limits entries", () => {
    expectInvalid(() => validateSpec(spec({ labels: entries(33) })), "notification.labels", "must have at most 32 entries");
  });
  it("limits key length", () => {
    expectInvalid(() => validateSpec(spec({ labels: { ["k".repeat(64)]: "v" } })), `notification.labels["${"k".repeat(40)}…"]`, "key must be 1 to 63 characters");
    expectInvalid(() => validateSpec(spec({ labels: { "": "v" } })), 'notification.labels[""]', "key must be 1 to 63 characters");
  });
  it.each(["bad key", "emoji😀", "a:b", 'q"uote'])("rejects key %j", (key) => {
    expectInvalid(() => validateSpec(spec({ labels: { [key]: "v" } })), `notification.labels[${JSON.stringify(key)}]`, "key must match [A-Za-z0-9._/-]");
  });
  it("limits values", () => {
    expectInvalid(() => validateSpec(spec({ labels: { team: "v".repeat(257) } })), 'notification.labels["team"]', "value must be at most 256 characters");
  });
});

describe("validateIdempotencyKey", () => {
  it.each(["", "a", "order-123:retry_1", "k".repeat(128)])("accepts %j", (key) => {
    expect(() => validateIdempotencyKey(key)).not.toThrow();
  });
  it("limits length", () => {
    expectInvalid(() => validateIdempotencyKey("k".repeat(129)), "idempotency_key", "must be at most 128 characters");
  });
  it.each(["a b", "ключ", "a\nb"])("rejects %j", (key) => {
    expectInvalid(() => validateIdempotencyKey(key), "idempotency_key", "must be printable ASCII without spaces");
  });
});

describe("validateId", () => {
  it.each(["123e4567-e89b-12d3-a456-426614174000", "0190B3A2-7C4D-7E8F-9A0B-1C2D3E4F5A6B", "00000000-0000-0000-0000-000000000000"])("accepts %s", (id) => {
    expect(() => validateId(id)).not.toThrow();
  });
  it("requires an id", () => {
    expectInvalid(() => validateId(""), "id", "is required");
  });
  it.each(["123e4567e89b12d3a456426614174000", "{123e4567-e89b-12d3-a456-426614174000}", "123e4567-e89b-12d3-a456-42661417400g"])("rejects %j", (id) => {
    expectInvalid(() => validateId(id, "notification_id"), "notification_id", "must be a UUID like 123e4567-e89b-12d3-a456-426614174000");
  });
  it("does not echo a huge id", () => {
    expectInvalid(() => validateId("x".repeat(10_000)), "id", "must be a UUID like 123e4567-e89b-12d3-a456-426614174000");
  });
});

describe("validateSpec: locale", () => {
  it("returns the spec as given without a locale or with a canonical one", () => {
    for (const s of [spec(), spec({ locale: "de-AT" })]) expect(validateSpec(s)).toBe(s);
  });

  it("returns a copy with the locale in canonical form, for content and templates alike", () => {
    const given = spec({ locale: "pt-br", body: template("welcome", { name: "Ada" }) });
    const stored = validateSpec(given);
    expect(stored).toMatchObject({ locale: "pt-BR", body: { case: "template", value: { templateId: "welcome" } } });
    expect(given.locale).toBe("pt-br");
    expect(validateSpec(spec({ locale: "EN-us" })).locale).toBe("en-US");
  });

  it.each(["english please", "de_AT", "x-private", "de-"])("refuses %j, naming the field", (locale) => {
    expectInvalid(() => validateSpec(spec({ locale })), "notification.locale", `must be a BCP 47 language tag like de-CH, got ${JSON.stringify(locale)}`);
  });

  it("cuts a long junk locale in the message", () => {
    expectInvalid(() => validateSpec(spec({ locale: "a".repeat(65) })), "notification.locale", `must be a BCP 47 language tag like de-CH, got "${"a".repeat(40)}…"`);
  });
});
