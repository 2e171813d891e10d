import { fromBinary } from "@bufbuild/protobuf";
import { createClient, type Client } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DispatchSchema } from "../../gen/herald/v1/dispatch_pb.js";
import { TemplateService } from "../../gen/herald/v1/template_pb.js";
import { Channel, Status } from "../../src/client/index.js";
import { createGrpcTransport } from "../../src/client/grpc-transport.js";
import { readTopic } from "../support/kafka-reader.js";
import { stopAll, type HeraldProcess } from "../support/processes.js";
import { delay } from "../support/stand-ins/behaviour.js";
import { startFcmStandIn, type FcmStandIn } from "../support/stand-ins/fcm.js";
import { startSmtpStandIn, type SmtpStandIn } from "../support/stand-ins/smtp.js";
import { startTwilioStandIn, type TwilioStandIn } from "../support/stand-ins/twilio.js";
import { startWebhookReceiver, verifyWebhook, type WebhookReceiver } from "../support/stand-ins/webhook-receiver.js";
import {
  EMAIL_FROM,
  SMS_FROM,
  TENANT,
  committedOffsets,
  createNotification,
  eventsOf,
  fcmCredentials,
  fcmEnv,
  rowOf,
  sms,
  smtpEnv,
  startE2e,
  testKafka,
  twilioCredentials,
  twilioEnv,
  waitForStatus,
  webhookEnv,
  webhookSecret,
  type E2e,
} from "./support.js";
import { waitFor } from "../support/wait.js";

// Every channel end to end through one `herald worker --channel all` process and a local
// stand-in per provider: what arrives at the provider, exactly, and what is stored about it.

const twilioCreds = twilioCredentials();
const fcmCreds = fcmCredentials();
const secret = webhookSecret();

let e2e: E2e;
let worker: HeraldProcess;
let smtp: SmtpStandIn;
let twilio: TwilioStandIn;
let fcm: FcmStandIn;
let hooks: WebhookReceiver;
let templates: Client<typeof TemplateService>;
let closeTemplates: () => void;

beforeAll(async () => {
  [smtp, twilio, fcm, hooks] = await Promise.all([
    startSmtpStandIn(),
    startTwilioStandIn(twilioCreds),
    startFcmStandIn(fcmCreds),
    startWebhookReceiver({ secret }),
  ]);
  e2e = await startE2e({
    ...smtpEnv(smtp),
    ...twilioEnv(twilio, twilioCreds),
    ...fcmEnv(fcm, fcmCreds),
    ...webhookEnv(secret),
    HERALD_WORKER_CONCURRENCY: "8",
  });
  worker = await e2e.startWorker("all");
  const transport = createGrpcTransport({ address: e2e.grpcAddress });
  closeTemplates = () => transport.close();
  templates = createClient(TemplateService, {
    ...transport,
    unary: (method, signal, timeoutMs, header, input, values) => {
      const h = new Headers(header);
      h.set("authorization", `Bearer ${e2e.apiKey}`);
      return transport.unary(method, signal, timeoutMs, h, input, values);
    },
  });
});

afterAll(async () => {
  closeTemplates?.();
  await e2e?.stop();
  await stopAll("SIGKILL", 5_000);
  await Promise.all([smtp?.close(), twilio?.close(), fcm?.close(), hooks?.close()]);
});

/** The stored lifecycle of a notification delivered on its first attempt. */
const deliveredOnce = (provider: string) => [
  [1, Status.QUEUED, 0, "accepted"],
  [2, Status.SENDING, 1, "claimed"],
  [3, Status.SENT, 1, `sent via ${provider}`],
];

async function lifecycle(id: string) {
  return (await eventsOf(e2e.pool, id)).map((e) => [e.sequence, e.status, e.attempt, e.detail]);
}

describe("email through the SMTP stand-in", () => {
  it("arrives with From, To, Subject, text and html parts and Message-ID <id@herald>", async () => {
    const id = await createNotification(e2e.client, "ada", { case: "email", value: "ada@example.com" }, {
      subject: "Your receipt",
      text: "Thanks, Ada!\nSee you soon.",
      html: "<p>Thanks, <b>Ada</b>!</p>",
    });
    await waitForStatus(e2e.pool, [id], Status.SENT, { workers: [worker] });

    const mine = smtp.messages.filter((m) => m.messageId === `<${id}@herald>`);
    expect(mine).toHaveLength(1);
    const mail = mine[0]!;
    expect(mail).toMatchObject({
      from: EMAIL_FROM,
      to: "ada@example.com",
      subject: "Your receipt",
      text: "Thanks, Ada!\nSee you soon.",
      html: "<p>Thanks, <b>Ada</b>!</p>",
      envelope: { mailFrom: "noreply@herald.test", rcptTo: ["ada@example.com"] },
    });
    expect(mail.headers["x-herald-notification-id"]).toBe(id);
    expect(mail.headers["content-type"]).toMatch(/^multipart\/alternative;/);
    expect(await rowOf(e2e.pool, id)).toMatchObject({ status: Status.SENT, attempts: 1, provider_message_id: `<${id}@herald>`, last_error: "" });
    expect(await lifecycle(id)).toEqual(deliveredOnce("smtp"));
  });

  it("a template put over the API arrives rendered: variables HTML-escaped in the html part, raw in text and subject", async () => {
    const put = await templates.putTemplate({
      templateId: "receipt",
      content: {
        subject: "Receipt for {{name}}",
        text: "Hi {{name}}, you owe {{amount}}.",
        html: "<p>Hi {{name}}, you owe {{amount}}.</p>",
      },
    });
    expect(put.template).toMatchObject({ templateId: "receipt", version: 1, requiredVariables: ["amount", "name"] });

    const { notification } = await e2e.client.create({
      notification: {
        channel: Channel.EMAIL,
        recipient: { userId: "ada", address: { case: "email", value: "ada@example.com" } },
        body: { case: "template", value: { templateId: "receipt", variables: { name: "<b>Ada</b>", amount: "5 & 6" } } },
      },
    });
    const id = notification!.id;
    await waitForStatus(e2e.pool, [id], Status.SENT, { workers: [worker] });

    const mail = smtp.messages.find((m) => m.messageId === `<${id}@herald>`);
    expect(mail).toMatchObject({
      subject: "Receipt for <b>Ada</b>",
      text: "Hi <b>Ada</b>, you owe 5 & 6.",
      html: "<p>Hi &lt;b&gt;Ada&lt;/b&gt;, you owe 5 &amp; 6.</p>",
    });
  });
});

describe("webhook, SMS and push through their stand-ins", () => {
  it("webhook: a Standard Webhooks request that verifies with the tenant's secret; webhook-id is the notification id", async () => {
    const id = await createNotification(e2e.client, "hook-user", { case: "webhookUrl", value: hooks.hookUrl }, {
      subject: "Order shipped",
      text: "Your order is on its way",
      data: { order: "42" },
    });
    await waitForStatus(e2e.pool, [id], Status.DELIVERED, { workers: [worker] });

    expect(hooks.rejected).toEqual([]);
    const mine = hooks.deliveries.filter((d) => d.id === id);
    expect(mine).toHaveLength(1);
    const delivery = mine[0]!;
    expect(delivery.request).toMatchObject({ method: "POST", path: "/hooks/herald" });
    expect(delivery.request.headers["webhook-signature"]).toMatch(/^v1,[A-Za-z0-9+/]+=*$/);
    expect(Math.abs(delivery.timestamp - Date.now() / 1000)).toBeLessThan(60);
    const { timestamp, ...payload } = delivery.payload as { timestamp: string };
    expect(payload).toEqual({
      type: "notification.delivery",
      data: { notification_id: id, subject: "Order shipped", text: "Your order is on its way", data: { order: "42" }, labels: {} },
    });
    // The body's timestamp is the signed webhook-timestamp instant, with milliseconds.
    expect(timestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(Math.floor(Date.parse(timestamp) / 1000)).toBe(delivery.timestamp);
    // The signature is the tenant's: another secret does not verify the same request.
    expect(() => verifyWebhook(webhookSecret(), delivery.request.rawBody, delivery.request.headers)).toThrow();
    // The receiver is the destination: its 2xx is the delivery, stored with the SENT (receipts).
    expect(await rowOf(e2e.pool, id)).toMatchObject({ status: Status.DELIVERED, provider_message_id: id });
    expect(await lifecycle(id)).toEqual([...deliveredOnce("webhook"), [4, Status.DELIVERED, 1, "delivered: the receiver answered 2xx"]]);
  });

  it("SMS: form fields To, From, Body, basic auth and I-Twilio-Idempotency-Token = notification id", async () => {
    const id = await sms(e2e.client, "sms-user", "Your code is 123456", "+14155550123");
    await waitForStatus(e2e.pool, [id], Status.SENT, { workers: [worker] });

    const mine = twilio.requests.filter((r) => r.headers["i-twilio-idempotency-token"] === id);
    expect(mine).toHaveLength(1);
    const req = mine[0]!;
    expect(req).toMatchObject({
      method: "POST",
      path: `/2010-04-01/Accounts/${twilioCreds.accountSid}/Messages.json`,
      body: { To: "+14155550123", From: SMS_FROM, Body: "Your code is 123456" },
      behaviour: "ok",
    });
    expect(req.headers.authorization).toBe(`Basic ${Buffer.from(`${twilioCreds.accountSid}:${twilioCreds.authToken}`).toString("base64")}`);
    expect(req.headers["content-type"]).toBe("application/x-www-form-urlencoded");
    const accepted = twilio.messages.find((m) => m.idempotencyToken === id);
    expect(accepted?.sid).toMatch(/^SM[0-9a-f]{32}$/);
    expect(await rowOf(e2e.pool, id)).toMatchObject({ status: Status.SENT, provider_message_id: accepted!.sid });
    expect(await lifecycle(id)).toEqual(deliveredOnce("twilio"));
  });

  it("push: FCM v1 message with token, title, body and data, under the bearer token", async () => {
    const id = await createNotification(e2e.client, "push-user", { case: "deviceToken", value: "device-token-abc" }, {
      subject: "New message",
      text: "Ada sent you a message",
      data: { thread: "t-7" },
    });
    await waitForStatus(e2e.pool, [id], Status.SENT, { workers: [worker] });

    const mine = fcm.messages.filter((m) => m.token === "device-token-abc" && m.message.data && (m.message.data as Record<string, string>).herald_notification_id === id);
    expect(mine).toHaveLength(1);
    const { request, message, name } = mine[0]!;
    expect(request).toMatchObject({ method: "POST", path: `/v1/projects/${fcmCreds.projectId}/messages:send` });
    expect(request.headers.authorization).toBe(`Bearer ${fcmCreds.accessToken}`);
    expect(message).toEqual({
      token: "device-token-abc",
      notification: { title: "New message", body: "Ada sent you a message" },
      data: { thread: "t-7", herald_notification_id: id },
      android: { collapse_key: id },
      apns: { headers: { "apns-collapse-id": id } },
    });
    expect(fcm.requests.filter((r) => r.rawBody.includes(id))).toHaveLength(1);
    expect(await rowOf(e2e.pool, id)).toMatchObject({ status: Status.SENT, provider_message_id: name });
    expect(await lifecycle(id)).toEqual(deliveredOnce("fcm"));
  });
});

describe("redelivery", () => {
  it("the same Kafka record delivered twice makes one provider call", async () => {
    const id = await sms(e2e.client, "dup-user", "Only once, please", "+14155550124");
    await waitForStatus(e2e.pool, [id], Status.SENT, { workers: [worker] });

    // The Dispatch exactly as the relay published it, copied byte for byte onto the same partition.
    const topic = `${e2e.prefix}herald.sms`;
    const records = await readTopic(topic, { until: (rs) => rs.some((r) => fromBinary(DispatchSchema, r.value).notificationId === id), timeoutMs: 20_000 });
    const original = records.filter((r) => fromBinary(DispatchSchema, r.value).notificationId === id);
    expect(original).toHaveLength(1);
    const record = original[0]!;
    expect(record).toMatchObject({ key: `${TENANT}/dup-user`, headers: { tenant: TENANT, attempt: "1" } });

    const producer = testKafka().producer();
    await producer.connect();
    let copyOffset: bigint;
    try {
      const [meta] = await producer.send({
        topic,
        acks: -1,
        messages: [{ partition: record.partition, key: record.key, value: record.value, headers: record.headers }],
      });
      copyOffset = BigInt(meta!.baseOffset!);
    } finally {
      await producer.disconnect();
    }
    expect(copyOffset).toBeGreaterThan(BigInt(record.offset));

    // The worker has finished with the copy once its group commits past it.
    const group = `${e2e.prefix}herald-worker-sms`;
    await waitFor("the worker to commit past the copied record", async () => ((await committedOffsets(group, topic)).get(record.partition) ?? -1n) > copyOffset, { everyMs: 200 });

    expect(twilio.requests.filter((r) => r.headers["i-twilio-idempotency-token"] === id)).toHaveLength(1);
    expect(await rowOf(e2e.pool, id)).toMatchObject({ status: Status.SENT, attempts: 1 });
    expect(await lifecycle(id)).toEqual(deliveredOnce("twilio"));
  });
});

describe("per-recipient order", () => {
  it("one user's 50 notifications arrive in creation order while other users' interleave, several in flight", async () => {
    // Every answer takes 40 ms: two requests that arrive within 40 ms of each other were in flight together.
    const answerMs = 40;
    twilio.behave([], delay(answerMs));
    try {
      const before = twilio.requests.length;
      const others: Array<Promise<string>> = [];
      for (let u = 0; u < 10; u++) for (let i = 0; i < 5; i++) others.push(sms(e2e.client, `other-${u}`, `other ${u}.${i}`, `+1415555030${u}`));
      const ordered: string[] = [];
      for (let i = 0; i < 50; i++) ordered.push(await sms(e2e.client, "ordered-user", `ordered ${i}`, "+14155550200"));
      const all = [...ordered, ...(await Promise.all(others))];
      await waitForStatus(e2e.pool, all, Status.SENT, { timeoutMs: 60_000, workers: [worker] });

      const seen = twilio.requests.slice(before);
      const mine = seen.filter((r) => (r.body as Record<string, string>).To === "+14155550200");
      expect(mine.map((r) => (r.body as Record<string, string>).Body)).toEqual(ordered.map((_, i) => `ordered ${i}`));
      expect(mine.map((r) => r.headers["i-twilio-idempotency-token"])).toEqual(ordered);
      // Each notification exactly once.
      expect(seen).toHaveLength(all.length);
      expect(new Set(seen.map((r) => r.headers["i-twilio-idempotency-token"])).size).toBe(all.length);

      // Others interleaved with the ordered user's run, and requests overlapped at the stand-in.
      const first = mine[0]!.receivedAt.getTime();
      const last = mine.at(-1)!.receivedAt.getTime();
      const interleaved = seen.filter((r) => (r.body as Record<string, string>).To !== "+14155550200" && r.receivedAt.getTime() > first && r.receivedAt.getTime() < last);
      expect(interleaved.length).toBeGreaterThan(0);
      const times = seen.map((r) => r.receivedAt.getTime()).sort((a, b) => a - b);
      let concurrency = 0;
      for (const t of times) concurrency = Math.max(concurrency, times.filter((u) => u >= t && u < t + answerMs).length);
      console.log(`per-recipient order: ${interleaved.length} other requests interleaved; at least ${concurrency} requests in flight at once at the stand-in`);
      expect(concurrency).toBeGreaterThan(1);
    } finally {
      twilio.behave([]);
    }
  });
});
