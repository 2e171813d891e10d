import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Channel, Status, type Notification } from "../gen/herald/v1/notification_pb.js";
import { SuppressionReason, SuppressionService } from "../gen/herald/v1/suppression_pb.js";
import { runSuppressionsCommand } from "../src/cli/suppression-commands.js";
import { UsageError } from "../src/cli/usage-error.js";
import { createSuppressionClient, type SuppressionClient } from "../src/client/index.js";
import { addSuppression } from "../src/store/suppressions.js";
import type { Provider, RenderedMessage } from "../src/workers/providers/provider.js";
import { FAST } from "./e2e/support.js";
import { KEY_A, KEY_B, startTestHerald, type TestHerald } from "./support/herald.js";
import { bearer, rejection } from "./support/rpc.js";
import { waitFor } from "./support/wait.js";

// Suppressions end to end: SuppressionService on both listeners (gRPC and Connect), scoped to
// the caller's tenant, and enforced by the email worker: a send to a suppressed address ends
// FAILED with the reason and never reaches the provider (an in-process fake that records calls).

/** An email provider that accepts everything and remembers whom it was asked to send to. */
function recordingProvider(): Provider & { calls: RenderedMessage[] } {
  const calls: RenderedMessage[] = [];
  return {
    name: "recording",
    calls,
    async send(m) {
      calls.push(m);
      return { providerMessageId: `rec-${m.notificationId}` };
    },
    close: async () => {},
  };
}

let herald: TestHerald;
let provider: ReturnType<typeof recordingProvider>;
let grpcA: SuppressionClient;
let grpcB: SuppressionClient;
let connectA: Client<typeof SuppressionService>;

beforeAll(async () => {
  provider = recordingProvider();
  herald = await startTestHerald({ roles: ["server", "relay", "scheduler", "worker"], providers: { email: provider }, env: { ...FAST } });
  grpcA = createSuppressionClient({ address: herald.grpcAddress, apiKey: KEY_A });
  grpcB = createSuppressionClient({ address: herald.grpcAddress, apiKey: KEY_B });
  connectA = createClient(SuppressionService, createConnectTransport({ baseUrl: herald.httpUrl, httpVersion: "1.1", interceptors: [bearer(KEY_A)] }));
});
afterAll(async () => {
  grpcA?.close();
  grpcB?.close();
  await herald?.stop();
});

const unique = (local: string) => `${local}-${crypto.randomUUID().slice(0, 8)}@example.com`;

async function sendEmail(to: string, key = KEY_A): Promise<string> {
  const { notification } = await herald.client(key).create({
    notification: {
      channel: Channel.EMAIL,
      recipient: { userId: "sup-user", address: { case: "email", value: to } },
      body: { case: "content", value: { subject: "Hi", text: "Hello" } },
    },
  });
  return notification!.id;
}

async function settled(id: string, key = KEY_A): Promise<Notification> {
  return waitFor(`${id} to settle`, async () => {
    const { notification } = await herald.client(key).get({ id });
    const s = notification?.status;
    return s === Status.SENT || s === Status.FAILED || s === Status.DEAD_LETTERED ? notification : undefined;
  }, { timeoutMs: 60_000 });
}

describe("SuppressionService", () => {
  for (const [name, client] of [["gRPC", () => grpcA], ["Connect", () => connectA]] as const) {
    it(`adds, lists and removes over ${name}, the email normalized; a repeat add keeps the first entry`, async () => {
      const c = client();
      const address = unique("Ada.Lovelace").replace("example.com", "Example.COM");
      const stored = address.toLowerCase();
      const added = await c.addSuppression({ channel: Channel.EMAIL, address, note: "asked us to stop" });
      expect(added.created).toBe(true);
      expect(added.suppression).toMatchObject({
        channel: Channel.EMAIL, address: stored, reason: SuppressionReason.MANUAL, detail: "asked us to stop", notificationId: "",
      });
      const since = timestampDate(added.suppression!.createTime!);
      expect(Math.abs(since.getTime() - Date.now())).toBeLessThan(600_000);

      const again = await c.addSuppression({ channel: Channel.EMAIL, address: stored, note: "second note" });
      expect(again.created).toBe(false);
      expect(again.suppression?.detail).toBe("asked us to stop");

      const listed = await c.listSuppressions({ channel: Channel.EMAIL, pageSize: 500 });
      expect(listed.suppressions.filter((s) => s.address === stored)).toHaveLength(1);

      const removed = await c.removeSuppression({ channel: Channel.EMAIL, address });
      expect(removed.suppression).toMatchObject({ address: stored, detail: "asked us to stop" });
      expect(await rejection(c.removeSuppression({ channel: Channel.EMAIL, address }))).toEqual({
        code: "NotFound",
        message: `no suppression of ${JSON.stringify(address.length > 40 ? `${address.slice(0, 40)}…` : address)} on CHANNEL_EMAIL`,
      });
      const after = await c.listSuppressions({ channel: Channel.EMAIL, pageSize: 500 });
      expect(after.suppressions.filter((s) => s.address === stored)).toHaveLength(0);
    });
  }

  it("keeps tenants apart: B neither sees nor removes A's suppression", async () => {
    const address = unique("tenant");
    await grpcA.addSuppression({ channel: Channel.EMAIL, address });
    const seenByB = await grpcB.listSuppressions({ pageSize: 500 });
    expect(seenByB.suppressions.map((s) => s.address)).not.toContain(address);
    expect((await rejection(grpcB.removeSuppression({ channel: Channel.EMAIL, address }))).code).toBe("NotFound");
    const seenByA = await grpcA.listSuppressions({ pageSize: 500 });
    expect(seenByA.suppressions.map((s) => s.address)).toContain(address);
  });

  it("pages newest first with the channel filter, every row once", async () => {
    const phones = Array.from({ length: 5 }, (_, i) => `+1415555${String(Math.floor(Math.random() * 900) + 100)}${i}`);
    for (const [i, phone] of phones.entries()) {
      // Distinct times, oldest first, so the order is known.
      await addSuppression(herald.db.pool, {
        tenant: "tenant-a", channel: Channel.SMS, address: phone, reason: "hard_bounce", detail: `21211 #${i}`,
        createdAt: new Date(Date.UTC(2030, 0, 1, 0, 0, i)),
      });
    }
    const seen: string[] = [];
    let pageToken = "";
    let pages = 0;
    do {
      const page = await grpcA.listSuppressions({ channel: Channel.SMS, pageSize: 2, pageToken });
      expect(page.suppressions.every((s) => s.channel === Channel.SMS && s.reason === SuppressionReason.HARD_BOUNCE)).toBe(true);
      seen.push(...page.suppressions.map((s) => s.address));
      pageToken = page.nextPageToken;
      pages++;
    } while (pageToken !== "");
    // Newest first: the 2030 rows lead, in reverse order of creation.
    expect(seen.slice(0, 5)).toEqual([...phones].reverse());
    expect(new Set(seen).size).toBe(seen.length);
    expect(pages).toBeGreaterThanOrEqual(3);
    const email = await grpcA.listSuppressions({ channel: Channel.EMAIL, pageSize: 500 });
    expect(email.suppressions.some((s) => phones.includes(s.address))).toBe(false);
  });

  it("refuses bad input with INVALID_ARGUMENT naming the field and the rule", async () => {
    const cases: Array<[Promise<unknown>, string]> = [
      [grpcA.addSuppression({ address: "a@example.com" }), "channel: is required: set CHANNEL_EMAIL, CHANNEL_SMS, CHANNEL_PUSH or CHANNEL_WEBHOOK"],
      [grpcA.addSuppression({ channel: 9 as Channel, address: "a@example.com" }), "channel: must be a known channel, got 9"],
      [grpcA.addSuppression({ channel: Channel.EMAIL, address: "" }), "address: is required"],
      [grpcA.addSuppression({ channel: Channel.EMAIL, address: "not-an-email" }), "address: must be an email address like ada@example.com"],
      [grpcA.addSuppression({ channel: Channel.SMS, address: "0415 555 0100" }), "address: must be an E.164 number like +14155550100"],
      [grpcA.addSuppression({ channel: Channel.PUSH, address: "token with spaces" }), "address: must be printable ASCII without spaces"],
      [grpcA.addSuppression({ channel: Channel.WEBHOOK, address: "ftp://hooks.example.com/in" }), "address: must be an absolute http or https URL"],
      [grpcA.addSuppression({ channel: Channel.EMAIL, address: "a@example.com", note: "n".repeat(1025) }), "note: must be at most 1024 characters"],
      [grpcA.addSuppression({ channel: Channel.EMAIL, address: "a@example.com", note: "bell\u0007" }), "note: must not contain control characters other than tab and newline"],
      [grpcA.removeSuppression({ channel: Channel.SMS, address: "+1" }), "address: must be an E.164 number like +14155550100"],
      [grpcA.listSuppressions({ pageSize: 501 }), "page_size: must be 0 to 500 (0 means 100)"],
      [grpcA.listSuppressions({ channel: 9 as Channel }), "channel: must be a known channel, got 9"],
      [grpcA.listSuppressions({ pageToken: "junk" }), "page_token: must be a next_page_token from a previous response"],
    ];
    for (const [call, message] of cases) expect(await rejection(call)).toEqual({ code: "InvalidArgument", message });
  });
});

describe("forged page tokens", () => {
  const token = (body: unknown) => Buffer.from(JSON.stringify(body)).toString("base64url");
  const at = (createdUs: string, channel = "1", address = "a@example.com") => token({ v: 1, createdUs, channel, address });

  it("are INVALID_ARGUMENT naming page_token; the extremes of the accepted range reach PostgreSQL and are answered", async () => {
    const refusedTokens = [
      at("9223372036854775807"),
      at("-62135596800000001"),
      at("0", "32768"),
      at("0", "0"),
      at("0", "1", ""),
      at("0", "1", "x".repeat(4097)),
      at("0", "1", "nul\u0000"),
      token({ v: 1, createdUs: "0", channel: 1, address: "a" }),
    ];
    for (const t of refusedTokens) {
      expect(await rejection(grpcA.listSuppressions({ pageToken: t }))).toEqual({
        code: "InvalidArgument",
        message: "page_token: must be a next_page_token from a previous response",
      });
    }
    for (const t of [at("-62135596800000000"), at("253402300799999999", "32767", "\u{1F600}'; DROP TABLE suppressions; --")]) {
      const page = await connectA.listSuppressions({ pageToken: t, pageSize: 1 });
      expect(page.suppressions.length).toBeLessThanOrEqual(1);
    }
  });
});

describe("enforcement at send", () => {
  it("a Create to a suppressed email ends FAILED with the reason, without a provider call; after removal it is SENT", async () => {
    const address = unique("bounced");
    const { suppression } = await grpcA.addSuppression({ channel: Channel.EMAIL, address, note: "mailbox full for a year" });
    const since = timestampDate(suppression!.createTime!).toISOString();

    // Differently cased: the stored form still matches.
    const blocked = await settled(await sendEmail(address.toUpperCase()));
    expect(blocked.status).toBe(Status.FAILED);
    expect(blocked.lastError).toBe(
      `address suppressed: added by an operator (mailbox full for a year) since ${since}; remove the suppression to send again`,
    );
    expect(blocked.attempts).toBe(1);
    expect(provider.calls.filter((m) => m.notificationId === blocked.id)).toHaveLength(0);

    // Another tenant's suppression is not tenant B's: B's mail to the same address goes out.
    const other = await settled(await sendEmail(address, KEY_B), KEY_B);
    expect(other.status).toBe(Status.SENT);

    await grpcA.removeSuppression({ channel: Channel.EMAIL, address });
    const sent = await settled(await sendEmail(address));
    expect(sent.status).toBe(Status.SENT);
    expect(provider.calls.filter((m) => m.notificationId === sent.id)).toHaveLength(1);
  });

  it("a receipt's hard bounce reads as such in the failure", async () => {
    const address = unique("hard");
    await addSuppression(herald.db.pool, { tenant: "tenant-a", channel: Channel.EMAIL, address, reason: "hard_bounce", detail: "550 5.1.1 user unknown" });
    const n = await settled(await sendEmail(address));
    expect(n.status).toBe(Status.FAILED);
    expect(n.lastError).toMatch(/^address suppressed: hard bounce \(550 5\.1\.1 user unknown\) since \d{4}-\d\d-\d\dT[\d:.]+Z; remove the suppression to send again$/);
    expect(provider.calls.filter((m) => m.notificationId === n.id)).toHaveLength(0);
  });
});

describe("herald suppressions", () => {
  function captured() {
    const c = { out: "", err: "" };
    return { c, io: { out: { write: (s: string) => (c.out += s) }, err: { write: (s: string) => (c.err += s) } } };
  }
  const run = async (...args: string[]) => {
    const { c, io } = captured();
    await runSuppressionsCommand([...args, "--addr", herald.grpcAddress, "--api-key", KEY_A], {}, io);
    return c;
  };

  it("adds, lists and removes, printing a table", async () => {
    const phone = `+4420794${String(Math.floor(Math.random() * 90000) + 10000)}`;
    const added = await run("add", "--channel", "sms", "--address", phone, "--note", "number reassigned");
    expect(added.err).toBe("suppressed\n");
    expect(added.out.split("\n")[0]).toMatch(/^SINCE +CHANNEL +ADDRESS +REASON +DETAIL +NOTIFICATION$/);
    expect(added.out).toMatch(new RegExp(`^\\S+Z +sms +\\${phone} +manual +number reassigned$`, "m"));
    expect((await run("add", "--channel", "sms", "--address", phone)).err).toBe("already suppressed (the existing entry is kept)\n");

    const listed = await run("list", "--channel", "sms");
    expect(listed.out).toContain(phone);
    const removed = await run("remove", "--channel", "sms", "--address", phone);
    expect(removed.err).toBe("removed: sends to this address go through again\n");
    expect((await run("list", "--channel", "sms")).out).not.toContain(phone);
    await expect(run("remove", "--channel", "sms", "--address", phone)).rejects.toMatchObject({ code: Code.NotFound });
  });

  it("refuses bad usage before connecting", async () => {
    await expect(run("add", "--address", "a@example.com")).rejects.toThrow(new UsageError("--channel is required: email, sms, push or webhook"));
    await expect(run("add", "--channel", "fax", "--address", "a")).rejects.toThrow(new UsageError("--channel must be email, sms, push or webhook"));
    await expect(run("remove", "--channel", "email")).rejects.toThrow(new UsageError("--address is required"));
    await expect(run("list", "--limit", "0")).rejects.toThrow(new UsageError("--limit expects a positive integer"));
    await expect(run("purge")).rejects.toBeInstanceOf(UsageError);
  });
});
