import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { pino } from "pino";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, createRouterTransport, type ConnectRouter, type Interceptor } from "@connectrpc/connect";
import { NotificationService, WatchStatusResponseSchema } from "../../gen/herald/v1/notification_service_pb.js";
import { hashApiKey } from "../../src/domain/api-keys.js";
import { createEdge } from "../../src/server/edge.js";
import { edgeInterceptor } from "../../src/server/edge-interceptor.js";
import { createRpcObserver } from "../../src/server/rpc-observer.js";
import { createApiMetrics } from "../../src/metrics/api.js";
import { createMetricsRegistry } from "../../src/metrics/registry.js";
import { InvalidInputError } from "../../src/errors.js";
import { parseMetrics, valueOf } from "../support/metrics.js";
import type { LogLine } from "../support/router.js";
import { waitFor } from "../support/wait.js";

// The edge interceptor as the place a Connect-served call is seen to finish: once, with the code
// its client saw, whether it failed before, during or (for a stream) in the middle of its answer,
// or its client left. In-process over createRouterTransport, as the handler tests run.

function setup() {
  const lines: LogLine[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString("utf8").split("\n")) if (line) lines.push(JSON.parse(line) as LogLine);
      done();
    },
  });
  const log = pino({ level: "info" }, sink);
  const registry = createMetricsRegistry({ processMetrics: false });
  const edge = createEdge({ apiKeys: new Map([[hashApiKey("key-1"), "tenant-1"]]), log });
  const observer = createRpcObserver({ listener: "http", metrics: createApiMetrics(registry), accessLog: log });
  const event = create(WatchStatusResponseSchema, { cursor: "c1" });
  let release!: () => void;
  const routes = (router: ConnectRouter) =>
    router.service(NotificationService, {
      create() {
        throw new InvalidInputError("notification.channel: required");
      },
      async *watchStatus(req) {
        yield event;
        if (req.after === "fail") throw new Error("boom");
        if (req.after === "end") return;
        // Until the client leaves.
        await new Promise<void>((r) => (release = r));
      },
    });
  const client = (key: string | null) => {
    const auth: Interceptor = (next) => (req) => {
      if (key) req.header.set("authorization", `Bearer ${key}`);
      req.header.set("x-request-id", `rid-${req.method.name}`);
      return next(req);
    };
    return createClient(NotificationService, createRouterTransport(routes, { router: { interceptors: [edgeInterceptor(edge, { observer })] }, transport: { interceptors: [auth] } }));
  };
  const count = async (method: string, code: string) =>
    valueOf(parseMetrics(await registry.metrics()), "herald_rpc_requests_total", { listener: "http", service: "herald.v1.NotificationService", method, code });
  return { client, count, lines, registry, release: () => release?.() };
}

async function codeOf(p: Promise<unknown> | AsyncIterable<unknown>): Promise<Code | "OK"> {
  try {
    if (Symbol.asyncIterator in p) for await (const _ of p);
    else await p;
    return "OK";
  } catch (err) {
    return ConnectError.from(err).code;
  }
}

describe("edge interceptor observation", () => {
  it("counts a unary failure, an unauthenticated call, a stream that fails mid-way and one that ends, once each", async () => {
    const { client, count, lines, registry } = setup();
    expect(await codeOf(client("key-1").create({}))).toBe(Code.InvalidArgument);
    expect(await codeOf(client(null).create({}))).toBe(Code.Unauthenticated);
    expect(await codeOf(client("key-1").watchStatus({ after: "fail" }))).toBe(Code.Internal);
    expect(await codeOf(client("key-1").watchStatus({ after: "end" }))).toBe("OK");

    expect(await count("Create", "invalid_argument")).toBe(1);
    expect(await count("Create", "unauthenticated")).toBe(1);
    expect(await count("WatchStatus", "internal")).toBe(1);
    expect(await count("WatchStatus", "ok")).toBe(1);
    const scrape = parseMetrics(await registry.metrics());
    expect(valueOf(scrape, "herald_rpc_duration_seconds_count", { listener: "http", service: "herald.v1.NotificationService", method: "Create" })).toBe(2);
    expect(valueOf(scrape, "herald_rpc_duration_seconds_count", { listener: "http", service: "herald.v1.NotificationService", method: "WatchStatus" })).toBe(0);
    const access = lines.filter((l) => l.msg === "rpc").map((l) => [l.method, l.code, l.requestId, l.tenant ?? null]);
    expect(access).toEqual([
      ["Create", "invalid_argument", "rid-Create", "tenant-1"],
      ["Create", "unauthenticated", "rid-Create", null],
      ["WatchStatus", "internal", "rid-WatchStatus", "tenant-1"],
      ["WatchStatus", "ok", "rid-WatchStatus", "tenant-1"],
    ]);
  });

  it("counts a stream its client leaves as canceled, once", async () => {
    const { client, count, release } = setup();
    const abort = new AbortController();
    const stream = client("key-1").watchStatus({}, { signal: abort.signal });
    const it = stream[Symbol.asyncIterator]();
    await it.next();
    abort.abort();
    expect(await codeOf({ [Symbol.asyncIterator]: () => it })).toBe(Code.Canceled);
    release();
    // Counted when the server side sees the client leave, which may follow the client's own answer.
    await waitFor("the stream counted", async () => (await count("WatchStatus", "canceled")) === 1);
    expect(await count("WatchStatus", "ok")).toBe(0);
  });
});
