import { create } from "@bufbuild/protobuf";
import { pino } from "pino";
import { afterEach, describe, expect, it, vi } from "vitest";
import { Channel, RecipientSchema } from "../../gen/herald/v1/notification_pb.js";
import { PermanentError, TransientError } from "../../src/errors.js";
import { type Provider, type RenderedMessage } from "../../src/workers/providers/provider.js";
import { createSmtpProvider, type SmtpConfig } from "../../src/workers/providers/smtp.js";
import { closedPort, closeSocket, fail, hang, type Behaviour } from "../support/stand-ins/behaviour.js";
import { startSmtpStandIn } from "../support/stand-ins/smtp.js";

const quiet = pino({ level: "silent" });
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn().catch(() => {});
});

function message(over: Partial<RenderedMessage> = {}): RenderedMessage {
  const id = over.notificationId ?? crypto.randomUUID();
  return {
    notificationId: id, tenant: "acme", channel: Channel.EMAIL,
    recipient: create(RecipientSchema, { userId: "u-1", address: { case: "email", value: "ada@example.com" } }),
    subject: "Your receipt", text: "Thanks, Ada.\nSee you soon.", html: "<p>Thanks, <b>Ada</b>.</p>",
    data: {}, labels: {}, idempotencyKey: id, attempt: 1, ...over,
  };
}

async function setup(opts: { auth?: { user: string; pass: string }; config?: Partial<SmtpConfig> } = {}) {
  const smtp = await startSmtpStandIn({ auth: opts.auth });
  cleanups.push(() => smtp.close());
  const provider = createSmtpProvider(
    { kind: "smtp", host: smtp.host, port: smtp.port, secure: false, from: "Herald <noreply@herald.test>", timeoutMs: 2000, ...opts.config },
    { log: quiet },
  );
  cleanups.push(() => provider.close());
  return { smtp, provider };
}

const send = (p: Provider, m = message()) => p.send(m, new AbortController().signal);

/** The rejection of a promise that must reject, bounded by `withinMs` (the adapter's own timeout must fire first). */
async function rejection(p: Promise<unknown>, withinMs = 10_000): Promise<Error> {
  const guard = new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`still pending after ${withinMs} ms`)), withinMs).unref());
  try {
    await Promise.race([p, guard]);
  } catch (err) {
    return err as Error;
  }
  throw new Error("expected a rejection");
}

describe("smtp provider", () => {
  it("sends From, To, Subject, a stable Message-ID, the notification id header, and text and html parts", async () => {
    const { smtp, provider } = await setup();
    const m = message();
    const result = await send(provider, m);

    expect(result).toEqual({ providerMessageId: `<${m.notificationId}@herald>` });
    const [got] = await smtp.waitForMessages(1);
    expect(got?.envelope).toEqual({ mailFrom: "noreply@herald.test", rcptTo: ["ada@example.com"] });
    expect(got?.from).toBe("Herald <noreply@herald.test>");
    expect(got?.to).toBe("ada@example.com");
    expect(got?.subject).toBe("Your receipt");
    expect(got?.messageId).toBe(`<${m.notificationId}@herald>`);
    expect(got?.headers["x-herald-notification-id"]).toBe(m.notificationId);
    expect(got?.headers["content-type"]).toMatch(/^multipart\/alternative;/);
    expect(got?.text).toBe("Thanks, Ada.\nSee you soon.");
    expect(got?.html).toBe("<p>Thanks, <b>Ada</b>.</p>");
  });

  it("keeps the Message-ID across attempts and sends no html part when there is no html", async () => {
    const { smtp, provider } = await setup();
    const m = message({ html: "", subject: "Grüße ✓", text: "naïve café" });
    await send(provider, m);
    await send(provider, { ...m, attempt: 2 });

    const got = await smtp.waitForMessages(2);
    expect(got.map((g) => g.messageId)).toEqual([`<${m.notificationId}@herald>`, `<${m.notificationId}@herald>`]);
    expect(got[0]?.headers["content-type"]).toMatch(/^text\/plain/);
    expect(got[0]?.html).toBe("");
    expect(got[0]?.subject).toBe("Grüße ✓");
    expect(got[0]?.text).toBe("naïve café");
  });

  it("authenticates with the configured user and password; a wrong password is permanent and not in the error", async () => {
    const { smtp, provider } = await setup({ auth: { user: "herald", pass: "s3cret-pass" }, config: { user: "herald", password: "s3cret-pass" } });
    await send(provider);
    expect(smtp.messages).toHaveLength(1);

    const wrong = createSmtpProvider(
      { kind: "smtp", host: smtp.host, port: smtp.port, secure: false, from: "noreply@herald.test", user: "herald", password: "wrong-pass-123", timeoutMs: 2000 },
      { log: quiet },
    );
    cleanups.push(() => wrong.close());
    const err = await rejection(send(wrong));
    expect(err).toBeInstanceOf(PermanentError);
    expect(err.message).toMatch(/^smtp: AUTH \w+ refused: 535 /);
    expect(err.message).not.toContain("wrong-pass-123");
  });

  it("550 (no such user) is permanent and names the command and the reply", async () => {
    const { smtp, provider } = await setup();
    smtp.behave([fail(550, "No such user here")]);
    const err = await rejection(send(provider));
    expect(err).toBeInstanceOf(PermanentError);
    expect(err.message).toBe("smtp: RCPT TO refused: 550 No such user here");
    expect(smtp.messages).toHaveLength(0);
  });

  it.each<[string, Behaviour, RegExp]>([
    ["450 at RCPT TO", fail(450, "Mailbox busy, try later"), /^smtp: RCPT TO refused: 450 Mailbox busy, try later$/],
    ["421 at MAIL FROM", { ...fail(421, "Too busy, closing"), at: "mail" }, /^smtp: MAIL FROM refused: 421 Too busy, closing$/],
    ["452 after DATA", { ...fail(452, "Insufficient storage"), at: "data" }, /^smtp: DATA refused: 452 Insufficient storage$/],
    ["503 (bad sequence of commands)", fail(503, "Bad sequence"), /^smtp: RCPT TO refused: 503 Bad sequence$/],
  ])("%s is transient, and the next message goes through", async (_, behaviour, expected) => {
    const { smtp, provider } = await setup();
    smtp.behave([behaviour]);
    const err = await rejection(send(provider));
    expect(err).toBeInstanceOf(TransientError);
    expect(err.message).toMatch(expected);
    expect((err as TransientError).retryAfterMs).toBeUndefined();

    await send(provider);
    expect(smtp.messages).toHaveLength(1);
    expect(smtp.transactions.map((t) => t.status ?? t.behaviour)).toEqual([behaviour.kind === "fail" ? behaviour.status : 0, "ok"]);
  });

  it("gives up by itself when the server hangs: transient, timed out", async () => {
    const { smtp, provider } = await setup({ config: { timeoutMs: 400 } });
    smtp.behave([hang()]);
    const err = await rejection(send(provider));
    expect(err).toBeInstanceOf(TransientError);
    expect(err.message).toBe("smtp: timed out after 400 ms");
    // The pool dropped the stuck connection; the next message gets a fresh one.
    await send(provider);
    expect(smtp.messages).toHaveLength(1);
  });

  it("a dropped connection is transient; on a reused pooled connection it is retried once on a fresh one", async () => {
    const { smtp, provider } = await setup();
    smtp.behave([closeSocket()]);
    const err = await rejection(send(provider));
    expect(err).toBeInstanceOf(TransientError);
    expect(err.message).toBe("smtp: Connection closed unexpectedly (ECONNECTION)");

    await send(provider); // leaves a connection in the pool
    smtp.behave([closeSocket()]);
    await send(provider); // the server drops the pooled connection before a byte of the message was sent
    expect(smtp.transactions.map((t) => t.behaviour)).toEqual(["close", "ok", "close", "ok"]);
    expect(smtp.messages).toHaveLength(2);
  });

  it("connection refused is transient", async () => {
    const port = await closedPort();

    const provider = createSmtpProvider({ kind: "smtp", host: "127.0.0.1", port, secure: false, from: "noreply@herald.test", timeoutMs: 2000 }, { log: quiet });
    cleanups.push(() => provider.close());
    const err = await rejection(send(provider));
    expect(err).toBeInstanceOf(TransientError);
    expect(err.message).toBe("smtp: connection refused (ECONNREFUSED)");
  });

  it("the caller's abort ends the send as transient; a recipient that is not an email is permanent", async () => {
    const { smtp, provider } = await setup();
    smtp.behave([hang()]);
    const ac = new AbortController();
    const pending = provider.send(message(), ac.signal);
    await vi.waitFor(() => expect(smtp.transactions).toHaveLength(1));
    ac.abort();
    const err = await rejection(pending);
    expect(err).toBeInstanceOf(TransientError);
    expect(err.message).toBe("smtp: canceled before the provider answered");

    const sms = message({ recipient: create(RecipientSchema, { userId: "u-1", address: { case: "phone", value: "+14155550100" } }) });
    const wrong = await rejection(send(provider, sms));
    expect(wrong).toBeInstanceOf(PermanentError);
    expect(wrong.message).toBe("email: the recipient has no email address (got phone)");
  });

  it("close() waits for the send in flight, is idempotent, and later sends are refused as transient", async () => {
    const { smtp, provider } = await setup();
    const inflight = send(provider);
    const closed = Promise.all([provider.close(), provider.close()]);
    await expect(inflight).resolves.toMatchObject({ providerMessageId: expect.stringMatching(/@herald>$/) as string });
    await closed;
    expect(smtp.messages).toHaveLength(1);
    const err = await rejection(send(provider));
    expect(err).toBeInstanceOf(TransientError);
    expect(err.message).toBe("smtp: provider is closed");
  });
});
