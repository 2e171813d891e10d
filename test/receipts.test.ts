import { freePorts } from "./support/processes.js";
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Channel, Status } from "../gen/herald/v1/notification_pb.js";
import { findSuppression } from "../src/store/suppressions.js";
import { startTestHerald, KEY_A, type TestHerald } from "./support/herald.js";
import { metricValue } from "./support/metric-values.js";
import { createSendgridEventPoster, sendgridEventFor, type SendgridEventPoster } from "./support/stand-ins/sendgrid-events.js";
import { startSmtpStandIn, type ReceivedEmail, type SmtpStandIn } from "./support/stand-ins/smtp.js";
import { startTwilioStandIn, type TwilioMessage, type TwilioStandIn } from "./support/stand-ins/twilio.js";
import { startWebhookReceiver, type WebhookReceiver } from "./support/stand-ins/webhook-receiver.js";
import { HELD_COMMIT_TIMEOUTS, lockNotifications } from "./support/table-lock.js";
import { waitFor } from "./support/wait.js";
import { watch } from "./support/watch.js";

// Receipts through the real listeners: one Herald (server, relay, scheduler, workers for email,
// SMS and webhooks) whose providers are the Twilio and SMTP stand-ins, a webhook receiver, and a
// SendGrid event poster. The stand-ins call back on the API's HTTP listener, at HERALD_PUBLIC_URL,
// signed as the real providers sign.

const TENANT = "tenant-a";
const twilioCreds = { accountSid: `AC${randomBytes(16).toString("hex")}`, authToken: randomBytes(16).toString("hex") };
const webhookSecret = `whsec_${randomBytes(24).toString("base64")}`;

let herald: TestHerald;
let twilio: TwilioStandIn;
let smtp: SmtpStandIn;
let hooks: WebhookReceiver;
let sendgrid: SendgridEventPoster;
let publicUrl: string;

beforeAll(async () => {
  [twilio, smtp, hooks] = await Promise.all([startTwilioStandIn(twilioCreds), startSmtpStandIn(), startWebhookReceiver({ secret: webhookSecret })]);
  sendgrid = createSendgridEventPoster();
  const port = (await freePorts(1))[0]!;
  publicUrl = `http://127.0.0.1:${port}`;
  herald = await startTestHerald({
    roles: ["server", "relay", "scheduler", "worker"],
    channels: ["email", "sms", "webhook"],
    env: {
      HERALD_HTTP_ADDR: `127.0.0.1:${port}`,
      HERALD_PUBLIC_URL: publicUrl,
      HERALD_SENDGRID_WEBHOOK_PUBLIC_KEY: sendgrid.publicKey,
      HERALD_SMS_PROVIDER: "twilio",
      TWILIO_BASE_URL: twilio.url,
      TWILIO_ACCOUNT_SID: twilioCreds.accountSid,
      TWILIO_AUTH_TOKEN: twilioCreds.authToken,
      HERALD_SMS_FROM: "+15005550006",
      HERALD_EMAIL_PROVIDER: "smtp",
      SMTP_HOST: smtp.host,
      SMTP_PORT: String(smtp.port),
      HERALD_EMAIL_FROM: "herald@example.test",
      HERALD_WEBHOOK_PROVIDER: "http",
      HERALD_WEBHOOK_SECRETS: `${TENANT}:${webhookSecret}`,
      HERALD_WEBHOOK_ALLOW_CIDRS: "127.0.0.0/8",
      // The race test holds a notification's row lock: waiting statements must wait, not time out.
      ...HELD_COMMIT_TIMEOUTS,
    },
  });
}, 120_000);

afterAll(async () => {
  await herald?.stop();
  await Promise.all([twilio?.close(), smtp?.close(), hooks?.close()]);
});

const pool = () => herald.db.pool;
const receipts = (provider: string, outcome: string) => metricValue(herald.rt.metrics, "herald_receipts_total", { provider, outcome });

async function create(address: { case: "phone" | "email" | "webhookUrl"; value: string }, userId = `u-${randomBytes(4).toString("hex")}`): Promise<string> {
  const channel = { phone: Channel.SMS, email: Channel.EMAIL, webhookUrl: Channel.WEBHOOK }[address.case];
  const { notification } = await herald.client(KEY_A).create({
    notification: { channel, recipient: { userId, address }, body: { case: "content", value: { subject: "Hi", text: "Your code is 123456" } } },
  });
  if (!notification?.id) throw new Error("Create returned no notification");
  return notification.id;
}

async function statusOf(id: string): Promise<{ status: Status; last_error: string; provider_message_id: string }> {
  const r = await pool().query<{ status: Status; last_error: string; provider_message_id: string }>("SELECT status, last_error, provider_message_id FROM notifications WHERE id = $1", [id]);
  const row = r.rows[0];
  if (!row) throw new Error(`no notification ${id}`);
  return row;
}

async function waitForStatus(id: string, status: Status): Promise<void> {
  await waitFor(`${id} to be ${Status[status]}`, async () => (await statusOf(id)).status === status, { timeoutMs: 30_000, everyMs: 50 });
}

async function events(id: string): Promise<Array<[Status, string, string]>> {
  const r = await pool().query<{ status: Status; detail: string; provider: string }>(
    "SELECT status, detail, provider FROM status_events WHERE notification_id = $1 ORDER BY sequence",
    [id],
  );
  return r.rows.map((e) => [e.status, e.detail, e.provider]);
}

/** An SMS, sent and stored SENT; returns its id and what the Twilio stand-in got. */
async function sentSms(): Promise<{ id: string; message: TwilioMessage }> {
  const id = await create({ case: "phone", value: "+14155550100" });
  await waitForStatus(id, Status.SENT);
  const message = twilio.messages.find((m) => m.idempotencyToken === id);
  if (!message) throw new Error("the Twilio stand-in has no message for it");
  return { id, message };
}

/** An email, sent and stored SENT; returns its id and what the SMTP stand-in got. */
async function sentEmail(to: string): Promise<{ id: string; mail: ReceivedEmail }> {
  const id = await create({ case: "email", value: to });
  await waitForStatus(id, Status.SENT);
  const mail = await waitFor("the mail at the SMTP stand-in", () => smtp.messages.find((m) => m.headers["x-herald-notification-id"] === id));
  return { id, mail };
}

const sendgridUrl = () => `${publicUrl}/receipts/sendgrid`;

/**
 * Runs `post` (a callback with retries) while Herald's database cannot take the first attempt:
 * holds the notifications table, waits until the receipt's transaction waits on it, cancels that
 * statement (Herald answers 503), and lets the table go. Returns what `post` resolves to.
 */
async function withFirstReceiptFailing(post: () => Promise<number>): Promise<number> {
  const lock = await lockNotifications(pool());
  try {
    const posting = post();
    const pid = await waitFor("the receipt waiting on the table", async () => {
      // The receipt's own statement (store/receipts.ts locks its row), not a sweep or renewal that may queue too.
      const r = await pool().query<{ pid: number }>(
        `SELECT l.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
         WHERE l.relation = 'notifications'::regclass AND NOT l.granted
           AND a.query LIKE 'SELECT * FROM notifications WHERE id = $1 FOR UPDATE%' LIMIT 1`,
      );
      return r.rows[0]?.pid;
    });
    await pool().query("SELECT pg_cancel_backend($1)", [pid]);
    await lock.release();
    return await posting;
  } finally {
    await lock.release();
  }
}

describe("SMS: Twilio status callbacks", () => {
  it("asks for callbacks at the public URL bound to the notification; delivered → DELIVERED, once, and WatchStatus sees it", async () => {
    const userId = `watch-${randomBytes(4).toString("hex")}`;
    const w = watch(herald.client(KEY_A), { selector: { case: "userId", value: userId } });
    try {
      const id = await create({ case: "phone", value: "+14155550101" }, userId);
      await waitForStatus(id, Status.SENT);
      const message = twilio.messages.find((m) => m.idempotencyToken === id)!;
      expect(message.statusCallback).toBe(`${publicUrl}/receipts/twilio?n=${id}`);
      const delivered = await receipts("twilio", "delivered");
      const ignored = await receipts("twilio", "ignored");

      expect(await twilio.postStatus(message, "sent")).toBe(200);
      expect((await statusOf(id)).status).toBe(Status.SENT);
      expect(await twilio.postStatus(message, "delivered")).toBe(200);
      expect((await statusOf(id)).status).toBe(Status.DELIVERED);
      // Twilio repeats callbacks, and they may come out of order: neither changes anything.
      expect(await twilio.postStatus(message, "delivered")).toBe(200);
      expect(await twilio.postStatus(message, "sent")).toBe(200);
      expect((await statusOf(id)).status).toBe(Status.DELIVERED);

      expect((await events(id)).slice(2)).toEqual([
        [Status.SENT, "sent via twilio", expect.any(String)],
        [Status.DELIVERED, "twilio: delivered", "twilio"],
      ]);
      expect(await receipts("twilio", "delivered")).toBe(delivered + 1);
      expect(await receipts("twilio", "ignored")).toBe(ignored + 3);
      await w.until("the DELIVERED event", (x) => x.events().some((e) => e.notificationId === id && e.status === Status.DELIVERED));
      const seen = w.events().filter((e) => e.notificationId === id).map((e) => e.status);
      expect(seen.slice(-2)).toEqual([Status.SENT, Status.DELIVERED]);
    } finally {
      w.stop();
    }
  });

  it("undelivered → FAILED with Twilio's error code; a delivered after it changes nothing", async () => {
    const { id, message } = await sentSms();
    expect(await twilio.postStatus(message, "undelivered", { errorCode: 30003 })).toBe(200);
    expect(await statusOf(id)).toMatchObject({ status: Status.FAILED, last_error: "twilio: undelivered, error 30003" });
    expect(await twilio.postStatus(message, "delivered")).toBe(200);
    expect((await statusOf(id)).status).toBe(Status.FAILED);
    expect((await events(id)).at(-1)).toEqual([Status.FAILED, "twilio: undelivered, error 30003", "twilio"]);
  });

  it("refuses unsigned and wrongly signed callbacks (403) and changes nothing", async () => {
    const { id, message } = await sentSms();
    const refused = await receipts("twilio", "refused");
    expect(await twilio.postStatus(message, "delivered", { signature: "wrong" })).toBe(403);
    expect(await twilio.postStatus(message, "delivered", { signature: "unsigned" })).toBe(403);
    // Signed over another URL (the notification id changed in transit): refused as well.
    const forged = await fetch(`${publicUrl}/receipts/twilio?n=${crypto.randomUUID()}`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", "x-twilio-signature": "bm90IGEgc2lnbmF0dXJl" },
      body: new URLSearchParams({ AccountSid: twilioCreds.accountSid, MessageSid: message.sid, MessageStatus: "delivered" }).toString(),
    });
    expect(forged.status).toBe(403);
    expect(await receipts("twilio", "refused")).toBe(refused + 3);
    expect((await statusOf(id)).status).toBe(Status.SENT);
    expect(await events(id)).toHaveLength(3);
  });

  it("a callback for another message, or from another account, changes nothing", async () => {
    const a = await sentSms();
    const b = await sentSms();
    const unmatched = await receipts("twilio", "unmatched");
    // Message a's sid, signed right, at b's callback URL: not b's message.
    expect(await twilio.postStatus(a.message, "undelivered", { url: b.message.statusCallback, errorCode: 30005 })).toBe(200);
    // Another account's callback, signed with our token (the AccountSid is checked too).
    expect(await twilio.postStatus(a.message, "delivered", { override: { AccountSid: `AC${"0".repeat(32)}` } })).toBe(200);
    expect(await receipts("twilio", "unmatched")).toBe(unmatched + 2);
    expect((await statusOf(a.id)).status).toBe(Status.SENT);
    expect((await statusOf(b.id)).status).toBe(Status.SENT);
  });

  it("a callback Herald could not store (503) is posted again by the provider and applied, once", async () => {
    const { id, message } = await sentSms();
    const statuses: number[] = [];
    const answer = await withFirstReceiptFailing(() =>
      twilio.postStatus(message, "delivered", { retries: { attempts: 6, delayMs: 200, onAttempt: (s) => statuses.push(s) } }),
    );
    expect(answer).toBe(200);
    expect(statuses).toEqual([503, 200]);
    expect((await statusOf(id)).status).toBe(Status.DELIVERED);
    expect((await events(id)).filter(([s]) => s === Status.DELIVERED)).toHaveLength(1);
  });

  it("a callback that arrives before SENT is stored is kept and applied with the SENT, once", async () => {
    const pending = await receipts("twilio", "pending");
    const answers: number[] = [];
    twilio.beforeAnswer = async (m) => {
      // The worker is still waiting for this answer: the row is SENDING, without the sid.
      answers.push(await twilio.postStatus(m, "delivered"), await twilio.postStatus(m, "delivered"));
    };
    let id: string;
    try {
      id = await create({ case: "phone", value: "+14155550102" });
      await waitForStatus(id, Status.DELIVERED);
    } finally {
      twilio.beforeAnswer = undefined;
    }
    expect(answers).toEqual([200, 200]);
    expect(await receipts("twilio", "pending")).toBe(pending + 2);
    expect((await events(id)).map(([s]) => s)).toEqual([Status.QUEUED, Status.SENDING, Status.SENT, Status.DELIVERED]);
    const kept = await pool().query<{ n: number }>("SELECT count(*)::int AS n FROM receipts WHERE notification_id = $1", [id]);
    expect(kept.rows[0]?.n).toBe(0);
  });

  it("a callback that comes while the SENT is being stored waits for it and applies after it", async () => {
    const delivered = await receipts("twilio", "delivered");
    const pending = await receipts("twilio", "pending");
    let sent: TwilioMessage | undefined;
    let answer = () => {};
    const answered = new Promise<void>((resolve) => (answer = resolve));
    twilio.beforeAnswer = async (m) => {
      sent = m;
      await answered;
    };
    const id = await create({ case: "phone", value: "+14155550103" });
    const message = await waitFor("the message at the Twilio stand-in", () => sent);
    twilio.beforeAnswer = undefined;
    // The test holds the row as the outcome transaction will: the outcome, then the callback,
    // queue behind it, in that order.
    const lockWaiters = async () => {
      const r = await pool().query<{ n: number }>(
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
      );
      return r.rows[0]?.n ?? 0;
    };
    const holder = await pool().connect();
    let posting: Promise<number> | undefined;
    try {
      await holder.query("BEGIN");
      await holder.query("SELECT 1 FROM notifications WHERE id = $1 FOR UPDATE", [id]);
      answer();
      await waitFor("the outcome to wait for the row", async () => (await lockWaiters()) >= 1);
      posting = twilio.postStatus(message, "delivered");
      await waitFor("the callback to wait behind it", async () => (await lockWaiters()) >= 2);
    } finally {
      answer();
      await holder.query("COMMIT");
      holder.release();
    }
    expect(await posting).toBe(200);
    await waitForStatus(id, Status.DELIVERED);
    expect((await events(id)).map(([s]) => s)).toEqual([Status.QUEUED, Status.SENDING, Status.SENT, Status.DELIVERED]);
    // Applied by the callback itself, after the SENT: never kept.
    expect(await receipts("twilio", "delivered")).toBe(delivered + 1);
    expect(await receipts("twilio", "pending")).toBe(pending);
  });
});

describe("email: SendGrid's signed event webhook", () => {
  it("a batch Herald could not store (503) is posted again whole, and each event applied once", async () => {
    const a = await sentEmail("retry-a@example.test");
    const b = await sentEmail("retry-b@example.test");
    const statuses: number[] = [];
    const batch = [sendgridEventFor(a.mail, "delivered"), sendgridEventFor(b.mail, "delivered")];
    const answer = await withFirstReceiptFailing(() =>
      sendgrid.post(sendgridUrl(), batch, { retries: { attempts: 6, delayMs: 200, onAttempt: (s) => statuses.push(s) } }),
    );
    expect(answer).toBe(200);
    expect(statuses).toEqual([503, 200]);
    for (const { id } of [a, b]) {
      expect((await statusOf(id)).status).toBe(Status.DELIVERED);
      expect((await events(id)).filter(([s]) => s === Status.DELIVERED)).toHaveLength(1);
    }
  });

  it("names the notification in X-SMTPAPI; delivered → DELIVERED with the provider sendgrid", async () => {
    const { id, mail } = await sentEmail("ada@example.test");
    expect(JSON.parse(mail.headers["x-smtpapi"] ?? "{}")).toEqual({ unique_args: { herald_notification_id: id, herald_tenant: TENANT } });
    const delivered = await receipts("sendgrid", "delivered");
    expect(await sendgrid.post(sendgridUrl(), [sendgridEventFor(mail, "processed"), sendgridEventFor(mail, "delivered")])).toBe(200);
    expect((await statusOf(id)).status).toBe(Status.DELIVERED);
    expect((await events(id)).at(-1)).toEqual([Status.DELIVERED, "sendgrid: delivered", "sendgrid"]);
    expect(await receipts("sendgrid", "delivered")).toBe(delivered + 1);
  });

  it("a hard bounce → FAILED and the address suppressed for the tenant, in one batch with another's delivery", async () => {
    const bounced = await sentEmail("Gone@Example.test");
    const other = await sentEmail("here@example.test");
    const batch = [
      sendgridEventFor(bounced.mail, "bounce", { type: "bounce", status: "5.1.1", reason: "550 5.1.1 The email account that you tried to reach does not exist" }),
      { event: "delivered", herald_notification_id: "not-a-uuid" },
      "not an event",
      sendgridEventFor(other.mail, "delivered"),
    ];
    expect(await sendgrid.post(sendgridUrl(), batch)).toBe(200);
    expect(await statusOf(bounced.id)).toMatchObject({
      status: Status.FAILED,
      last_error: "sendgrid: bounced 5.1.1: 550 5.1.1 The email account that you tried to reach does not exist",
    });
    expect((await statusOf(other.id)).status).toBe(Status.DELIVERED);
    const s = await findSuppression(pool(), TENANT, Channel.EMAIL, "gone@example.test");
    expect(s).toMatchObject({ reason: "hard_bounce", notificationId: bounced.id });
    expect(await findSuppression(pool(), "tenant-b", Channel.EMAIL, "gone@example.test")).toBeUndefined();
  });

  it("a blocked bounce → FAILED without suppression; a spam report suppresses without undoing DELIVERED", async () => {
    const blocked = await sentEmail("blocked@example.test");
    const complained = await sentEmail("grumpy@example.test");
    const suppressed = await receipts("sendgrid", "suppressed");
    expect(await sendgrid.post(sendgridUrl(), [sendgridEventFor(blocked.mail, "bounce", { type: "blocked", reason: "IP on a blocklist" })])).toBe(200);
    expect(await statusOf(blocked.id)).toMatchObject({ status: Status.FAILED, last_error: "sendgrid: blocked: IP on a blocklist" });
    expect(await findSuppression(pool(), TENANT, Channel.EMAIL, "blocked@example.test")).toBeUndefined();

    expect(await sendgrid.post(sendgridUrl(), [sendgridEventFor(complained.mail, "delivered"), sendgridEventFor(complained.mail, "spamreport")])).toBe(200);
    expect((await statusOf(complained.id)).status).toBe(Status.DELIVERED);
    expect(await findSuppression(pool(), TENANT, Channel.EMAIL, "grumpy@example.test")).toMatchObject({ reason: "complaint" });
    expect(await receipts("sendgrid", "suppressed")).toBe(suppressed + 1);
  });

  it("refuses a wrong signature, a missing one and a stale timestamp (403), and a body that is not an array (400)", async () => {
    const { id, mail } = await sentEmail("careful@example.test");
    const refused = await receipts("sendgrid", "refused");
    const events_ = [sendgridEventFor(mail, "bounce", { type: "bounce", reason: "forged" })];
    expect(await sendgrid.post(sendgridUrl(), events_, { signature: "wrong" })).toBe(403);
    expect(await sendgrid.post(sendgridUrl(), events_, { signature: "unsigned" })).toBe(403);
    expect(await sendgrid.post(sendgridUrl(), events_, { timestamp: Math.floor(Date.now() / 1000) - 3600 })).toBe(403);
    expect(await sendgrid.post(sendgridUrl(), [], { body: '{"event":"delivered"}' })).toBe(400);
    expect(await receipts("sendgrid", "refused")).toBe(refused + 4);
    expect((await statusOf(id)).status).toBe(Status.SENT);
    expect(await findSuppression(pool(), TENANT, Channel.EMAIL, "careful@example.test")).toBeUndefined();
  });

  it("an event naming another tenant changes nothing", async () => {
    const { id, mail } = await sentEmail("tenant@example.test");
    const unmatched = await receipts("sendgrid", "unmatched");
    expect(await sendgrid.post(sendgridUrl(), [sendgridEventFor(mail, "delivered", { herald_tenant: "tenant-b" })])).toBe(200);
    expect(await receipts("sendgrid", "unmatched")).toBe(unmatched + 1);
    expect((await statusOf(id)).status).toBe(Status.SENT);
  });
});

describe("webhook channel", () => {
  it("a 2xx from the receiver is the delivery: SENT then DELIVERED, stored together", async () => {
    const id = await create({ case: "webhookUrl", value: hooks.hookUrl });
    await waitForStatus(id, Status.DELIVERED);
    expect(hooks.deliveries.filter((d) => d.id === id)).toHaveLength(1);
    expect((await events(id)).slice(2)).toEqual([
      [Status.SENT, "sent via webhook", expect.any(String)],
      [Status.DELIVERED, "delivered: the receiver answered 2xx", "webhook"],
    ]);
  });
});
