import { freePorts } from "./support/processes.js";
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Channel, Status } from "../gen/herald/v1/notification_pb.js";
import { SkipReason } from "../gen/herald/v1/notification_service_pb.js";
import { createRecipientClient, type HeraldClient, type RecipientClient } from "../src/client/index.js";
import { createUnsubscribeTokens, type UnsubscribeTokens } from "../src/domain/unsubscribe-token.js";
import { loadUnsubscribeKey } from "../src/store/unsubscribes.js";
import { startTestHerald, KEY_A, type TestHerald } from "./support/herald.js";
import { metricValue } from "./support/metric-values.js";
import { startSmtpStandIn, type ReceivedEmail, type SmtpStandIn } from "./support/stand-ins/smtp.js";
import { waitFor } from "./support/wait.js";

// One-click unsubscribe (RFC 8058) through the real listeners: a Herald (server, relay,
// scheduler, email worker) sending through the SMTP stand-in, with HERALD_PUBLIC_URL at its own
// HTTP listener. The links are taken from the mails the stand-in received and fetched as a mailbox
// provider would (POST List-Unsubscribe=One-Click) or a person's browser (GET, then the form).

const TENANT = "tenant-a";

let herald: TestHerald;
let smtp: SmtpStandIn;
let client: HeraldClient;
let recipients: RecipientClient;
let publicUrl: string;
/** The deployment's own codec: to make a token for a required category, as a link sent before it became required. */
let deploymentTokens: UnsubscribeTokens;

beforeAll(async () => {
  smtp = await startSmtpStandIn();
  const port = (await freePorts(1))[0]!;
  publicUrl = `http://127.0.0.1:${port}`;
  herald = await startTestHerald({
    roles: ["server", "relay", "scheduler", "worker"],
    channels: ["email"],
    env: {
      HERALD_HTTP_ADDR: `127.0.0.1:${port}`,
      HERALD_PUBLIC_URL: publicUrl,
      HERALD_UNSUBSCRIBE_MAILTO: "unsubscribe@example.test",
      HERALD_EMAIL_PROVIDER: "smtp",
      SMTP_HOST: smtp.host,
      SMTP_PORT: String(smtp.port),
      HERALD_EMAIL_FROM: "herald@example.test",
    },
  });
  client = herald.client(KEY_A);
  recipients = createRecipientClient({ address: herald.grpcAddress, apiKey: KEY_A });
  deploymentTokens = createUnsubscribeTokens(await loadUnsubscribeKey(herald.db.pool));
}, 120_000);

afterAll(async () => {
  recipients?.close();
  await herald?.stop();
  await smtp?.close();
});

const user = (name: string) => `${name}-${randomBytes(3).toString("hex")}`;
const unsubscribes = (result: string) => metricValue(herald.rt.metrics, "herald_unsubscribes_total", { result });

async function createEmail(userId: string, to: string, category: string): Promise<string> {
  const { notification } = await client.create({
    notification: { channel: Channel.EMAIL, category, recipient: { userId, address: { case: "email", value: to } }, body: { case: "content", value: { subject: "News", text: "Spring sale" } } },
  });
  if (!notification?.id) throw new Error("Create returned no notification");
  return notification.id;
}

async function settled(id: string): Promise<{ status: Status; lastError: string }> {
  return waitFor(`${id} to end SENT or FAILED`, async () => {
    const { notification: n } = await client.get({ id });
    return n && (n.status === Status.SENT || n.status === Status.FAILED) ? { status: n.status, lastError: n.lastError } : undefined;
  }, { timeoutMs: 30_000 });
}

/** An email of `category`, sent; what the SMTP stand-in got. */
async function sentEmail(userId: string, to: string, category: string): Promise<ReceivedEmail> {
  const id = await createEmail(userId, to, category);
  expect(await settled(id)).toEqual({ status: Status.SENT, lastError: "" });
  return waitFor("the mail at the SMTP stand-in", () => smtp.messages.find((m) => m.headers["x-herald-notification-id"] === id));
}

/** The HTTPS link of a mail's List-Unsubscribe header (the first entry; the mailto is the second). */
function linkOf(mail: ReceivedEmail): string {
  const header = mail.headers["list-unsubscribe"] ?? "";
  const m = /^<([^>]+)>/.exec(header);
  if (!m) throw new Error(`no List-Unsubscribe link in ${JSON.stringify(header)}`);
  return m[1]!;
}

/** POSTs a one-click unsubscribe as RFC 8058 §3.2 says a mailbox provider does: no cookie, the one parameter. */
async function oneClick(link: string): Promise<{ status: number; text: string }> {
  const res = await fetch(link, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: "List-Unsubscribe=One-Click", redirect: "manual" });
  return { status: res.status, text: await res.text() };
}

async function marketingChoice(userId: string) {
  const { preferences } = await recipients.getPreferences({ userId });
  return preferences?.categories.find((c) => c.category === "marketing");
}

const clicks = async (userId: string) =>
  (await herald.db.pool.query<{ category: string }>("SELECT category FROM unsubscribes WHERE tenant = $1 AND user_id = $2 ORDER BY category", [TENANT, userId])).rows.map((r) => r.category);

describe("one-click unsubscribe", () => {
  it("a marketing email carries both headers; GET asks and changes nothing; the one-click POST records it, once; Notify then skips email and Create'd marketing mail is not sent", async () => {
    const ada = user("ada");
    await recipients.putRecipient({ recipient: { userId: ada, email: "ada@example.com" } });

    const mail = await sentEmail(ada, "ada@example.com", "marketing");
    expect(mail.headers["list-unsubscribe-post"]).toBe("List-Unsubscribe=One-Click");
    const link = linkOf(mail);
    expect(link).toMatch(new RegExp(`^${publicUrl}/unsubscribe/u1\\.[A-Za-z0-9_-]+$`));
    const token = link.slice(link.lastIndexOf("/") + 1);
    expect(mail.headers["list-unsubscribe"]).toBe(`<${link}>, <mailto:unsubscribe@example.test?subject=unsubscribe%20${token}>`);
    // The link does not show whose it is.
    expect(link).not.toContain(ada);

    // A mail scanner fetching the link: a page with a form, no unsubscribe.
    const page = await fetch(link);
    expect(page.status).toBe(200);
    expect(page.headers.get("cache-control")).toBe("no-store");
    const html = await page.text();
    expect(html).toContain('<form method="post"');
    expect(html).toContain('name="List-Unsubscribe" value="One-Click"');
    expect(html).toContain("marketing");
    expect(await marketingChoice(ada)).toBeUndefined();
    expect(await clicks(ada)).toEqual([]);

    const recordedBefore = await unsubscribes("recorded");
    const first = await oneClick(link);
    expect(first.status).toBe(200);
    expect(first.text).toContain("You will no longer receive <strong>marketing</strong> messages.");
    expect(await marketingChoice(ada)).toMatchObject({ category: "marketing", unsubscribed: true });
    expect(await unsubscribes("recorded")).toBe(recordedBefore + 1);
    // Idempotent: a second click (or a provider posting twice) changes nothing and still says 200.
    const repeatsBefore = await unsubscribes("repeat");
    expect((await oneClick(link)).status).toBe(200);
    expect(await unsubscribes("repeat")).toBe(repeatsBefore + 1);
    expect(await clicks(ada)).toEqual(["marketing"]);

    const notified = await client.notify({ userId: ada, category: "marketing", channels: [Channel.EMAIL], body: { case: "content", value: { subject: "More", text: "Another sale" } } });
    expect(notified.notifications).toEqual([]);
    expect(notified.skipped.map((s) => [s.channel, s.reason, s.detail])).toEqual([[Channel.EMAIL, SkipReason.UNSUBSCRIBED, "the recipient unsubscribed from marketing"]]);

    // Create does not read preferences, but the worker checks before it sends.
    const direct = await createEmail(ada, "ada@example.com", "marketing");
    const outcome = await settled(direct);
    expect(outcome.status).toBe(Status.FAILED);
    expect(outcome.lastError).toMatch(/^recipient unsubscribed from marketing by its one-click link since \d{4}-\d\d-\d\dT.*; SetPreferences without that unsubscribe subscribes them again$/);
    // Other categories, and mail without one, still go; the latter with no List-Unsubscribe.
    const receipt = await sentEmail(ada, "ada@example.com", "");
    expect(receipt.headers["list-unsubscribe"]).toBeUndefined();
    expect(receipt.headers["list-unsubscribe-post"]).toBeUndefined();
    // The FAILED one never reached the stand-in (checked after a later mail did).
    expect(smtp.messages.some((m) => m.headers["x-herald-notification-id"] === direct)).toBe(false);
    expect(linkOf(await sentEmail(ada, "ada@example.com", "digest"))).not.toBe(link);

    // SetPreferences replaces the preferences whole: without the unsubscribe, marketing goes again.
    await recipients.setPreferences({ preferences: { userId: ada, categories: [] } });
    expect(await clicks(ada)).toEqual([]);
    expect(await marketingChoice(ada)).toBeUndefined();
    await sentEmail(ada, "ada@example.com", "marketing");
  });

  it("the form on the page unsubscribes too (a browser's POST), and a recipient without a profile is honoured", async () => {
    const walkIn = user("walk-in");
    const mail = await sentEmail(walkIn, "walk-in@example.com", "marketing");
    const link = linkOf(mail);
    // What the page's form sends: its hidden field, urlencoded, to the same URL.
    const res = await fetch(link, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: new URLSearchParams({ "List-Unsubscribe": "One-Click" }).toString() });
    expect(res.status).toBe(200);
    expect(await clicks(walkIn)).toEqual(["marketing"]);
    const next = await createEmail(walkIn, "walk-in@example.com", "marketing");
    expect((await settled(next)).status).toBe(Status.FAILED);

    // A profile made later sees it as their preference, and Notify skips it.
    await recipients.putRecipient({ recipient: { userId: walkIn, email: "walk-in@example.com" } });
    expect(await marketingChoice(walkIn)).toMatchObject({ unsubscribed: true, optedOutChannels: [] });
    const notified = await client.notify({ userId: walkIn, category: "marketing", channels: [Channel.EMAIL], body: { case: "content", value: { text: "Sale" } } });
    expect(notified.skipped.map((s) => s.reason)).toEqual([SkipReason.UNSUBSCRIBED]);
  });

  it("a send is held to the recipient's channel opt-outs as they stand at send (Create checks none at accept), as Notify would be", async () => {
    const userId = user("late");
    await recipients.putRecipient({ recipient: { userId, email: "late@example.com" } });
    // Create does not read preferences, so only the send can honour them: an email of a category
    // the recipient opted out of on email, and one of a category off on email by default.
    await recipients.setPreferences({ preferences: { userId, categories: [{ category: "digest", optedOutChannels: [Channel.EMAIL] }] } });
    const optedOut = await createEmail(userId, "late@example.com", "digest");
    expect(await settled(optedOut)).toEqual({ status: Status.FAILED, lastError: "not sent: the recipient opted out of CHANNEL_EMAIL for digest; SetPreferences changes that" });
    await recipients.putCategory({ category: { category: "weekly", defaultOptedOutChannels: [Channel.EMAIL] } });
    const byDefault = await createEmail(user("never-chose"), "never@example.com", "weekly");
    expect(await settled(byDefault)).toEqual({ status: Status.FAILED, lastError: "not sent: weekly is off on CHANNEL_EMAIL unless the recipient opts in; SetPreferences changes that" });
    // Another category still goes out, and no provider was asked for the two refused.
    await sentEmail(userId, "late@example.com", "news");
    expect(smtp.messages.filter((m) => [optedOut, byDefault].includes(m.headers["x-herald-notification-id"] ?? ""))).toEqual([]);
  });

  it("refuses a forged, altered or malformed link with 403 and changes nothing", async () => {
    const grace = user("grace");
    await recipients.putRecipient({ recipient: { userId: grace, email: "grace@example.com" } });
    const link = linkOf(await sentEmail(grace, "grace@example.com", "marketing"));
    const token = link.slice(link.lastIndexOf("/") + 1);
    const raw = Buffer.from(token.slice(3), "base64url");
    const flip = (at: number) => {
      const copy = Buffer.from(raw);
      copy[at]! ^= 0x01;
      return `${publicUrl}/unsubscribe/u1.${copy.toString("base64url")}`;
    };
    const otherKey = createUnsubscribeTokens(randomBytes(32)).sign({ tenant: TENANT, userId: grace, category: "marketing", notificationId: "0190f3c2-0000-7000-8000-000000000001", issuedAt: new Date() });
    const forged = [
      flip(0), // the tag
      flip(raw.length - 1), // the claims
      `${publicUrl}/unsubscribe/${otherKey}`,
      `${publicUrl}/unsubscribe/${token.slice(0, -4)}`,
      `${publicUrl}/unsubscribe/not-a-token`,
      `${publicUrl}/unsubscribe/`,
      `${publicUrl}/unsubscribe/u1.${"A".repeat(4000)}`,
    ];
    const invalidBefore = await unsubscribes("invalid");
    for (const url of forged) {
      const res = await oneClick(url);
      expect(res.status, url.slice(0, 80)).toBe(403);
      expect(res.text).toContain("This unsubscribe link is not valid.");
      expect((await fetch(url)).status).toBe(403);
    }
    expect(await unsubscribes("invalid")).toBe(invalidBefore + forged.length);
    expect(await clicks(grace)).toEqual([]);
    expect(await marketingChoice(grace)).toBeUndefined();
    // Other methods are not served; an oversized body is refused unread.
    expect((await fetch(link, { method: "PUT", body: "x" })).status).toBe(405);
    expect((await fetch(link, { method: "POST", body: "x".repeat(8 * 1024) })).status).toBe(413);
    expect(await clicks(grace)).toEqual([]);
    // The genuine link still works.
    expect((await oneClick(link)).status).toBe(200);
    expect(await clicks(grace)).toEqual(["marketing"]);
  });

  it("a required category gets no header, and a link for one (made before it became required) is refused", async () => {
    const alan = user("alan");
    await recipients.putRecipient({ recipient: { userId: alan, email: "alan@example.com" } });
    await recipients.putCategory({ category: { category: "security", required: true } });
    const mail = await sentEmail(alan, "alan@example.com", "security");
    expect(mail.headers["list-unsubscribe"]).toBeUndefined();
    expect(mail.headers["list-unsubscribe-post"]).toBeUndefined();

    const token = deploymentTokens.sign({ tenant: TENANT, userId: alan, category: "security", notificationId: "0190f3c2-0000-7000-8000-000000000002", issuedAt: new Date() });
    const requiredBefore = await unsubscribes("required");
    const res = await oneClick(`${publicUrl}/unsubscribe/${token}`);
    expect(res.status).toBe(403);
    expect(res.text).toContain("cannot be turned off");
    expect(await unsubscribes("required")).toBe(requiredBefore + 1);
    expect(await clicks(alan)).toEqual([]);
    expect((await recipients.getPreferences({ userId: alan })).preferences?.categories).toEqual([]);
  });
});
