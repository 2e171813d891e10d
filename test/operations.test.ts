import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Channel, createOperationsClient, OperationsService, type GetOverviewResponse, type HeraldClient, type OperationsClient } from "../src/client/index.js";
import { startWorkerRole } from "../src/roles/worker.js";
import { FAST } from "./e2e/support.js";
import { KEY_A, KEY_B, startTestHerald, type TestHerald } from "./support/herald.js";
import { startPrivateBroker, type PrivateBroker } from "./support/private-broker.js";
import { instantProvider } from "./support/watch.js";
import { waitFor } from "./support/wait.js";

// OperationsService/GetOverview against a whole Herald: consumer lag read from the real broker,
// backlog from PostgreSQL, rates and end-to-end times from the status feed this API instance
// reads. Each test runs its own Herald (database, topic prefix), so the figures are its own.

const N = 10;

async function createEmails(client: HeraldClient, n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const { notification } = await client.create({
      notification: {
        channel: Channel.EMAIL,
        recipient: { userId: `ops-user-${i}`, address: { case: "email", value: `ops-${i}@example.com` } },
        body: { case: "content", value: { subject: "ops", text: "hello" } },
      },
    });
    ids.push(notification!.id);
  }
  return ids;
}

const email = (o: GetOverviewResponse) => o.channels.find((c) => c.channel === Channel.EMAIL)!;
const sum = (xs: bigint[]) => xs.reduce((a, b) => a + b, 0n);

describe("GetOverview", { timeout: 120_000 }, () => {
  let h: TestHerald;
  let ops: OperationsClient;

  beforeAll(async () => {
    // No worker role yet: what the relay publishes waits in herald.email.
    h = await startTestHerald({ roles: ["server", "relay"], env: { ...FAST } });
    ops = createOperationsClient({ address: h.grpcAddress, apiKey: KEY_B });
  });
  afterAll(async () => {
    ops?.close();
    await h?.stop();
  });

  it("shows the email workers' lag summing to N while they are stopped, 0 once they delivered, and N end-to-end samples", async () => {
    await createEmails(h.client(), N);
    const waiting = await waitFor(`email lag ${N}`, async () => {
      const o = await ops.getOverview({});
      return o.lagAvailable && email(o).lag === BigInt(N) && o.outboxPending === 0n && o;
    });
    expect(waiting.channels.map((c) => [c.channel, c.group])).toEqual([
      [Channel.EMAIL, "herald-worker-email"],
      [Channel.SMS, "herald-worker-sms"],
      [Channel.PUSH, "herald-worker-push"],
      [Channel.WEBHOOK, "herald-worker-webhook"],
    ]);
    const before = email(waiting);
    // HERALD_TOPIC_PARTITIONS=3 in the harness, for each lane (main first, then high, each named);
    // the groups have never committed, and the high lane got nothing.
    expect(before.partitions.map((p) => [p.group, p.topic, p.partition])).toEqual([
      ["herald-worker-email", "herald.email", 0],
      ["herald-worker-email", "herald.email", 1],
      ["herald-worker-email", "herald.email", 2],
      ["herald-worker-email-high", "herald.email.high", 0],
      ["herald-worker-email-high", "herald.email.high", 1],
      ["herald-worker-email-high", "herald.email.high", 2],
    ]);
    expect(before.partitions.every((p) => p.committedOffset === -1n && p.lag === p.logEndOffset)).toBe(true);
    expect(sum(before.partitions.map((p) => p.lag))).toBe(BigInt(N));
    for (const c of waiting.channels.slice(1)) expect([c.lag, c.partitions.length]).toEqual([0n, 6]);
    expect(before.e2eSamples).toBe(0n);

    const provider = instantProvider();
    await startWorkerRole(h.rt, { channels: ["email"], providers: { email: provider } });
    const after = await waitFor("email lag 0 and every SENT seen", async () => {
      const o = await ops.getOverview({});
      return o.lagAvailable && email(o).lag === 0n && email(o).e2eSamples === BigInt(N) && o;
    });
    expect(provider.sends).toBe(N);
    const e = email(after);
    // The main lane's group committed everything; the high lane's, with nothing to read, nothing.
    expect(e.partitions.slice(0, 3).map((p) => p.committedOffset)).toEqual(before.partitions.slice(0, 3).map((p) => p.logEndOffset));
    // Every SENT of this test came within the minute the rate covers.
    expect(e.sentPerSecond * 60).toBeCloseTo(N, 9);
    expect(e.failedPerSecond).toBe(0);
    const p50 = Number(e.e2eP50!.seconds) + e.e2eP50!.nanos / 1e9;
    const p99 = Number(e.e2eP99!.seconds) + e.e2eP99!.nanos / 1e9;
    expect(p50).toBeGreaterThan(0);
    expect(p99).toBeGreaterThanOrEqual(p50);
    expect(after.outboxPending).toBe(0n);
    expect(after.deadLettersOpen).toBe(0n);
  });

  it("refuses a missing or unknown API key with UNAUTHENTICATED, on both listeners", async () => {
    const refused = async (call: () => Promise<unknown>) => {
      const err = await call().then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
      return err && { code: Code[err.code], message: err.rawMessage };
    };
    const unknown = createOperationsClient({ address: h.grpcAddress, apiKey: "not-a-key" });
    const none = createOperationsClient({ address: h.grpcAddress, apiKey: "" });
    try {
      expect(await refused(() => unknown.getOverview({}))).toEqual({ code: "Unauthenticated", message: "unknown API key" });
      expect(await refused(() => none.getOverview({}))).toEqual({ code: "Unauthenticated", message: "missing API key: send 'authorization: Bearer <api key>'" });
    } finally {
      unknown.close();
      none.close();
    }
    const http = (key?: string) => {
      const auth: Interceptor = (next) => (req) => {
        if (key) req.header.set("authorization", `Bearer ${key}`);
        return next(req);
      };
      return createClient(OperationsService, createConnectTransport({ baseUrl: h.httpUrl, httpVersion: "1.1", interceptors: [auth] }));
    };
    expect(await refused(() => http().getOverview({}))).toMatchObject({ code: "Unauthenticated" });
    // Any tenant's key reads the same deployment-wide figures.
    const viaHttp = await http(KEY_A).getOverview({});
    expect(viaHttp.channels.map((c) => c.group)).toEqual(["herald-worker-email", "herald-worker-sms", "herald-worker-push", "herald-worker-webhook"]);
  });
});

describe("GetOverview without the relay", { timeout: 120_000 }, () => {
  let h: TestHerald;
  beforeAll(async () => {
    h = await startTestHerald({ roles: ["server"], env: { ...FAST } });
  });
  afterAll(async () => {
    await h?.stop();
  });

  it("counts the outbox rows written: two per Create (its Dispatch and its status event)", async () => {
    const ops = createOperationsClient({ address: h.grpcAddress, apiKey: KEY_A });
    try {
      await createEmails(h.client(), 4);
      const { rows } = await h.db.pool.query<{ n: string }>("SELECT count(*) AS n FROM outbox WHERE published_at IS NULL");
      expect(Number(rows[0]!.n)).toBe(8);
      const o = await ops.getOverview({});
      expect(o.outboxPending).toBe(8n);
      expect(o.lagAvailable).toBe(true);
      // Nothing was published, so no channel has anything to lag on.
      expect(o.channels.map((c) => c.lag)).toEqual([0n, 0n, 0n, 0n]);
      expect([o.dueUnreleased, o.deadLettersOpen]).toEqual([0n, 0n]);
    } finally {
      ops.close();
    }
  });
});

describe("GetOverview while Kafka is down", { timeout: 240_000 }, () => {
  let broker: PrivateBroker;
  let h: TestHerald;
  beforeAll(async () => {
    broker = await startPrivateBroker();
    h = await startTestHerald({ roles: ["server"], env: { ...FAST, KAFKA_BROKERS: broker.brokers.join(",") } });
  });
  afterAll(async () => {
    await h?.stop();
    await broker?.destroy();
  });

  it("answers lag_available = false with no partitions, and the PostgreSQL figures", async () => {
    const ops = createOperationsClient({ address: h.grpcAddress, apiKey: KEY_A });
    try {
      const up = await ops.getOverview({});
      expect(up.lagAvailable).toBe(true);
      expect(up.channels.map((c) => c.partitions.length)).toEqual([6, 6, 6, 6]);
      await broker.stop();
      await createEmails(h.client(), 3);
      const o = await ops.getOverview({}, { timeoutMs: 30_000 });
      expect(o.lagAvailable).toBe(false);
      expect(o.channels.map((c) => [c.group, c.partitions.length, c.lag])).toEqual([
        ["herald-worker-email", 0, 0n],
        ["herald-worker-sms", 0, 0n],
        ["herald-worker-push", 0, 0n],
        ["herald-worker-webhook", 0, 0n],
      ]);
      expect(o.outboxPending).toBe(6n);
    } finally {
      ops.close();
    }
  });
});
