import { createHmac, randomBytes, randomUUID } from "node:crypto";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Channel, Status } from "../gen/herald/v1/notification_pb.js";
import { runRecipientCommand } from "../src/cli/recipient-commands.js";
import { createRecipientClient, createTemplateClient, type HeraldClient, type RecipientClient } from "../src/client/index.js";
import { PermanentError } from "../src/errors.js";
import { createReceiptStore } from "../src/store/receipts.js";
import { recordUnsubscribe } from "../src/store/unsubscribes.js";
import type { Provider, RenderedMessage, SendResult } from "../src/workers/providers/provider.js";
import { tracesOf } from "./support/db-scan.js";
import { KEY_A, KEY_B, startTestHerald, type TestHerald } from "./support/herald.js";
import { rejection } from "./support/rpc.js";
import { waitFor } from "./support/wait.js";

// EraseRecipient end to end: a person with a profile, preferences, and notifications on all four
// channels that went every way (sent and bounced with a suppression, failed into a dead letter,
// delivered, sent from a template, scheduled with a receipt waiting), erased through the real
// listeners, with real workers (in-process providers) and the relay and scheduler running. The
// proof is a scan of every column of every table (support/db-scan.ts) for the user id, each
// address and each piece of content: all present before, none after. Anonymous counts per
// channel and status stay; the erasure is audited; another tenant's erasure touches nothing.

const run = randomBytes(4).toString("hex");
const USER = `subject-${run}`;
const EMAIL = `ada.${run}@example.com`;
const PHONE = `+1415555${String(parseInt(run, 16) % 10_000).padStart(4, "0")}`;
const TOKEN = `device-token-${run}`;
const PROFILE_TOKEN = `profile-token-${run}`;
const HOOK = `https://hooks.example.com/${run}/inbox`;
const SUBJECT = `Subject line ${run}`;
const TEXT = `Body text ${run}`;
const HTML = `<p>html body ${run}</p>`;
const VARIABLE = `Variable value ${run}`;
const LABEL = `label-value-${run}`;
const PROFILE_DATA = `profile-data-${run}`;
const NEEDLES = [USER, EMAIL, PHONE, TOKEN, PROFILE_TOKEN, HOOK, SUBJECT, TEXT, HTML, VARIABLE, LABEL, PROFILE_DATA];

/** A provider that records every send and answers with `answer`. */
function recorder(name: string, answer: (m: RenderedMessage) => Promise<SendResult> | SendResult) {
  const sends: RenderedMessage[] = [];
  const provider: Provider & { sends: RenderedMessage[] } = {
    name,
    sends,
    async send(m) {
      sends.push(m);
      return answer(m);
    },
    async close() {},
  };
  return provider;
}

let herald: TestHerald;
let api: HeraldClient;
let recipientsA: RecipientClient;
let recipientsB: RecipientClient;
let releasePush: () => void = () => {};
const pushGate = new Promise<void>((resolve) => (releasePush = resolve));

const email = recorder("mail", (m) => ({ providerMessageId: `msgid-for-${m.recipient?.address.value}` }));
const sms = recorder("sms", (m) => {
  throw new PermanentError(`invalid 'To' number ${m.recipient?.address.value}`);
});
const push = recorder("push", async (m) => {
  // The "busy" user's push waits, so a test can find a notification SENDING.
  if (m.recipient?.userId === `busy-${run}`) await pushGate;
  return { providerMessageId: `projects/p/messages/${m.notificationId}` };
});
const webhook = recorder("hook", () => ({ providerMessageId: "", delivered: true }));

beforeAll(async () => {
  herald = await startTestHerald({ roles: ["server", "relay", "scheduler", "worker"], providers: { email, sms, push, webhook } });
  api = herald.client(KEY_A);
  recipientsA = createRecipientClient({ address: herald.grpcAddress, apiKey: KEY_A });
  recipientsB = createRecipientClient({ address: herald.grpcAddress, apiKey: KEY_B });
});
afterAll(async () => {
  releasePush();
  recipientsA?.close();
  recipientsB?.close();
  await herald?.stop();
});

const statusOf = async (id: string) => (await herald.db.pool.query<{ status: Status }>("SELECT status FROM notifications WHERE id = $1", [id])).rows[0]?.status;

const countsByChannelAndStatus = async () =>
  (
    await herald.db.pool.query<{ channel: number; status: number; n: number }>(
      "SELECT channel, status, count(*)::int AS n FROM notifications WHERE tenant = 'tenant-a' GROUP BY 1, 2 ORDER BY 1, 2",
    )
  ).rows;

describe("EraseRecipient", () => {
  let scheduledId = "";

  beforeAll(async () => {
    await recipientsA.putRecipient({
      recipient: { userId: USER, email: EMAIL, phone: PHONE, pushTokens: [PROFILE_TOKEN], webhookUrl: HOOK, timeZone: "Europe/Zurich", data: { note: PROFILE_DATA } },
    });
    await recipientsA.setPreferences({ preferences: { userId: USER, categories: [{ category: "marketing", unsubscribed: true }] } });
    // A one-click unsubscribe (migration 015) names the person too.
    await recordUnsubscribe(herald.db.pool, { tenant: "tenant-a", userId: USER, category: "digest", notificationId: randomUUID() });
    await createTemplateClient({ address: herald.grpcAddress, apiKey: KEY_A }).putTemplate({ templateId: "hello", content: { subject: "Hello", text: "Hello {{name}}" } });

    const to = (address: { case: "email" | "phone" | "deviceToken" | "webhookUrl"; value: string }) => ({ userId: USER, address });
    const labels = { campaign: LABEL };
    const sent = await api.create({
      notification: { channel: Channel.EMAIL, recipient: to({ case: "email", value: EMAIL }), labels, body: { case: "content", value: { subject: SUBJECT, text: TEXT, html: HTML } } },
      idempotencyKey: `welcome-${USER}`,
    });
    const failed = await api.create({ notification: { channel: Channel.SMS, recipient: to({ case: "phone", value: PHONE }), labels, body: { case: "content", value: { text: TEXT } } } });
    const templated = await api.create({
      notification: { channel: Channel.PUSH, recipient: to({ case: "deviceToken", value: TOKEN }), body: { case: "template", value: { templateId: "hello", variables: { name: VARIABLE } } } },
    });
    const delivered = await api.create({
      notification: { channel: Channel.WEBHOOK, recipient: to({ case: "webhookUrl", value: HOOK }), body: { case: "content", value: { data: { text: TEXT } } } },
    });
    const scheduled = await api.schedule({
      notification: { channel: Channel.EMAIL, recipient: to({ case: "email", value: EMAIL }), body: { case: "content", value: { subject: SUBJECT, text: TEXT } } },
      when: { case: "deliverAt", value: timestampFromDate(new Date(Date.now() + 3_600_000)) },
    });
    scheduledId = scheduled.notification!.id;

    const ids = { sent: sent.notification!.id, failed: failed.notification!.id, templated: templated.notification!.id, delivered: delivered.notification!.id };
    await waitFor("every outcome stored", async () => {
      const s = await Promise.all(Object.values(ids).map(statusOf));
      return s.every((x) => x === Status.SENT || x === Status.DELIVERED || x === Status.DEAD_LETTERED || x === Status.FAILED) && s;
    });
    // The email bounces: FAILED, its status event's detail names the address, and the address is suppressed.
    const bounce = await createReceiptStore({ pool: herald.db.pool }).apply({
      provider: "sendgrid",
      notificationId: ids.sent,
      providerMessageId: `msgid-for-${EMAIL}`,
      status: Status.FAILED,
      detail: `sendgrid: bounce, 550 5.1.1 <${EMAIL}>: user unknown`,
      suppress: { reason: "hard_bounce", detail: `550 5.1.1 <${EMAIL}>` },
      at: new Date(),
    });
    expect(bounce).toMatchObject({ kind: "applied", suppressed: true });
    // A receipt that came before its SENT waits in `receipts` (as a provider's early callback would).
    await herald.db.pool.query(
      "INSERT INTO receipts (notification_id, provider, provider_message_id, status, detail, received_at) VALUES ($1, 'twilio', 'SM1', $2, $3, now())",
      [scheduledId, Status.DELIVERED, `delivered to ${PHONE}`],
    );
    expect(await herald.db.pool.query("SELECT 1 FROM dead_letters WHERE notification_id = $1", [ids.failed])).toHaveProperty("rowCount", 1);
    // A Notify after the bounce: its request row keeps a key naming the person and a skipped list
    // naming the suppressed address.
    const notified = await api.notify({ userId: USER, idempotencyKey: `notify-${USER}`, channels: [Channel.EMAIL, Channel.WEBHOOK], body: { case: "content", value: { text: TEXT } } });
    expect(notified.skipped.map((x) => x.detail)).toEqual([`${EMAIL} is suppressed (hard_bounce)`]);
    await waitFor("the Notify's webhook delivered", async () => (await statusOf(notified.notifications[0]!.id)) === Status.DELIVERED);
  });

  it("finds every needle before anything is erased (the scan is not vacuous)", async () => {
    const found = new Set((await tracesOf(herald.db.pool, NEEDLES)).map((t) => t.needle));
    expect([...NEEDLES].filter((n) => !found.has(n))).toEqual([]);
  });

  it("erases nothing of tenant A when tenant B erases the same user id, and audits B's request", async () => {
    const before = await countsByChannelAndStatus();
    const res = await recipientsB.eraseRecipient({ userId: USER });
    expect(res).toMatchObject({ notificationsErased: 0, notificationsCanceled: 0, profileDeleted: false, preferencesDeleted: false, suppressionsDeleted: 0 });
    expect(await countsByChannelAndStatus()).toEqual(before);
    const found = new Set((await tracesOf(herald.db.pool, NEEDLES)).map((t) => t.needle));
    expect(found.size).toBe(NEEDLES.length);
    const audit = await herald.db.pool.query("SELECT tenant, counts FROM audit_log WHERE id = $1", [res.auditId]);
    expect(audit.rows).toEqual([{ tenant: "tenant-b", counts: expect.objectContaining({ notificationsErased: 0 }) as unknown }]);
  });

  it("refuses an invalid user id, and answers ABORTED while a notification of the person is being sent", async () => {
    expect(await rejection(recipientsA.eraseRecipient({ userId: "" }))).toEqual({ code: "InvalidArgument", message: "user_id: is required" });
    const busy = await api.create({
      notification: { channel: Channel.PUSH, recipient: { userId: `busy-${run}`, address: { case: "deviceToken", value: `busy-token-${run}` } }, body: { case: "content", value: { text: "hi" } } },
    });
    await waitFor("the busy push SENDING", async () => (await statusOf(busy.notification!.id)) === Status.SENDING);
    expect(await rejection(recipientsA.eraseRecipient({ userId: `busy-${run}` }))).toMatchObject({ code: "Aborted" });
    expect(await herald.db.pool.query("SELECT 1 FROM notifications WHERE user_id = $1", [`busy-${run}`])).toHaveProperty("rowCount", 1);
    releasePush();
    await waitFor("the busy push SENT", async () => (await statusOf(busy.notification!.id)) === Status.SENT);
    expect((await recipientsA.eraseRecipient({ userId: `busy-${run}` })).notificationsErased).toBe(1);
  });

  it("leaves no user id, address or content in any column of any table, keeps the counts, cancels what was not sent, and audits", async () => {
    const before = await countsByChannelAndStatus();
    const requestId = `erase-${run}`;
    const res = await recipientsA.eraseRecipient({ userId: USER }, { headers: { "x-request-id": requestId } });
    expect(res).toMatchObject({
      notificationsErased: 6,
      notificationsCanceled: 1,
      profileDeleted: true,
      preferencesDeleted: true,
      suppressionsDeleted: 1,
      deadLettersDeleted: 1,
      receiptsDeleted: 1,
      notifyRequestsDeleted: 1,
    });

    // Once the relay has published the cancellation (its feed row logged), nothing is left.
    await waitFor("the cancellation published", async () => (await herald.db.pool.query("SELECT 1 FROM outbox WHERE published_at IS NULL")).rowCount === 0);
    expect(await tracesOf(herald.db.pool, NEEDLES)).toEqual([]);

    // Anonymous counts: every row is still there with its channel; only the scheduled one changed status.
    const after = await countsByChannelAndStatus();
    const moved = (rows: typeof before, channel: number, from: number, to: number) =>
      rows.map((r) => ({ ...r })).flatMap((r) => (r.channel === channel && r.status === from ? [{ ...r, n: r.n - 1 }, { channel, status: to, n: 1 }] : [r]));
    const expected = new Map<string, number>();
    for (const r of moved(before, Channel.EMAIL, Status.SCHEDULED, Status.CANCELED)) expected.set(`${r.channel}/${r.status}`, (expected.get(`${r.channel}/${r.status}`) ?? 0) + r.n);
    expect(Object.fromEntries(after.map((r) => [`${r.channel}/${r.status}`, r.n]))).toEqual(Object.fromEntries([...expected].filter(([, n]) => n > 0)));
    const erased = await herald.db.pool.query<{ user_id: string; erased: boolean }>(
      "SELECT DISTINCT user_id, erased_at IS NOT NULL AS erased FROM notifications WHERE id IN (SELECT notification_id FROM status_events WHERE detail = 'canceled: recipient erased')",
    );
    expect(erased.rows).toEqual([{ user_id: expect.stringMatching(/^erased:[0-9a-f-]{36}$/) as string, erased: true }]);

    // Audited, with the caller's key and request id and a keyed hash of the user id.
    const key = (await herald.db.pool.query<{ value: Buffer }>("SELECT value FROM herald_secrets WHERE name = 'audit-subject'")).rows[0]!.value;
    const audit = await herald.db.pool.query("SELECT tenant, action, actor_key_id, request_id, subject_ref, counts FROM audit_log WHERE id = $1", [res.auditId]);
    expect(audit.rows).toEqual([
      {
        tenant: "tenant-a",
        action: "recipient.erase",
        actor_key_id: expect.stringMatching(/^\S+$/) as string,
        request_id: requestId,
        subject_ref: createHmac("sha256", key).update(`tenant-a\0${USER}`).digest("hex"),
        counts: expect.objectContaining({ notificationsErased: 6, notificationsCanceled: 1, profileDeleted: true }) as unknown,
      },
    ]);
  });

  it("never delivers the scheduled notification it canceled, even once its time has come", async () => {
    expect(await statusOf(scheduledId)).toBe(Status.CANCELED);
    // Its time comes; a witness due at the same moment is delivered, so the scheduler has looked.
    await herald.db.pool.query("UPDATE notifications SET deliver_at = now() WHERE id = $1", [scheduledId]);
    const witness = await api.schedule({
      notification: { channel: Channel.EMAIL, recipient: { userId: `witness-${run}`, address: { case: "email", value: `witness.${run}@example.com` } }, body: { case: "content", value: { text: "w" } } },
      when: { case: "deliverAt", value: timestampFromDate(new Date(Date.now() + 200)) },
    });
    await waitFor("the witness sent", async () => (await statusOf(witness.notification!.id)) === Status.SENT);
    expect(await statusOf(scheduledId)).toBe(Status.CANCELED);
    expect(email.sends.map((m) => m.notificationId)).not.toContain(scheduledId);
  });

  it("is idempotent: a second erasure finds nothing and is audited again; the CLI prints every count", async () => {
    const out: string[] = [];
    await runRecipientCommand(["erase", "--user", USER, "--addr", herald.grpcAddress, "--api-key", KEY_A], {}, { out: { write: (s: string) => out.push(s) }, err: { write: () => {} } });
    expect(JSON.parse(out.join(""))).toMatchObject({ notificationsErased: 0, profileDeleted: false, suppressionsDeleted: 0 });
    const audits = await herald.db.pool.query("SELECT count(*)::int AS n FROM audit_log WHERE tenant = 'tenant-a' AND action = 'recipient.erase'");
    // The busy user's, the subject's, and this one.
    expect(audits.rows[0]).toEqual({ n: 3 });
  });
});
