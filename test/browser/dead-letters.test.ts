import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Status, createHeraldClient, type HeraldClient } from "../../src/client/index.js";
import { FAST, twilioCredentials, twilioEnv, smtpEnv, waitForStatus, createNotification } from "../e2e/support.js";
import { createTestDatabase, type TestDatabase } from "../support/db.js";
import { REPO, heraldSite, spawnHerald, stopAll, type HeraldProcess, type HeraldSite } from "../support/processes.js";
import { fail, ok } from "../support/stand-ins/behaviour.js";
import { startSmtpStandIn, type SmtpStandIn } from "../support/stand-ins/smtp.js";
import { startTwilioStandIn, twilioError, type TwilioStandIn } from "../support/stand-ins/twilio.js";
import { waitFor } from "../support/wait.js";
import { checkPrerequisites, launchBrowser, type TestBrowser } from "./browser.js";
import { deadLettersPage, type DeadLettersPage } from "./dead-letters-page.js";

// The dashboard's dead-letter view in headless Chromium, against Herald as real
// processes (server, relay, scheduler, one email+sms worker) whose providers
// refuse permanently: an SMTP stand-in answering 550 and a Twilio stand-in
// answering 400/21211, so every notification ends FAILED with a dead letter.
// The page filters them, opens one, redrives a selection after confirming, and
// shows what happened; the API confirms they were queued again.

const SCREENSHOT = join(REPO, "docs/img/dead-letters-view.png");
const NO_SUCH_USER = "smtp: RCPT TO refused: 550 No such user here";
const DISABLED = "smtp: RCPT TO refused: 550 Mailbox disabled";
const BAD_NUMBER = "twilio: HTTP 400: error 21211: The 'To' number is not a valid phone number.";

let db: TestDatabase;
let site: HeraldSite;
let smtp: SmtpStandIn;
let twilio: TwilioStandIn;
const processes: HeraldProcess[] = [];
let client: HeraldClient;
let browser: TestBrowser | undefined;
let dl: DeadLettersPage;

beforeAll(async () => {
  checkPrerequisites();
  const creds = twilioCredentials();
  [smtp, twilio] = await Promise.all([startSmtpStandIn(), startTwilioStandIn(creds)]);
  db = await createTestDatabase("herald_web_dl");
  site = await heraldSite(db.url);
  const env = site.env({ ...FAST, ...smtpEnv(smtp), ...twilioEnv(twilio, creds) });
  const roles: Array<[Parameters<typeof spawnHerald>[0], string[]]> = [["server", []], ["relay", []], ["scheduler", []], ["worker", ["--channel", "email,sms"]]];
  await Promise.all(
    roles.map(async ([role, args]) => {
      const p = spawnHerald(role, env, role, args);
      processes.push(p);
      await p.waitForLog(`herald ${role} started`, 60_000);
    }),
  );
  client = createHeraldClient({ address: site.grpcAddress, apiKey: site.apiKey });
  browser = await launchBrowser();
  dl = deadLettersPage(browser.page);
}, 180_000);

afterAll(async () => {
  await browser?.close();
  client?.close();
  await Promise.all(processes.map((p) => p.stop("SIGTERM", 15_000)));
  await stopAll("SIGKILL", 5_000);
  await Promise.all([smtp?.close(), twilio?.close()]);
  await db?.drop();
});

const pad = (n: number) => String(n).padStart(2, "0");
/** A datetime-local value in this machine's time zone, which the browser shares. */
const localTime = (d: Date) => `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
const HOUR = 3_600_000;

const email = (userId: string) => createNotification(client, userId, { case: "email", value: `${userId}@example.com` }, { subject: "Hi", text: "Never arrives." });
const sms = (userId: string) => createNotification(client, userId, { case: "phone", value: "+14155550100" }, { text: "Never arrives." });

describe("the dead-letter view", () => {
  it("filters by channel, status, time and error text, opens one with its history and last error, and redrives a confirmed selection", { timeout: 240_000 }, async () => {
    // One email refused for another reason first, then every other message "no such user".
    smtp.behave([fail(550, "Mailbox disabled")], fail(550, "No such user here"));
    twilio.behave([], twilioError(400, 21211, "The 'To' number is not a valid phone number."));
    const disabled = await email("u-dl-disabled");
    await waitForStatus(db.pool, [disabled], Status.FAILED, { workers: processes });
    const noSuchUser = [await email("u-dl-1"), await email("u-dl-2"), await email("u-dl-3")];
    const badNumbers = [await sms("u-dl-4"), await sms("u-dl-5")];
    await waitForStatus(db.pool, [...noSuchUser, ...badNumbers], Status.FAILED, { workers: processes });

    await dl.open(site.httpUrl, site.apiKey);
    // Unfiltered: all six, newest first.
    const all = await dl.rows();
    expect(all.map((r) => r.id).sort()).toEqual([disabled, ...noSuchUser, ...badNumbers].sort());
    expect(new Set(all.map((r) => r.status))).toEqual(new Set(["FAILED"]));

    // The time bounds: nothing after an hour from now, all six within the hour around now.
    const now = Date.now();
    await dl.filter({ since: localTime(new Date(now + HOUR)) });
    expect(await dl.rows()).toEqual([]);
    await dl.filter({ since: localTime(new Date(now - HOUR)), until: localTime(new Date(now + HOUR)) });
    expect((await dl.rows()).map((r) => r.id).sort()).toEqual(all.map((r) => r.id).sort());
    // The server's rules are the page's: its INVALID_ARGUMENT is shown as it is.
    expect(await dl.filterError({ since: localTime(new Date(now + HOUR)), until: localTime(new Date(now - HOUR)) })).toBe(
      "INVALID_ARGUMENT: filter.until: must be after filter.since",
    );

    await dl.filter({ channel: "sms" });
    expect((await dl.rows()).map((r) => [r.id, r.channel, r.lastError]).sort()).toEqual(badNumbers.map((id) => [id, "sms", BAD_NUMBER]).sort());
    // The server's filter is case-insensitive: the page passes the text as typed.
    await dl.filter({ channel: "email", errorContains: "no such USER" });
    const listed = await dl.rows();
    expect(listed.map((r) => [r.id, r.channel, r.status, r.attempts, r.lastError]).sort()).toEqual(noSuchUser.map((id) => [id, "email", "FAILED", 1, NO_SUCH_USER]).sort());
    await dl.filter({ channel: "email", errorContains: "disabled" });
    expect((await dl.rows()).map((r) => [r.id, r.lastError])).toEqual([[disabled, DISABLED]]);
    await dl.filter({ channel: "email", errorContains: "no such user", status: "DEAD_LETTERED" });
    expect(await dl.rows()).toEqual([]);
    await dl.filter({ channel: "email", errorContains: "no such user" });

    // Opened: its last error in full and its whole history, as Get records it.
    const [first, second, third] = noSuchUser as [string, string, string];
    await dl.openOne(first);
    const { history } = await client.get({ id: first });
    const opened = await dl.detail();
    expect(opened.lastError).toBe(NO_SUCH_USER);
    expect(opened.facts).toMatchObject({ channel: "email", status: "FAILED", attempts: "1", redrives: "0", user: "u-dl-1" });
    expect(opened.history).toEqual(history.map((e) => ({ sequence: e.sequence, status: Status[e.status], detail: e.detail })));
    expect(opened.history.map((e) => e.status)).toEqual(["QUEUED", "SENDING", "FAILED"]);
    expect(opened.history.at(-1)?.detail).toContain("550 No such user here");

    // A redrive asked for and cancelled does nothing.
    await dl.select([first, second]);
    await dl.redriveSelected();
    expect(await dl.confirmQuestion()).toBe("Redrive 2 dead letters? Each is queued again with a fresh attempt budget.");
    await dl.cancel();
    expect(await dl.confirmHidden()).toBe(true);
    expect((await dl.rows()).map((r) => r.id).sort()).toEqual([...noSuchUser].sort());

    // The mailbox is back; the selection of two is redriven once confirmed.
    smtp.behave([], ok());
    await dl.redriveSelected();
    await dl.confirmQuestion();
    await dl.confirm();
    expect(await dl.result()).toEqual({ state: "ok", redriven: 2, failed: 0, text: "2 redriven" });
    expect((await dl.rows()).map((r) => r.id)).toEqual([third]);
    // Via the API: queued again by the redrive (and, the mailbox being back, sent).
    for (const id of [first, second]) {
      await waitForStatus(db.pool, [id], Status.SENT, { workers: processes });
      const { history: h } = await client.get({ id });
      expect(h.map((e) => [Status[e.status], e.detail === "redriven" ? "redriven" : ""])).toEqual([
        ["QUEUED", ""],
        ["SENDING", ""],
        ["FAILED", ""],
        ["QUEUED", "redriven"],
        ["SENDING", ""],
        ["SENT", ""],
      ]);
    }
    // The one still open in the page says it is no longer a dead letter.
    await waitFor("the opened one to show it was redriven", async () => (await dl.detail()).note.startsWith("No longer a dead letter"));

    // Redriving it again is refused for that id, and the page says so.
    await dl.redriveOpened();
    expect(await dl.confirmQuestion()).toBe(`Redrive dead letter ${first}? Each is queued again with a fresh attempt budget.`);
    await dl.confirm();
    const refused = await dl.result();
    expect(refused).toMatchObject({ state: "error", redriven: 0, failed: 1 });
    expect(refused.text).toMatch(new RegExp(`^0 redriven, 1 failed: ${first} FAILED_PRECONDITION: `));
    expect((await dl.rows()).map((r) => r.id)).toEqual([third]);

    // The refused filter and redrive are HTTP 400s (Connect's invalid_argument and
    // failed_precondition), which Chromium logs; nothing else.
    expect(browser!.problems.filter((p) => !/status of 400 \(Bad Request\)/.test(p))).toEqual([]);
    await dl.filter({});
    mkdirSync(join(REPO, "docs/img"), { recursive: true });
    await dl.openOne(third);
    await browser!.page.screenshot({ path: SCREENSHOT, fullPage: true });
  });

  it("pages through more dead letters than a page holds, 25 at a time", { timeout: 240_000 }, async () => {
    const MORE = 27;
    smtp.behave([], fail(552, "Over quota"));
    const ids: string[] = [];
    for (let i = 0; i < MORE; i++) ids.push(await email(`u-dl-quota-${i}`));
    await waitForStatus(db.pool, ids, Status.FAILED, { workers: processes, timeoutMs: 60_000 });

    await dl.filter({ errorContains: "over quota" });
    const first = await dl.rows();
    expect(first).toHaveLength(25);
    expect(await dl.pager()).toEqual({ text: "page 1", prev: false, next: true });
    await dl.page("next");
    const second = await dl.rows();
    expect(await dl.pager()).toEqual({ text: "page 2", prev: true, next: false });
    expect([...first, ...second].map((r) => r.id).sort()).toEqual([...ids].sort());
    await dl.page("prev");
    expect((await dl.rows()).map((r) => r.id)).toEqual(first.map((r) => r.id));
    expect(await dl.pager()).toEqual({ text: "page 1", prev: false, next: true });
  });
});
