import { fromBinary } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Channel, NotificationSpecSchema, Priority, Status } from "../gen/herald/v1/notification_pb.js";
import { NotificationService, SkipReason, type NotifyResponse } from "../gen/herald/v1/notification_service_pb.js";
import {
  createRecipientClient,
  createSuppressionClient,
  createTemplateClient,
  type HeraldClient,
  type RecipientClient,
} from "../src/client/index.js";
import { KEY_A, KEY_B, startTestHerald, type TestHerald } from "./support/herald.js";
import { bearer, rejection } from "./support/rpc.js";
import { runNotifyCommand } from "../src/cli/notify-command.js";
import { UsageError } from "../src/cli/usage-error.js";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { waitFor } from "./support/wait.js";
import { instantProvider } from "./support/watch.js";

// Notify through the real listeners: one event for one recipient fanned out to exactly the
// channels their profile has an address for, their preferences and the tenant's category settings
// allow, and no suppression blocks; in one transaction, linked by notify_id, idempotent as a whole.
// Outcomes are read from the answers, the rows (SQL) and the deliveries the workers make.

let herald: TestHerald;
let client: HeraldClient;
let recipients: RecipientClient;

const providers = { email: instantProvider("mail"), sms: instantProvider("sms"), push: instantProvider("fcm"), webhook: instantProvider("hook") };

beforeAll(async () => {
  herald = await startTestHerald({ roles: ["server", "relay", "scheduler", "worker"], providers });
  client = herald.client(KEY_A);
  recipients = createRecipientClient({ address: herald.grpcAddress, apiKey: KEY_A });
});
afterAll(async () => {
  recipients?.close();
  await herald?.stop();
});

const content = { subject: "Your invoice", text: "Invoice 42 is ready", html: "<p>Invoice <b>42</b> is ready</p>" };

interface Row {
  id: string;
  channel: Channel;
  status: Status;
  notify_id: string | null;
  spec: Buffer;
}
const rowsOf = async (notifyId: string): Promise<Row[]> =>
  (await herald.db.pool.query<Row>("SELECT id, channel, status, notify_id, spec FROM notifications WHERE notify_id = $1 ORDER BY channel, id", [notifyId])).rows;

const skips = (r: NotifyResponse) => r.skipped.map((s) => ({ channel: s.channel, reason: s.reason }));

async function settled(id: string): Promise<Status> {
  return waitFor(`${id} to be sent`, async () => {
    const { notification } = await client.get({ id });
    return notification?.status === Status.SENT ? notification.status : undefined;
  }, { timeoutMs: 60_000 });
}

describe("Notify", () => {
  it("fans out to exactly the allowed channels: an opt-out, a suppressed push token and a missing address each skip, the rest are created together and delivered", async () => {
    await recipients.putRecipient({ recipient: { userId: "grace", email: "grace@example.com", phone: "+14155550101", pushTokens: ["tok-grace-phone", "tok-grace-tablet"] } });
    await recipients.setPreferences({ preferences: { userId: "grace", categories: [{ category: "billing", optedOutChannels: [Channel.SMS] }] } });
    const suppressions = createSuppressionClient({ address: herald.grpcAddress, apiKey: KEY_A });
    await suppressions.addSuppression({ channel: Channel.PUSH, address: "tok-grace-tablet", note: "uninstalled" });
    suppressions.close();

    const r = await client.notify({ userId: "grace", category: "billing", body: { case: "content", value: content }, labels: { invoice: "42" } });

    expect(r.notifyId).toMatch(/^[0-9a-f-]{36}$/);
    expect(r.notifications.map((n) => [n.channel, n.recipient?.address.value])).toEqual([
      [Channel.EMAIL, "grace@example.com"],
      [Channel.PUSH, "tok-grace-phone"],
    ]);
    for (const n of r.notifications) {
      expect(n).toMatchObject({ status: Status.QUEUED, notifyId: r.notifyId, category: "billing", labels: { invoice: "42" } });
      expect(n.recipient?.userId).toBe("grace");
    }
    expect(r.skipped.map((s) => ({ channel: s.channel, reason: s.reason, detail: s.detail }))).toEqual([
      { channel: Channel.SMS, reason: SkipReason.OPTED_OUT, detail: "the recipient opted out of CHANNEL_SMS for billing" },
      { channel: Channel.PUSH, reason: SkipReason.SUPPRESSED, detail: "device token …e-tablet is suppressed (manual)" },
      { channel: Channel.WEBHOOK, reason: SkipReason.NO_ADDRESS, detail: "the recipient has no address for CHANNEL_WEBHOOK" },
    ]);

    // Stored together under one notify_id; html is email's alone.
    const rows = await rowsOf(r.notifyId);
    expect(rows.map((row) => row.id)).toEqual(r.notifications.map((n) => n.id));
    const specs = rows.map((row) => fromBinary(NotificationSpecSchema, row.spec));
    expect(specs.map((s) => (s.body.case === "content" ? s.body.value.html : undefined))).toEqual([content.html, ""]);
    expect(specs.every((s) => s.category === "billing")).toBe(true);
    const request = await herald.db.pool.query("SELECT user_id, jsonb_array_length(skipped) AS skipped FROM notify_requests WHERE id = $1", [r.notifyId]);
    expect(request.rows).toEqual([{ user_id: "grace", skipped: 3 }]);

    // And the workers deliver exactly those.
    for (const n of r.notifications) expect(await settled(n.id)).toBe(Status.SENT);
    const got = await client.get({ id: r.notifications[0]!.id });
    expect(got.notification?.notifyId).toBe(r.notifyId);
  });

  it("applies the tenant's category settings: a required category goes out despite an opt-out; a default-off channel waits for the recipient's own choice", async () => {
    await recipients.putRecipient({ recipient: { userId: "alan", email: "alan@example.com", phone: "+14155550102" } });
    await recipients.setPreferences({ preferences: { userId: "alan", optedOutChannels: [Channel.EMAIL] } });
    await recipients.putCategory({ category: { category: "security", required: true } });
    await recipients.putCategory({ category: { category: "digest", defaultOptedOutChannels: [Channel.SMS] } });

    const security = await client.notify({ userId: "alan", category: "security", channels: [Channel.EMAIL, Channel.SMS], body: { case: "content", value: { text: "New sign-in" } } });
    expect(security.notifications.map((n) => n.channel)).toEqual([Channel.EMAIL, Channel.SMS]);
    expect(security.skipped).toEqual([]);

    const digest = await client.notify({ userId: "alan", category: "digest", channels: [Channel.EMAIL, Channel.SMS], body: { case: "content", value: { text: "Your week" } } });
    expect(digest.notifications).toEqual([]);
    expect(skips(digest)).toEqual([
      { channel: Channel.EMAIL, reason: SkipReason.OPTED_OUT },
      { channel: Channel.SMS, reason: SkipReason.OPTED_OUT_BY_DEFAULT },
    ]);
    // Creating nothing is an answer, not an error, and leaves no notification behind.
    expect(await rowsOf(digest.notifyId)).toEqual([]);

    // The recipient's own choice for the category replaces the tenant's default.
    await recipients.setPreferences({ preferences: { userId: "alan", optedOutChannels: [Channel.EMAIL], categories: [{ category: "digest" }] } });
    const again = await client.notify({ userId: "alan", category: "digest", channels: [Channel.SMS], body: { case: "content", value: { text: "Your week" } } });
    expect(again.notifications.map((n) => n.channel)).toEqual([Channel.SMS]);

    // An unsubscribe from a category keeps every channel of it off.
    await recipients.setPreferences({ preferences: { userId: "alan", categories: [{ category: "digest", unsubscribed: true }] } });
    const unsubscribed = await client.notify({ userId: "alan", category: "digest", body: { case: "content", value: { text: "Your week" } } });
    expect(skips(unsubscribed)).toEqual([
      { channel: Channel.EMAIL, reason: SkipReason.UNSUBSCRIBED },
      { channel: Channel.SMS, reason: SkipReason.UNSUBSCRIBED },
      { channel: Channel.PUSH, reason: SkipReason.NO_ADDRESS },
      { channel: Channel.WEBHOOK, reason: SkipReason.NO_ADDRESS },
    ]);
  });

  it("is idempotent over the whole fan-out: a repeat returns the first answer though the preferences changed, another request under the key is ALREADY_EXISTS", async () => {
    await recipients.putRecipient({ recipient: { userId: "edsger", email: "edsger@example.com", phone: "+14155550103" } });
    const req = { userId: "edsger", idempotencyKey: "order-7-shipped", body: { case: "content" as const, value: { text: "Shipped" } }, channels: [Channel.EMAIL, Channel.SMS] };
    const first = await client.notify(req);
    expect(first.notifications).toHaveLength(2);

    await recipients.setPreferences({ preferences: { userId: "edsger", optedOutChannels: [Channel.SMS] } });
    const repeat = await client.notify(req);
    expect(repeat.notifyId).toBe(first.notifyId);
    expect(repeat.notifications.map((n) => n.id)).toEqual(first.notifications.map((n) => n.id));
    expect(repeat.skipped).toEqual(first.skipped);
    // Even once the profile is gone, the key answers with what it made.
    await recipients.deleteRecipient({ userId: "edsger" });
    expect((await client.notify(req)).notifyId).toBe(first.notifyId);

    expect(await rejection(client.notify({ ...req, body: { case: "content", value: { text: "Delivered" } } }))).toEqual({
      code: "AlreadyExists",
      message: "idempotency_key: already used for a different Notify request; use a new key for a new event",
    });
    const count = await herald.db.pool.query<{ n: number }>("SELECT count(*)::int AS n FROM notify_requests WHERE idempotency_key = $1", [req.idempotencyKey]);
    expect(count.rows[0]!.n).toBe(1);
    expect(await rowsOf(first.notifyId)).toHaveLength(2);

    // Create's keys are apart from Notify's: the same key is free there.
    const created = await client.create({
      idempotencyKey: req.idempotencyKey,
      notification: { channel: Channel.EMAIL, recipient: { userId: "edsger", address: { case: "email", value: "edsger@example.com" } }, body: { case: "content", value: { text: "x" } } },
    });
    expect(created.notification?.notifyId).toBe("");
  });

  it("settles concurrent repeats of one key to one fan-out", async () => {
    await recipients.putRecipient({ recipient: { userId: "barbara", email: "barbara@example.com", pushTokens: ["tok-b1", "tok-b2"] } });
    const req = { userId: "barbara", idempotencyKey: "race-1", body: { case: "content" as const, value: { text: "Hi" } } };
    const answers = await Promise.all(Array.from({ length: 6 }, () => client.notify(req)));
    expect(new Set(answers.map((a) => a.notifyId)).size).toBe(1);
    expect(await rowsOf(answers[0]!.notifyId)).toHaveLength(3);
  });

  it("fills a template's recipient.* variables from the profile's data and checks every considered channel's template at accept", async () => {
    const templates = createTemplateClient({ address: herald.grpcAddress, apiKey: KEY_A });
    await templates.putTemplate({
      templateId: "welcome-notify",
      content: { subject: "Welcome {{recipient.first_name}}", text: "Hi {{recipient.first_name}}, your code is {{code}}" },
      locales: [{ locale: "de", content: { subject: "Willkommen {{recipient.first_name}}", text: "Hallo {{recipient.first_name}}, dein Code: {{code}} ({{ort}})" } }],
    });
    templates.close();
    await recipients.putRecipient({ recipient: { userId: "katherine", email: "k@example.com", data: { first_name: "Katherine", "not a name": "x" } } });

    const r = await client.notify({ userId: "katherine", channels: [Channel.EMAIL], body: { case: "template", value: { templateId: "welcome-notify", variables: { code: "1234" } } } });
    const n = r.notifications[0]!;
    expect(n.locale).toBe("");
    expect(n.body.case).toBe("template");
    if (n.body.case === "template") {
      expect(n.body.value.version).toBe(1);
      expect(n.body.value.variables).toEqual({ code: "1234", "recipient.first_name": "Katherine" });
    }

    expect(await rejection(client.notify({ userId: "katherine", channels: [Channel.EMAIL], body: { case: "template", value: { templateId: "welcome-notify" } } }))).toEqual({
      code: "InvalidArgument",
      message: 'template.variables: missing required variable "code"',
    });
    // The profile's locale travels with the notification, and the variant it chooses ("de" for
    // de-AT) is the one whose variables are checked.
    await recipients.putRecipient({ recipient: { userId: "katherine-de", email: "kd@example.com", locale: "de-at", data: { first_name: "Käthe" } } });
    const de = { userId: "katherine-de", channels: [Channel.EMAIL], body: { case: "template" as const, value: { templateId: "welcome-notify", variables: { code: "1" } } } };
    expect(await rejection(client.notify(de))).toMatchObject({ code: "InvalidArgument", message: expect.stringContaining('template.variables: missing required variable "ort"') as unknown });
    const localized = await client.notify({ ...de, body: { case: "template", value: { templateId: "welcome-notify", variables: { code: "1", ort: "Wien" } } } });
    expect(localized.notifications[0]?.locale).toBe("de-AT");

    // Checked for a channel the recipient has no address for too: the error does not depend on whose profile it is.
    expect(
      await rejection(
        client.notify({
          userId: "katherine",
          channels: [Channel.EMAIL, Channel.SMS],
          body: { case: "template", value: { templateId: "welcome-notify", variables: { code: "1" } } },
          channelBodies: [{ channel: Channel.SMS, body: { case: "template", value: { templateId: "welcome-notify" } } }],
        }),
      ),
    ).toEqual({ code: "InvalidArgument", message: 'channel_bodies[0].template.variables: missing required variable "code"' });
  });

  it("refuses bad requests with INVALID_ARGUMENT naming the field, an unknown recipient with NOT_FOUND, and another tenant's recipient as unknown; nothing is written", async () => {
    await recipients.putRecipient({ recipient: { userId: "hedy", email: "hedy@example.com", phone: "+14155550104" } });
    const text = { case: "content" as const, value: { text: "x" } };
    const cases: Array<[Parameters<HeraldClient["notify"]>[0], string]> = [
      [{ body: text }, "user_id: is required"],
      [{ userId: "hedy", category: "Billing", body: text }, "category: must be 1 to 64 of a-z, 0-9, '_', '-', '.', starting with a letter or digit, got \"Billing\""],
      [{ userId: "hedy" }, "body: is required: set content or template, or channel_bodies"],
      [
        { userId: "hedy", channelBodies: [{ channel: Channel.SMS, body: text }, { channel: Channel.SMS, body: text }] },
        "channel_bodies[1].channel: repeats CHANNEL_SMS: one body per channel",
      ],
      [{ userId: "hedy", channelBodies: [{ channel: Channel.SMS, body: { case: "content", value: { html: "<p>x</p>" } } }] }, "channel_bodies[0].content.html: only email supports html"],
      [{ userId: "hedy", channels: [Channel.EMAIL, Channel.SMS], channelBodies: [{ channel: Channel.EMAIL, body: text }] }, "channels[1]: CHANNEL_SMS has no body: set content or template, or a channel_bodies entry for it"],
      [
        { userId: "hedy", channels: [Channel.EMAIL, Channel.SMS], body: { case: "content", value: { html: "<p>only html</p>" } } },
        "content: CHANNEL_SMS needs text or data (html is email's alone): set them, or give CHANNEL_SMS its own channel_bodies entry",
      ],
      [{ userId: "hedy", channels: [Channel.UNSPECIFIED], body: text }, "channels[0]: must be a deliverable channel, got 0"],
      [{ userId: "hedy", body: text, priority: 9 as Priority }, "priority: must be a known priority, got 9"],
      [{ userId: "hedy", body: text, idempotencyKey: "has space" }, "idempotency_key: must be printable ASCII without spaces"],
    ];
    for (const [req, message] of cases) expect(await rejection(client.notify(req)), message).toEqual({ code: "InvalidArgument", message });

    expect(await rejection(client.notify({ userId: "nobody", body: text }))).toEqual({
      code: "NotFound",
      message: 'user_id: no recipient "nobody" in this tenant: store one with PutRecipient first',
    });
    expect(await rejection(herald.client(KEY_B).notify({ userId: "hedy", body: text }))).toMatchObject({ code: "NotFound" });
    const written = await herald.db.pool.query<{ n: number }>("SELECT count(*)::int AS n FROM notifications WHERE user_id = 'hedy'");
    expect(written.rows[0]!.n).toBe(0);
  });
});

describe("herald notify", () => {
  const run = async (...args: string[]) => {
    let out = "";
    await runNotifyCommand(args, { HERALD_GRPC_ADDR: herald.grpcAddress, HERALD_API_KEY: KEY_A }, { write: (c: string) => (out += c) });
    return JSON.parse(out) as { notifyId: string; notifications?: Array<{ channel: string; category?: string }>; skipped?: Array<{ channel: string; reason: string }> };
  };

  it("notifies from flags and from a NotifyRequest in proto JSON, printing what was created and skipped", async () => {
    await recipients.putRecipient({ recipient: { userId: "cli-ada", email: "ada@example.com", phone: "+14155550106" } });
    const flags = await run("--user", "cli-ada", "--category", "news", "--channel", "email,sms", "--subject", "Hi", "--text", "Hello");
    expect(flags.notifications?.map((n) => [n.channel, n.category])).toEqual([["CHANNEL_EMAIL", "news"], ["CHANNEL_SMS", "news"]]);

    const dir = await mkdtemp(join(tmpdir(), "herald-notify-"));
    const file = join(dir, "request.json");
    await writeFile(file, JSON.stringify({
      userId: "cli-ada",
      channelBodies: [{ channel: "CHANNEL_SMS", content: { text: "short" } }, { channel: "CHANNEL_PUSH", content: { text: "push" } }],
    }));
    const fromFile = await run("--request", file);
    expect(fromFile.notifications?.map((n) => n.channel)).toEqual(["CHANNEL_SMS"]);
    expect(fromFile.skipped).toEqual([{ channel: "CHANNEL_PUSH", reason: "SKIP_REASON_NO_ADDRESS", detail: "the recipient has no address for CHANNEL_PUSH" }]);

    await expect(run("--text", "x")).rejects.toBeInstanceOf(UsageError);
    await expect(run("--user", "cli-ada", "--channel", "fax", "--text", "x")).rejects.toThrow('--channel must be email, sms, push or webhook, got "fax"');
  });
});

describe("a notification's category", () => {
  it("is checked, stored and echoed on Create and Get; a bad one is INVALID_ARGUMENT naming the field", async () => {
    const notification = {
      channel: Channel.EMAIL,
      recipient: { userId: "ida", address: { case: "email" as const, value: "ida@example.com" } },
      body: { case: "content" as const, value: { text: "Sale" } },
    };
    const { notification: created } = await client.create({ notification: { ...notification, category: "marketing.spring" } });
    expect(created).toMatchObject({ category: "marketing.spring", notifyId: "" });
    expect((await client.get({ id: created!.id })).notification?.category).toBe("marketing.spring");
    expect(await rejection(client.create({ notification: { ...notification, category: "-sale" } }))).toEqual({
      code: "InvalidArgument",
      message: "notification.category: must be 1 to 64 of a-z, 0-9, '_', '-', '.', starting with a letter or digit, got \"-sale\"",
    });
  });
});

describe("Notify and quiet hours", () => {
  // A Herald of its own whose API clock reads a night in spring 2027: Europe/Berlin moves from
  // CET (+01:00) to CEST (+02:00) at 01:00Z on 28 March 2027.
  const night = new Date("2027-03-27T23:30:00Z"); // 00:30 CET, inside 22:00-07:00
  let quiet: TestHerald;

  beforeAll(async () => {
    quiet = await startTestHerald({ roles: ["server"], clock: { now: () => night.getTime() } });
    const r = createRecipientClient({ address: quiet.grpcAddress, apiKey: KEY_A });
    await r.putRecipient({ recipient: { userId: "night-owl", email: "owl@example.com", phone: "+14155550105", timeZone: "Europe/Berlin" } });
    await r.setPreferences({ preferences: { userId: "night-owl", quietHours: { start: "22:00", end: "07:00" } } });
    r.close();
  });
  afterAll(async () => {
    await quiet?.stop();
  });

  it("holds a normal notification to the window's end on the recipient's clock across the DST change, and lets PRIORITY_HIGH through (over Connect)", async () => {
    const connect = createClient(NotificationService, createConnectTransport({ baseUrl: quiet.httpUrl, httpVersion: "1.1", interceptors: [bearer(KEY_A)] }));
    const held = await connect.notify({ userId: "night-owl", channels: [Channel.EMAIL, Channel.SMS], body: { case: "content", value: { text: "Your weekly digest" } } });
    // 07:00 CEST is 05:00Z; read at the night's fixed offset it would have been 06:00Z.
    for (const n of held.notifications) {
      expect(n.status).toBe(Status.SCHEDULED);
      expect(timestampDate(n.deliverTime!).toISOString()).toBe("2027-03-28T05:00:00.000Z");
    }
    const first = await quiet.db.pool.query<{ detail: string }>("SELECT detail FROM status_events WHERE notification_id = $1", [held.notifications[0]!.id]);
    expect(first.rows[0]!.detail).toBe("accepted; held by the recipient's quiet hours (22:00-07:00 Europe/Berlin) until 2027-03-28T05:00:00.000Z");

    const urgent = await connect.notify({ userId: "night-owl", priority: Priority.HIGH, channels: [Channel.SMS], body: { case: "content", value: { text: "Card declined" } } });
    expect(urgent.notifications[0]).toMatchObject({ status: Status.QUEUED });
    expect(timestampDate(urgent.notifications[0]!.deliverTime!).getTime()).toBe(night.getTime());
  });
});
