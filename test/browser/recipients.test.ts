import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Channel, Priority, createHeraldClient, createRecipientClient, type HeraldClient, type RecipientClient } from "../../src/client/index.js";
import { FAST } from "../e2e/support.js";
import { createTestDatabase, type TestDatabase } from "../support/db.js";
import { REPO, heraldSite, spawnHerald, stopAll, type HeraldProcess, type HeraldSite } from "../support/processes.js";
import { waitFor } from "../support/wait.js";
import { checkPrerequisites, launchBrowser, type TestBrowser } from "./browser.js";
import { recipientsPage, type RecipientsPage } from "./recipients-page.js";

// The dashboard's Notify form and recipient view in headless Chromium, against
// Herald as real processes (server, relay, an email worker writing to the
// local sink). A person is stored through the API (profile, preferences, the
// tenant's categories); the page notifies them and shows what was created and
// every channel skipped with its reason, the created notifications reach the
// live table by the feed, and the recipient view shows what Notify read.

const NOTIFY_SHOT = join(REPO, "docs/img/notify-form.png");
const RECIPIENT_SHOT = join(REPO, "docs/img/recipients-view.png");
const ZONE = "Europe/Zurich";

let db: TestDatabase;
let site: HeraldSite;
const processes: HeraldProcess[] = [];
let client: HeraldClient;
let people: RecipientClient;
let browser: TestBrowser | undefined;
let rp: RecipientsPage;
const sinkDir = mkdtempSync(join(tmpdir(), "herald-sink-"));

/** Wall-clock "HH:MM" in ZONE, `minutes` from now: quiet hours around the test's own moment. */
function zoneClock(minutes: number): string {
  const at = new Date(Date.now() + minutes * 60_000);
  return new Intl.DateTimeFormat("en-GB", { timeZone: ZONE, hour: "2-digit", minute: "2-digit", hourCycle: "h23" }).format(at);
}
const quiet = { start: zoneClock(-120), end: zoneClock(120) };

beforeAll(async () => {
  checkPrerequisites();
  db = await createTestDatabase("herald_web_rc");
  site = await heraldSite(db.url);
  const env = site.env({ ...FAST, HERALD_EMAIL_PROVIDER: "sink", HERALD_SINK_DIR: sinkDir });
  const roles: Array<[Parameters<typeof spawnHerald>[0], string[]]> = [["server", []], ["relay", []], ["worker", ["--channel", "email"]]];
  await Promise.all(
    roles.map(async ([role, args]) => {
      const p = spawnHerald(role, env, role, args);
      processes.push(p);
      await p.waitForLog(`herald ${role} started`, 60_000);
    }),
  );
  client = createHeraldClient({ address: site.grpcAddress, apiKey: site.apiKey });
  people = createRecipientClient({ address: site.grpcAddress, apiKey: site.apiKey });

  await people.putCategory({ category: { category: "security", required: true, description: "Sign-ins and password changes" } });
  await people.putCategory({ category: { category: "marketing", defaultOptedOutChannels: [Channel.SMS], description: "Offers and news" } });
  await people.putCategory({ category: { category: "billing", description: "Invoices and receipts" } });
  await people.putRecipient({
    recipient: { userId: "ada", email: "ada@example.com", phone: "+14155550100", pushTokens: ["tok-ada-phone"], timeZone: ZONE, locale: "de-ch", data: { plan: "pro" } },
  });
  await people.setPreferences({
    preferences: {
      userId: "ada",
      optedOutChannels: [Channel.SMS],
      categories: [
        { category: "marketing", unsubscribed: true },
        { category: "news", optedOutChannels: [Channel.PUSH] },
      ],
      // Around now: a Notify below PRIORITY_HIGH is held, one at PRIORITY_HIGH goes at once.
      quietHours: quiet,
    },
  });

  browser = await launchBrowser();
  rp = recipientsPage(browser.page);
}, 180_000);

afterAll(async () => {
  await browser?.close();
  client?.close();
  people?.close();
  await Promise.all(processes.map((p) => p.stop("SIGTERM", 15_000)));
  await stopAll("SIGKILL", 5_000);
  await db?.drop();
  rmSync(sinkDir, { recursive: true, force: true });
});

describe("the Notify form and the recipient view", () => {
  it("notifies a stored person from the page, shows what was created and skipped and why, and the table follows the created ones", { timeout: 240_000 }, async () => {
    await rp.open(site.httpUrl, site.apiKey);
    expect(await rp.sendMode()).toMatchObject({ mode: "create" });

    // The switch shows the Notify form, whose category box suggests the tenant's categories.
    await browser!.page.check("#mode-notify");
    expect(await rp.sendMode()).toMatchObject({ mode: "notify" });
    expect(await rp.categorySuggestions()).toEqual(["billing", "marketing", "security"]);

    // High priority goes through the quiet hours: email and push are created, SMS (opted out of
    // for every category) and webhook (no address) are skipped, each with its reason.
    const billing = await rp.notify({ userId: "ada", category: "billing", subject: "Invoice 42", text: "Invoice 42 is ready", html: "<p>Invoice <b>42</b> is ready</p>", priority: "high" });
    expect(billing.state, billing.text).toBe("ok");
    expect(billing.text).toBe("2 created, 2 skipped");
    expect(billing.notifyId).toMatch(/^[0-9a-f-]{36}$/);
    expect(billing.created.map(({ channel, status, text }) => ({ channel, status, text }))).toEqual([
      { channel: "email", status: "QUEUED", text: "email QUEUED" },
      { channel: "push", status: "QUEUED", text: "push QUEUED" },
    ]);
    expect(billing.skipped).toEqual([
      { channel: "sms", reason: "OPTED_OUT", text: "sms: opted out (the recipient opted out of CHANNEL_SMS for every category)" },
      { channel: "webhook", reason: "NO_ADDRESS", text: "webhook: no address (the recipient has no address for CHANNEL_WEBHOOK)" },
    ]);

    // The API agrees, and the rows are in the live table with the category and the notify id;
    // the email's SENT comes only by the feed.
    const [email, push] = billing.created.map((c) => c.id) as [string, string];
    for (const id of [email, push]) {
      const { notification } = await client.get({ id });
      expect(notification).toMatchObject({ category: "billing", notifyId: billing.notifyId, priority: Priority.HIGH });
    }
    const sent = await waitFor("the emailed notification SENT in the table", async () => {
      const row = await rp.row(email);
      return row?.status === "SENT" ? row : undefined;
    }, { everyMs: 100 });
    expect(sent).toEqual({ status: "SENT", category: "billing", notifyId: billing.notifyId, history: ["QUEUED", "SENDING", "SENT"] });
    expect(await rp.row(push)).toMatchObject({ status: "QUEUED", category: "billing", notifyId: billing.notifyId });
    // Its notify mark marks every notification of the request, and nothing else.
    expect((await rp.pickNotify(email)).sort()).toEqual([email, push].sort());
    mkdirSync(join(REPO, "docs/img"), { recursive: true });
    await browser!.page.screenshot({ path: NOTIFY_SHOT, fullPage: true });
    expect(await rp.pickNotify(email)).toEqual([]);

    // Unsubscribed from marketing: nothing is created, and that is an answer, not an error.
    const marketing = await rp.notify({ userId: "ada", category: "marketing", subject: "Sale", text: "Everything must go" });
    expect(marketing.state, marketing.text).toBe("ok");
    expect(marketing.text).toBe("nothing created, 4 skipped");
    expect(marketing.created).toEqual([]);
    expect(marketing.skipped.map((s) => [s.channel, s.reason])).toEqual([
      ["email", "UNSUBSCRIBED"],
      ["sms", "UNSUBSCRIBED"],
      ["push", "UNSUBSCRIBED"],
      ["webhook", "NO_ADDRESS"],
    ]);
    expect(marketing.skipped[0]?.text).toBe("email: unsubscribed from the category (the recipient unsubscribed from marketing)");

    // Normal priority inside the quiet hours, email only (its box ticked): held until the window ends.
    const held = await rp.notify({ userId: "ada", category: "billing", channels: ["email"], subject: "Receipt", text: "Thanks" });
    expect(held.state, held.text).toBe("ok");
    expect(held.text).toBe("1 created");
    expect(held.created).toHaveLength(1);
    expect(held.created[0]).toMatchObject({ channel: "email", status: "SCHEDULED" });
    expect(held.created[0]?.text).toMatch(/^email SCHEDULED, held by quiet hours until \S+/);
    await waitFor("the held notification SCHEDULED in the table", async () => (await rp.row(held.created[0]!.id))?.history.includes("SCHEDULED"), { everyMs: 100 });

    // Errors are shown beside the form as the server gives them: the page sends nothing it cannot read.
    expect(await rp.notify({ userId: "nobody", subject: "Hi", text: "Hello" })).toMatchObject({
      state: "error",
      text: 'NOT_FOUND: user_id: no recipient "nobody" in this tenant: store one with PutRecipient first',
      created: [],
      skipped: [],
    });
    const invalid = await rp.notify({ userId: "ada", category: "Billing!", subject: "Hi", text: "Hello" });
    expect(invalid.state).toBe("error");
    expect(invalid.text).toMatch(/^INVALID_ARGUMENT: category: must be 1 to 64 of a-z/);
    expect(await rp.notify({ userId: "ada", templateId: "welcome", variables: "name=Ada\nnonsense" })).toMatchObject({
      state: "error",
      text: 'variables: line 2: expected name=value, got "nonsense"',
    });

    // NOT_FOUND and INVALID_ARGUMENT are HTTP 404 and 400 in Connect, which Chromium logs; nothing else.
    expect(browser!.problems.filter((p) => !/status of (404 \(Not Found\)|400 \(Bad Request\))/.test(p))).toEqual([]);
  });

  it("looks a person up and shows their profile, preferences and the tenant's categories beside their choices", { timeout: 120_000 }, async () => {
    await rp.view("recipients");
    expect(await rp.lookup("nobody")).toEqual({ state: "error", text: 'NOT_FOUND: no recipient "nobody"' });
    expect(await rp.recipient()).toBeUndefined();

    expect(await rp.lookup("ada")).toEqual({ state: "ok", text: "" });
    const shown = await rp.recipient();
    expect(shown?.userId).toBe("ada");
    expect(shown?.facts).toMatchObject({
      email: "ada@example.com",
      phone: "+14155550100",
      "push tokens": "tok-ada-phone",
      webhook: "none",
      "time zone": ZONE,
      locale: "de-CH",
      data: "plan",
    });
    const overnight = quiet.end < quiet.start ? " (overnight)" : "";
    expect(shown?.prefs).toMatchObject({
      "opted out of": "sms (every category)",
      "quiet hours": `${quiet.start} to ${quiet.end}${overnight} every day, ${ZONE} time`,
    });
    expect(shown?.categories).toEqual([
      { category: "billing", setting: "on for every channel", choice: "no choice of their own" },
      { category: "marketing", setting: "off by default on sms", choice: "unsubscribed" },
      { category: "news", setting: "not set by the tenant", choice: "opted out of push" },
      { category: "security", setting: "required: opt-outs do not apply", choice: "no choice of their own" },
    ]);
    await browser!.page.screenshot({ path: RECIPIENT_SHOT, fullPage: true });

    // From the person to the send form, in Notify mode with their user id.
    await rp.notifyThisPerson();
    await browser!.page.waitForSelector('.view[data-view="live"]:not([hidden])');
    expect(await rp.sendMode()).toEqual({ mode: "notify", userId: "ada" });
    expect(browser!.problems.filter((p) => !/status of (404 \(Not Found\)|400 \(Bad Request\))/.test(p))).toEqual([]);
  });
});
