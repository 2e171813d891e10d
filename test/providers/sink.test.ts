import { create } from "@bufbuild/protobuf";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { Channel, RecipientSchema } from "../../gen/herald/v1/notification_pb.js";
import { DeliveryConfigError } from "../../src/config-delivery.js";
import { createProvider } from "../../src/workers/providers/index.js";
import { TransientError } from "../../src/errors.js";
import { type RenderedMessage } from "../../src/workers/providers/provider.js";
import { createSinkProvider, SINK_FROM } from "../../src/workers/providers/sink.js";
import { parseEmail } from "../support/stand-ins/smtp.js";

const quiet = pino({ level: "silent" });
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn().catch(() => {});
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "herald-sink-"));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function message(channel: Channel, address: RenderedMessage["recipient"]["address"], over: Partial<RenderedMessage> = {}): RenderedMessage {
  const id = over.notificationId ?? crypto.randomUUID();
  return {
    notificationId: id, tenant: "dev", channel, recipient: create(RecipientSchema, { userId: "u-1", address }),
    subject: "Welcome", text: "Hello Ada", html: "<h1>Hello Ada</h1>", data: { plan: "pro" }, labels: { source: "signup" },
    idempotencyKey: id, attempt: 1, ...over,
  };
}

const signal = () => new AbortController().signal;

describe("sink provider", () => {
  it("writes an email as an RFC 5322 .eml with the same headers as SMTP", async () => {
    const dir = await tempDir();
    const sink = createSinkProvider({ dir: join(dir, "deliveries"), channel: Channel.EMAIL, log: quiet });
    const m = message(Channel.EMAIL, { case: "email", value: "ada@example.com" });
    const result = await sink.send(m, signal());

    const file = join(dir, "deliveries", "email", `${m.notificationId}.eml`);
    expect(result).toEqual({ providerMessageId: `sink:${file}` });
    const raw = await readFile(file, "utf8");
    expect(raw).toContain("\r\n");
    const email = parseEmail(raw);
    expect(email.from).toBe(SINK_FROM);
    expect(email.to).toBe("ada@example.com");
    expect(email.subject).toBe("Welcome");
    expect(email.messageId).toBe(`<${m.notificationId}@herald>`);
    expect(email.headers["x-herald-notification-id"]).toBe(m.notificationId);
    expect(email.text).toBe("Hello Ada");
    expect(email.html).toBe("<h1>Hello Ada</h1>");
  });

  it.each([
    [Channel.SMS, "sms", { case: "phone", value: "+14155550100" }, { userId: "u-1", phone: "+14155550100" }],
    [Channel.PUSH, "push", { case: "deviceToken", value: "tok-1" }, { userId: "u-1", deviceToken: "tok-1" }],
    [Channel.WEBHOOK, "webhook", { case: "webhookUrl", value: "https://example.com/h" }, { userId: "u-1", webhookUrl: "https://example.com/h" }],
  ] as const)("writes a %s delivery as <channel>/<id>.json", async (channel, folder, address, recipient) => {
    const dir = await tempDir();
    const sink = createSinkProvider({ dir, channel, log: quiet });
    const m = message(channel, address);
    const result = await sink.send(m, signal());

    const file = join(dir, folder, `${m.notificationId}.json`);
    expect(result.providerMessageId).toBe(`sink:${file}`);
    expect(JSON.parse(await readFile(file, "utf8"))).toEqual({
      notificationId: m.notificationId, tenant: "dev", channel: folder, recipient,
      subject: "Welcome", text: "Hello Ada", html: "<h1>Hello Ada</h1>", data: { plan: "pro" }, labels: { source: "signup" },
      attempt: 1, idempotencyKey: m.notificationId,
    });
  });

  it("a repeat overwrites the same file and leaves no temporary files", async () => {
    const dir = await tempDir();
    const sms = createSinkProvider({ dir, channel: Channel.SMS, log: quiet });
    const m = message(Channel.SMS, { case: "phone", value: "+14155550100" });
    const first = await sms.send(m, signal());
    const second = await sms.send({ ...m, attempt: 2, text: "Hello again" }, signal());

    expect(second).toEqual(first);
    expect(await readdir(join(dir, "sms"))).toEqual([`${m.notificationId}.json`]);
    expect(JSON.parse(await readFile(join(dir, "sms", `${m.notificationId}.json`), "utf8"))).toMatchObject({ attempt: 2, text: "Hello again" });

    const email = createSinkProvider({ dir, channel: Channel.EMAIL, log: quiet });
    const e = message(Channel.EMAIL, { case: "email", value: "ada@example.com" });
    await email.send(e, signal());
    await email.send({ ...e, attempt: 2 }, signal());
    expect(await readdir(join(dir, "email"))).toEqual([`${e.notificationId}.eml`]);
  });

  it("an id that could leave the folder is hashed into a safe name", async () => {
    const dir = await tempDir();
    const sink = createSinkProvider({ dir, channel: Channel.PUSH, log: quiet });
    const result = await sink.send(message(Channel.PUSH, { case: "deviceToken", value: "t" }, { notificationId: "../../escape" }), signal());
    const files = await readdir(join(dir, "push"));
    expect(files).toHaveLength(1);
    expect(files[0]).toMatch(/^h-[0-9a-f]{40}\.json$/);
    expect(result.providerMessageId).toBe(`sink:${join(dir, "push", files[0] ?? "")}`);
  });

  it("a folder it cannot write is a transient failure", async () => {
    const dir = await tempDir();
    await writeFile(join(dir, "blocked"), "a file where the folder should be");
    const sink = createSinkProvider({ dir: join(dir, "blocked"), channel: Channel.SMS, log: quiet });
    const err = await sink.send(message(Channel.SMS, { case: "phone", value: "+14155550100" }), signal()).catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(TransientError);
    expect((err as Error).message).toMatch(/^sink: cannot write .*blocked\/sms\/.*\.json: ENOTDIR/);
  });
});

describe("createProvider", () => {
  it("builds the configured adapter, the sink included", async () => {
    const dir = await tempDir();
    const deps = { sinkDir: dir, log: quiet };
    const sink = createProvider(Channel.SMS, { sms: { kind: "sink" } }, deps);
    expect(sink.name).toBe("sink");
    const m = message(Channel.SMS, { case: "phone", value: "+14155550100" });
    expect(await sink.send(m, signal())).toEqual({ providerMessageId: `sink:${join(dir, "sms", `${m.notificationId}.json`)}` });

    const smtp = createProvider(Channel.EMAIL, { email: { kind: "smtp", host: "127.0.0.1", port: 25, secure: false, from: "a@b.c", timeoutMs: 1000 } }, deps);
    cleanups.push(() => smtp.close());
    expect(smtp.name).toBe("smtp");
    const names = [
      createProvider(Channel.SMS, { sms: { kind: "twilio", baseUrl: "http://127.0.0.1:1", accountSid: "AC", authToken: "t", from: "+1", timeoutMs: 1000 } }, deps).name,
      createProvider(Channel.PUSH, { push: { kind: "fcm", baseUrl: "http://127.0.0.1:1", projectId: "p", accessToken: "t", timeoutMs: 1000 } }, deps).name,
      createProvider(Channel.WEBHOOK, { webhook: { kind: "http", secrets: new Map(), timeoutMs: 1000 } }, deps).name,
    ];
    expect(names).toEqual(["twilio", "fcm", "webhook"]);
  });

  it("refuses a channel with no provider configured, naming the variable to set", () => {
    const deps = { sinkDir: "unused", log: quiet };
    expect(() => createProvider(Channel.PUSH, { sms: { kind: "sink" } }, deps)).toThrow(DeliveryConfigError);
    expect(() => createProvider(Channel.PUSH, {}, deps)).toThrow("no provider is configured for channel push: set HERALD_PUSH_PROVIDER (sink or fcm)");
    expect(() => createProvider(Channel.UNSPECIFIED, {}, deps)).toThrow("no provider for channel 0: not a deliverable channel");
  });
});
