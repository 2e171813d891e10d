import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { pino } from "pino";
import { Code } from "@connectrpc/connect";
import { NotificationService } from "../../gen/herald/v1/notification_service_pb.js";
import { createMetricsRegistry, type Registry } from "../../src/metrics/registry.js";
import { createApiMetrics } from "../../src/metrics/api.js";
import { codeName, createRpcObserver, OK } from "../../src/server/rpc-observer.js";
import { AbandonedError, createGroupCommit } from "../../src/store/group-commit.js";
import { Subscription } from "../../src/feed/subscription.js";
import { loadConfig } from "../../src/config.js";
import { parseMetrics, valueOf } from "../support/metrics.js";
import { feedEvent } from "../support/feed-events.js";
import type { LogLine } from "../support/router.js";

// The api metrics' own rules, without a server: the factory, the per-call observer, the
// group commit's refusal reasons and depth, a subscription's dropped events, HERALD_ACCESS_LOG.

const registry = (): Registry => createMetricsRegistry({ processMetrics: false });
const read = async (r: Registry) => parseMetrics(await r.metrics());
const { create, watchStatus } = NotificationService.method;
const SERVICE = "herald.v1.NotificationService";

function capture() {
  const lines: LogLine[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString("utf8").split("\n")) if (line) lines.push(JSON.parse(line) as LogLine);
      done();
    },
  });
  return { lines, log: pino({ level: "info" }, sink) };
}

describe("createApiMetrics", () => {
  it("registers once per registry: a second call returns the same instruments", async () => {
    const r = registry();
    const first = createApiMetrics(r);
    expect(createApiMetrics(r)).toBe(first);
    first.accept.accepted("email", "create").inc();
    createApiMetrics(r).accept.accepted("email", "create").inc();
    expect(valueOf(await read(r), "herald_accepted_total", { channel: "email", method: "create" })).toBe(2);
    // Another registry has its own.
    expect(createApiMetrics(registry())).not.toBe(first);
  });

  it("reads the accept queue's depth on scrape, summed over its sources, until a source is untracked", async () => {
    const r = registry();
    const { accept } = createApiMetrics(r);
    let a = 3;
    const untrack = accept.trackQueueDepth(() => a);
    accept.trackQueueDepth(() => 4);
    expect(valueOf(await read(r), "herald_accept_queue_depth")).toBe(7);
    a = 1;
    expect(valueOf(await read(r), "herald_accept_queue_depth")).toBe(5);
    untrack();
    expect(valueOf(await read(r), "herald_accept_queue_depth")).toBe(4);
  });
});

describe("rpc observer", () => {
  it("names codes as Connect does", () => {
    expect([OK, Code.Canceled, Code.InvalidArgument, Code.DeadlineExceeded, Code.ResourceExhausted, Code.Unauthenticated].map(codeName)).toEqual([
      "ok",
      "canceled",
      "invalid_argument",
      "deadline_exceeded",
      "resource_exhausted",
      "unauthenticated",
    ]);
  });

  it("counts each call once by listener, method and code, and times unary calls only", async () => {
    const r = registry();
    const observer = createRpcObserver({ listener: "grpc", metrics: createApiMetrics(r) });
    const started = performance.now();
    for (let i = 0; i < 5; i++) observer.of(create).finished(OK, started, "r", "t");
    observer.of(create).finished(Code.InvalidArgument, started, "r", "t");
    observer.of(watchStatus).finished(Code.Canceled, started, "r", "t");
    const s = await read(r);
    const rpc = (method: string, code: string) => ({ listener: "grpc", service: SERVICE, method, code });
    expect(valueOf(s, "herald_rpc_requests_total", rpc("Create", "ok"))).toBe(5);
    expect(valueOf(s, "herald_rpc_requests_total", rpc("Create", "invalid_argument"))).toBe(1);
    expect(valueOf(s, "herald_rpc_requests_total", rpc("WatchStatus", "canceled"))).toBe(1);
    expect(valueOf(s, "herald_rpc_duration_seconds_count", { listener: "grpc", service: SERVICE, method: "Create" })).toBe(6);
    expect([...s.samples.keys()].filter((k) => k.startsWith("herald_rpc_duration_seconds") && k.includes("WatchStatus"))).toEqual([]);
  });

  it("writes one access line per call with its fields", () => {
    const on = capture();
    createRpcObserver({ listener: "http", accessLog: on.log }).of(create).finished(Code.NotFound, performance.now(), "req-1", undefined);
    expect(on.lines).toHaveLength(1);
    expect(on.lines[0]).toMatchObject({ level: 30, msg: "rpc", listener: "http", service: SERVICE, method: "Create", code: "not_found", requestId: "req-1" });
    expect(on.lines[0]).not.toHaveProperty("tenant");
    expect(typeof on.lines[0]!.durationMs).toBe("number");
  });
});

describe("group commit admission metrics", () => {
  interface Item {
    n: number;
    gone?: boolean;
    left?: number;
  }

  it("counts refusals by reason (a full queue, a deadline shorter than the wait) and abandoned calls, and reports its depth", async () => {
    const rejected = { queueFull: counter(), deadline: counter(), abandoned: counter() };
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const gc = createGroupCommit<Item, number>({
      maxBatch: 2,
      maxDelayMs: 1,
      maxQueued: 3,
      async flush(items) {
        await gate;
        return items.map((i) => ({ status: "fulfilled", value: i.n }));
      },
      closedError: () => new Error("closed"),
      overloadedError: () => new Error("full"),
      abandoned: (i) => i.gone === true,
      timeLeftMs: (i) => i.left,
      rejected,
    });
    const settle = (p: Promise<unknown>) => p.then(() => "ok", (e: unknown) => (e instanceof AbandonedError ? "abandoned" : (e as Error).message));
    const running = [gc.submit({ n: 1 }), gc.submit({ n: 2 })]; // flushing, held by the gate
    const late = { n: 3 } as Item;
    const waiting = [settle(gc.submit(late)), settle(gc.submit({ n: 4 }))];
    expect(gc.depth()).toBe(2);
    // Room for one more, but it would wait longer than its 0 ms.
    expect(await settle(gc.submit({ n: 5, left: 0 }))).toBe("full");
    expect(rejected.deadline.n).toBe(1);
    expect(gc.refusal(0)).toBeGreaterThan(0); // asked at the door: counted the same
    expect(rejected.deadline.n).toBe(2);
    const third = settle(gc.submit({ n: 6 }));
    expect(gc.depth()).toBe(3);
    expect(await settle(gc.submit({ n: 7 }))).toBe("full");
    expect(gc.refusal(undefined)).toBeGreaterThan(0);
    expect(rejected.queueFull.n).toBe(2);
    // Its caller leaves; it is dropped when its batch forms. One that arrives gone is dropped at once.
    late.gone = true;
    expect(await settle(gc.submit({ n: 8, gone: true }))).toBe("abandoned");
    open();
    expect(await Promise.all([...running, ...waiting, third])).toEqual([1, 2, "abandoned", "ok", "ok"]);
    expect(rejected.abandoned.n).toBe(2);
    expect([rejected.queueFull.n, rejected.deadline.n]).toEqual([2, 2]);
    expect(gc.depth()).toBe(0);
  });
});

describe("Subscription overflow", () => {
  it("counts the queue and the event that overflowed it as dropped, once", () => {
    const dropped = counter();
    const s = new Subscription(0, 3, () => {}, dropped);
    for (let p = 1; p <= 3; p++) s.push(feedEvent(p));
    expect(dropped.n).toBe(0);
    s.push(feedEvent(4));
    expect(s.overflowed).toBe(true);
    expect(dropped.n).toBe(4);
    s.push(feedEvent(5)); // closed: no longer delivered to, not counted again
    expect(dropped.n).toBe(4);
  });
});

describe("HERALD_ACCESS_LOG", () => {
  const env = { HERALD_API_KEYS: "t:key-0123456789abcdef" };
  it("is on by default, on/off in any case, and names itself when it is neither", () => {
    expect(loadConfig(env, "production").accessLog).toBe(true);
    expect(loadConfig({ ...env, HERALD_ACCESS_LOG: "off" }, "production").accessLog).toBe(false);
    expect(loadConfig({ ...env, HERALD_ACCESS_LOG: "ON" }, "production").accessLog).toBe(true);
    expect(() => loadConfig({ ...env, HERALD_ACCESS_LOG: "no" }, "production")).toThrow('HERALD_ACCESS_LOG: expected "on" or "off", got "no"');
  });
});

function counter() {
  const c = {
    n: 0,
    inc(v = 1) {
      c.n += v;
    },
  };
  return c;
}
