import { create } from "@bufbuild/protobuf";
import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { pino, type Logger } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { Channel, RecipientSchema } from "../../gen/herald/v1/notification_pb.js";
import type { BreakerConfig, ProvidersConfig } from "../../src/config-delivery.js";
import { PermanentError, TransientError } from "../../src/errors.js";
import { createMetricsRegistry, type Registry } from "../../src/metrics/registry.js";
import { createRedis } from "../../src/redis.js";
import { createCircuitBoard, createProvider, failedProvider, type CircuitBoard, type Provider } from "../../src/workers/providers/index.js";
import type { RenderedMessage, SendResult } from "../../src/workers/providers/provider.js";
import { metricValue } from "../support/metric-values.js";
import { delay, fail } from "../support/stand-ins/behaviour.js";
import { startSmtpStandIn } from "../support/stand-ins/smtp.js";
import { startTcpProxy } from "../support/tcp-proxy.js";
import { startTwilioStandIn, twilioError, type TwilioStandIn } from "../support/stand-ins/twilio.js";
import { startVonageStandIn, type VonageStandIn } from "../support/stand-ins/vonage.js";
import { waitFor } from "../support/wait.js";

// Failover over real stand-ins, with breakers shared through the real Redis (keys under a prefix
// of each test's own) or, when Redis cannot be reached, kept in memory.

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
// A cooldown long enough that a busy machine cannot end it between a trip and the next send; the
// tests that watch it end use SHORT.
const BREAKER: BreakerConfig = { failures: 3, windowMs: 60_000, cooldownMs: 60_000, probeLeaseMs: 10_000 };
const SHORT: BreakerConfig = { ...BREAKER, cooldownMs: 2000 };
const quiet = pino({ level: "silent" });

const cleanups: Array<() => Promise<unknown> | void> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await Promise.resolve(fn()).catch(() => {});
});

function message(address: { case: "phone" | "email"; value: string } = { case: "phone", value: "+14155550100" }): RenderedMessage {
  const id = crypto.randomUUID();
  return {
    notificationId: id, tenant: "acme", channel: address.case === "phone" ? Channel.SMS : Channel.EMAIL,
    recipient: create(RecipientSchema, { userId: "u-1", address }),
    subject: "Code", text: "Your code is 123456", html: "", data: {}, labels: {}, idempotencyKey: id, attempt: 1,
  };
}

const send = (p: Provider, m = message()): Promise<SendResult> => p.send(m, new AbortController().signal);

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error("expected a rejection");
}

interface Sms {
  twilio: TwilioStandIn;
  vonage: VonageStandIn;
  config: ProvidersConfig;
}

async function smsStandIns(): Promise<Sms> {
  const accountSid = `AC${randomBytes(16).toString("hex")}`;
  const authToken = randomBytes(16).toString("hex");
  const apiKey = randomBytes(4).toString("hex");
  const apiSecret = randomBytes(12).toString("hex");
  const twilio = await startTwilioStandIn({ accountSid, authToken });
  const vonage = await startVonageStandIn({ apiKey, apiSecret });
  cleanups.push(() => twilio.close(), () => vonage.close());
  const config: ProvidersConfig = {
    sms: { kind: "twilio", baseUrl: twilio.url, accountSid, authToken, from: "+15005550006", timeoutMs: 2000 },
    fallbacks: { sms: [{ kind: "vonage", baseUrl: vonage.url, apiKey, apiSecret, from: "Herald", timeoutMs: 2000 }] },
  };
  return { twilio, vonage, config };
}

interface Instance {
  provider: Provider;
  board: CircuitBoard;
  registry: Registry;
}

/** One worker's failover provider: its own board and registry, Redis shared under `keyPrefix`. */
function instance(config: ProvidersConfig, redis: Redis, keyPrefix: string, opts: { channel?: Channel; log?: Logger; breaker?: BreakerConfig } = {}): Instance {
  const { channel = Channel.SMS, log = quiet, breaker = BREAKER } = opts;
  const board = createCircuitBoard({ config: breaker, keyPrefix, log, probeIntervalMs: 200, redisTimeoutMs: 300 });
  const registry = createMetricsRegistry({ processMetrics: false });
  board.attach({ redis, registry });
  const provider = createProvider(channel, config, { sinkDir: "/nonexistent", log, breakers: board });
  cleanups.push(() => provider.close());
  return { provider, board, registry };
}

function sharedRedis(): Redis {
  const redis = new Redis(REDIS_URL, { lazyConnect: false, maxRetriesPerRequest: 1 });
  cleanups.push(() => redis.disconnect());
  return redis;
}

const prefix = () => `t${randomBytes(5).toString("hex")}.`;
const state = (i: Instance, provider: string, channel = "sms") => metricValue(i.registry, "herald_provider_circuit_state", { channel, provider });
const failovers = (i: Instance, from: string, to: string, channel = "sms") => metricValue(i.registry, "herald_provider_failovers_total", { channel, from, to });

/** Sends until BREAKER.failures transient failures at twilio have opened its breaker. */
async function trip(i: Instance): Promise<void> {
  for (let n = 0; n < BREAKER.failures; n++) {
    const err = await rejection(send(i.provider));
    expect(err).toBeInstanceOf(TransientError);
    expect(failedProvider(err)).toBe("twilio");
  }
}

describe("failover provider", () => {
  it("opens the breaker after transient failures, sends through the next provider, then probes back", async () => {
    const { twilio, vonage, config } = await smsStandIns();
    const a = instance(config, sharedRedis(), prefix(), { breaker: SHORT });
    expect(a.provider.name).toBe("twilio,vonage");
    twilio.behave([], fail(503, "service unavailable"));

    await trip(a);
    expect(twilio.requests).toHaveLength(3);
    expect(await state(a, "twilio")).toBe(2);
    const viaVonage = await send(a.provider);
    expect(viaVonage).toEqual({ providerMessageId: vonage.messages[0]!.messageId, provider: "vonage" });
    expect(twilio.requests).toHaveLength(3);
    expect(await failovers(a, "twilio", "vonage")).toBe(1);

    // Twilio recovers: once the cooldown ends, one send probes it and closes the breaker.
    twilio.behave([]);
    const probed = await waitFor(
      "a send to reach twilio again",
      async () => {
        const r = await send(a.provider);
        return r.provider === "twilio" && r;
      },
      { everyMs: 100 },
    );
    expect(probed.providerMessageId).toBe(twilio.messages[0]!.sid);
    expect(await state(a, "twilio")).toBe(0);
    expect((await send(a.provider)).provider).toBe("twilio");
  });

  it("shares the breaker between workers through Redis, and lets exactly one probe through", async () => {
    const { twilio, config } = await smsStandIns();
    const redis = sharedRedis();
    const keyPrefix = prefix();
    const a = instance(config, redis, keyPrefix, { breaker: SHORT });
    const b = instance(config, redis, keyPrefix, { breaker: SHORT });
    twilio.behave([], fail(500, "internal"));

    await trip(a);
    // B never saw twilio fail, yet goes straight to vonage.
    expect((await send(b.provider)).provider).toBe("vonage");
    expect(twilio.requests).toHaveLength(3);
    expect(await state(b, "twilio")).toBe(2);

    // After the cooldown (Redis's clock), four sends from both workers at once: one is the probe.
    const key = `${keyPrefix}herald:cb:sms:twilio`;
    await waitFor("the cooldown to end", async () => {
      const [openUntil, [seconds, micros]] = await Promise.all([redis.hget(key, "ou"), redis.time()]);
      return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000) >= Number(openUntil);
    });
    // The probe takes a while to answer: the others arrive while it is in flight.
    twilio.behave([delay(500)]);
    const results = await Promise.all([send(a.provider), send(b.provider), send(a.provider), send(b.provider)]);
    expect(results.map((r) => r.provider).sort()).toEqual(["twilio", "vonage", "vonage", "vonage"]);
    expect(twilio.requests).toHaveLength(4);
    expect(await redis.hget(key, "s")).toBe("0");
    expect((await send(b.provider)).provider).toBe("twilio");
  });

  it("keeps a breaker of its own while Redis is unreachable, and says so once", async () => {
    const { twilio, config } = await smsStandIns();
    const lines: Array<{ msg: string; level: number }> = [];
    const log = pino({ level: "info" }, { write: (s: string) => void lines.push(JSON.parse(s) as { msg: string; level: number }) });
    // The production client's options (src/redis.ts), pointed where nothing listens.
    const redis = createRedis("redis://127.0.0.1:1", quiet);
    redis.connect().catch(() => {});
    cleanups.push(() => redis.disconnect());
    const a = instance(config, redis, prefix(), { log });
    twilio.behave([], fail(503));

    await trip(a);
    expect((await send(a.provider)).provider).toBe("vonage");
    expect(twilio.requests).toHaveLength(3);
    expect(await state(a, "twilio")).toBe(2);
    expect(await failovers(a, "twilio", "vonage")).toBe(1);
    expect(lines.filter((l) => l.msg === "circuit breakers cannot reach redis; each process keeps its own")).toHaveLength(1);
  });

  it("while Redis is cut each process trips on its own failures; the shared state resumes when Redis answers", async () => {
    const { twilio, config } = await smsStandIns();
    const lines: Array<{ msg: string }> = [];
    const log = pino({ level: "info" }, { write: (s: string) => void lines.push(JSON.parse(s) as { msg: string }) });
    const url = new URL(REDIS_URL);
    const proxy = await startTcpProxy({ host: url.hostname, port: Number(url.port || 6379) });
    cleanups.push(() => proxy.close());
    const proxied = createRedis(`redis://127.0.0.1:${proxy.port}`, quiet);
    await proxied.connect();
    cleanups.push(() => proxied.disconnect());
    const keyPrefix = prefix();
    const a = instance(config, proxied, keyPrefix, { log });
    const b = instance(config, sharedRedis(), keyPrefix);

    await proxy.cut();
    twilio.behave([], fail(503));
    await trip(a);
    expect((await send(a.provider)).provider).toBe("vonage");
    // The shared breaker never heard of those failures.
    expect(await b.board.breaker("sms", "twilio").admit()).toMatchObject({ allowed: true, state: "closed" });

    // Back: the shared (closed) breaker decides again, where this process's own is still open.
    twilio.behave([]);
    await proxy.restore();
    await waitFor("a send through twilio on the shared breaker", async () => (await send(a.provider)).provider === "twilio", { everyMs: 100 });
    expect(lines.map((l) => l.msg).filter((m) => m.startsWith("circuit breakers"))).toEqual([
      "circuit breakers cannot reach redis; each process keeps its own",
      "circuit breakers reached redis again; shared state restored",
    ]);
  });

  it("a permanent error neither counts against the provider nor fails over", async () => {
    const { twilio, vonage, config } = await smsStandIns();
    const a = instance(config, sharedRedis(), prefix());
    twilio.behave([], twilioError(400, 21211, "The 'To' number is not a valid phone number."));
    for (let n = 0; n < BREAKER.failures + 2; n++) {
      const err = await rejection(send(a.provider));
      expect(err).toBeInstanceOf(PermanentError);
      expect(failedProvider(err)).toBe("twilio");
    }
    expect(vonage.requests).toHaveLength(0);
    expect(await state(a, "twilio")).toBe(0);
    expect(await failovers(a, "twilio", "vonage")).toBe(0);
  });

  it("with every breaker open the send fails transient, after the soonest cooldown, attributed to no provider", async () => {
    const { twilio, vonage, config } = await smsStandIns();
    const a = instance(config, sharedRedis(), prefix());
    twilio.behave([], fail(503));
    vonage.behave([], fail(503));
    await trip(a);
    for (let n = 0; n < BREAKER.failures; n++) expect(failedProvider(await rejection(send(a.provider)))).toBe("vonage");
    const err = await rejection(send(a.provider));
    expect(err).toBeInstanceOf(TransientError);
    expect(err.message).toBe("sms: the circuit of every provider is open (twilio, vonage)");
    expect((err as TransientError).retryAfterMs).toBeGreaterThan(0);
    expect((err as TransientError).retryAfterMs).toBeLessThanOrEqual(BREAKER.cooldownMs);
    // The last send asked neither provider.
    expect(twilio.requests).toHaveLength(BREAKER.failures);
    expect(vonage.requests).toHaveLength(BREAKER.failures);
    expect(failedProvider(err)).toBe("");
    expect(await state(a, "vonage")).toBe(2);
  });

  it("fails email over from one SMTP relay to the backup relay", async () => {
    const primary = await startSmtpStandIn();
    const backup = await startSmtpStandIn();
    cleanups.push(() => primary.close(), () => backup.close());
    const config: ProvidersConfig = {
      email: { kind: "smtp", host: primary.host, port: primary.port, secure: false, from: "noreply@herald.test", timeoutMs: 2000 },
      fallbacks: { email: [{ kind: "smtp", name: "smtp-backup", host: backup.host, port: backup.port, secure: false, from: "noreply@herald.test", timeoutMs: 2000 }] },
    };
    const a = instance(config, sharedRedis(), prefix(), { channel: Channel.EMAIL });
    expect(a.provider.name).toBe("smtp,smtp-backup");
    primary.behave([], fail(421, "4.3.2 service not available"));
    const email = () => message({ case: "email", value: "ada@example.com" });
    for (let n = 0; n < BREAKER.failures; n++) {
      const err = await rejection(send(a.provider, email()));
      expect(err).toBeInstanceOf(TransientError);
      expect(failedProvider(err)).toBe("smtp");
    }
    const sent = await send(a.provider, email());
    expect(sent.provider).toBe("smtp-backup");
    expect(backup.messages).toHaveLength(1);
    expect(primary.messages).toHaveLength(0);
    expect(await failovers(a, "smtp", "smtp-backup", "email")).toBe(1);
    expect(await state(a, "smtp", "email")).toBe(2);
  });
});
