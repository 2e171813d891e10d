import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import { failoverLists, loadDeliveryConfig } from "../src/config-delivery.js";
import { createLogger } from "../src/log.js";
import { createRedis } from "../src/redis.js";
import { createCircuitReader } from "../src/server/handlers/operations/circuits.js";
import { createCircuitBoard } from "../src/workers/providers/circuit/board.js";
import { circuitKey, readCircuits } from "../src/workers/providers/circuit/shared.js";
import { createMetricsRegistry } from "../src/metrics/registry.js";
import { startTcpProxy } from "./support/tcp-proxy.js";

// The operations overview's view of the circuit breakers: read from the Redis hashes the
// workers' breakers (circuit/board.ts) write, on a real Redis, and "unknown" within the timeout
// when Redis does not answer.

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const log = createLogger({ level: "silent", role: "test" });
const cleanups: Array<() => unknown> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** As the server role binds it. */
const readerOf = (redis: Redis, prefix: string) => (breakers: ReadonlyArray<{ channel: string; provider: string }>) =>
  readCircuits(redis, breakers.map((b) => circuitKey(prefix, b.channel, b.provider)));

const BREAKERS = { failures: 2, windowMs: 10_000, cooldownMs: 60_000, probeLeaseMs: 5_000 };

describe("the overview's circuit reader", () => {
  it("names each channel's providers in failover order, as the config lists them", () => {
    const { providers } = loadDeliveryConfig(
      {
        HERALD_EMAIL_PROVIDER: "smtp,smtp-backup",
        SMTP_BACKUP_HOST: "127.0.0.1",
        HERALD_EMAIL_FROM: "herald@example.com",
        HERALD_SMS_PROVIDER: "vonage,twilio",
        TWILIO_ACCOUNT_SID: "AC1",
        TWILIO_AUTH_TOKEN: "t",
        VONAGE_API_KEY: "k",
        VONAGE_API_SECRET: "s",
        HERALD_SMS_FROM: "+15005550006",
      },
      "production",
    );
    expect(failoverLists(providers)).toEqual([
      { channel: "email", providers: ["smtp", "smtp-backup"] },
      { channel: "sms", providers: ["vonage", "twilio"] },
    ]);
    expect(failoverLists(loadDeliveryConfig({ HERALD_SMS_PROVIDER: "sink" }, "production").providers)).toEqual([]);
  });

  it("reads what the workers' breakers wrote: closed, open with the time to its probe, half-open", async () => {
    const prefix = `t${randomBytes(5).toString("hex")}.`;
    const redis = new Redis(REDIS_URL);
    cleanups.push(() => redis.disconnect());
    // A worker's board on the same Redis: two transient failures open twilio's breaker.
    const board = createCircuitBoard({ config: BREAKERS, keyPrefix: prefix, log });
    board.attach({ redis, registry: createMetricsRegistry({ processMetrics: false }) });
    const twilio = board.breaker("sms", "twilio");
    const opening = Date.now();
    for (let i = 0; i < 2; i++) await twilio.record(await twilio.admit(), false);

    const reader = createCircuitReader({ lists: [{ channel: "sms", providers: ["twilio", "vonage"] }], read: readerOf(redis, prefix), log });
    const sms = (await reader.read()).get("sms")!;
    expect(sms.map((c) => [c.provider, c.reading?.state])).toEqual([["twilio", "open"], ["vonage", "closed"]]);
    // The cooldown (60 s) less however long this machine took since the breaker opened, never a fixed guess.
    expect(sms[0]!.reading!.retryInMs).toBeGreaterThanOrEqual(60_000 - (Date.now() - opening) - 50);
    expect(sms[0]!.reading!.retryInMs).toBeLessThanOrEqual(60_000);
    expect(sms[1]!.reading!.retryInMs).toBe(0);

    // Past its cooldown the next send is the probe: half-open, until it reports.
    await redis.hset(`${prefix}herald:cb:sms:twilio`, "ou", 0);
    const probe = await twilio.admit();
    expect(probe).toMatchObject({ allowed: true, probe: true });
    expect((await reader.read()).get("sms")!.map((c) => c.reading?.state)).toEqual(["half_open", "closed"]);
    await twilio.record(probe, true);
    expect((await reader.read()).get("sms")!.map((c) => c.reading?.state)).toEqual(["closed", "closed"]);
  });

  it("says unknown (no reading) within its timeout while Redis does not answer, and reads again after", async () => {
    const url = new URL(REDIS_URL);
    const proxy = await startTcpProxy({ host: url.hostname, port: Number(url.port || 6379) });
    cleanups.push(() => proxy.close());
    const redis = createRedis(`redis://127.0.0.1:${proxy.port}`, log);
    await redis.connect();
    cleanups.push(() => redis.disconnect());
    const reader = createCircuitReader({ lists: [{ channel: "email", providers: ["smtp", "smtp-backup"] }], read: readerOf(redis, "t-unknown."), log, timeoutMs: 300 });
    expect((await reader.read()).get("email")!.map((c) => c.reading?.state)).toEqual(["closed", "closed"]);

    proxy.blackhole();
    const email = (await reader.read()).get("email")!;
    expect(email).toEqual([{ provider: "smtp" }, { provider: "smtp-backup" }]);

    await proxy.restore();
    // The blackhole dropped the command's bytes, so that connection is out of step for good; the
    // kernel resets such a connection once TCP gives up on it, and ioredis reconnects. Done here
    // by hand rather than waiting for TCP's retransmission timeout.
    redis.disconnect(true);
    await expect.poll(async () => (await reader.read()).get("email")!.map((c) => c.reading?.state), { timeout: 30_000, interval: 200 }).toEqual(["closed", "closed"]);
  });
});
