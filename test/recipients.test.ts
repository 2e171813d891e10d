import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Channel } from "../gen/herald/v1/notification_pb.js";
import { RecipientService } from "../gen/herald/v1/recipient_pb.js";
import { runRecipientCommand } from "../src/cli/recipient-commands.js";
import { UsageError } from "../src/cli/usage-error.js";
import { createRecipientClient, type RecipientClient } from "../src/client/index.js";
import { KEY_A, KEY_B, startTestHerald, type TestHerald } from "./support/herald.js";
import { bearer, rejection } from "./support/rpc.js";

// RecipientService through the real listeners: the gRPC listener (grpc-js client) and the HTTP
// listener (Connect over HTTP/1.1), on a Herald with its own database. Profiles are the caller's
// tenant's: tenant B neither sees nor changes tenant A's. Every refusal is INVALID_ARGUMENT
// naming the field and its rule, and writes nothing (checked by SQL).

let herald: TestHerald;
let grpcA: RecipientClient;
let grpcB: RecipientClient;
let connectA: Client<typeof RecipientService>;

beforeAll(async () => {
  herald = await startTestHerald({ roles: ["server"] });
  grpcA = createRecipientClient({ address: herald.grpcAddress, apiKey: KEY_A });
  grpcB = createRecipientClient({ address: herald.grpcAddress, apiKey: KEY_B });
  connectA = createClient(RecipientService, createConnectTransport({ baseUrl: herald.httpUrl, httpVersion: "1.1", interceptors: [bearer(KEY_A)] }));
});
afterAll(async () => {
  grpcA?.close();
  grpcB?.close();
  await herald?.stop();
});

const rows = async (userId: string) =>
  (await herald.db.pool.query<{ tenant: string; email: string; locale: string }>("SELECT tenant, email, locale FROM recipients WHERE user_id = $1 ORDER BY tenant", [userId])).rows;

const ada = {
  userId: "ada",
  email: "ada@example.com",
  phone: "+14155550100",
  pushTokens: ["fcm-token-1", "fcm-token-2"],
  webhookUrl: "https://hooks.example.com/ada",
  timeZone: "Europe/Zurich",
  locale: "de-ch",
  data: { plan: "pro", first_name: "Ada" },
};

describe("RecipientService", () => {
  it("puts a profile (created), reads it back on the other listener, replaces it whole (not created), and deletes it", async () => {
    const put = await grpcA.putRecipient({ recipient: ada });
    expect(put.created).toBe(true);
    // The locale is stored canonicalized.
    expect(put.recipient).toMatchObject({ ...ada, locale: "de-CH" });
    const created = timestampDate(put.recipient!.createTime!);

    const got = await connectA.getRecipient({ userId: "ada" });
    expect(got.recipient).toMatchObject({ ...ada, locale: "de-CH" });
    expect(timestampDate(got.recipient!.createTime!)).toEqual(created);

    // A put replaces the whole profile: what is left out is cleared.
    const replaced = await connectA.putRecipient({ recipient: { userId: "ada", email: "ada@lovelace.example", timeZone: "America/New_York" } });
    expect(replaced.created).toBe(false);
    expect(replaced.recipient).toMatchObject({ userId: "ada", email: "ada@lovelace.example", phone: "", pushTokens: [], webhookUrl: "", timeZone: "America/New_York", locale: "", data: {} });
    expect(timestampDate(replaced.recipient!.createTime!)).toEqual(created);
    expect(timestampDate(replaced.recipient!.updateTime!).getTime()).toBeGreaterThanOrEqual(created.getTime());

    const deleted = await grpcA.deleteRecipient({ userId: "ada" });
    expect(deleted.recipient?.email).toBe("ada@lovelace.example");
    expect(await rejection(grpcA.getRecipient({ userId: "ada" }))).toEqual({ code: "NotFound", message: "no recipient \"ada\"" });
    expect(await rejection(connectA.deleteRecipient({ userId: "ada" }))).toMatchObject({ code: "NotFound" });
    expect(await rows("ada")).toEqual([]);
  });

  it("keeps tenants apart: B neither reads, lists, replaces nor deletes A's profile of the same user id", async () => {
    await grpcA.putRecipient({ recipient: { userId: "shared-id", email: "a@example.com" } });
    expect(await rejection(grpcB.getRecipient({ userId: "shared-id" }))).toMatchObject({ code: "NotFound" });
    expect(await rejection(grpcB.deleteRecipient({ userId: "shared-id" }))).toMatchObject({ code: "NotFound" });
    expect((await grpcB.listRecipients({})).recipients.map((r) => r.userId)).not.toContain("shared-id");
    // B's own profile of the same user id is B's.
    expect((await grpcB.putRecipient({ recipient: { userId: "shared-id", email: "b@example.com" } })).created).toBe(true);
    expect(await rows("shared-id")).toEqual([
      { tenant: "tenant-a", email: "a@example.com", locale: "" },
      { tenant: "tenant-b", email: "b@example.com", locale: "" },
    ]);
    expect((await grpcA.getRecipient({ userId: "shared-id" })).recipient?.email).toBe("a@example.com");
  });

  it("lists in user_id byte order, a page at a time, every profile once", async () => {
    const ids = ["list-b", "list-a", "list-C", "list-é", "list-0"];
    for (const userId of ids) await grpcB.putRecipient({ recipient: { userId } });
    const seen: string[] = [];
    let token = "";
    let pages = 0;
    do {
      const page = await connectA.listRecipients({ pageSize: 2, pageToken: token });
      seen.push(...page.recipients.map((r) => r.userId));
      token = page.nextPageToken;
      pages++;
    } while (token !== "" && pages < 50);
    // Tenant A's only: none of B's list-* ids.
    expect(seen.filter((id) => id.startsWith("list-"))).toEqual([]);
    const b: string[] = [];
    token = "";
    do {
      const page = await grpcB.listRecipients({ pageSize: 2, pageToken: token });
      expect(page.recipients.length).toBeLessThanOrEqual(2);
      b.push(...page.recipients.map((r) => r.userId));
      token = page.nextPageToken;
    } while (token !== "");
    expect(b.filter((id) => id.startsWith("list-"))).toEqual(["list-0", "list-C", "list-a", "list-b", "list-é"]);
    expect(new Set(b).size).toBe(b.length);
  });

  it("refuses bad input with INVALID_ARGUMENT naming the field and rule, and writes nothing", async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{}, "recipient.user_id: is required"],
      [{ userId: "x".repeat(257) }, "recipient.user_id: must be at most 256 characters"],
      [{ userId: "bad\u0001id" }, "recipient.user_id: must not contain control characters"],
      [{ userId: "u1", email: "not-an-email" }, "recipient.email: must be an email address like ada@example.com"],
      [{ userId: "u1", phone: "0041 79 000" }, "recipient.phone: must be an E.164 number like +14155550100"],
      [{ userId: "u1", pushTokens: ["a", "a"] }, "recipient.push_tokens[1]: repeats an earlier token"],
      [{ userId: "u1", pushTokens: ["has space"] }, "recipient.push_tokens[0]: must be printable ASCII without spaces"],
      [{ userId: "u1", pushTokens: Array.from({ length: 11 }, (_, i) => `t${i}`) }, "recipient.push_tokens: must have at most 10 tokens"],
      [{ userId: "u1", webhookUrl: "ftp://example.com/x" }, "recipient.webhook_url: must be an absolute http or https URL"],
      [{ userId: "u1", webhookUrl: "http://127.0.0.1/hook" }, "recipient.webhook_url: must reach a public address"],
      [{ userId: "u1", timeZone: "Mars/Olympus" }, 'recipient.time_zone: must be an IANA time zone name like Europe/Berlin, got "Mars/Olympus"'],
      [{ userId: "u1", timeZone: "+02:00" }, "recipient.time_zone: must be an IANA time zone name"],
      [{ userId: "u1", locale: "english please" }, 'recipient.locale: must be a BCP 47 language tag like de-CH, got "english please"'],
      [{ userId: "u1", data: { "": "v" } }, "recipient.data[\"\"]: key must be 1 to 128 characters"],
    ];
    for (const [recipient, message] of cases) {
      const refused = await rejection(grpcA.putRecipient({ recipient }));
      expect(refused.code, message).toBe("InvalidArgument");
      expect(refused.message.startsWith(message), `${refused.message} should start with ${message}`).toBe(true);
    }
    expect(await rejection(connectA.putRecipient({}))).toEqual({ code: "InvalidArgument", message: "recipient: is required" });
    expect(await rejection(grpcA.getRecipient({ userId: "" }))).toEqual({ code: "InvalidArgument", message: "user_id: is required" });
    expect(await rejection(grpcA.listRecipients({ pageSize: 501 }))).toEqual({ code: "InvalidArgument", message: "page_size: must be 0 to 500 (0 means 100)" });
    expect(await rejection(grpcA.listRecipients({ pageToken: "forged" }))).toEqual({
      code: "InvalidArgument",
      message: "page_token: must be a next_page_token from a previous response",
    });
    expect(await rows("u1")).toEqual([]);
  });
});

describe("herald recipient", () => {
  const run = async (...args: string[]) => {
    let out = "";
    let err = "";
    await runRecipientCommand(args, { HERALD_GRPC_ADDR: herald.grpcAddress, HERALD_API_KEY: KEY_A }, {
      out: { write: (c: string) => (out += c) },
      err: { write: (c: string) => (err += c) },
    });
    return { out, err };
  };

  it("put from flags, get, list and delete against the running server", async () => {
    const put = await run("put", "--user", "cli-grace", "--email", "grace@example.com", "--push-token", "tok-1", "--push-token", "tok-2", "--time-zone", "Asia/Tokyo", "--locale", "ja-jp", "--data", "team=navy", "--data", "rank=admiral");
    expect(put.err).toBe("created\n");
    expect(JSON.parse(put.out)).toMatchObject({ userId: "cli-grace", email: "grace@example.com", pushTokens: ["tok-1", "tok-2"], timeZone: "Asia/Tokyo", locale: "ja-JP", data: { team: "navy", rank: "admiral" } });
    expect((await run("put", "--user", "cli-grace", "--email", "grace@example.com")).err).toBe("replaced\n");
    expect(JSON.parse((await run("get", "--user", "cli-grace")).out)).toMatchObject({ userId: "cli-grace", email: "grace@example.com" });
    const list = await run("list", "--limit", "500");
    const header = list.out.split("\n")[0]!.split(/ {2,}/);
    expect(header).toEqual(["USER_ID", "EMAIL", "PHONE", "PUSH", "WEBHOOK", "TIME_ZONE", "LOCALE", "UPDATED"]);
    expect(list.out).toMatch(/^cli-grace {2,}grace@example\.com {2,}0 /m);
    expect((await run("delete", "--user", "cli-grace")).err).toBe("deleted\n");
    await expect(run("get", "--user", "cli-grace")).rejects.toMatchObject({ code: Code.NotFound });
  });

  it("preferences and categories as proto JSON", async () => {
    await grpcA.putRecipient({ recipient: { userId: "cli-prefs", timeZone: "Europe/Paris" } });
    await grpcA.setPreferences({ preferences: { userId: "cli-prefs", optedOutChannels: [Channel.SMS], quietHours: { start: "21:30", end: "08:00" } } });
    expect(JSON.parse((await run("preferences", "--user", "cli-prefs")).out)).toMatchObject({
      userId: "cli-prefs",
      optedOutChannels: ["CHANNEL_SMS"],
      quietHours: { start: "21:30", end: "08:00" },
    });
    await grpcA.putCategory({ category: { category: "cli-digest", defaultOptedOutChannels: [Channel.PUSH] } });
    const lines = (await run("categories")).out.trim().split("\n").map((l) => JSON.parse(l) as { category: string; defaultOptedOutChannels?: string[] });
    expect(lines.find((c) => c.category === "cli-digest")).toMatchObject({ defaultOptedOutChannels: ["CHANNEL_PUSH"] });
    await expect(run("categories", "--user", "x")).rejects.toThrow("categories takes no --user");
    await expect(run("preferences")).rejects.toThrow("--user is required");
  });

  it("refuses misuse before connecting, and passes the server's INVALID_ARGUMENT through", async () => {
    await expect(run("put", "--email", "x@example.com")).rejects.toBeInstanceOf(UsageError);
    await expect(run("get", "--user", "u", "--email", "x@example.com")).rejects.toThrow("--email goes with put");
    await expect(run("put", "--user", "u", "--data", "novalue")).rejects.toThrow('--data expects key=value, got "novalue"');
    await expect(run("list", "--limit", "0")).rejects.toThrow("--limit expects a positive integer");
    await expect(run("rename")).rejects.toBeInstanceOf(UsageError);
    await expect(run("put", "--user", "u", "--time-zone", "Nowhere/Land")).rejects.toMatchObject({
      code: Code.InvalidArgument,
      rawMessage: 'recipient.time_zone: must be an IANA time zone name like Europe/Berlin, got "Nowhere/Land"',
    });
  });
});

describe("preferences and categories", () => {
  it("sets and reads a recipient's preferences whole; empty until set; NOT_FOUND without a profile; gone with the profile", async () => {
    await grpcA.putRecipient({ recipient: { userId: "pref-lin", email: "lin@example.com", timeZone: "Asia/Taipei" } });
    expect((await grpcA.getPreferences({ userId: "pref-lin" })).preferences).toMatchObject({ userId: "pref-lin", optedOutChannels: [], categories: [] });
    expect((await grpcA.getPreferences({ userId: "pref-lin" })).preferences?.quietHours).toBeUndefined();

    const set = await connectA.setPreferences({
      preferences: {
        userId: "pref-lin",
        optedOutChannels: [Channel.SMS],
        categories: [
          { category: "marketing", unsubscribed: true },
          { category: "news", optedOutChannels: [Channel.PUSH, Channel.EMAIL] },
        ],
        quietHours: { start: "22:00", end: "07:00" },
      },
    });
    expect(set.preferences).toMatchObject({
      userId: "pref-lin",
      optedOutChannels: [Channel.SMS],
      // Channels are stored in order.
      categories: [
        { category: "marketing", optedOutChannels: [], unsubscribed: true },
        { category: "news", optedOutChannels: [Channel.EMAIL, Channel.PUSH], unsubscribed: false },
      ],
      quietHours: { start: "22:00", end: "07:00" },
    });
    expect((await grpcA.getPreferences({ userId: "pref-lin" })).preferences).toEqual(set.preferences);
    // Tenant B has no such recipient.
    expect(await rejection(grpcB.getPreferences({ userId: "pref-lin" }))).toMatchObject({ code: "NotFound" });
    expect(await rejection(grpcB.setPreferences({ preferences: { userId: "pref-lin" } }))).toMatchObject({ code: "NotFound" });

    // Set again: replaced whole (quiet hours cleared).
    const cleared = await grpcA.setPreferences({ preferences: { userId: "pref-lin", optedOutChannels: [Channel.WEBHOOK] } });
    expect(cleared.preferences).toMatchObject({ optedOutChannels: [Channel.WEBHOOK], categories: [] });
    expect(cleared.preferences?.quietHours).toBeUndefined();

    await grpcA.deleteRecipient({ userId: "pref-lin" });
    const left = await herald.db.pool.query("SELECT 1 FROM recipient_preferences WHERE user_id = 'pref-lin'");
    expect(left.rowCount).toBe(0);
    expect(await rejection(grpcA.getPreferences({ userId: "pref-lin" }))).toEqual({ code: "NotFound", message: 'no recipient "pref-lin": PutRecipient first' });
  });

  it("refuses bad preferences naming the field; quiet hours need the profile's time zone", async () => {
    await grpcA.putRecipient({ recipient: { userId: "pref-bad" } });
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ optedOutChannels: [Channel.UNSPECIFIED] }, "preferences.opted_out_channels[0]: must be a deliverable channel, got 0"],
      [{ optedOutChannels: [Channel.SMS, Channel.SMS] }, "preferences.opted_out_channels[1]: repeats an earlier channel"],
      [{ categories: [{ category: "Marketing" }] }, "preferences.categories[0].category: must be 1 to 64 of a-z, 0-9, '_', '-', '.', starting with a letter or digit"],
      [{ categories: [{ category: "news" }, { category: "news" }] }, 'preferences.categories[1].category: repeats "news"'],
      [{ quietHours: { start: "22:00", end: "25:00" } }, "preferences.quiet_hours.end: must be a wall-clock time HH:MM"],
      [{ quietHours: { start: "22:00", end: "07:00" } }, "preferences.quiet_hours: needs the recipient's time_zone: set it with PutRecipient first"],
    ];
    for (const [fields, message] of cases) {
      const refused = await rejection(grpcA.setPreferences({ preferences: { userId: "pref-bad", ...fields } }));
      expect(refused.code, message).toBe("InvalidArgument");
      expect(refused.message.startsWith(message), `${refused.message} should start with ${message}`).toBe(true);
    }
    expect(await rejection(grpcA.setPreferences({}))).toEqual({ code: "InvalidArgument", message: "preferences: is required" });
    const stored = await herald.db.pool.query("SELECT 1 FROM recipient_preferences WHERE user_id = 'pref-bad'");
    expect(stored.rowCount).toBe(0);
  });

  it("keeps the tenant's categories: put (created, then replaced), list by name, delete; a required one takes no default opt-outs", async () => {
    const security = await grpcA.putCategory({ category: { category: "security", required: true, description: "Sign-ins and password resets" } });
    expect(security).toMatchObject({ created: true, category: { category: "security", required: true, defaultOptedOutChannels: [] } });
    await connectA.putCategory({ category: { category: "marketing", defaultOptedOutChannels: [Channel.SMS] } });
    const replaced = await grpcA.putCategory({ category: { category: "marketing", defaultOptedOutChannels: [Channel.SMS, Channel.PUSH] } });
    expect(replaced).toMatchObject({ created: false, category: { defaultOptedOutChannels: [Channel.SMS, Channel.PUSH] } });
    // (The CLI test's cli-* categories are tenant A's too.)
    const mine = async () => (await grpcA.listCategories({})).categories.filter((c) => !c.category.startsWith("cli-"));
    expect((await mine()).map((c) => [c.category, c.required])).toEqual([
      ["marketing", false],
      ["security", true],
    ]);
    // Tenant B's list is its own.
    expect((await grpcB.listCategories({})).categories).toEqual([]);
    expect(await rejection(grpcB.deleteCategory({ category: "marketing" }))).toEqual({ code: "NotFound", message: 'no category "marketing"' });

    expect(await rejection(grpcA.putCategory({ category: { category: "billing", required: true, defaultOptedOutChannels: [Channel.EMAIL] } }))).toEqual({
      code: "InvalidArgument",
      message: "category.default_opted_out_channels: must be empty for a required category (nobody may be opted out of it)",
    });
    expect(await rejection(grpcA.putCategory({}))).toEqual({ code: "InvalidArgument", message: "category: is required" });

    expect((await grpcA.deleteCategory({ category: "marketing" })).category?.category).toBe("marketing");
    expect((await mine()).map((c) => c.category)).toEqual(["security"]);
  });
});
