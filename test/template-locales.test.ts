import { fromBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DispatchSchema } from "../gen/herald/v1/dispatch_pb.js";
import { Channel, NotificationSpecSchema, Status } from "../gen/herald/v1/notification_pb.js";
import { NotificationService } from "../gen/herald/v1/notification_service_pb.js";
import { TemplateService, type PutTemplateRequestSchema } from "../gen/herald/v1/template_pb.js";
import { createGrpcTransport } from "../src/client/grpc-transport.js";
import type { Provider, RenderedMessage } from "../src/workers/providers/provider.js";
import { KEY_A, startTestHerald, type TestHerald } from "./support/herald.js";
import { readTopic } from "./support/kafka-reader.js";
import { bearer, rejection } from "./support/rpc.js";
import { waitFor } from "./support/wait.js";

// Localized templates end to end: PutTemplate with locale variants over both listeners, then
// notifications in several locales through accept → Kafka → worker → an in-process provider,
// which records what it was asked to send. Real PostgreSQL, Kafka and Redis.

type PutInit = Exclude<MessageInitShape<typeof PutTemplateRequestSchema>, { $typeName: string }>;

/** Takes every message at once and keeps it, by notification id. */
function recordingProvider(): Provider & { sent: Map<string, RenderedMessage> } {
  const sent = new Map<string, RenderedMessage>();
  return {
    name: "recording",
    sent,
    send(message) {
      sent.set(message.notificationId, message);
      return Promise.resolve({ providerMessageId: `rec-${message.notificationId}` });
    },
    close: async () => {},
  };
}

let herald: TestHerald;
let templates: Client<typeof TemplateService>;
let connect: Client<typeof NotificationService>;
const email = recordingProvider();
const sms = recordingProvider();

beforeAll(async () => {
  herald = await startTestHerald({ roles: ["server", "relay", "scheduler", "worker"], providers: { email, sms } });
  const transport = createConnectTransport({ baseUrl: herald.httpUrl, httpVersion: "1.1", interceptors: [bearer(KEY_A)] });
  templates = createClient(TemplateService, transport);
  connect = createClient(NotificationService, transport);
  // The default in English with a short SMS override; German in one content for every channel;
  // Brazilian Portuguese (given in lower case) with its own SMS text.
  await templates.putTemplate({
    templateId: "greeting",
    content: { subject: "Hello {{name}}", text: "Hello {{name}}." },
    channelOverrides: [{ channel: Channel.SMS, content: { text: "Hi {{name}}" } }],
    locales: [
      { locale: "de", content: { subject: "Hallo {{name}}", text: "Hallo {{name}}, dein Code ist {{code}}." } },
      {
        locale: "pt-br",
        content: { subject: "Olá {{nome}}", text: "Olá {{nome}}{{#if cidade}} de {{cidade}}{{/if}}." },
        channelOverrides: [{ channel: Channel.SMS, content: { text: "Oi {{nome}}" } }],
      },
    ],
  });
});
afterAll(async () => {
  await herald?.stop();
});

function spec(userId: string, locale: string, variables: Record<string, string>, channel = Channel.EMAIL) {
  return {
    channel,
    recipient:
      channel === Channel.SMS
        ? { userId, address: { case: "phone" as const, value: "+14155550100" } }
        : { userId, address: { case: "email" as const, value: `${userId}@example.com` } },
    body: { case: "template" as const, value: { templateId: "greeting", variables } },
    locale,
  };
}

/** Creates over gRPC, waits for the provider's send, and returns the message and the notification. */
async function delivered(provider: ReturnType<typeof recordingProvider>, s: ReturnType<typeof spec>) {
  const { notification } = await herald.client().create({ notification: s });
  const id = notification!.id;
  const message = await waitFor(`notification ${id} to reach the provider`, () => provider.sent.get(id));
  return { notification: notification!, message };
}

describe("PutTemplate with locale variants", () => {
  it("stores each variant's canonical locale and its own required variables", async () => {
    const { template } = await templates.getTemplate({ templateId: "greeting" });
    expect(template?.requiredVariables).toEqual(["name"]);
    expect(template?.locales.map((l) => [l.locale, l.requiredVariables])).toEqual([
      ["de", ["code", "name"]],
      ["pt-BR", ["nome"]],
    ]);
    expect(template?.locales[1]?.channelOverrides.map((o) => [o.channel, o.content?.text])).toEqual([[Channel.SMS, "Oi {{nome}}"]]);
  });

  it("refuses a bad, repeated or uncompilable variant on either listener, naming its field; nothing stored", async () => {
    const before = await herald.db.pool.query<{ n: number }>("SELECT count(*)::int AS n FROM templates");
    const grpcTransport = createGrpcTransport({ address: herald.grpcAddress });
    const grpc = createClient(TemplateService, grpcTransport);
    const cases: Array<[PutInit, string]> = [
      [{ locales: [{ locale: "english please", content: { text: "x" } }] }, 'locales[0].locale: must be a BCP 47 language tag like de-CH, got "english please"'],
      [{ locales: [{ content: { text: "x" } }] }, "locales[0].locale: is required: a BCP 47 language tag like de or pt-BR"],
      [{ locales: [{ locale: "pt-BR", content: { text: "a" } }, { locale: "PT-br", content: { text: "b" } }] }, 'locales[1].locale: "pt-BR" already has a variant at locales[0]'],
      [{ locales: [{ locale: "de", content: { text: "ok" } }, { locale: "fr", content: { subject: "Salut {{nom}" } }] }, "locales[1].content.subject: does not compile: Parse error on line 1: unexpected INVALID"],
      [{ locales: [{ locale: "de" }] }, "locales[0].content: set at least one of subject, text or html (or a channel override)"],
      [{ locales: [{ locale: "de", channelOverrides: [{ channel: Channel.SMS, content: { html: "<b>x</b>" } }] }] }, "locales[0].channel_overrides[0].content.html: only email supports html"],
    ];
    try {
      for (const [init, message] of cases) {
        const req = { templateId: "broken-locales", content: { text: "default" }, ...init };
        expect(await rejection(templates.putTemplate(req))).toEqual({ code: "InvalidArgument", message });
        expect(await rejection(grpc.putTemplate(req, { headers: { authorization: `Bearer ${KEY_A}` } }))).toEqual({ code: "InvalidArgument", message });
      }
    } finally {
      grpcTransport.close();
    }
    const after = await herald.db.pool.query<{ n: number }>("SELECT count(*)::int AS n FROM templates");
    expect(after.rows[0]!.n).toBe(before.rows[0]!.n);
  });
});

describe("delivering a localized template", () => {
  it("renders de for de-AT (less specific), pt-BR exactly, and the default for fr", async () => {
    const [de, pt, fr] = await Promise.all([
      delivered(email, spec("loc-de", "de-AT", { name: "Ada", code: "42" })),
      delivered(email, spec("loc-pt", "pt-BR", { nome: "Ana", cidade: "Recife" })),
      delivered(email, spec("loc-fr", "fr", { name: "Zoé" })),
    ]);
    expect([de.message.subject, de.message.text]).toEqual(["Hallo Ada", "Hallo Ada, dein Code ist 42."]);
    expect([pt.message.subject, pt.message.text]).toEqual(["Olá Ana", "Olá Ana de Recife."]);
    expect([fr.message.subject, fr.message.text]).toEqual(["Hello Zoé", "Hello Zoé."]);
  });

  it("falls back to another variant of the language (pt-PT → pt-BR), and with no locale to the default", async () => {
    const [pt, none] = await Promise.all([
      delivered(email, spec("loc-pt-pt", "pt-PT", { nome: "Rui" })),
      delivered(email, spec("loc-none", "", { name: "Ada" })),
    ]);
    expect(pt.message.text).toBe("Olá Rui.");
    expect(none.message.text).toBe("Hello Ada.");
  });

  it("lets the language win over the channel: SMS in de gets the German content, not the default's SMS text", async () => {
    const [de, pt, en] = await Promise.all([
      delivered(sms, spec("loc-sms-de", "de-CH", { name: "Ada", code: "7" }, Channel.SMS)),
      delivered(sms, spec("loc-sms-pt", "pt-BR", { nome: "Ana" }, Channel.SMS)),
      delivered(sms, spec("loc-sms-en", "en-GB", { name: "Ada" }, Channel.SMS)),
    ]);
    expect(de.message.text).toBe("Hallo Ada, dein Code ist 7.");
    expect(pt.message.text).toBe("Oi Ana");
    expect(en.message.text).toBe("Hi Ada");
  });

  it("stores the locale canonical and echoes it on reads and in the Dispatch record", async () => {
    const { notification, message } = await delivered(email, spec("loc-echo", "de-at", { name: "Ada", code: "1" }));
    expect(message.text).toBe("Hallo Ada, dein Code ist 1.");
    expect(notification.locale).toBe("de-AT");
    expect((await connect.get({ id: notification.id })).notification?.locale).toBe("de-AT");
    const row = await herald.db.pool.query<{ spec: Buffer }>("SELECT spec FROM notifications WHERE id = $1", [notification.id]);
    expect(fromBinary(NotificationSpecSchema, row.rows[0]!.spec).locale).toBe("de-AT");
    const records = await readTopic(herald.topic("herald.email"), { until: (r) => r.some((x) => x.key === "tenant-a/loc-echo") });
    const dispatch = fromBinary(DispatchSchema, records.find((r) => r.key === "tenant-a/loc-echo")!.value);
    expect(dispatch.notification?.locale).toBe("de-AT");
  });
});

describe("the accept-time check with locales", () => {
  const inAnHour = () => ({ case: "deliverAt" as const, value: { seconds: BigInt(Math.floor(Date.now() / 1000) + 3600) } });

  it("refuses a variable missing from the variant the locale chooses, on Create and Schedule, both listeners; nothing stored", async () => {
    const cases: Array<[ReturnType<typeof spec>, string]> = [
      [spec("loc-bad", "de-AT", { name: "Ada" }), 'notification.template.variables: missing required variable "code" of the "de" variant (chosen for locale "de-AT")'],
      [spec("loc-bad", "pt-BR", { name: "Ana" }), 'notification.template.variables: missing required variable "nome" of the "pt-BR" variant (chosen for locale "pt-BR")'],
      [spec("loc-bad", "fr", { nome: "Zoé" }), 'notification.template.variables: missing required variable "name"'],
    ];
    for (const [notification, message] of cases) {
      const want = { code: "InvalidArgument", message };
      expect(await rejection(herald.client().create({ notification }))).toEqual(want);
      expect(await rejection(connect.create({ notification }))).toEqual(want);
      expect(await rejection(herald.client().schedule({ notification, when: inAnHour() }))).toEqual(want);
      expect(await rejection(connect.schedule({ notification, when: inAnHour() }))).toEqual(want);
    }
    // A variable only another variant needs is not asked for: de needs no "nome".
    const { notification } = await connect.schedule({ notification: spec("loc-ok", "de", { name: "Ada", code: "1" }), when: inAnHour() });
    expect(notification?.status).toBe(Status.SCHEDULED);
    const stored = await herald.db.pool.query<{ n: number }>("SELECT count(*)::int AS n FROM notifications WHERE user_id = 'loc-bad'");
    expect(stored.rows[0]!.n).toBe(0);
  });

  it("refuses a locale that is not a BCP 47 tag, naming the field, on both listeners", async () => {
    for (const locale of ["english please", "de_AT", "x-private", "d".repeat(65)]) {
      const notification = spec("loc-bad-tag", locale, { name: "Ada" });
      const shown = JSON.stringify(locale.length > 40 ? `${locale.slice(0, 40)}…` : locale);
      const want = { code: "InvalidArgument", message: `notification.locale: must be a BCP 47 language tag like de-CH, got ${shown}` };
      expect(await rejection(herald.client().create({ notification }))).toEqual(want);
      expect(await rejection(connect.create({ notification }))).toEqual(want);
    }
  });
});
