import { describe, expect, it, vi } from "vitest";
import { Code, ConnectError, createClient, createHandlerContext, createRouterTransport } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import {
  Health,
  HealthCheckRequestSchema,
  HealthCheckResponse_ServingStatus as ServingStatus,
  type HealthCheckResponse,
} from "../../gen/grpc/health/v1/health_pb.js";
import { createHealthChecks, type DependencyCheck, type HealthOptions } from "../../src/health/checks.js";
import { grpcHealth, MAX_ECHOED_NAME } from "../../src/server/health.js";
import { waitFor } from "../support/wait.js";

const SERVICE = "herald.v1.NotificationService";

/** A check whose outcome the test flips; counts calls and keeps the last signal. */
function switchable(name: string, ok = true) {
  const state = { ok, calls: 0, signal: undefined as AbortSignal | undefined };
  const check: DependencyCheck = {
    name,
    async check(signal) {
      state.calls++;
      state.signal = signal;
      if (!state.ok) throw new Error(`${name} refused connection`);
    },
  };
  return Object.assign(state, { check });
}

/** Never settles and ignores its signal: the worst driver. */
function hanging(name: string) {
  const state = { calls: 0, signal: undefined as AbortSignal | undefined };
  const check: DependencyCheck = {
    name,
    check: (signal) => {
      state.calls++;
      state.signal = signal;
      return new Promise<void>(() => {});
    },
  };
  return Object.assign(state, { check });
}

async function nextStatus(stream: AsyncIterator<HealthCheckResponse>): Promise<ServingStatus> {
  const res = await stream.next();
  if (res.done) throw new Error("stream ended");
  return res.value.status;
}

function setup(opts: Partial<HealthOptions> & Pick<HealthOptions, "checks">, maxWatches = 100) {
  const log = { warn: vi.fn(), info: vi.fn() };
  const health = createHealthChecks({ intervalMs: 60_000, timeoutMs: 100, log, ...opts });
  const impl = grpcHealth(health, [SERVICE], { maxWatches });
  const client = createClient(Health, createRouterTransport((router) => router.service(Health, impl)));
  return { health, impl, client, log };
}

describe("Check", () => {
  it("is NOT_SERVING before the first round, then SERVING for '' and each service when all checks pass", async () => {
    const { health, client } = setup({ checks: [switchable("db").check, switchable("kafka").check] });
    expect((await client.check({ service: "" })).status).toBe(ServingStatus.NOT_SERVING);
    await health.refresh();
    expect((await client.check({ service: "" })).status).toBe(ServingStatus.SERVING);
    expect((await client.check({ service: SERVICE })).status).toBe(ServingStatus.SERVING);
    health.close();
  });

  it("is NOT_SERVING when one check throws, and reports which one", async () => {
    const clock = { now: () => Date.parse("2030-01-02T03:04:05.000Z") };
    const { health, client } = setup({ checks: [switchable("db").check, switchable("kafka", false).check], clock });
    await health.refresh();
    expect((await client.check({ service: SERVICE })).status).toBe(ServingStatus.NOT_SERVING);
    expect(health.report()).toEqual({
      serving: false,
      checks: {
        db: { ok: true, error: undefined, checkedAt: "2030-01-02T03:04:05.000Z" },
        kafka: { ok: false, error: "kafka refused connection", checkedAt: "2030-01-02T03:04:05.000Z" },
      },
    });
    health.close();
  });

  it("an optional check that fails is reported but keeps SERVING", async () => {
    const redis = switchable("redis", false);
    const { health, client } = setup({ checks: [switchable("db").check, { ...redis.check, optional: true }] });
    await health.refresh();
    expect((await client.check({ service: SERVICE })).status).toBe(ServingStatus.SERVING);
    expect(health.report()).toMatchObject({ serving: true, checks: { db: { ok: true }, redis: { ok: false } } });
    health.close();
  });

  it("treats a synchronous throw like a rejection", async () => {
    const check: DependencyCheck = {
      name: "db",
      check: () => {
        throw new Error("no pool");
      },
    };
    const { health } = setup({ checks: [check] });
    await health.refresh();
    expect(health.report().checks.db).toMatchObject({ ok: false, error: "no pool" });
    health.close();
  });

  it("answers NOT_FOUND for an unknown service", async () => {
    const { health, client } = setup({ checks: [] });
    await health.refresh();
    const err = await client.check({ service: "nope.v1.Nope" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.NotFound);
    expect((err as ConnectError).rawMessage).toBe('unknown service "nope.v1.Nope"');
    health.close();
  });

  it("repeats at most MAX_ECHOED_NAME characters of an unknown service's name", async () => {
    const { health, client } = setup({ checks: [] });
    const name = "x".repeat(500_000);
    const err = ConnectError.from(await client.check({ service: name }).catch((e: unknown) => e));
    expect(err.code).toBe(Code.NotFound);
    expect(err.rawMessage).toBe(`unknown service "${"x".repeat(MAX_ECHOED_NAME)}... (500000 characters)"`);
    health.close();
  });

  it("List gives '' and every service", async () => {
    const { health, client } = setup({ checks: [switchable("db").check] });
    await health.refresh();
    const res = await client.list({});
    expect(Object.fromEntries(Object.entries(res.statuses).map(([k, v]) => [k, v.status]))).toEqual({
      "": ServingStatus.SERVING,
      [SERVICE]: ServingStatus.SERVING,
    });
    health.close();
  });
});

describe("timeouts", () => {
  it("a hung check counts as failed within timeoutMs and aborts its signal", async () => {
    const db = switchable("db");
    const stuck = hanging("kafka");
    const { health, client } = setup({ checks: [db.check, stuck.check], timeoutMs: 100 });
    await health.refresh(); // returns although the check never does (a hang would time the test out)
    expect((await client.check({ service: "" })).status).toBe(ServingStatus.NOT_SERVING);
    expect(health.report().checks.kafka).toMatchObject({ ok: false, error: "timed out after 100 ms" });
    expect(stuck.signal?.aborted).toBe(true);
    expect(db.signal?.aborted).toBe(false); // a check that answered in time is left alone
    health.close();
  });

  it("never starts a check again while its previous call is still pending", async () => {
    const stuck = hanging("db");
    const { health } = setup({ checks: [stuck.check], timeoutMs: 20 });
    await health.refresh();
    await health.refresh();
    await health.refresh();
    expect(stuck.calls).toBe(1);
    expect(health.report().checks.db).toMatchObject({ ok: false, error: "still running from an earlier round (over 20 ms)" });
    health.close();
  });

  it("joins a round in flight instead of starting another", async () => {
    const db = switchable("db");
    const { health } = setup({ checks: [db.check] });
    await Promise.all([health.refresh(), health.refresh(), health.refresh()]);
    expect(db.calls).toBe(1);
    health.close();
  });
});

describe("logging", () => {
  it("logs once per change of state, not once per round", async () => {
    const db = switchable("db", false);
    const { health, log } = setup({ checks: [db.check] });
    for (let i = 0; i < 5; i++) await health.refresh();
    expect(log.warn).toHaveBeenCalledTimes(1);
    expect(log.warn).toHaveBeenCalledWith({ check: "db", error: "db refused connection" }, "health check failing");
    db.ok = true;
    for (let i = 0; i < 5; i++) await health.refresh();
    expect(log.info).toHaveBeenCalledTimes(1);
    expect(log.info).toHaveBeenCalledWith({ check: "db" }, "health check recovered");
    expect(log.warn).toHaveBeenCalledTimes(1);
    health.close();
  });
});

describe("Watch", () => {
  it("sends the current status, then changes only, and ends on close()", async () => {
    const db = switchable("db");
    const { health, client } = setup({ checks: [db.check] });
    await health.refresh();
    const stream = client.watch({ service: SERVICE })[Symbol.asyncIterator]();
    expect(await nextStatus(stream)).toBe(ServingStatus.SERVING);
    await health.refresh(); // no change: nothing sent
    db.ok = false;
    await health.refresh();
    expect(await nextStatus(stream)).toBe(ServingStatus.NOT_SERVING);
    await health.refresh(); // still down: nothing sent
    db.ok = true;
    await health.refresh();
    expect(await nextStatus(stream)).toBe(ServingStatus.SERVING);
    health.close();
    expect(await stream.next()).toEqual({ done: true, value: undefined });
  });

  it("goes NOT_SERVING on setShuttingDown, whatever the checks say", async () => {
    const { health, client } = setup({ checks: [switchable("db").check] });
    await health.refresh();
    const stream = client.watch({ service: "" })[Symbol.asyncIterator]();
    expect(await nextStatus(stream)).toBe(ServingStatus.SERVING);
    health.setShuttingDown();
    expect(await nextStatus(stream)).toBe(ServingStatus.NOT_SERVING);
    await health.refresh();
    expect((await client.check({ service: "" })).status).toBe(ServingStatus.NOT_SERVING);
    expect(health.report().serving).toBe(false);
    health.close();
    expect((await stream.next()).done).toBe(true);
  });

  it("sends SERVICE_UNKNOWN for an unknown service and keeps the stream open", async () => {
    const db = switchable("db");
    const { health, client } = setup({ checks: [db.check] });
    await health.refresh();
    const stream = client.watch({ service: "nope.v1.Nope" })[Symbol.asyncIterator]();
    expect(await nextStatus(stream)).toBe(ServingStatus.SERVICE_UNKNOWN);
    const next = stream.next();
    db.ok = false;
    await health.refresh();
    const early = await Promise.race([next.then(() => "message"), new Promise((r) => setTimeout(() => r("open"), 50))]);
    expect(early).toBe("open");
    health.close();
    expect((await next).done).toBe(true);
  });

  it("ends RESOURCE_EXHAUSTED beyond maxWatches, and takes a new stream once one ends", async () => {
    const { health, client } = setup({ checks: [switchable("db").check] }, 2);
    await health.refresh();
    const open = [0, 1].map(() => {
      const abort = new AbortController();
      return { abort, stream: client.watch({ service: "" }, { signal: abort.signal })[Symbol.asyncIterator]() };
    });
    for (const { stream } of open) expect(await nextStatus(stream)).toBe(ServingStatus.SERVING);
    const refused = ConnectError.from(await nextStatus(client.watch({ service: "" })[Symbol.asyncIterator]()).catch((e: unknown) => e));
    expect(refused.code).toBe(Code.ResourceExhausted);
    expect(refused.rawMessage).toBe("this server has reached its limit of 2 Health.Watch streams; use Check, or retry later");
    open[0]!.abort.abort();
    await open[0]!.stream.next().catch(() => undefined);
    // The slot is given back when the handler's generator finishes, just after the client sees the end.
    const again = await waitFor("a slot given back", async () => {
      const stream = client.watch({ service: "" })[Symbol.asyncIterator]();
      return (await nextStatus(stream).catch(() => false)) === ServingStatus.SERVING;
    });
    expect(again).toBe(true);
    health.close();
  });

  it("returns when the caller goes away (ctx.signal)", async () => {
    const { health, impl } = setup({ checks: [switchable("db").check] });
    await health.refresh();
    const requestSignal = new AbortController();
    const ctx = createHandlerContext({
      service: Health,
      method: Health.method.watch,
      protocolName: "test",
      requestMethod: "POST",
      url: "/grpc.health.v1.Health/Watch",
      requestSignal: requestSignal.signal,
    });
    const stream = impl.watch(create(HealthCheckRequestSchema, { service: "" }), ctx)[Symbol.asyncIterator]();
    expect((await stream.next()).value).toEqual({ status: ServingStatus.SERVING });
    const next = stream.next();
    requestSignal.abort();
    expect(await next).toEqual({ done: true, value: undefined });
    health.close();
  });
});

describe("start / close", () => {
  it("runs the checks every intervalMs until close()", async () => {
    const db = switchable("db", false);
    const { health, client } = setup({ checks: [db.check], intervalMs: 10 });
    await health.start();
    expect(db.calls).toBe(1);
    expect((await client.check({ service: "" })).status).toBe(ServingStatus.NOT_SERVING);
    db.ok = true;
    await vi.waitFor(async () => expect((await client.check({ service: "" })).status).toBe(ServingStatus.SERVING));
    health.close();
    const calls = db.calls;
    await new Promise((r) => setTimeout(r, 50));
    expect(db.calls).toBe(calls);
  });

  it("aborts checks in flight on close()", async () => {
    const stuck = hanging("db");
    const { health } = setup({ checks: [stuck.check], timeoutMs: 60_000 });
    const round = health.refresh();
    health.close();
    await round;
    expect(stuck.signal?.aborted).toBe(true);
  });

  it("refuses duplicate check names", () => {
    expect(() => setup({ checks: [switchable("db").check, switchable("db").check] })).toThrow(/unique/);
  });
});

describe("hold", () => {
  it("keeps NOT_SERVING until every hold is released, whatever the checks say; Watch sees the release", async () => {
    const { health, client } = setup({ checks: [switchable("db").check] });
    const first = health.hold("starting");
    const second = health.hold("starting");
    await health.refresh();
    expect(health.report()).toMatchObject({ serving: false, waiting: ["starting"] });
    const stream = client.watch({ service: "" })[Symbol.asyncIterator]();
    expect(await nextStatus(stream)).toBe(ServingStatus.NOT_SERVING);
    first();
    first(); // a second call releases nothing more
    expect(health.serving()).toBe(false);
    second();
    expect(await nextStatus(stream)).toBe(ServingStatus.SERVING);
    expect(health.report().waiting).toBeUndefined();
    health.close();
  });
});
